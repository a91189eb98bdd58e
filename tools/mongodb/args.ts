/**
 * Pure: what the MongoDB tool passes mongodump and mongorestore (MongoDB Database Tools 100.x), what it makes
 * of their output, and where a restore goes. No secret is ever on a command line: the password is in a 0600
 * YAML file given with --config (100.3.0 and later read `password:` from it), user, host and TLS files are not
 * secrets.
 */
import type { RequestTarget } from '../../api/engine-contract.js';
import { ToolFailure } from '../sdk.js';

export interface MongoConfig {
  /** mongodump --oplog (a whole server only) and, on restore, mongorestore --oplogReplay. */
  oplog: boolean;
  /** The database holding the user's credentials. */
  authenticationDatabase: string;
  /** mongodump --numParallelCollections; absent: mongodump's default (4). */
  numParallelCollections?: number;
}

/** The config, already checked against the definition's schema, with its defaults. */
export function configOf(config: Record<string, unknown>): MongoConfig {
  const c = config as Partial<MongoConfig>;
  return {
    oplog: c.oplog ?? false,
    authenticationDatabase: c.authenticationDatabase ?? 'admin',
    ...(c.numParallelCollections !== undefined ? { numParallelCollections: c.numParallelCollections } : {}),
  };
}

export const DEFAULT_PORT = 27017;
/** The config file's name in the call's private directory. */
export const CONFIG_FILE = 'mongo-tools.yaml';
/** The client certificate and key in one PEM file (what --sslPEMKeyFile takes), in the call's private directory. */
export const PEM_FILE = 'client.pem';

/**
 * `s` as a YAML double-quoted scalar, in ASCII only: printable ASCII as it is (`"` and `\` escaped), anything
 * else as \uXXXX or \UXXXXXXXX. The tools read the file with gopkg.in/yaml.v2 (UnmarshalStrict), which takes
 * these escapes; nothing in the value can end the scalar or start a new key.
 */
export function yamlQuoted(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (cp >= 0x20 && cp <= 0x7e) out += ch;
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else out += `\\U${cp.toString(16).padStart(8, '0')}`;
  }
  return `${out}"`;
}

/** The --config file: the password only (the tools refuse unknown keys). */
export function configFileText(password: string): string {
  return `password: ${yamlQuoted(password)}\n`;
}

/** Why the target cannot be connected to as given, or undefined. */
export function connectionProblem(target: RequestTarget, hasPassword: boolean): string | undefined {
  if (target.user !== undefined && !hasPassword) {
    // mongodump and mongorestore would prompt for it, reading the password from stdin: during a restore, the dump itself.
    return `the user "${target.user}" needs a password (passwordSecretRef): without one the tools would prompt for it on stdin`;
  }
  if (target.user === undefined && hasPassword) return 'a password is configured without a user';
  if (target.tls?.keyFile && !target.tls.certFile) return 'a TLS key file without a certificate file';
  return undefined;
}

/** Files the connection arguments name, written by the tool into the call's private directory. */
export interface ConnectionFiles {
  /** The --config file holding the password. */
  config?: string;
  /** The client certificate and key as one PEM file. */
  pem?: string;
}

/** The connection arguments shared by mongodump and mongorestore (the `--name=value` form: a value never reads as an option). */
export function connectionArgs(target: RequestTarget, cfg: MongoConfig, files: ConnectionFiles): string[] {
  const tls = target.tls;
  return [
    `--host=${target.host ?? '127.0.0.1'}`,
    `--port=${target.port ?? DEFAULT_PORT}`,
    ...(target.user !== undefined ? [`--username=${target.user}`, `--authenticationDatabase=${cfg.authenticationDatabase}`] : []),
    ...(files.config ? [`--config=${files.config}`] : []),
    ...(tls ? ['--ssl'] : []),
    ...(tls?.caFile ? [`--sslCAFile=${tls.caFile}`] : []),
    ...(files.pem ? [`--sslPEMKeyFile=${files.pem}`] : []),
  ];
}

/** Why `name` is not a MongoDB database name (on Linux: 1 to 63 bytes, none of / \ . space " $ NUL), or undefined. */
export function dbNameError(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (Buffer.byteLength(name, 'utf8') > 63) return 'is longer than 63 bytes';
  if (/[/\\. "$\0]/.test(name)) return 'holds one of / \\ . space " $ or NUL';
  return undefined;
}

/** The namespace pattern of every collection of `db` for --nsInclude, --nsFrom and --nsTo (`*` and `\` escaped, as mongorestore's ns.Escape does). */
export function nsPattern(db: string): string {
  return `${db.replace(/\\/g, '\\\\').replace(/\*/g, '\\*')}.*`;
}

/**
 * What a backup dumps: `database` (one database) or, when none is configured, the whole server. --oplog is
 * mongodump's for whole servers only: with a database it is refused here, before anything runs.
 */
export function backupScope(target: RequestTarget, cfg: MongoConfig): { database?: string } {
  const database = target.database;
  if (database === undefined) return {};
  const bad = dbNameError(database);
  if (bad) throw new ToolFailure('CONFIG_INVALID', `the database "${database}" ${bad}`);
  if (cfg.oplog) {
    throw new ToolFailure('CONFIG_INVALID', `config oplog: true needs a backup of the whole server (mongodump --oplog dumps no single database); configure no database, or set oplog: false for a backup of "${database}" that is not point-in-time`);
  }
  return { database };
}

/** mongodump's arguments of a backup: the archive on stdout, uncompressed (the runner compresses). */
export function dumpArgs(connection: string[], scope: { database?: string }, cfg: MongoConfig): string[] {
  return [
    '--archive',
    ...connection,
    ...(scope.database !== undefined ? [`--db=${scope.database}`] : []),
    ...(cfg.oplog ? ['--oplog'] : []),
    ...(cfg.numParallelCollections !== undefined ? [`--numParallelCollections=${cfg.numParallelCollections}`] : []),
  ];
}

/** mongodump's arguments to read what a target holds (its archive prelude, the process is stopped after it). */
export function preludeArgs(connection: string[], database: string | undefined): string[] {
  return ['--archive', ...connection, ...(database !== undefined ? [`--db=${database}`] : [])];
}

/** What a backup holds, recorded in the manifest's engine.position and read back on restore. */
export function backupPosition(scope: { database?: string }, cfg: MongoConfig): Record<string, string> {
  return {
    scope: scope.database === undefined ? 'server' : 'database',
    ...(scope.database !== undefined ? { database: scope.database } : {}),
    // Without --oplog each collection is read at its own moment: the dump is not a point-in-time copy.
    consistency: cfg.oplog ? 'oplog' : 'best-effort',
  };
}

/** What a backup holds, from its manifest's engine block (the position backupPosition wrote); undefined for a dump made elsewhere. */
export function dumpedScope(engine: Record<string, unknown> | undefined): { database?: string } | undefined {
  const position = engine?.position as Record<string, unknown> | undefined;
  if (position?.scope === 'server') return {};
  if (position?.scope === 'database' && typeof position.database === 'string') return { database: position.database };
  return undefined;
}

/**
 * The database a restore or inspect names: the requested one, or the configured one; undefined for the whole
 * server. The runner requests the engine name when no database is configured: that means "as configured".
 */
export function targetOf(args: { engine: string; configured?: string | undefined; requested?: string | undefined }): string | undefined {
  const { engine, configured, requested } = args;
  const explicit = requested !== undefined && !(configured === undefined && requested === engine) ? requested : undefined;
  return explicit ?? configured;
}

/** Where a restore goes: `source` the backup's database (undefined: a whole server), `into` the target database (undefined: the server as a whole). */
export interface RestorePlan {
  source?: string;
  into?: string;
}

/**
 * Where a restore (or inspect) goes. `configured` is the target's database (absent: the whole server),
 * `requested` the restore's database (the runner's default when none is configured is the engine name, which
 * then means "as configured"), `dumped` what the backup holds (undefined: as configured). A backup of one
 * database restores into the requested one, renamed (mongorestore --nsFrom/--nsTo) when it differs; a backup of
 * the whole server only into the server as a whole.
 */
export function restorePlan(args: { engine: string; configured?: string | undefined; requested?: string | undefined; dumped?: { database?: string } | undefined }): RestorePlan {
  const source = args.dumped ? args.dumped.database : args.configured;
  if (source === undefined) {
    const into = targetOf(args);
    if (into !== undefined) {
      throw new ToolFailure(
        'CONFIG_INVALID',
        `the backup holds the whole server (every database, users and roles): it restores into the server as a whole, not into the database "${into}"; nothing was changed. To restore it, configure no database and no --target-database`,
        { state: 'unchanged' },
      );
    }
    return {};
  }
  const into = targetOf(args) ?? source;
  for (const [what, name] of [['the backup\'s database', source], ['the target database', into]] as const) {
    const bad = dbNameError(name);
    if (bad) throw new ToolFailure('CONFIG_INVALID', `${what} "${name}" ${bad}; nothing was changed`, { state: 'unchanged' });
  }
  // admin holds the server's users and roles, local and config the server's own state: none of them is renamed.
  const own = [source, into].find((db) => ['admin', 'local', 'config'].includes(db));
  if (into !== source && own !== undefined) {
    throw new ToolFailure('CONFIG_INVALID', `a backup of "${source}" cannot be restored as "${into}": the ${own} database is the server's own and is never renamed; nothing was changed`, { state: 'unchanged' });
  }
  return { source, into };
}

/** mongorestore's arguments: the archive from stdin, only the backup's database (renamed if asked), --drop only with force. */
export function restoreArgs(connection: string[], plan: RestorePlan, opts: { force: boolean; oplogReplay: boolean }): string[] {
  const rename = plan.source !== undefined && plan.into !== undefined && plan.into !== plan.source;
  return [
    '--archive',
    ...connection,
    ...(plan.source !== undefined ? [`--nsInclude=${nsPattern(plan.source)}`] : []),
    ...(rename ? [`--nsFrom=${nsPattern(plan.source!)}`, `--nsTo=${nsPattern(plan.into!)}`] : []),
    ...(opts.oplogReplay ? ['--oplogReplay'] : []),
    ...(opts.force ? ['--drop'] : []),
    // A failed insert fails the restore (by default mongorestore counts it and goes on).
    '--stopOnError',
  ];
}

/** The version `<program> --version` states ("mongodump version: 100.9.4"; "r4.2.24" before the tools were split out), or undefined. */
export function toolVersion(text: string, program: string): string | undefined {
  const m = new RegExp(`^${program} version:\\s*r?(\\d[0-9A-Za-z.+_-]*)`, 'm').exec(text);
  return m?.[1];
}

/** Whether a Database Tools version reads `--config` (added in 100.3.0). */
export function supportsConfigFile(version: string): boolean {
  const [major = 0, minor = 0] = version.split(/[.-]/).map((p) => Number.parseInt(p, 10));
  return major > 100 || (major === 100 && minor >= 3);
}

/** A server version the contract accepts (what mongodump's archive header says), or undefined. */
export function serverVersionOf(said: string): string | undefined {
  return /^[0-9][0-9A-Za-z.+_-]{0,63}$/.test(said) ? said : undefined;
}

/** The contract's code for what mongodump or mongorestore said when it failed. */
export function errorCode(text: string): 'DB_AUTH_FAILED' | 'DB_UNREACHABLE' | 'FAILED' {
  if (/AuthenticationFailed|Authentication failed|auth error|sasl conversation|not authorized|Unauthorized|requires authentication/i.test(text)) return 'DB_AUTH_FAILED';
  if (/server selection|no reachable servers|connection refused|could not connect|error connecting|context deadline exceeded|i\/o timeout|no such host|connection reset|x509|certificate|tls: /i.test(text)) return 'DB_UNREACHABLE';
  return 'FAILED';
}

/** The reason in a tool's stderr: its last "Failed: ..." line, else its last lines (log timestamps left out). */
export function failureText(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d{2}:?\d{2})\s+/, '').trim())
    .filter((l) => l !== '');
  const failed = lines.filter((l) => l.startsWith('Failed: ')).pop();
  return (failed ? failed.slice('Failed: '.length) : lines.slice(-3).join(' ')).slice(0, 2000);
}
