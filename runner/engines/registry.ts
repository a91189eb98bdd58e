import type { EngineConfig } from '../../api/index.js';
import { BackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { commandEngine } from './command/index.js';
import { mysqlEngine } from './mysql/index.js';
import { postgresqlEngine } from './postgresql/index.js';
import type { DumpFormat, Engine, EngineDefinition } from './types.js';

/** Every engine this runner has: the one registration line per engine. */
export const ENGINES: readonly EngineDefinition<never>[] = [postgresqlEngine, mysqlEngine, commandEngine];

/** Every dump format an engine writes, by the name recorded in manifests. */
const DUMP_FORMATS: ReadonlyMap<string, DumpFormat> = new Map(ENGINES.flatMap((e) => e.formats.map((f) => [f.format, f] as const)));

const bytes = (m: string | Uint8Array): Buffer => (typeof m === 'string' ? Buffer.from(m, 'utf8') : Buffer.from(m));

/** Bytes needed to check a stored object's format (a tool's declared magic is at most 32 bytes). */
export const FORMAT_HEAD_BYTES = Math.max(32, ...[...DUMP_FORMATS.values()].flatMap((f) => f.magic.map((m) => bytes(m).length)));

/** The format named `format`: one of the runner's own, or of `extra` (what a configured engine declares). */
export function formatNamed(format: string, extra: readonly DumpFormat[]): DumpFormat | undefined {
  return extra.find((f) => f.format === format) ?? DUMP_FORMATS.get(format);
}

/**
 * Pure: why the start of an uncompressed stream (`head`, at least
 * FORMAT_HEAD_BYTES when the stream is that long) is not a dump of `format`,
 * or undefined when it is.
 */
export function formatMismatch(format: string, head: Buffer, extra: readonly DumpFormat[] = []): string | undefined {
  const f = formatNamed(format, extra);
  if (!f) return `"${format}" is not a dump format this runner knows (${[...extra.map((x) => x.format), ...DUMP_FORMATS.keys()].join(', ')})`;
  const starts = (m: string | Uint8Array): boolean => {
    const magic = bytes(m);
    return head.length >= magic.length && head.subarray(0, magic.length).equals(magic);
  };
  if (f.magic.some(starts)) return undefined;
  const shown = (m: string | Uint8Array): string => (typeof m === 'string' ? JSON.stringify(m) : `0x${bytes(m).toString('hex')}`);
  return `the data does not start with the ${f.magic.map(shown).join(' or ')} header of a ${format} dump`;
}

/**
 * Pure: the engine and format whose header `head` (an uncompressed dump's start) begins with, if any;
 * `configured` is the configured engine with the formats it declares at run time (an engine defined by a command).
 */
export function detectFormat(head: Buffer, configured?: { name: string; formats?: readonly DumpFormat[] }): { engine: string; format: DumpFormat } | undefined {
  for (const f of configured?.formats ?? []) if (formatMismatch(f.format, head, configured!.formats) === undefined) return { engine: configured!.name, format: f };
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
