/**
 * Extra tool arguments of every engine block, checked by the runner (its
 * config file) and by the controller (a DatabaseBackup) with one function.
 * Pure.
 */
import { definitionErrors, toolConfigErrors, type EngineDefinitionSpec } from './engine-contract.js';
import { mysqlArgErrors, mysqlDatabaseErrors } from './mysql-args.js';
import { postgresqlArgErrors } from './postgresql-args.js';

type ArgRule = (at: string, block: { dumpArgs?: readonly string[]; restoreArgs?: readonly string[]; database?: string; definition?: EngineDefinitionSpec; config?: unknown }) => { path: string; message: string }[];

/** An engine whose block takes dumpArgs / restoreArgs has its allowlist here, with any other rule its tools impose. */
const ARG_RULES: Readonly<Record<string, ArgRule>> = {
  postgresql: postgresqlArgErrors,
  mysql: (at, block) => [...mysqlArgErrors(at, block), ...mysqlDatabaseErrors(at, block.database)],
  // The definition is the runner config's own (the controller copies it from a DatabaseBackupEngine).
  command: (at, block) => (block.definition ? [...definitionErrors(block.definition, `${at}.definition`), ...toolConfigErrors(block.definition.configSchema, block.config, `${at}.config`, `${at}.definition.configSchema`)] : []),
};

/** The argument problems of the block `engine.type` names, under `at` (e.g. `engine`, `spec.engine`). */
export function engineArgErrors(at: string, engine: { type: string } & Record<string, unknown>): { path: string; message: string }[] {
  const rule = Object.hasOwn(ARG_RULES, engine.type) ? ARG_RULES[engine.type] : undefined;
  const block = engine[engine.type];
  if (!rule || !block || typeof block !== 'object') return [];
  return rule(`${at}.${engine.type}`, block);
}
