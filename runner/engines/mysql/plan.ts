/**
 * Pure plans for the MariaDB / MySQL client tools: versions, the option file
 * that carries the connection, argv. Nothing is executed here; the engine
 * runs these plans and tests hold them against tables and goldens.
 *
 * Invariants:
 * - The connection, password included, travels in an option file passed as
 *   `--defaults-file` (the first argument: the only place the tools read it),
 *   never in argv or the environment, and no other option file is read: a
 *   my.cnf in the image or in HOME cannot redirect a run.
 * - The database name is always the last argument, after `--`: a name that
 *   looks like an option is still a name.
 * - Identifiers and strings reach SQL quoted here (`ident`, `text`), never
 *   concatenated raw.
 */
import { join } from 'node:path';
import type { MysqlConnection } from '../../../api/index.js';

export type Flavor = 'mariadb' | 'mysql';

export interface MysqlVersion {
  flavor: Flavor;
  /** e.g. "10.11.19" */
  version: string;
  /** major.minor as a number for comparison: 10.11 → [10, 11] */
  major: number;
  minor: number;
}

/** The client tools of one flavor. */
export interface MysqlTools {
  dump: string;
  client: string;
}

/** Tool pairs tried in order (MariaDB's names first: Debian's mysqldump is a link to mariadb-dump anyway). */
export function toolCandidates(binDir?: string): MysqlTools[] {
  const at = (name: string): string => (binDir ? join(binDir, name) : name);
  return [
    { dump: at('mariadb-dump'), client: at('mariadb') },
    { dump: at('mysqldump'), client: at('mysql') },
  ];
}

/**
 * The version a dump or client tool reports with --version:
 *   "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)"
 *   "mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)"
 *   "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"
 *   "mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)"
 * Undefined when the text is none of these.
 */
export function parseToolVersion(text: string): MysqlVersion | undefined {
  const flavor: Flavor = /MariaDB/i.test(text) ? 'mariadb' : 'mysql';
  const m = /\bDistrib\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(text) ?? /\bfrom\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(text) ?? /\bVer\s+(\d+)\.(\d+)(?:\.(\d+))?(?!.*Distrib)/.exec(text);
  if (!m) return undefined;
  return { flavor, version: [m[1], m[2], m[3]].filter((x) => x !== undefined).join('.'), major: Number(m[1]), minor: Number(m[2]) };
}

/** The server's `SELECT VERSION()`: "10.11.19-MariaDB-0+deb12u1-log", "8.0.36", "5.7.44-log". */
export function parseServerVersion(text: string): MysqlVersion | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  if (!m) return undefined;
  return { flavor: /mariadb/i.test(text) ? 'mariadb' : 'mysql', version: `${m[1]}.${m[2]}.${m[3]}`, major: Number(m[1]), minor: Number(m[2]) };
}

const older = (a: MysqlVersion, b: MysqlVersion): boolean => a.major < b.major || (a.major === b.major && a.minor < b.minor);
const name = (v: MysqlVersion): string => `${v.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${v.version}`;

/**
 * Why `tool` cannot dump `server` (undefined when it can): a dump tool must be
 * of the server's flavor and at least its major.minor. One exception: MariaDB
 * tools read MySQL up to 5.7, the release MariaDB forked from; MySQL 8 changed
 * the dictionary and the dump syntax they rely on. MySQL's mysqldump expects
 * tables MariaDB does not have (column statistics).
 */
export function toolProblem(tool: MysqlVersion, server: MysqlVersion): { code: 'TOOL_TOO_OLD' | 'TOOL_INCOMPATIBLE'; message: string } | undefined {
  const install = server.flavor === 'mariadb' ? 'the MariaDB client (Debian: apt-get install mariadb-client)' : 'the MySQL client tools of that version';
  const advice = `Install ${install} and set engine.mysql.binDir to their directory, or use a runner image built for ${name(server)}.`;
  if (tool.flavor === server.flavor) {
    if (!older(tool, server)) return undefined;
    return { code: 'TOOL_TOO_OLD', message: `the dump tool (${name(tool)}) is older than the server (${name(server)}) and may not read what it stores. ${advice}` };
  }
  if (tool.flavor === 'mariadb' && server.flavor === 'mysql' && older(server, { flavor: 'mysql', version: '5.8', major: 5, minor: 8 })) return undefined;
  return { code: 'TOOL_INCOMPATIBLE', message: `the dump tool (${name(tool)}) cannot dump a ${name(server)} server reliably. ${advice}` };
}

/** An identifier in backquotes (`shop`), a backquote doubled. */
export function ident(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/** A string as a utf8mb4 literal that no sql_mode or character can break out of. */
export function text(value: string): string {
  return `CONVERT(X'${Buffer.from(value, 'utf8').toString('hex')}' USING utf8mb4)`;
}

/** A value quoted for an option file: backslash escapes are the only way to carry quotes, # and line breaks. */
function optionValue(value: string): string {
  const escaped = value.replace(/[\\"\n\r\t\b]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b' })[c]!);
  return `"${escaped}"`;
}

/** TLS settings of each flavor's client for each sslMode (MariaDB's client verifies a CA only together with the host name). */
function tlsLines(conn: MysqlConnection, flavor: Flavor): string[] {
  const ca = conn.sslCa ? [`ssl-ca=${optionValue(conn.sslCa)}`] : [];
  if (flavor === 'mysql') return [...(conn.sslMode ? [`ssl-mode=${conn.sslMode}`] : []), ...ca];
  switch (conn.sslMode) {
    case undefined:
    case 'PREFERRED':
      return ca;
    case 'DISABLED':
      return ['skip-ssl'];
    case 'REQUIRED':
      return ['ssl', ...ca];
    case 'VERIFY_CA':
    case 'VERIFY_IDENTITY':
      return ['ssl', ...ca, 'ssl-verify-server-cert'];
    default:
      return ca;
  }
}

/** Seconds a tool waits to connect before it fails (then classified DB_UNREACHABLE). */
export const CONNECT_TIMEOUT_SECONDS = 10;

/** The option file (`[client]` for every tool, `[mysql]` for the client alone) every tool of a run reads (mode 0600, removed after the run). */
export function optionFile(conn: MysqlConnection, flavor: Flavor, password: string | undefined): string {
  return [
    '[client]',
    `host=${optionValue(conn.host)}`,
    `port=${conn.port}`,
    'protocol=tcp',
    `user=${optionValue(conn.user)}`,
    ...(password !== undefined ? [`password=${optionValue(password)}`] : []),
    'default-character-set=utf8mb4',
    ...tlsLines(conn, flavor),
    // Only the client knows these options; the dump tool would refuse them in [client].
    '[mysql]',
    `connect-timeout=${CONNECT_TIMEOUT_SECONDS}`,
    // A dump is SQL for the server: LOAD DATA LOCAL INFILE would read the runner pod's files (its credentials) into a table.
    'local-infile=0',
    '',
  ].join('\n');
}

/** A command ready to run: no shell, argv as given; `{OPTIONS}` in args is replaced by the option file's path. */
export interface CommandPlan {
  command: string;
  args: string[];
}

export const OPTIONS_FILE = '{OPTIONS}';

/**
 * The dump: one database, consistent (`--single-transaction`: InnoDB tables
 * are read in one snapshot, nothing locked), with routines, triggers and
 * events, binary columns in hex (the dump stays text, whatever the charset),
 * and, when the server writes a binary log, the binlog file and position
 * (and MariaDB's GTID position) of the snapshot as comments: where a later
 * binlog replay starts.
 */
export function dumpPlan(conn: MysqlConnection, tools: MysqlTools, opts: { tool: MysqlVersion; binlog: boolean }): CommandPlan {
  const position = opts.binlog ? positionArgs(opts.tool) : [];
  return {
    command: tools.dump,
    args: [
      `--defaults-file=${OPTIONS_FILE}`,
      '--single-transaction',
      '--quick',
      '--routines',
      '--triggers',
      '--events',
      '--hex-blob',
      '--tz-utc',
      ...position,
      ...(conn.dumpArgs ?? []),
      '--',
      conn.database,
    ],
  };
}

/** How each tool writes the binlog position as a comment (MySQL renamed the option in 8.0.26). */
function positionArgs(tool: MysqlVersion): string[] {
  if (tool.flavor === 'mariadb') return ['--master-data=2', '--gtid'];
  const renamed = tool.major > 8 || (tool.major === 8 && (tool.minor > 0 || Number(tool.version.split('.')[2] ?? 0) >= 26));
  return [renamed ? '--source-data=2' : '--master-data=2'];
}

/** The client running SQL given on stdin in `database` (or none): tab-separated rows, no headers, no escaping. */
export function queryPlan(tools: MysqlTools, database?: string): CommandPlan {
  return { command: tools.client, args: [`--defaults-file=${OPTIONS_FILE}`, '--batch', '--skip-column-names', '--raw', ...(database !== undefined ? ['--', database] : [])] };
}

/**
 * The client replaying a dump read from stdin into `database`. `--binary-mode`
 * keeps every byte of a statement as written and makes the client refuse its
 * own commands (`\!` runs a shell, `\.` reads a file): a planted dump can
 * only send SQL. Without `--force` the first error ends the run.
 */
export function restorePlan(conn: MysqlConnection, tools: MysqlTools, database: string): CommandPlan {
  return { command: tools.client, args: [`--defaults-file=${OPTIONS_FILE}`, '--batch', '--binary-mode', ...(conn.restoreArgs ?? []), '--', database] };
}

/** The same plan with the option file's path filled in. */
export function withOptions(plan: CommandPlan, path: string): CommandPlan {
  return { command: plan.command, args: plan.args.map((a) => a.replace(OPTIONS_FILE, path)) };
}

/** One POSIX shell word. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** What a user types to drop a database a failed restore left (every part quoted as one shell word). */
export function dropCommandFor(conn: MysqlConnection, database: string): string {
  return ['mariadb', '-h', conn.host, '-P', String(conn.port), '-u', conn.user, '-p', '-e', `DROP DATABASE ${ident(database)}`].map(shellWord).join(' ');
}
