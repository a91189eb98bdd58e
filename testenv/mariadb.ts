/**
 * Starts a real, throwaway MariaDB server for tests, demos and benchmarks
 * (the Debian `mariadb-server` package: `mariadb-install-db` into a temp
 * directory, `mariadbd --no-defaults` on a free loopback port).
 *
 * Invariants:
 * - Each instance owns one temp directory (data, socket, pid file, error
 *   log) and one loopback TCP port; instances never share anything.
 * - Clients authenticate with a password over TCP (user `admin`, every
 *   privilege), so a wrong password is refused as in production; root is
 *   reachable only through the instance's own socket.
 * - `--no-defaults`: no /etc/mysql file changes what a test sees.
 * - `stop()` is idempotent and removes the temp directory; instances still
 *   running when the process exits are killed on exit.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { exec } from './exec.js';
import { systemAccount } from './accounts.js';
import { freePort } from './net.js';

export const MARIADB_INSTALL_HINT =
  'MariaDB server binaries (mariadbd, mariadb-install-db, mariadb) were not found. ' +
  'Install them with `apt-get install -y mariadb-server mariadb-client` (as root) or run `bash testenv/install-deps.sh`.';

const SERVER = '/usr/sbin/mariadbd';
const INSTALL_DB = '/usr/bin/mariadb-install-db';
const CLIENT = '/usr/bin/mariadb';
/** The system account the server runs as when we are root (mariadbd refuses root unless told). */
const SERVICE_USER = 'mysql';

export interface MariaDbInstance {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Server version, e.g. `10.11.19-MariaDB-0+deb12u1`. */
  version: string;
  dataDir: string;
  /** Runs SQL (from stdin) as `admin` and returns its tab-separated output without headers or the trailing newline. */
  sql(sql: string, database?: string): Promise<string>;
  /** Stops the server and deletes its temp directory. Idempotent. */
  stop(): Promise<void>;
}

export interface MariaDbStartOptions {
  /** Turn the binary log on (`--log-bin`), as a server that replicates or keeps binlogs for point-in-time recovery. */
  binlog?: boolean;
}

const live = new Set<{ child: ChildProcess; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const i of live) {
      i.child.kill('SIGKILL');
      spawnSync('rm', ['-rf', i.dir], { stdio: 'ignore' });
    }
  });
}

/** As root, the server runs as SERVICE_USER (`--user`) and owns its directories; otherwise as this user. */
function serviceUser(): string[] {
  return process.getuid?.() === 0 ? [`--user=${SERVICE_USER}`] : [];
}

async function ownDir(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const { uid, gid } = systemAccount(SERVICE_USER);
  await chown(dir, uid, gid);
}

/** Starts a fresh server on a free loopback port and waits until it answers. */
export async function startMariaDb(opts: MariaDbStartOptions = {}): Promise<MariaDbInstance> {
  for (const bin of [SERVER, INSTALL_DB, CLIENT]) if (!existsSync(bin)) throw new Error(`${MARIADB_INSTALL_HINT} (missing ${bin})`);
  const dir = await mkdtemp(join(tmpdir(), 'mariadbtest-'));
  const dataDir = join(dir, 'data');
  // Its own temp directory: servers bootstrapping at once in a shared /tmp collide on temp table names.
  const tmp = join(dir, 'tmp');
  await mkdir(dataDir);
  await mkdir(tmp);
  for (const d of [dir, dataDir, tmp]) await ownDir(d);
  const user = serviceUser();
  const install = await exec(INSTALL_DB, ['--no-defaults', `--datadir=${dataDir}`, `--tmpdir=${tmp}`, '--auth-root-authentication-method=socket', '--skip-test-db', ...user]);
  if (install.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (exit ${install.code}): ${(install.stderr || install.stdout).trim().slice(-2000)}`);
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    try {
      return await launch(dir, dataDir, port, user, opts);
    } catch (err) {
      lastError = err;
      if (!/address already in use|bind/i.test(String(err))) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

async function launch(dir: string, dataDir: string, port: number, user: string[], opts: MariaDbStartOptions): Promise<MariaDbInstance> {
  const socket = join(dir, 'mariadb.sock');
  const errLog = join(dir, 'error.log');
  const args = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--tmpdir=${join(dir, 'tmp')}`,
    `--socket=${socket}`,
    `--pid-file=${join(dir, 'mariadb.pid')}`,
    `--log-error=${errLog}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    '--skip-name-resolve',
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-buffer-pool-size=64M',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_unicode_ci',
    '--event-scheduler=OFF',
    ...(opts.binlog ? [`--log-bin=${join(dataDir, 'binlog')}`, '--server-id=1', '--binlog-format=ROW'] : []),
    ...user,
  ];
  const child = spawn(SERVER, args, { stdio: 'ignore' });
  const handle = { child, dir };
  installExitHook();
  live.add(handle);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const rootSql = (sql: string) => exec(CLIENT, ['--no-defaults', `--socket=${socket}`, '-uroot', '-N', '-B'], { input: sql, timeoutMs: 10_000 });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await rootSql('SELECT VERSION();');
    if (r.code === 0) break;
    const gone = await Promise.race([exited, delay(250).then(() => 'running' as const)]);
    if (gone !== 'running' || Date.now() > deadline) {
      live.delete(handle);
      child.kill('SIGKILL');
      const log = await readFile(errLog, 'utf8').catch(() => '');
      throw new Error(`mariadbd did not start (${gone === 'running' ? 'timed out' : `exit ${String(gone)}`}): ${log.slice(-2000)}`);
    }
  }
  const password = randomBytes(12).toString('hex');
  const setup = await rootSql(`CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY '${password}'; GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION; SELECT VERSION();`);
  if (setup.code !== 0) throw new Error(`creating the admin user failed: ${setup.stderr.trim()}`);
  const version = setup.stdout.trim();
  const host = '127.0.0.1';
  let stopped: Promise<void> | undefined;
  return {
    host,
    port,
    user: 'admin',
    password,
    version,
    dataDir,
    async sql(sql, database) {
      const r = await exec(CLIENT, ['--no-defaults', `--host=${host}`, `--port=${port}`, '--user=admin', '-N', '-B', '--default-character-set=utf8mb4', ...(database ? [database] : [])], {
        input: sql,
        env: { PATH: process.env.PATH, MYSQL_PWD: password },
      });
      if (r.code !== 0) throw new Error(`mariadb on ${database ?? '(none)'} failed (exit ${r.code}): ${r.stderr.trim()}`);
      return r.stdout.replace(/\n$/, '');
    },
    stop() {
      stopped ??= (async () => {
        live.delete(handle);
        child.kill('SIGTERM');
        const done = await Promise.race([exited.then(() => true), delay(20_000).then(() => false)]);
        if (!done) {
          child.kill('SIGKILL');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
