/**
 * Starts a real, throwaway PostgreSQL server for tests, demos and benchmarks.
 *
 * Invariants:
 * - Each instance owns one temp directory (data, unix socket, log, password
 *   file) and one loopback TCP port; instances never share anything, so many
 *   can run at once.
 * - Authentication is scram-sha-256 for every connection, so a wrong password
 *   is refused exactly as in production.
 * - `stop()` is idempotent and removes the temp directory; instances still
 *   running when the process exits are stopped (immediate mode) on exit.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PostgresqlConnection } from '../api/index.js';
import { exec as execCommand, type ExecResult } from './exec.js';
import { systemAccount } from './accounts.js';
import { freePort } from './net.js';

export const INSTALL_HINT =
  'PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found under /usr/lib/postgresql/<version>/bin. ' +
  'Install them with `apt-get install -y postgresql` (as root) or run `bash testenv/install-deps.sh`.';

const DEBIAN_ROOT = '/usr/lib/postgresql';
/** The system account the server runs as when we are root (PostgreSQL refuses to run as root). */
const SERVICE_USER = 'postgres';

export interface PgInstance {
  host: string;
  port: number;
  /** Superuser name. */
  user: string;
  password: string;
  dataDir: string;
  /** Directory holding the unix socket (inside the instance's temp dir). */
  socketDir: string;
  /** Directory of the server's own tools (psql, pg_dump, pg_restore of the same version). */
  binDir: string;
  /** Server major version, e.g. 15. */
  major: number;
  /** Runs SQL (read from stdin, so psql variables and \gexec work) and returns stdout without the trailing newline. */
  psql(sql: string, database?: string, vars?: Record<string, string>): Promise<string>;
  /** A runner config block for this server; the password is inline. */
  connection(database?: string, overrides?: Partial<PostgresqlConnection>): PostgresqlConnection;
  /** Stops the server and deletes its temp directory. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra postgresql.conf settings, e.g. { wal_level: 'replica' }. */
  settings?: Record<string, string | number>;
  user?: string;
}

/** Newest /usr/lib/postgresql/<major>/bin holding initdb, pg_ctl and postgres. Throws with the install hint. */
export function findServerBinDir(root = DEBIAN_ROOT): { binDir: string; major: number } {
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .map(Number)
        .sort((a, b) => b - a)
    : [];
  for (const major of majors) {
    const binDir = join(root, String(major), 'bin');
    if (['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(binDir, b)))) return { binDir, major };
  }
  throw new Error(INSTALL_HINT);
}

interface RunAs {
  /** Prefix that runs a command as the service user (empty when not root). */
  prefix: string[];
  uid: number;
  gid: number;
}

function serviceAccount(): RunAs {
  if (process.getuid?.() !== 0) return { prefix: [], uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
  return { prefix: ['runuser', '-u', SERVICE_USER, '--'], ...systemAccount(SERVICE_USER) };
}

function exec(cmd: string[], env: NodeJS.ProcessEnv = process.env, input?: string): Promise<ExecResult> {
  return execCommand(cmd[0]!, cmd.slice(1), { env, ...(input === undefined ? {} : { input }) });
}

async function mustExec(cmd: string[], what: string): Promise<string> {
  const r = await exec(cmd);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}


const live = new Set<{ pgCtl: string[]; dataDir: string; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const i of live) {
      spawnSync(i.pgCtl[0]!, [...i.pgCtl.slice(1), 'stop', '-D', i.dataDir, '-m', 'immediate'], { stdio: 'ignore' });
      spawnSync('rm', ['-rf', i.dir], { stdio: 'ignore' });
    }
  });
}

const DEFAULT_SETTINGS: Record<string, string | number> = {
  listen_addresses: "'127.0.0.1'",
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  shared_buffers: "'64MB'",
  max_connections: 40,
  max_wal_size: "'2GB'",
  logging_collector: 'off',
  log_min_messages: 'warning',
};

/** Starts a fresh server on a free loopback port and waits until it accepts connections. */
export async function startPostgres(opts: StartOptions = {}): Promise<PgInstance> {
  const { binDir, major } = findServerBinDir();
  const as = serviceAccount();
  const user = opts.user ?? 'postgres';
  const password = randomBytes(12).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'pgtest-'));
  const dataDir = join(dir, 'data');
  const pwFile = join(dir, 'pwfile');
  await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
  if (as.prefix.length > 0) await chown(dir, as.uid, as.gid).then(() => chown(pwFile, as.uid, as.gid));
  const pgCtl = [...as.prefix, join(binDir, 'pg_ctl')];
  const handle = { pgCtl, dataDir, dir };
  installExitHook();
  live.add(handle);
  try {
    await mustExec(
      [...as.prefix, join(binDir, 'initdb'), '-D', dataDir, '-U', user, '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      'initdb',
    );
    await rm(pwFile);
    const port = await startOnFreePort(pgCtl, dataDir, dir, opts.settings ?? {});
    return makeInstance({ binDir, major, user, password, port, dataDir, dir, handle });
  } catch (err) {
    live.delete(handle);
    await exec([...pgCtl, 'stop', '-D', dataDir, '-m', 'immediate']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A directory the server's account may use (owned by it when we are root): for a data directory a restore will lay out. */
export async function serviceOwnedDir(prefix = 'pgdata-'): Promise<string> {
  const as = serviceAccount();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  if (as.prefix.length > 0) await chown(dir, as.uid, as.gid);
  return dir;
}

/**
 * Starts a server on an existing data directory (e.g. one a restore laid out), on a free loopback port with
 * its socket and log in a temp directory of its own; `user` and `password` are the restored server's. `stop()`
 * stops it and removes the temp directory, never the data directory.
 */
export async function startPostgresOn(dataDir: string, login: { user: string; password: string }): Promise<PgInstance & { log(): Promise<string> }> {
  const { binDir, major } = findServerBinDir();
  const as = serviceAccount();
  const dir = await mkdtemp(join(tmpdir(), 'pgrun-'));
  if (as.prefix.length > 0) await chown(dir, as.uid, as.gid);
  const pgCtl = [...as.prefix, join(binDir, 'pg_ctl')];
  const handle = { pgCtl, dataDir, dir };
  installExitHook();
  live.add(handle);
  const log = join(dir, 'server.log');
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    const r = await exec([...pgCtl, 'start', '-D', dataDir, '-l', log, '-w', '-t', '120', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`]);
    if (r.code === 0) {
      const instance = makeInstance({ binDir, major, user: login.user, password: login.password, port, dataDir, dir, handle });
      return { ...instance, log: () => readFile(log, 'utf8').catch(() => '') };
    }
    const logText = await readFile(log, 'utf8').catch(() => '');
    lastError = new Error(`pg_ctl start on ${dataDir} failed (exit ${r.code}): ${r.stderr.trim()}\n${logText.slice(-3000)}`);
    if (!/could not bind|address already in use/i.test(logText)) break;
  }
  live.delete(handle);
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

/** The chosen port can be taken by someone else before the server binds it: retry with another. */
async function startOnFreePort(pgCtl: string[], dataDir: string, dir: string, settings: Record<string, string | number>): Promise<number> {
  const confPath = join(dataDir, 'postgresql.conf');
  const baseConf = await readFile(confPath, 'utf8');
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    const all = { ...DEFAULT_SETTINGS, unix_socket_directories: `'${dir}'`, port, ...settings };
    await writeFile(confPath, baseConf);
    await appendFile(confPath, Object.entries(all).map(([k, v]) => `${k} = ${v}\n`).join(''));
    const log = join(dir, 'server.log');
    const r = await exec([...pgCtl, 'start', '-D', dataDir, '-l', log, '-w', '-t', '60']);
    if (r.code === 0) return port;
    const logText = await readFile(log, 'utf8').catch(() => '');
    lastError = new Error(`pg_ctl start failed (exit ${r.code}): ${r.stderr.trim()}\n${logText.slice(-2000)}`);
    if (!/could not bind|address already in use/i.test(logText)) break;
  }
  throw lastError;
}

interface Parts {
  binDir: string;
  major: number;
  user: string;
  password: string;
  port: number;
  dataDir: string;
  dir: string;
  handle: { pgCtl: string[]; dataDir: string; dir: string };
}

function makeInstance(p: Parts): PgInstance {
  const host = '127.0.0.1';
  let stopped: Promise<void> | undefined;
  const clientEnv = (database: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PGHOST: host,
    PGPORT: String(p.port),
    PGUSER: p.user,
    PGPASSWORD: p.password,
    PGDATABASE: database,
    PGCLIENTENCODING: 'UTF8',
    PGCONNECT_TIMEOUT: '10',
  });
  return {
    host,
    port: p.port,
    user: p.user,
    password: p.password,
    dataDir: p.dataDir,
    socketDir: p.dir,
    binDir: p.binDir,
    major: p.major,
    async psql(sql, database = 'postgres', vars = {}) {
      const varArgs = Object.entries(vars).flatMap(([k, v]) => ['-v', `${k}=${v}`]);
      const args = [join(p.binDir, 'psql'), '-X', '-q', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1', ...varArgs];
      const r = await exec(args, clientEnv(database), sql);
      if (r.code !== 0) throw new Error(`psql on ${database} failed (exit ${r.code}): ${r.stderr.trim()}`);
      return r.stdout.replace(/\n$/, '');
    },
    connection(database = 'postgres', overrides = {}) {
      return { host, port: p.port, database, user: p.user, password: { value: p.password }, sslMode: 'disable', binDir: p.binDir, ...overrides };
    },
    stop() {
      stopped ??= (async () => {
        live.delete(p.handle);
        await exec([...p.handle.pgCtl, 'stop', '-D', p.dataDir, '-m', 'immediate', '-w']);
        await rm(p.dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
