/**
 * Pure command plans for the PostgreSQL client tools: argv and environment in,
 * nothing executed. The engine runs these plans; tests snapshot them.
 *
 * Invariants:
 * - Connection settings travel in libpq environment variables, never in argv,
 *   so the password is never visible in a process list or an argv log line.
 * - The child environment is built from scratch: inherited PG* variables
 *   (PGSERVICE, PGOPTIONS, PGPASSFILE, ...) cannot redirect a run elsewhere.
 * - Every tool gets `-w` (never prompt for a password): a missing password
 *   fails fast instead of waiting on a terminal.
 */
import { join } from 'node:path';
import type { PostgresqlConnection } from '../../../api/index.js';
import { BackupError } from '../../errors.js';
import { ALLOWED_DUMP_OPTIONS, ALLOWED_RESTORE_OPTIONS, PG_DUMP, PG_RESTORE, argProblems, type ArgProblem, type ToolOptions } from '../../../api/postgresql-args.js';

export const APP_NAME = 'db-backup-runner';
export const CONNECT_TIMEOUT_SECONDS = 10;
/** psql field separator for multi-column output (ASCII unit separator: never in names we print). */
export const FIELD_SEP = '\x1f';

export interface PgTools {
  psql: string;
  pgDumpall: string;
  pgDump: string;
  pgRestore: string;
  pgBasebackup: string;
  pgVerifybackup: string;
  pgReceivewal: string;
}

/** A command ready to run: no shell, argv as given. */
export interface CommandPlan {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** Tools from `binDir` when set, else resolved by PATH. */
export function toolPaths(binDir?: string): PgTools {
  const at = (name: string): string => (binDir ? join(binDir, name) : name);
  return { psql: at('psql'), pgDump: at('pg_dump'), pgRestore: at('pg_restore'), pgDumpall: at('pg_dumpall'), pgBasebackup: at('pg_basebackup'), pgVerifybackup: at('pg_verifybackup'), pgReceivewal: at('pg_receivewal') };
}

/** Non-PostgreSQL variables the tools may need from the runner's environment. */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ', 'USER', 'LD_LIBRARY_PATH'];

export interface EnvOptions {
  password?: string;
  /** Database to connect to; defaults to the configured one. */
  database?: string;
  /** Environment to take PATH, HOME, ... from. */
  base?: NodeJS.ProcessEnv;
}

/** The libpq environment for one connection. Unset options are left to libpq defaults. */
export function libpqEnv(conn: PostgresqlConnection, opts: EnvOptions = {}): NodeJS.ProcessEnv {
  const base = opts.base ?? {};
  const env: NodeJS.ProcessEnv = {};
  for (const k of INHERITED) if (base[k] !== undefined) env[k] = base[k];
  Object.assign(env, {
    // Client messages in English, so failures can be classified (server messages follow the server's lc_messages).
    LC_MESSAGES: 'C',
    PGHOST: conn.host,
    PGPORT: String(conn.port),
    PGUSER: conn.user,
    PGDATABASE: opts.database ?? conn.database,
    PGAPPNAME: APP_NAME,
    PGCONNECT_TIMEOUT: String(CONNECT_TIMEOUT_SECONDS),
  });
  if (opts.password !== undefined) env.PGPASSWORD = opts.password;
  if (conn.sslMode !== undefined) env.PGSSLMODE = conn.sslMode;
  if (conn.sslRootCert !== undefined) env.PGSSLROOTCERT = conn.sslRootCert;
  if (conn.sslCert !== undefined) env.PGSSLCERT = conn.sslCert;
  if (conn.sslKey !== undefined) env.PGSSLKEY = conn.sslKey;
  return env;
}

/**
 * Throws CONFIG_INVALID naming every offending argument with its field path
 * (`engine.postgresql.dumpArgs[1]`) and rule, unless every argument is an
 * allowed option written in full (see args.ts).
 */
export function checkExtraArgs(field: string, args: readonly string[], tool: ToolOptions, allowed: readonly string[]): void {
  throwIfProblems(argProblems(field, args, tool, allowed));
}

function throwIfProblems(problems: readonly ArgProblem[]): void {
  if (problems.length === 0) return;
  throw new BackupError('CONFIG_INVALID', `invalid configuration:\n${problems.map((p) => `  - ${p.path}: "${p.argument}": ${p.message}`).join('\n')}`, {
    details: { errors: problems.map((p) => ({ path: p.path, argument: p.argument, message: p.message })) },
  });
}

/** The fields of engine.postgresql that only a logical backup reads, and what each is for. */
const LOGICAL_ONLY = ['databases', 'globals', 'parallel', 'dumpArgs', 'restoreArgs'] as const;

/** Pure: the fields that contradict the configured mode (a physical backup is always the whole server, with no pg_dump). */
export function modeProblems(conn: PostgresqlConnection): { path: string; message: string }[] {
  if (conn.mode === 'physical') {
    return LOGICAL_ONLY.filter((f) => conn[f] !== undefined).map((f) => ({ path: `engine.postgresql.${f}`, message: 'applies only to mode logical (a physical base backup is always the whole server, taken by pg_basebackup)' }));
  }
  return (['checkpoint', 'wal'] as const).filter((f) => conn[f] !== undefined).map((f) => ({ path: `engine.postgresql.${f}`, message: 'applies only to mode physical' }));
}

/** Validates engine.postgresql: dumpArgs and restoreArgs (CONFIG_INVALID naming each bad argument), and fields the mode does not read. */
export function checkConnectionArgs(conn: PostgresqlConnection): void {
  const problems = [
    ...argProblems('engine.postgresql.dumpArgs', conn.dumpArgs ?? [], PG_DUMP, ALLOWED_DUMP_OPTIONS),
    ...argProblems('engine.postgresql.restoreArgs', conn.restoreArgs ?? [], PG_RESTORE, ALLOWED_RESTORE_OPTIONS),
  ];
  throwIfProblems(problems);
  const mode = modeProblems(conn);
  if (mode.length > 0) {
    throw new BackupError('CONFIG_INVALID', `invalid configuration:\n${mode.map((p) => `  - ${p.path}: ${p.message}`).join('\n')}`, { details: { errors: mode } });
  }
}

export interface DumpPlanOptions {
  password?: string;
  /** Snapshot id exported by another session; the dump sees exactly that snapshot. */
  snapshot?: string;
  tools?: PgTools;
  base?: NodeJS.ProcessEnv;
}

/** pg_dump writing one uncompressed custom-format archive to stdout (the pipeline compresses once). */
export function pgDumpPlan(conn: PostgresqlConnection, opts: DumpPlanOptions = {}): CommandPlan {
  const extra = conn.dumpArgs ?? [];
  checkExtraArgs('engine.postgresql.dumpArgs', extra, PG_DUMP, ALLOWED_DUMP_OPTIONS);
  const args = ['-Fc', '-Z0', '-w'];
  if (opts.snapshot !== undefined) args.push(`--snapshot=${opts.snapshot}`);
  args.push(...extra);
  return { command: (opts.tools ?? toolPaths(conn.binDir)).pgDump, args, env: libpqEnv(conn, { password: opts.password, base: opts.base }) };
}

export interface RestorePlanOptions {
  password?: string;
  database: string;
  /** Replace the objects the archive contains (the target already holds data). */
  force: boolean;
  /** Leave ownership and privileges out (a server without the dump's roles): --no-owner --no-privileges. */
  noOwner?: boolean;
  tools?: PgTools;
  base?: NodeJS.ProcessEnv;
}

/** libpq treats a -d value with `=` or a URI prefix as a connection string: quote such names as one. */
export function dbnameArg(database: string): string {
  if (!database.includes('=') && !/^postgres(ql)?:\/\//.test(database)) return database;
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * pg_restore reading an archive from stdin in one transaction: it either
 * commits everything or leaves the database as it was.
 */
export function pgRestorePlan(conn: PostgresqlConnection, opts: RestorePlanOptions): CommandPlan {
  const extra = conn.restoreArgs ?? [];
  checkExtraArgs('engine.postgresql.restoreArgs', extra, PG_RESTORE, ALLOWED_RESTORE_OPTIONS);
  const args = ['-w', '--exit-on-error', '--single-transaction'];
  if (opts.force) args.push('--clean', '--if-exists');
  if (opts.noOwner) args.push(...['--no-owner', '--no-privileges'].filter((a) => !extra.includes(a)));
  args.push(...extra, '-d', dbnameArg(opts.database));
  return {
    command: (opts.tools ?? toolPaths(conn.binDir)).pgRestore,
    args,
    env: libpqEnv(conn, { password: opts.password, database: opts.database, base: opts.base }),
  };
}

/**
 * pg_dumpall --globals-only: roles (with their password hashes when this user may read them, else
 * --no-role-passwords), memberships, role settings and tablespaces, as plain SQL.
 */
export function pgDumpallGlobalsPlan(conn: PostgresqlConnection, opts: { password?: string; tools?: PgTools; base?: NodeJS.ProcessEnv; rolePasswords: boolean }): CommandPlan {
  const args = ['--globals-only', '-w', '-l', dbnameArg(conn.database), ...(opts.rolePasswords ? [] : ['--no-role-passwords'])];
  return { command: (opts.tools ?? toolPaths(conn.binDir)).pgDumpall, args, env: libpqEnv(conn, { password: opts.password, base: opts.base }) };
}

/**
 * psql replaying globals read from stdin: every statement is tried (a role that exists is no reason to stop),
 * errors are terse (never the statement, which may hold a password hash).
 */
export function globalsRestorePlan(conn: PostgresqlConnection, opts: PsqlPlanOptions): CommandPlan {
  const plan = psqlPlan(conn, opts);
  return { ...plan, args: ['-X', '-q', '-w', '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=terse'] };
}

/**
 * psql replaying a plain-format dump (pg_dump -Fp) read from stdin into `database`, in one transaction that the
 * first error ends and rolls back.
 */
export function plainRestorePlan(conn: PostgresqlConnection, opts: PsqlPlanOptions & { database: string }): CommandPlan {
  const plan = psqlPlan(conn, opts);
  return { ...plan, args: ['-X', '-q', '-w', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=terse', '--single-transaction', '-f', '-'] };
}

/**
 * Whether this psql has `\restrict` (13.22, 14.19, 15.14, 16.10, 17.6 and later): in that mode it refuses every
 * backslash command of its input, so replaying a planted globals dump cannot run a shell (`\!`) in the runner.
 */
export function psqlCanRestrict(v: PgVersion): boolean {
  const [, minor = '0'] = v.version.split('.');
  const min: Record<number, number> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 };
  if (v.major >= 18) return true;
  const need = min[v.major];
  return need !== undefined && Number.parseInt(minor, 10) >= need;
}

/** Quotes one shell word (POSIX sh). */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command a person runs to drop `database` (left behind by a restore
 * whose clean-up failed): psql to the maintenance database, the name quoted
 * as an identifier for SQL and as one word for the shell. The password is
 * not in it (psql asks, or reads PGPASSWORD).
 */
export function dropCommandFor(conn: Pick<PostgresqlConnection, 'host' | 'port' | 'user' | 'binDir'>, database: string): string {
  const sql = `DROP DATABASE IF EXISTS "${database.replace(/"/g, '""')}";`;
  return [toolPaths(conn.binDir).psql, '-h', conn.host, '-p', String(conn.port), '-U', conn.user, '-d', 'postgres', '-c', sql].map(shellWord).join(' ');
}

export interface PsqlPlanOptions {
  password?: string;
  database?: string;
  /** psql variables, referenced in SQL as :'name' (literal) or :"name" (identifier): psql quotes them. */
  vars?: Record<string, string>;
  tools?: PgTools;
  base?: NodeJS.ProcessEnv;
}

/** psql reading SQL from stdin: unaligned, tuples only, stops at the first error. */
export function psqlPlan(conn: PostgresqlConnection, opts: PsqlPlanOptions = {}): CommandPlan {
  const args = ['-X', '-q', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1', '-F', FIELD_SEP];
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push('-v', `${k}=${v}`);
  return {
    command: (opts.tools ?? toolPaths(conn.binDir)).psql,
    args,
    env: { ...libpqEnv(conn, { password: opts.password, database: opts.database, base: opts.base }), PGCLIENTENCODING: 'UTF8' },
  };
}

export interface PgVersion {
  /** e.g. "15.18", "9.6.24", "17beta1" */
  version: string;
  /** Major version as compared by PostgreSQL: 15, 16, ... or 9.6 before 10. */
  major: number;
}

/** Parses `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`. */
export function parseToolVersion(text: string): PgVersion {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?([a-z]+\d*)?/.exec(text);
  if (!m) throw new BackupError('TOOL_MISSING', `cannot read a PostgreSQL version from "${text.trim().slice(0, 100)}"`);
  const [, a, b, c, suffix] = m;
  const first = Number(a);
  const major = first >= 10 ? first : Number(`${a}.${b ?? 0}`);
  const version = [a, b, c].filter((x) => x !== undefined).join('.') + (suffix ?? '');
  return { version, major };
}

/** `server_version_num` (150018, 90624) as a version. */
export function serverVersionFromNum(num: number): PgVersion {
  if (num >= 100000) {
    const major = Math.floor(num / 10000);
    return { version: `${major}.${num % 10000}`, major };
  }
  const major = Math.floor(num / 10000) + (Math.floor(num / 100) % 100) / 10;
  return { version: `${Math.floor(num / 10000)}.${Math.floor(num / 100) % 100}.${num % 100}`, major };
}

/** pg_dump can dump servers of its own major version and older, never newer. */
export function isToolTooOld(tool: PgVersion, server: PgVersion): boolean {
  return tool.major < server.major;
}
