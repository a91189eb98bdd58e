/**
 * DatabaseBackupEngine (cluster-scoped): an engine defined by a command (the
 * tool contract, api/engine-contract.ts), written by the cluster's
 * administrators: the runner image that holds the tool, the command, its dump
 * formats and the JSON Schema of the config a DatabaseBackup gives it. A
 * DatabaseBackup picks one by name (`spec.engine.command.engineRef`); its
 * tool runs in the runner's pod, as trusted as the runner image.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { configSchemaError, definitionErrors, EngineDefinitionSpec } from '../engine-contract.js';
import { structuralErrors, type FieldError, type ValidationResult } from '../runner-config.js';
import { ControllerStatusFields, DnsLabel, Resource } from './common.js';
import { duplicateErrors, merge, under } from './storage-class.js';

const definition = EngineDefinitionSpec.properties;

export const EngineSpec = Type.Object(
  {
    image: Type.String({
      minLength: 1,
      maxLength: 512,
      description: "the runner image holding backup-runner and the tool (built FROM a backup-runner image, docs/engines.md); it must be one of the controller's own or under its allowedRunnerImagePrefixes",
    }),
    command: definition.command,
    verbs: definition.verbs,
    formats: definition.formats,
    output: definition.output,
    locationTypes: definition.locationTypes,
    configSchema: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { 'x-kubernetes-preserve-unknown-fields': true, description: "JSON Schema (draft-07) of a DatabaseBackup's spec.engine.command.config" }),
    ),
    databases: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 32, description: 'what the engine backs up, for people (e.g. "Redis 6 and 7")' })),
    allowedNamespaces: Type.Optional(
      Type.Array(DnsLabel('a namespace name'), { maxItems: 256, description: 'namespaces whose DatabaseBackups may use this engine; empty or unset: all' }),
    ),
  },
  { additionalProperties: false },
);
export type EngineSpec = Static<typeof EngineSpec>;

export const EngineStatus = Type.Object({ ...ControllerStatusFields }, { additionalProperties: false });

export const DatabaseBackupEngine = Resource('DatabaseBackupEngine', EngineSpec, EngineStatus);
export type DatabaseBackupEngine = Static<typeof DatabaseBackupEngine>;

/** An engine as the controller uses it: the definition the runner config carries, and the image and namespaces it allows. */
export interface ResolvedEngine {
  definition: EngineDefinitionSpec;
  image: string;
  allowedNamespaces: readonly string[];
}

/**
 * Everything the controller checks on a DatabaseBackupEngine: the shape, the verbs every tool answers, one
 * name per format, and a configSchema that is JSON Schema. Pure.
 */
export function validateEngine(obj: unknown): ValidationResult<ResolvedEngine> {
  const input = (obj ?? {}) as { metadata?: { name?: string }; spec?: unknown };
  const spec = Value.Default(EngineSpec, Value.Clone(input.spec ?? {}));
  const errors = under('spec', structuralErrors(EngineSpec, spec));
  const name = input.metadata?.name ?? '';
  const s = spec as EngineSpec;
  try {
    const def: EngineDefinitionSpec = {
      name,
      command: s.command,
      verbs: s.verbs,
      formats: s.formats,
      ...(s.configSchema ? { configSchema: s.configSchema } : {}),
      ...(s.output ? { output: s.output } : {}),
      ...(s.locationTypes ? { locationTypes: s.locationTypes } : {}),
    };
    const extra: FieldError[] = [...definitionErrors(def, 'spec', 'metadata.name'), ...duplicateErrors('spec.allowedNamespaces', s.allowedNamespaces ?? [], 'namespace')];
    // A schema that does not compile is said here, once, not on every DatabaseBackup that uses it.
    const schemaError = s.configSchema ? configSchemaError(s.configSchema) : undefined;
    if (schemaError) extra.push({ path: 'spec.configSchema', message: schemaError });
    merge(errors, extra);
    if (errors.length > 0) return { ok: false, errors };
    return { ok: true, value: { definition: def, image: s.image, allowedNamespaces: s.allowedNamespaces ?? [] } };
  } catch {
    // The shape is too broken for the cross-field rules; the structural errors say why.
    return { ok: false, errors: errors.length > 0 ? errors : [{ path: 'spec', message: 'is not a DatabaseBackupEngine spec' }] };
  }
}
