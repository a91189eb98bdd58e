/**
 * Turns a TypeBox schema into a structural OpenAPI v3 schema that
 * apiextensions.k8s.io/v1 accepts on Kubernetes 1.20:
 * - TypeBox-only keys go (symbols, `$id`, `additionalProperties: false`,
 *   which a CRD forbids next to `properties`; the API server prunes unknown
 *   fields instead);
 * - unions of literals become `enum`; `x-kubernetes-int-or-string` keeps the
 *   `anyOf: [integer, string]` form the API server requires;
 * - records become `additionalProperties: <schema>`;
 * - a property with a `default` leaves `required` (the API server fills it
 *   before validating, and clients should not have to send it);
 * - an empty-string `default` is dropped: kube-apiserver 1.20 reads it as
 *   null and rejects the whole CRD ("default: Invalid value: \"null\""), so
 *   readers treat a missing value as empty (TypeBox's Value.Default fills it).
 * Every node must end up with a type, int-or-string or preserve-unknown-fields;
 * anything else throws, naming the path, so a non-structural CRD is never written.
 */
import type { TSchema } from '@sinclair/typebox';

export type JsonSchema = { [key: string]: unknown };

const COPIED = [
  'description', 'type', 'format', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum',
  'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'minItems', 'maxItems', 'minProperties', 'maxProperties',
  'enum', 'default', 'nullable',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type',
] as const;

function literalType(value: unknown, at: string): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  throw new Error(`${at}: unsupported literal ${JSON.stringify(value)}`);
}

function copyKeys(s: JsonSchema, out: JsonSchema): void {
  for (const k of COPIED) if (s[k] !== undefined) out[k] = s[k];
  if (out.default === '') delete out.default;
}

function fromLiterals(s: JsonSchema, at: string): JsonSchema | undefined {
  const members = s.anyOf as JsonSchema[] | undefined;
  const values = s.const !== undefined ? [s.const] : members?.every((m) => m.const !== undefined) ? members.map((m) => m.const) : undefined;
  if (!values) return undefined;
  const out: JsonSchema = { type: literalType(values[0], at) };
  copyKeys(s, out);
  out.enum = values;
  return out;
}

function objectParts(s: JsonSchema, out: JsonSchema, at: string): void {
  const props = s.properties as Record<string, JsonSchema> | undefined;
  if (props) {
    const converted: Record<string, JsonSchema> = {};
    for (const [k, v] of Object.entries(props)) converted[k] = convert(v, `${at}.${k}`);
    out.properties = converted;
    const required = ((s.required as string[] | undefined) ?? []).filter((k) => props[k]?.default === undefined);
    if (required.length > 0) out.required = required;
  }
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  const pattern = s.patternProperties as Record<string, JsonSchema> | undefined;
  if (pattern && !preserve) {
    const values = Object.values(pattern);
    if (values.length !== 1) throw new Error(`${at}: only records with one key pattern are supported`);
    out.additionalProperties = convert(values[0]!, `${at}.*`);
  }
  if (typeof s.additionalProperties === 'object' && !preserve) out.additionalProperties = convert(s.additionalProperties as JsonSchema, `${at}.*`);
}

/** Converts one node; `at` is the path used in error messages. */
export function convert(schema: TSchema | JsonSchema, at = '(root)'): JsonSchema {
  const s = schema as JsonSchema;
  if (s['x-kubernetes-int-or-string'] === true) {
    const out: JsonSchema = { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] };
    copyKeys(s, out);
    delete out.type;
    return out;
  }
  const literals = fromLiterals(s, at);
  if (literals) return literals;
  if (s.anyOf || s.oneOf || s.allOf || s.not) throw new Error(`${at}: unions other than literal enums are not structural; model them as optional blocks and validate in TypeScript`);
  const out: JsonSchema = {};
  copyKeys(s, out);
  if (out.type === 'object') objectParts(s, out, at);
  if (out.type === 'array') {
    if (!s.items || Array.isArray(s.items)) throw new Error(`${at}: arrays need one items schema`);
    out.items = convert(s.items as JsonSchema, `${at}[]`);
  }
  if (out.type === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) throw new Error(`${at}: has no type (structural schemas type every field)`);
  return out;
}
