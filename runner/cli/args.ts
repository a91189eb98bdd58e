import { parseArgs } from 'node:util';
import { BackupError } from '../errors.js';
import type { ImportSource } from '../ops/import.js';
import type { Selector } from '../ops/select.js';
import { resolve } from 'node:path';

export type OutputFormat = 'text' | 'json';

interface Common {
  config: string;
  output: OutputFormat;
  logLevel?: string;
  /** Run in this process even when a daemon serves the config's socket. */
  local: boolean;
}

export type Command =
  | ({ name: 'backup' } & Common)
  | ({ name: 'list' } & Common)
  | ({
      name: 'restore';
      selector: Selector;
      targetDatabase?: string;
      force: boolean;
      allowIncompleteListing: boolean;
      identityFiles: string[];
      databases?: string[];
      skipGlobals: boolean;
      noOwner: boolean;
      dataDir?: string;
      owner?: { uid: number; gid: number };
      start?: boolean;
    } & Common)
  | ({ name: 'verify'; id?: string; identityFiles: string[] } & Common)
  | ({ name: 'retention'; dryRun: boolean } & Common)
  | ({ name: 'mirror'; to?: string; from?: string; dryRun: boolean; identityFiles: string[] } & Common)
  | ({ name: 'rekey'; location?: string; id?: string; dryRun: boolean; identityFiles: string[] } & Common)
  | ({ name: 'import'; source: ImportSource; targetDatabase?: string; force: boolean; keep: boolean } & Common)
  | ({ name: 'status' } & Common)
  | ({ name: 'wal-fetch'; wal: string; dest: string } & Common)
  | ({ name: 'wal-slot'; action: 'drop' } & Common)
  | ({ name: 'serve' } & Common)
  | { name: 'help'; topic?: string }
  | { name: 'version' };

export const USAGE = `Usage: backup-runner <command> [options]

Commands:
  backup                      dump the database once and store it in every location
  list                        list backups in every location
  restore --latest | --backup ID | --to-time RFC3339
          [--target-database NAME] [--force] [--allow-incomplete-listing] [--identity FILE]...
          [--database NAME]... [--skip-globals] [--no-owner]
          [--data-dir DIR [--owner UID[:GID]] [--start]]
                              restore a backup (refuses a database holding data without --force;
                              of a whole server: its roles, then every database or each --database;
                              refuses, exit 3, when a location could not be read, unless
                              --allow-incomplete-listing: then the newest readable backup);
                              --data-dir: a physical base backup, laid into DIR (empty, a stopped
                              restore of the same backup, which resumes, or emptied with --force),
                              here, never in the daemon; the server must not run on DIR;
                              --start: then start PostgreSQL on DIR, follow the recovery to its
                              promotion, report the instant reached, and stop it cleanly
  verify [ID] [--identity FILE]...
                              check size and sha256 of every stored object against its manifest;
                              with an identity, the contents of encrypted objects too
  retention [--dry-run]       apply the retention policy to every location (--dry-run: show keep/remove with reasons)
  mirror [--to LOCATION] [--from LOCATION] [--dry-run] [--identity FILE]...
                              copy into a location (default: each in turn) every backup the others
                              (or --from) hold and it lacks: data first, manifest last, checked on the
                              way, re-encrypted for the target's recipients where its encryption differs;
                              --dry-run shows what would be copied
  rekey [ID] [--location LOCATION] [--dry-run] [--identity FILE]...
                              re-wrap stored objects of encrypted locations for the recipients the
                              config names now (only each object's header is rewritten), check them,
                              then switch the manifest; needs an identity of the old recipients
  import FILE | --from LOCATION:PATH [--target-database NAME] [--force] [--keep]
                              restore a dump made elsewhere (a PostgreSQL custom archive or a
                              MariaDB/MySQL dump; gzip, zstd or uncompressed, recognised by its
                              first bytes, anything else refused before the database is touched);
                              PATH is inside this DatabaseBackup's directory of LOCATION; --keep
                              stores it as a backup first and restores that backup
  status                      what the daemon is doing, its schedule and the last backup
  wal-fetch WALFILE DEST      fetch one file of the WAL archive, checked (PostgreSQL's restore_command
                              during a point-in-time recovery: written by restore --data-dir)
  wal-slot drop               drop this DatabaseBackup's WAL archive replication slot on the server
                              (PostgreSQL; after deleting the DatabaseBackup): refused, exit 5, while
                              something streams from it, and while a daemon archives through it
  serve                       run the daemon: schedule, retention, metrics, control socket
  version                     print the runner version

When a daemon serves the config's control socket (in the runner pod), the
commands are sent to it and wait for the result; --local runs them here.

Options:
  -c, --config PATH           config file (default: $BACKUP_RUNNER_CONFIG or /etc/backup-runner/config.yaml)
  -o, --output text|json      output format (default: text)
      --local                 run here even when a daemon is serving
      --identity FILE         age identities (AGE-SECRET-KEY-1..., one per line) that decrypt encrypted
                              locations, for restore, verify, mirror and rekey; - reads standard input; repeatable
      --log-level LEVEL       trace, debug, info, warn, error (default: info, or $LOG_LEVEL)
  -h, --help                  show this help

Exit codes: 0 ok, 1 failed, 2 usage or invalid config, 3 partially succeeded,
            4 not found, 5 refused (use --force), 6 integrity check failed,
            7 busy (another operation runs and too many wait)`;

const usage = (msg: string): BackupError => new BackupError('USAGE', `${msg}\n\n${USAGE}`);

function parseTime(value: string): Date {
  // RFC 3339 with an explicit zone: a time without one is ambiguous.
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(value)) {
    throw usage(`--to-time: "${value}" is not an RFC 3339 time with a zone, e.g. 2026-11-21T10:00:00Z`);
  }
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw usage(`--to-time: "${value}" is not a valid time`);
  return d;
}

function selector(v: { latest?: boolean; backup?: string; 'to-time'?: string }): Selector {
  const chosen = [v.latest ? 'latest' : undefined, v.backup !== undefined ? 'backup' : undefined, v['to-time'] !== undefined ? 'to-time' : undefined].filter(Boolean);
  if (chosen.length !== 1) throw usage('restore needs exactly one of --latest, --backup ID, --to-time TIME');
  if (v.latest) return { kind: 'latest' };
  if (v.backup !== undefined) return { kind: 'id', id: v.backup };
  return { kind: 'time', at: parseTime(v['to-time']!) };
}

function commonOptions(v: { config?: string; output?: string; 'log-level'?: string; local?: boolean }, env: NodeJS.ProcessEnv): Common {
  const output = v.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw usage(`--output must be text or json, not "${output}"`);
  return {
    config: v.config ?? env.BACKUP_RUNNER_CONFIG ?? '/etc/backup-runner/config.yaml',
    output,
    local: v.local ?? false,
    ...(v['log-level'] ? { logLevel: v['log-level'] } : {}),
  };
}

const RESTORE_ONLY = ['latest', 'backup', 'to-time', 'allow-incomplete-listing', 'database', 'skip-globals', 'no-owner', 'data-dir', 'owner', 'start'] as const;
const RESTORE_OR_IMPORT = ['target-database', 'force'] as const;

function checkRestoreOnly(name: string, v: Partial<Record<(typeof RESTORE_ONLY)[number] | (typeof RESTORE_OR_IMPORT)[number] | 'keep' | 'dry-run' | 'identity' | 'to' | 'from' | 'location', unknown>>): void {
  if (name !== 'restore') {
    const stray = RESTORE_ONLY.filter((k) => v[k] !== undefined);
    if (stray.length > 0) throw usage(`--${stray[0]} is an option of restore, not of ${name}`);
  }
  if (name !== 'restore' && name !== 'import') {
    const stray = RESTORE_OR_IMPORT.filter((k) => v[k] !== undefined);
    if (stray.length > 0) throw usage(`--${stray[0]} is an option of restore and import, not of ${name}`);
  }
  if (name !== 'import' && v.keep !== undefined) throw usage(`--keep is an option of import, not of ${name}`);
  if (!['retention', 'mirror', 'rekey'].includes(name) && v['dry-run'] !== undefined) throw usage(`--dry-run is an option of retention, mirror and rekey, not of ${name}`);
  if (!['restore', 'verify', 'mirror', 'rekey'].includes(name) && v.identity !== undefined) throw usage(`--identity is an option of restore, verify, mirror and rekey, not of ${name}`);
  if (name !== 'mirror' && v.to !== undefined) throw usage(`--to is an option of mirror, not of ${name}`);
  if (name !== 'mirror' && name !== 'import' && v.from !== undefined) throw usage(`--from is an option of mirror and import, not of ${name}`);
  if (name !== 'rekey' && v.location !== undefined) throw usage(`--location is an option of rekey, not of ${name}`);
}

/** Pure: argv (without node and script) and environment -> a command, or a USAGE error. */
export function parseCommand(argv: readonly string[], env: NodeJS.ProcessEnv = {}): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        output: { type: 'string', short: 'o' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        latest: { type: 'boolean' },
        backup: { type: 'string' },
        'to-time': { type: 'string' },
        'target-database': { type: 'string' },
        force: { type: 'boolean' },
        'allow-incomplete-listing': { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        local: { type: 'boolean' },
        identity: { type: 'string', multiple: true },
        to: { type: 'string' },
        from: { type: 'string' },
        location: { type: 'string' },
        keep: { type: 'boolean' },
        database: { type: 'string', multiple: true },
        'skip-globals': { type: 'boolean' },
        'no-owner': { type: 'boolean' },
        'data-dir': { type: 'string' },
        owner: { type: 'string' },
        start: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw usage((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  const [name, ...rest] = positionals;
  if (v.help || name === undefined || name === 'help') return { name: 'help', topic: name === 'help' ? rest[0] : name };
  if (name === 'version') return { name: 'version' };
  checkRestoreOnly(name, v);
  const maxPositionals = name === 'wal-fetch' ? 2 : name === 'verify' || name === 'rekey' || name === 'import' || name === 'wal-slot' ? 1 : 0;
  if (rest.length > maxPositionals) throw usage(`unexpected argument "${rest[maxPositionals]}"`);
  return buildCommand(name, rest, v, commonOptions(v, env));
}

/** import FILE or --from LOCATION:PATH (exactly one); a file is made absolute here, since the daemon has another working directory. */
function importSource(file: string | undefined, from: string | undefined): ImportSource {
  if ((file === undefined) === (from === undefined)) throw usage('import needs exactly one of FILE, --from LOCATION:PATH');
  if (file !== undefined) return { kind: 'file', path: resolve(file) };
  const at = from!.indexOf(':');
  if (at <= 0 || at === from!.length - 1) throw usage(`--from: "${from!}" is not LOCATION:PATH (e.g. offsite:imports/orders.dump.gz)`);
  return { kind: 'location', location: from!.slice(0, at), key: from!.slice(at + 1) };
}

/** --database values: names, each once. */
function databaseNames(values: string[]): string[] {
  if (values.some((d) => d === '')) throw usage('--database needs a database name');
  return [...new Set(values)];
}

/** --identity values: files, `-` (standard input) at most once. */
function identityFiles(values: string[] | undefined): string[] {
  const files = values ?? [];
  if (files.filter((f) => f === '-').length > 1) throw usage('--identity - (standard input) may be given once');
  if (files.some((f) => f === '')) throw usage('--identity needs a file, or - for standard input');
  return files;
}

/** mirror and rekey: commands that work between or on locations, named by flags. */
function locationCommand(name: 'mirror' | 'rekey', rest: string[], v: { 'dry-run'?: boolean; identity?: string[]; to?: string; from?: string; location?: string }, common: Common): Command {
  for (const k of ['to', 'from', 'location'] as const) if (v[k] === '') throw usage(`--${k} needs a location name`);
  const shared = { ...common, dryRun: v['dry-run'] ?? false, identityFiles: identityFiles(v.identity) };
  if (name === 'mirror') return { name, ...shared, ...(v.to ? { to: v.to } : {}), ...(v.from ? { from: v.from } : {}) };
  return { name, ...shared, ...(rest[0] ? { id: rest[0] } : {}), ...(v.location ? { location: v.location } : {}) };
}

type CommandValues = Parameters<typeof selector>[0] & {
  database?: string[];
  'skip-globals'?: boolean;
  'no-owner'?: boolean;
  'data-dir'?: string;
  owner?: string;
  start?: boolean;
  force?: boolean;
  keep?: boolean;
  'dry-run'?: boolean;
  'target-database'?: string;
  'allow-incomplete-listing'?: boolean;
  identity?: string[];
  to?: string;
  from?: string;
  location?: string;
};

function restoreCommand(v: CommandValues, common: Common): Command {
  return {
    name: 'restore',
    ...common,
    selector: selector(v),
    force: v.force ?? false,
    allowIncompleteListing: v['allow-incomplete-listing'] ?? false,
    ...(v['target-database'] ? { targetDatabase: v['target-database'] } : {}),
    identityFiles: identityFiles(v.identity),
    ...(v.database ? { databases: databaseNames(v.database) } : {}),
    skipGlobals: v['skip-globals'] ?? false,
    noOwner: v['no-owner'] ?? false,
    ...dataDirOptions(v),
  };
}

/** --data-dir (made absolute) and --owner UID[:GID] (only with it; the group defaults to the uid's number). */
function dataDirOptions(v: CommandValues): { dataDir?: string; owner?: { uid: number; gid: number }; start?: boolean } {
  const dir = v['data-dir'];
  if (v.start !== undefined && dir === undefined) throw usage('--start applies only with --data-dir (it starts a server on the restored data directory)');
  if (dir === undefined) {
    if (v.owner !== undefined) throw usage('--owner applies only with --data-dir');
    return {};
  }
  if (dir === '') throw usage('--data-dir needs a directory');
  for (const [flag, given] of [['--target-database', v['target-database']], ['--database', v.database], ['--skip-globals', v['skip-globals']], ['--no-owner', v['no-owner']]] as const) {
    if (given !== undefined) throw usage(`${flag} does not apply with --data-dir (a physical base backup is the whole server)`);
  }
  const start = v.start ? { start: true } : {};
  if (v.owner === undefined) return { dataDir: resolve(dir), ...start };
  const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(v.owner);
  if (!m) throw usage(`--owner: "${v.owner}" is not UID or UID:GID (numbers)`);
  return { dataDir: resolve(dir), owner: { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) }, ...start };
}

function importCommand(rest: string[], v: CommandValues, common: Common): Command {
  return {
    name: 'import',
    ...common,
    source: importSource(rest[0], v.from),
    force: v.force ?? false,
    keep: v.keep ?? false,
    ...(v['target-database'] ? { targetDatabase: v['target-database'] } : {}),
  };
}

function buildCommand(name: string, rest: string[], v: CommandValues, common: Common): Command {
  switch (name) {
    case 'backup':
    case 'list':
    case 'status':
    case 'serve':
      return { name, ...common };
    case 'retention':
      return { name, ...common, dryRun: v['dry-run'] ?? false };
    case 'verify':
      return { name, ...common, ...(rest[0] ? { id: rest[0] } : {}), identityFiles: identityFiles(v.identity) };
    case 'mirror':
    case 'rekey':
      return locationCommand(name, rest, v, common);
    case 'restore':
      return restoreCommand(v, common);
    case 'import':
      return importCommand(rest, v, common);
    case 'wal-fetch':
      if (rest.length !== 2 || rest.some((r) => r === '')) throw usage('wal-fetch needs WALFILE and DEST (restore_command = \'backup-runner wal-fetch -c CONFIG %f %p\')');
      return { name, ...common, wal: rest[0]!, dest: rest[1]! };
    case 'wal-slot':
      if (rest[0] !== 'drop') throw usage(`wal-slot needs what to do: "wal-slot drop"${rest[0] === undefined ? '' : `, not "${rest[0]}"`}`);
      return { name, ...common, action: 'drop' };
    default:
      throw usage(`unknown command "${name}"`);
  }
}
