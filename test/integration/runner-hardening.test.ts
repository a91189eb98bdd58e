/**
 * A hostile or careless config against the real runner: a real PostgreSQL
 * (testenv/postgres.ts), filesystem locations and the CLI. Each attack is
 * refused before anything runs, or is harmless.
 */
import { access, chmod, chown, copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { createRuntime } from '../../runner/build-runtime.js';
import { main } from '../../runner/cli/main.js';
import { loadConfig } from '../../runner/config/load.js';
import { Daemon } from '../../runner/daemon/daemon.js';
import { BackupError } from '../../runner/errors.js';
import { closeRuntime, type Runtime } from '../../runner/runtime.js';
import { silentLogger } from '../../runner/logger.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich } from '../../testenv/seed.js';
import { startFaultProxy, type FaultProxy } from '../../testenv/fault-proxy.js';
import { startS3, type S3Server } from '../../testenv/s3.js';

let pg: PgInstance;
let dir: string;
let setupError: Error | undefined;

interface CliResult {
  code: number;
  out: string;
  json: Record<string, unknown>;
}

async function cli(args: string[], cfgPath: string, env: NodeJS.ProcessEnv = process.env, where: 'local' | 'daemon' = 'local'): Promise<CliResult> {
  let out = '';
  const code = await main([...args, '-c', cfgPath, '-o', 'json', ...(where === 'local' ? ['--local'] : [])], env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
  return { code, out, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

let configs = 0;
/** A config backing up database `db` into a fresh filesystem location; `patch` edits it. */
async function config(db: string, patch: (c: Record<string, unknown> & { engine: { postgresql: Record<string, unknown> } }) => void = () => undefined): Promise<{ path: string; store: string }> {
  const n = ++configs;
  const store = join(dir, `store-${n}`);
  const c = {
    namespace: 'shop',
    name: 'orders',
    engine: { type: 'postgresql', postgresql: pg.connection(db) as unknown as Record<string, unknown> },
    compression: { algorithm: 'zstd' },
    locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: store } }],
    daemon: { socket: join(dir, `sock-${n}`, 'control.sock'), metricsHost: '127.0.0.1', metricsPort: 0 },
  };
  patch(c);
  const path = join(dir, `runner-${n}.yaml`);
  await writeFile(path, stringify(c));
  return { path, store };
}

/** Every file under `root`, relative; [] when it does not exist. */
async function files(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1)).sort();
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  try {
    dir = await mkdtemp(join(tmpdir(), 'dbbc-hardening-'));
    pg = await startPostgres();
    await seedRich(pg, 'shop', { rows: 2000 });
  } catch (err) {
    setupError = err instanceof Error ? err : new Error(`setup failed: ${JSON.stringify(err)}`);
  }
}, 120_000);

// A failed setup (e.g. PostgreSQL not installed) fails every test with its message, rather than skipping them.
beforeEach(() => {
  if (setupError) throw setupError;
});

afterAll(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('extra dump and restore arguments cannot redirect the tools', () => {
  it.each([
    ['an abbreviated --file', (out: string) => [`--fil=${out}`]],
    ['-f bundled after -v', (out: string) => [`-vf${out}`]],
    ['-f at the end of a bundle of allowed options', (out: string) => ['--no-owner', `-Oxf${out}`]],
  ])('a backup with dumpArgs holding %s is refused before pg_dump runs: nothing written anywhere', async (_name, args) => {
    const outside = join(dir, `elsewhere-${configs + 1}.dump`);
    const cfg = await config('shop', (c) => {
      c.engine.postgresql.dumpArgs = args(outside);
    });
    const r = await cli(['backup'], cfg.path);
    expect(r.code, r.out).toBe(2);
    expect(r.json.error).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((r.json.error as { message: string }).message).toMatch(/engine\.postgresql\.dumpArgs\[\d\]: .*--file/);
    expect(await exists(outside)).toBe(false);
    expect(await files(cfg.store)).toEqual([]);
  });

  it('a restore with an abbreviated --file in restoreArgs is refused before pg_restore runs; the database is not created', async () => {
    const good = await config('shop');
    const b = await cli(['backup'], good.path);
    expect(b.code, b.out).toBe(0);
    const outside = join(dir, 'restored-elsewhere.sql');
    const bad = await config('shop', (c) => {
      c.engine.postgresql.restoreArgs = [`--fil=${outside}`];
      (c.locations as { filesystem: { path: string } }[])[0]!.filesystem.path = good.store;
    });
    const r = await cli(['restore', '--latest', '--target-database', 'hardening_copy'], bad.path);
    expect(r.code, r.out).toBe(2);
    expect((r.json.error as { message: string }).message).toMatch(/engine\.postgresql\.restoreArgs\[0\]: "--fil=.*": .*--file/);
    expect(await exists(outside)).toBe(false);
    const dbs = await pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'hardening_copy'", 'postgres');
    expect(dbs.trim()).toBe('0');
  });

  it('allowed options still reach the tools (an excluded table is not in the restored copy)', async () => {
    const cfg = await config('shop', (c) => {
      c.engine.postgresql.dumpArgs = ['--exclude-table', 'audit.*', '-O'];
      c.engine.postgresql.restoreArgs = ['--no-owner', '-x'];
    });
    const b = await cli(['backup'], cfg.path);
    expect(b.code, b.out).toBe(0);
    const r = await cli(['restore', '--latest', '--target-database', 'hardening_allowed'], cfg.path);
    expect(r.code, r.out).toBe(0);
    expect((await pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'audit'", 'hardening_allowed')).trim()).toBe('0');
    expect(Number(await pg.psql('SELECT count(*) FROM app.items', 'hardening_allowed'))).toBeGreaterThan(0);
  });
});

describe('children that are not database tools get a minimal environment', () => {
  it('zstd (compressing and decompressing) never sees the database password or cloud keys from the runner\'s environment', async () => {
    const DB_SECRET_VAR = 'HARDENING_DB_PASSWORD';
    const CLOUD_SECRET = 'hardening-cloud-secret-0f9c2b';
    // A zstd on PATH that records its environment, then runs the real one.
    const bin = join(dir, 'fake-bin');
    const dumps = join(dir, 'zstd-env');
    await mkdir(bin, { recursive: true });
    await mkdir(dumps, { recursive: true });
    const real = (await import('node:child_process')).execFileSync('sh', ['-c', 'command -v zstd'], { encoding: 'utf8' }).trim();
    await writeFile(join(bin, 'zstd'), `#!/bin/sh\nenv > '${dumps}'/zstd-$$.env\nexec '${real}' "$@"\n`);
    await chmod(join(bin, 'zstd'), 0o755);
    const saved = { PATH: process.env.PATH, db: process.env[DB_SECRET_VAR], cloud: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.PATH = `${bin}:${process.env.PATH ?? ''}`;
    process.env[DB_SECRET_VAR] = pg.password;
    process.env.AWS_SECRET_ACCESS_KEY = CLOUD_SECRET;
    try {
      const cfg = await config('shop', (c) => {
        c.engine.postgresql.password = { env: DB_SECRET_VAR };
      });
      const b = await cli(['backup'], cfg.path, process.env);
      expect(b.code, b.out).toBe(0);
      const r = await cli(['restore', '--latest', '--target-database', 'hardening_env'], cfg.path, process.env);
      expect(r.code, r.out).toBe(0);
      const seen = await files(dumps);
      // At least one compressing and one decompressing zstd ran through the wrapper.
      expect(seen.length).toBeGreaterThanOrEqual(2);
      for (const f of seen) {
        const text = await readFile(join(dumps, f), 'utf8');
        expect(text).toMatch(/^PATH=/m);
        expect(text, f).not.toContain(pg.password);
        expect(text, f).not.toContain(CLOUD_SECRET);
        expect(text, f).not.toMatch(/^PG/m);
      }
    } finally {
      process.env.PATH = saved.PATH;
      for (const [k, v] of [[DB_SECRET_VAR, saved.db], ['AWS_SECRET_ACCESS_KEY', saved.cloud]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

/** A daemon in this process on `cfgPath`'s config; stop() closes it. */
async function startDaemon(cfgPath: string): Promise<{ daemon: Daemon; rt: Runtime; stop(): Promise<void> }> {
  const rt = await createRuntime(await loadConfig(cfgPath), silentLogger());
  const daemon = new Daemon(rt, { configPath: cfgPath });
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop().catch(() => undefined);
    await closeRuntime(rt);
    throw err;
  }
  return { daemon, rt, stop: async () => {
    await daemon.stop();
    await closeRuntime(rt);
  } };
}

async function startRejection(cfgPath: string): Promise<BackupError> {
  try {
    const d = await startDaemon(cfgPath);
    await d.stop();
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    return err as BackupError;
  }
  throw new Error('expected the daemon to refuse to start');
}

describe('the control socket directory is the runner\'s alone', () => {
  it('is created with mode 0700 when missing, and the daemon serves', async () => {
    const cfg = await config('shop');
    const d = await startDaemon(cfg.path);
    try {
      const { stat } = await import('node:fs/promises');
      const st = await stat(join(dir, `sock-${configs}`));
      expect(st.mode & 0o777).toBe(0o700);
      expect(st.uid).toBe(process.getuid!());
      expect((await cli(['list'], cfg.path, process.env, 'daemon')).code).toBe(0);
    } finally {
      await d.stop();
    }
  });

  it.each([
    ['world-readable (0755)', async (d: string) => chmod(d, 0o755), /its mode is 0755, not 0700/],
    ['writable by everyone (1777, like /tmp)', async (d: string) => chmod(d, 0o1777), /its mode is 0777, not 0700/],
    ['owned by another user', async (d: string) => chown(d, 65534, 65534), /owned by uid 65534, not by the runner/],
    ['a symlink to a directory of the runner', async (d: string) => {
      const target = `${d}-target`;
      await mkdir(target, { mode: 0o700 });
      await rm(d, { recursive: true });
      await symlink(target, d);
    }, /not a directory/],
  ])('an existing directory %s: the daemon refuses to start and says why', async (_name, spoil, rule) => {
    const cfg = await config('shop');
    const sockDir = join(dir, `sock-${configs}`);
    await mkdir(sockDir, { mode: 0o700 });
    await spoil(sockDir);
    const err = await startRejection(cfg.path);
    expect(err.code).toBe('SOCKET_DIR_UNSAFE');
    expect(err.message).toContain(`refusing to serve the control socket in ${sockDir}`);
    expect(err.message).toMatch(rule);
    expect(await exists(join(sockDir, 'control.sock'))).toBe(false);
  });
});

describe('the CLI does not send commands to a socket in a directory others can write', () => {
  it('a listener planted in a 0777 directory gets nothing: SOCKET_DIR_UNSAFE, and --local still works', async () => {
    const cfg = await config('shop');
    const sockDir = join(dir, `sock-${configs}`);
    await mkdir(sockDir);
    await chmod(sockDir, 0o777);
    const { createServer } = await import('node:net');
    let contacted = false;
    const planted = createServer((c) => {
      contacted = true;
      c.destroy();
    });
    await new Promise<void>((resolve) => planted.listen(join(sockDir, 'control.sock'), resolve));
    try {
      const r = await cli(['list'], cfg.path, process.env, 'daemon');
      expect(r.code, r.out).toBe(1);
      expect(r.json.error).toMatchObject({ code: 'SOCKET_DIR_UNSAFE' });
      expect((r.json.error as { message: string }).message).toMatch(/refusing to send the command to .*its mode is 0777, not 0700.*--local/);
      expect(contacted).toBe(false);
      expect((await cli(['list'], cfg.path)).code).toBe(0);
    } finally {
      await new Promise((resolve) => planted.close(resolve));
    }
  });
});

describe('a command given another config than the daemon\'s is refused', () => {
  it('exit 2 with CONFIG_MISMATCH naming the daemon\'s config and --local; the same settings under another path pass', async () => {
    const mine = await config('shop');
    const socket = join(dir, `sock-${configs}`, 'control.sock');
    const d = await startDaemon(mine.path);
    try {
      // Another DatabaseBackup's config that names the same socket.
      const other = await config('shop', (c) => {
        c.name = 'payments';
        c.daemon = { socket };
      });
      for (const args of [['list'], ['restore', '--latest'], ['status']]) {
        const r = await cli(args, other.path, process.env, 'daemon');
        expect(r.code, `${args.join(' ')}: ${r.out}`).toBe(2);
        expect(r.json.error).toMatchObject({ code: 'CONFIG_MISMATCH' });
        const message = (r.json.error as { message: string }).message;
        expect(message).toContain(`-c ${mine.path}`);
        expect(message).toContain('--local');
      }
      const copy = join(dir, 'same-settings-elsewhere.yaml');
      await copyFile(mine.path, copy);
      expect((await cli(['list'], copy, process.env, 'daemon')).code).toBe(0);
      expect((await cli(['status'], copy, process.env, 'daemon')).code).toBe(0);
    } finally {
      await d.stop();
    }
  });
});

describe('restore with a location that cannot be read says so instead of restoring an older backup', () => {
  let s3: S3Server;
  let proxy: FaultProxy;
  let both: { path: string; store: string };
  let s3only: { path: string };
  let b1: string;
  let b2: string;

  beforeAll(async () => {
    if (setupError) return;
    s3 = await startS3();
    await s3.createBucket('backups');
    proxy = await startFaultProxy({ port: s3.port });
    const s3loc = { name: 's3', type: 's3', prefix: 'db', s3: { ...s3.location('backups'), endpoint: proxy.url } };
    both = await config('shop', (c) => {
      (c.locations as unknown[]).push(s3loc);
    });
    s3only = await config('shop', (c) => {
      c.locations = [s3loc];
    });
    // b1 in both locations; the newer b2 only in S3.
    const r1 = await cli(['backup'], both.path);
    const r2 = await cli(['backup'], s3only.path);
    if (r1.code !== 0 || r2.code !== 0) throw new Error(`setup backups failed: ${r1.out} ${r2.out}`);
    b1 = r1.json.id as string;
    b2 = r2.json.id as string;
    proxy.down();
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await s3?.stop();
  });

  const dbExists = async (name: string): Promise<boolean> => (await pg.psql(`SELECT count(*) FROM pg_database WHERE datname = '${name}'`, 'postgres')).trim() === '1';

  it('restore --latest refuses (exit 3), naming the unreadable location and the newest readable backup; nothing is restored', async () => {
    const r = await cli(['restore', '--latest', '--target-database', 'incomplete_latest'], both.path);
    expect(r.code, r.out).toBe(3);
    expect(r.json.error).toMatchObject({ code: 'LISTING_INCOMPLETE', newestReadable: { id: b1, locations: ['fs'] }, unreadable: [expect.objectContaining({ location: 's3' })] });
    const message = (r.json.error as { message: string }).message;
    expect(message).toMatch(new RegExp(`^restore --latest refused: s3 could not be read .*The newest readable backup is ${b1} .*--allow-incomplete-listing`));
    expect(await dbExists('incomplete_latest')).toBe(false);
  });

  it('restore --to-time refuses the same way', async () => {
    const r = await cli(['restore', '--to-time', '2099-01-01T00:00:00Z', '--target-database', 'incomplete_time'], both.path);
    expect(r.code, r.out).toBe(3);
    expect(r.json.error).toMatchObject({ code: 'LISTING_INCOMPLETE', newestReadable: { id: b1 } });
    expect(await dbExists('incomplete_time')).toBe(false);
  });

  it('restore --backup of the backup held only by the unreadable location says it may be there (exit 3, not "not found")', async () => {
    const r = await cli(['restore', '--backup', b2, '--target-database', 'incomplete_id'], both.path);
    expect(r.code, r.out).toBe(3);
    expect((r.json.error as { code: string; message: string }).message).toMatch(new RegExp(`backup ${b2} not found.*but it may be in s3`));
  });

  it('--allow-incomplete-listing restores the newest readable backup and reports what could not be read', async () => {
    const r = await cli(['restore', '--latest', '--allow-incomplete-listing', '--target-database', 'incomplete_allowed'], both.path);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ backup: { id: b1 }, location: 'fs', unreadable: [expect.objectContaining({ location: 's3', code: expect.stringMatching(/^STORAGE_/) })] });
    expect(await dbExists('incomplete_allowed')).toBe(true);
  });

  it('the daemon refuses the same way and accepts the flag through its control API', async () => {
    const d = await startDaemon(both.path);
    try {
      const refused = await cli(['restore', '--latest', '--target-database', 'incomplete_daemon'], both.path, process.env, 'daemon');
      expect(refused.code, refused.out).toBe(3);
      expect(refused.json.error).toMatchObject({ code: 'LISTING_INCOMPLETE' });
      const allowed = await cli(['restore', '--latest', '--allow-incomplete-listing', '--target-database', 'incomplete_daemon'], both.path, process.env, 'daemon');
      expect(allowed.code, allowed.out).toBe(0);
      expect(allowed.json).toMatchObject({ backup: { id: b1 }, unreadable: [expect.objectContaining({ location: 's3' })] });
    } finally {
      await d.stop();
    }
  });

  it('list with some locations unreadable lists the rest and warns (exit 3); with every location unreadable it fails (exit 1) with the errors', async () => {
    const some = await cli(['list'], both.path);
    expect(some.code).toBe(3);
    expect((some.json as { backups: { id: string }[] }).backups.map((b) => b.id)).toEqual([b1]);
    const none = await cli(['list'], s3only.path);
    expect(none.code, none.out).toBe(1);
    expect(none.json.error).toMatchObject({ code: 'ALL_LOCATIONS_FAILED', problems: [expect.objectContaining({ location: 's3' })] });
    expect((none.json.error as { message: string }).message).toMatch(/^no location could be read: s3: STORAGE_/);
  });
});

describe('a restore that fails half way says why and what it left in the target', () => {
  it('a role missing on the server: pg_restore\'s own message, and a created database dropped again', async () => {
    await pg.psql('CREATE DATABASE roles');
    await pg.psql('CREATE ROLE hardening_owner; CREATE TABLE t (id int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO hardening_owner;', 'roles');
    const cfg = await config('roles');
    const b = await cli(['backup'], cfg.path);
    expect(b.code, b.out).toBe(0);
    await pg.psql('ALTER TABLE t OWNER TO CURRENT_USER; DROP ROLE hardening_owner;', 'roles');

    const created = await cli(['restore', '--latest', '--target-database', 'roles_new'], cfg.path);
    expect(created.code, created.out).toBe(1);
    const err = created.json.error as { code: string; message: string; target: unknown };
    expect(err.code).toBe('RESTORE_FAILED');
    expect(err.message).toMatch(/role "hardening_owner", which does not exist/);
    expect(err.message).toMatch(/database "roles_new" was created for this restore and dropped again$/);
    expect(err.target).toEqual({ database: 'roles_new', state: 'dropped' });
    expect((await pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'roles_new'", 'postgres')).trim()).toBe('0');

    // An existing empty database: the transaction rolls back, the database stays as it was. Shown in the text output too.
    await pg.psql('CREATE DATABASE roles_existing');
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    let text: string;
    try {
      code = await main(['restore', '--latest', '--target-database', 'roles_existing', '-c', cfg.path, '--local'], process.env, { stdout: () => undefined, logger: silentLogger() });
      text = stderr.mock.calls.map((c) => String(c[0])).join('');
    } finally {
      stderr.mockRestore();
    }
    expect(code).toBe(1);
    expect(text).toMatch(/^error: RESTORE_FAILED: .*role "hardening_owner".*; database "roles_existing" is unchanged \(nothing was committed/m);
    expect((await pg.psql("SELECT count(*) FROM pg_class WHERE relname = 't'", 'roles_existing')).trim()).toBe('0');

    // Through the daemon: the same cause and target state in the command's output.
    const d = await startDaemon(cfg.path);
    try {
      const viaDaemon = await cli(['restore', '--latest', '--target-database', 'roles_daemon'], cfg.path, process.env, 'daemon');
      expect(viaDaemon.code, viaDaemon.out).toBe(1);
      expect(viaDaemon.json.error).toMatchObject({ code: 'RESTORE_FAILED', target: { database: 'roles_daemon', state: 'dropped' } });
      expect((viaDaemon.json.error as { message: string }).message).toMatch(/role "hardening_owner", which does not exist.*; database "roles_daemon" was created for this restore and dropped again$/);
    } finally {
      await d.stop();
    }
  });

  it('the server gone mid-restore: the connection failure, and the created database left with the exact command to drop it', async () => {
    const pg2 = await startPostgres();
    try {
      await pg2.psql('CREATE DATABASE gone');
      await pg2.psql('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g', 'gone');
      // pg_restore that lets the test stop the server once the target exists, then runs the real one.
      const bin = join(dir, 'gone-bin');
      const flag = join(dir, 'gone-pg_restore-started');
      await mkdir(bin, { recursive: true });
      await symlink(join(pg2.binDir, 'psql'), join(bin, 'psql'));
      await symlink(join(pg2.binDir, 'pg_dump'), join(bin, 'pg_dump'));
      await writeFile(join(bin, 'pg_restore'), `#!/bin/sh\ntouch '${flag}'\nsleep 2\nexec '${join(pg2.binDir, 'pg_restore')}' "$@"\n`);
      await chmod(join(bin, 'pg_restore'), 0o755);
      const cfg = await config('gone', (c) => {
        c.engine.postgresql = { ...(pg2.connection('gone') as unknown as Record<string, unknown>), binDir: bin };
      });
      const b = await cli(['backup'], cfg.path);
      expect(b.code, b.out).toBe(0);
      const restoring = cli(['restore', '--latest', '--target-database', 'gone_copy'], cfg.path);
      for (let i = 0; i < 100 && !(await exists(flag)); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await exists(flag)).toBe(true);
      await pg2.stop();
      const r = await restoring;
      expect(r.code, r.out).toBe(1);
      const err = r.json.error as { code: string; message: string; target: { database: string; state: string; dropCommand: string } };
      expect(err.code).toBe('DB_UNREACHABLE');
      expect(err.message).toMatch(/^cannot reach PostgreSQL at 127\.0\.0\.1:\d+/);
      expect(err.target).toMatchObject({ database: 'gone_copy', state: 'left' });
      expect(err.target.dropCommand).toBe(`${join(bin, 'psql')} -h ${pg2.host} -p ${pg2.port} -U ${pg2.user} -d postgres -c 'DROP DATABASE IF EXISTS "gone_copy";'`);
      expect(err.message).toContain(`could NOT be dropped`);
      expect(err.message).toContain(`drop it with: ${err.target.dropCommand}`);
      expect(r.out).not.toContain(pg2.password);
    } finally {
      await pg2.stop();
    }
  });
});
