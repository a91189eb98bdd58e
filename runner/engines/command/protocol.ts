/**
 * Pure: the runner's half of the tool contract (api/engine-contract.ts):
 * the request a call writes, the result a tool answers, checked before it is
 * believed, and the error a failed call becomes.
 */
import { Value } from '@sinclair/typebox/value';
import { CONTRACT_VERSION, RESULTS, RESULT_FD, TargetOutcome, TOOL_ERROR_CODES, ToolError, type ToolFormat, type ToolRequest, type ToolResult, type Verb } from '../../../api/engine-contract.js';
import type { CommandConnection } from '../../../api/index.js';
import { BackupError, type ErrorCode } from '../../errors.js';
import type { DumpFormat } from '../types.js';

/** The failure code of each verb, for a tool that says nothing more specific. */
export const VERB_FAILURE: Readonly<Record<Verb, ErrorCode>> = { probe: 'DB_UNREACHABLE', backup: 'DUMP_FAILED', restore: 'RESTORE_FAILED', inspect: 'DB_QUERY_FAILED' };

/** A declared format as the pipeline knows it (magic as bytes). */
export function dumpFormatOf(f: ToolFormat): DumpFormat {
  return { format: f.format, extension: f.extension, compressed: f.compressed, magic: (f.magicHex ?? []).map((h) => Buffer.from(h, 'hex')) };
}

export interface RequestParts {
  verb: Verb;
  workDir: string;
  passwordFile?: string;
  restore?: ToolRequest['restore'];
  destination?: ToolRequest['destination'];
}

/** The request file's contents for one call of the tool `block` configures. */
export function buildRequest(block: Readonly<CommandConnection>, parts: RequestParts): ToolRequest {
  const tls = { ...(block.tlsCa ? { caFile: block.tlsCa } : {}), ...(block.tlsCert ? { certFile: block.tlsCert } : {}), ...(block.tlsKey ? { keyFile: block.tlsKey } : {}) };
  return {
    contract: CONTRACT_VERSION,
    verb: parts.verb,
    engine: block.definition.name,
    target: {
      ...(block.host ? { host: block.host } : {}),
      ...(block.port ? { port: block.port } : {}),
      ...(block.user ? { user: block.user } : {}),
      ...(parts.passwordFile ? { passwordFile: parts.passwordFile } : {}),
      ...(block.database ? { database: block.database } : {}),
      ...(Object.keys(tls).length > 0 ? { tls } : {}),
    },
    config: { ...(block.config ?? {}) },
    resultFd: RESULT_FD,
    workDir: parts.workDir,
    ...(parts.destination ? { destination: parts.destination } : {}),
    ...(parts.restore ? { restore: parts.restore } : {}),
  };
}

/** JSON.parse without the keys that reach an object's prototype when the value is copied (`__proto__`, `constructor`, `prototype`). */
function parseJson(text: string): unknown {
  return JSON.parse(text, (key, value: unknown) => (key === '__proto__' || key === 'constructor' || key === 'prototype' ? undefined : value));
}

/**
 * The result a tool wrote, checked against the verb's schema: text that is not one JSON object of that
 * shape is a contract violation (the verb's failure code), never believed. Empty text is `undefined`.
 */
export function parseResult<V extends Verb>(verb: V, text: string, tool: string): ToolResult<V> | undefined {
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    throw new BackupError(VERB_FAILURE[verb], `${tool} ${verb}: its result on descriptor ${RESULT_FD} is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const schema = RESULTS[verb];
  // Unknown fields are a later contract's: dropped, not refused.
  const cleaned = Value.Clean(schema, Value.Clone(value));
  const first = Value.Errors(schema, cleaned).First();
  if (first) {
    throw new BackupError(VERB_FAILURE[verb], `${tool} ${verb}: its result breaks the contract at ${first.path || '(root)'}: ${first.message.toLowerCase()}`);
  }
  return cleaned as ToolResult<V>;
}

/**
 * What a tool that failed says: its `error` and the `target` it left, each taken only when it has the
 * contract's shape; a failure result need not carry the verb's other fields. Never throws.
 */
export function parseFailure(text: string): { error?: ToolResult<'restore'>['error']; target?: ToolResult<'restore'>['target'] } | undefined {
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const { error, target } = value as Record<string, unknown>;
  const out: { error?: ToolResult<'restore'>['error']; target?: ToolResult<'restore'>['target'] } = {};
  if (Value.Check(ToolError, error)) out.error = Value.Clean(ToolError, Value.Clone(error)) as typeof out.error;
  if (Value.Check(TargetOutcome, target)) out.target = Value.Clean(TargetOutcome, Value.Clone(target)) as typeof out.target;
  return out;
}

/** The error a failed call becomes: the tool's own code when it is one the contract allows, else the verb's. */
export function callFailure(verb: Verb, tool: string, how: string, stderr: string, result: { error?: { code: string; message: string }; target?: { state: string; detail?: string } } | undefined): BackupError {
  const said = result?.error;
  const code: ErrorCode = said && (TOOL_ERROR_CODES as readonly string[]).includes(said.code) ? (said.code as ErrorCode) : VERB_FAILURE[verb];
  const message = said ? `${tool} ${verb}: ${said.message}` : `${tool} ${verb} ${how}${stderr ? `: ${stderr}` : ''}`;
  return new BackupError(code, message, { details: { tool, verb, ...(said ? { toolCode: said.code } : {}), ...(result?.target ? { toolTarget: result.target } : {}), ...(stderr ? { stderr } : {}) } });
}

/**
 * The instant a dump is consistent to, from what the tool said and when it ran: a claim outside the call
 * (before it started, after it ended) is not believed, and the end (an upper bound) is used instead.
 */
export function consistentInstant(claimed: string | undefined, started: Date, ended: Date): { at: Date; believed: boolean } {
  if (claimed === undefined) return { at: ended, believed: true };
  const t = new Date(claimed);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(claimed) || Number.isNaN(t.getTime())) return { at: ended, believed: false };
  // Seconds precision: a claim rounded down to its second is still inside the call.
  if (t.getTime() < Math.floor(started.getTime() / 1000) * 1000 || t.getTime() > ended.getTime()) return { at: ended, believed: false };
  return { at: t, believed: true };
}
