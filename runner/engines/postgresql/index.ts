/** The PostgreSQL logical engine (pg_dump / pg_restore) and its pure plans. */
export { PostgresqlEngine, DUMP_FORMAT, type PostgresqlEngineOptions } from './engine.js';
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
