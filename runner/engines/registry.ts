import type { EngineConfig } from '../../api/index.js';
import { BackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DUMP_FORMAT as POSTGRESQL_DUMP, PostgresqlEngine } from './postgresql/index.js';
import type { DumpFormat, Engine } from './types.js';

/** Every dump format an engine writes, by the name recorded in manifests. */
const DUMP_FORMATS: ReadonlyMap<string, DumpFormat> = new Map([[POSTGRESQL_DUMP.format, POSTGRESQL_DUMP]]);

/** Bytes needed to check a stored object's format. */
export const FORMAT_HEAD_BYTES = Math.max(...[...DUMP_FORMATS.values()].map((f) => Buffer.byteLength(f.magic)));

/**
 * Pure: why the start of an uncompressed stream (`head`, at least
 * FORMAT_HEAD_BYTES when the stream is that long) is not a dump of `format`,
 * or undefined when it is.
 */
export function formatMismatch(format: string, head: Buffer): string | undefined {
  const f = DUMP_FORMATS.get(format);
  if (!f) return `"${format}" is not a dump format this runner knows (${[...DUMP_FORMATS.keys()].join(', ')})`;
  const magic = Buffer.from(f.magic);
  if (head.length < magic.length || !head.subarray(0, magic.length).equals(magic)) {
    return `the data does not start with the ${JSON.stringify(f.magic)} header of a ${format} dump`;
  }
  return undefined;
}

export interface EngineDeps {
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

/** Builds the engine a validated config names. */
export function createEngine(cfg: Readonly<EngineConfig>, deps: EngineDeps): Promise<Engine> {
  switch (cfg.type) {
    case 'postgresql':
      if (!cfg.postgresql) throw new BackupError('CONFIG_INVALID', 'engine.postgresql: is required when engine.type is "postgresql"');
      return Promise.resolve(new PostgresqlEngine(cfg.postgresql, deps.logger, deps.env ?? process.env));
  }
}
