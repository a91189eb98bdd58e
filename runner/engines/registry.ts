import type { EngineConfig } from '../../api/index.js';
import { BackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { mysqlEngine } from './mysql/index.js';
import { postgresqlEngine } from './postgresql/index.js';
import type { DumpFormat, Engine, EngineDefinition } from './types.js';

/** Every engine this runner has: the one registration line per engine. */
export const ENGINES: readonly EngineDefinition<never>[] = [postgresqlEngine, mysqlEngine];

/** Every dump format an engine writes, by the name recorded in manifests. */
const DUMP_FORMATS: ReadonlyMap<string, DumpFormat> = new Map(ENGINES.flatMap((e) => e.formats.map((f) => [f.format, f] as const)));

/** Bytes needed to check a stored object's format. */
export const FORMAT_HEAD_BYTES = Math.max(...[...DUMP_FORMATS.values()].flatMap((f) => f.magic.map((m) => Buffer.byteLength(m))));

/**
 * Pure: why the start of an uncompressed stream (`head`, at least
 * FORMAT_HEAD_BYTES when the stream is that long) is not a dump of `format`,
 * or undefined when it is.
 */
export function formatMismatch(format: string, head: Buffer): string | undefined {
  const f = DUMP_FORMATS.get(format);
  if (!f) return `"${format}" is not a dump format this runner knows (${[...DUMP_FORMATS.keys()].join(', ')})`;
  const starts = (m: string): boolean => {
    const magic = Buffer.from(m);
    return head.length >= magic.length && head.subarray(0, magic.length).equals(magic);
  };
  if (f.magic.some(starts)) return undefined;
  return `the data does not start with the ${f.magic.map((m) => JSON.stringify(m)).join(' or ')} header of a ${format} dump`;
}

/** Pure: the engine and format whose header `head` (an uncompressed dump's start) begins with, if any. */
export function detectFormat(head: Buffer): { engine: string; format: DumpFormat } | undefined {
  for (const e of ENGINES) for (const f of e.formats) if (formatMismatch(f.format, head) === undefined) return { engine: e.type, format: f };
  return undefined;
}

export interface EngineDeps {
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

/** Builds the engine a validated config names, from its `engine.<type>` block. */
export function createEngine(cfg: Readonly<EngineConfig>, deps: EngineDeps): Promise<Engine> {
  const definition = ENGINES.find((e) => e.type === cfg.type);
  if (!definition) throw new BackupError('CONFIG_INVALID', `engine.type: "${cfg.type}" is not an engine of this runner (${ENGINES.map((e) => e.type).join(', ')})`);
  const block = (cfg as Record<string, unknown>)[cfg.type];
  if (block === undefined) throw new BackupError('CONFIG_INVALID', `engine.${cfg.type}: is required when engine.type is "${cfg.type}"`);
  return (definition as EngineDefinition<unknown>).create(block, { logger: deps.logger, env: deps.env ?? process.env });
}
