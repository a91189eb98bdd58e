/** The PostgreSQL engine: logical (pg_dump / pg_restore) and physical (pg_basebackup, physical/), and its pure plans. */
import type { PostgresqlConnection } from '../../../api/index.js';
import type { EngineDefinition } from '../types.js';
import { DUMP_FORMAT, GLOBALS_FORMAT, PLAIN_FORMAT, PostgresqlEngine } from './engine.js';
import { BASEBACKUP_FORMAT } from './physical/plan.js';

export { PostgresqlEngine, DUMP_FORMAT, type PostgresqlEngineOptions } from './engine.js';

/** The engine as the registry knows it. */
export const postgresqlEngine: EngineDefinition<Readonly<PostgresqlConnection>> = {
  type: 'postgresql',
  formats: [DUMP_FORMAT, { ...GLOBALS_FORMAT, magic: [...GLOBALS_FORMAT.magic] }, { ...PLAIN_FORMAT, magic: [...PLAIN_FORMAT.magic] }, { ...BASEBACKUP_FORMAT, magic: [...BASEBACKUP_FORMAT.magic] }],
  create: (block, deps) => Promise.resolve(new PostgresqlEngine(block, deps.logger, deps.env)),
};
export {
  APP_NAME,
  libpqEnv,
  pgDumpPlan,
  pgRestorePlan,
  psqlPlan,
  toolPaths,
  parseToolVersion,
  serverVersionFromNum,
  isToolTooOld,
  type CommandPlan,
  type PgTools,
  type PgVersion,
} from './plan.js';
export { classifyFailure, redact, type FailureContext } from './classify.js';
export { findDebianBinDir, readToolVersion, DEBIAN_ROOT } from './tools.js';
