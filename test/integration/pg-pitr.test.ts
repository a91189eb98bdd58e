/**
 * Point-in-time recovery end to end, against a real PostgreSQL and a real S3 server: a physical base backup,
 * the WAL archived continuously while rows are committed in phases, the server killed (immediate stop) with
 * the last phase only in the segment it was writing. Restores to an instant between phases hold exactly the
 * rows committed before it; a restore to the latest holds the last phase too (from the rolling partial). The
 * restored server fetches WAL through the runner's own wal-fetch, as its restore_command.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createRuntime } from '../../runner/build-runtime.js';
import { loadConfig } from '../../runner/config/load.js';
import { silentLogger } from '../../runner/logger.js';
import { createWalStore } from '../../runner/ops/wal-store.js';
import { walFetch } from '../../runner/ops/wal-fetch.js';
import { parseWalFile, walPrefix } from '../../runner/storage/layout.js';
import { closeRuntime, type Runtime } from '../../runner/runtime.js';
import { runCli } from '../cli.js';
import { eventually } from '../../testenv/eventually.js';
import { serviceOwnedDir, startPostgres, startPostgresOn, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';

const REPO = resolve(import.meta.dirname, '../..');

let pg: PgInstance;
let s3: S3Server;
let dir: string;
let cfgPath: string;
/** The same configuration with a `postgres` that fails to start (a library it cannot load), for a recovery that fails. */
let brokenServerCfg: string;
let rt: Runtime;
let archiver: { stop: () => Promise<unknown>; facts: () => Record<string, unknown> | undefined };
const restored: string[] = [];
const login = { user: '', password: '' };
const marks: Record<string, string> = {};
let previousCommand: string | undefined;

/** Starts a server on a restored directory, waits for the recovery to end (promoted), and counts the rows of each phase. */
async function phasesIn(dataDir: string): Promise<Record<string, string>> {
  const server = await startPostgresOn(dataDir, login);
  try {
    await eventually('the recovery to end', async () => (await server.psql('SELECT pg_is_in_recovery()')) === 'f', 120_000, 250).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${(await server.log()).slice(-3000)}`);
    });
    const rows = await server.psql("SELECT phase || '=' || count(*) FROM marks GROUP BY phase ORDER BY phase", 'shop');
    return Object.fromEntries(['a', 'b', 'c'].map((p) => [p, rows.split('\n').find((r) => r.startsWith(`${p}=`))?.slice(2) ?? '0']));
  } finally {
    await server.stop();
  }
}

async function restoreTo(args: string[]): Promise<{ code: number; json: Record<string, unknown>; target: string }> {
  const target = await serviceOwnedDir('pgpitr-');
  restored.push(target);
  const r = await runCli(cfgPath, ['restore', ...args, '--data-dir', target]);
  return { code: r.code, json: r.json, target };
}

beforeAll(async () => {
  pg = await startPostgres();
  login.user = pg.user;
  login.password = pg.password;
  s3 = await startS3();
  await s3.createBucket('backups');
  // The restored server (the postgres account) runs wal-fetch: the config and the runner must be readable by it.
  dir = await mkdtemp(join(tmpdir(), 'dbbc-pitr-'));
  await chmod(dir, 0o755);
  const runner = join(dir, 'backup-runner');
  await writeFile(runner, `#!/bin/sh\nexec ${REPO}/node_modules/.bin/tsx ${REPO}/runner/cli/bin.ts "$@"\n`, { mode: 0o755 });
  previousCommand = process.env.BACKUP_RUNNER_COMMAND;
  process.env.BACKUP_RUNNER_COMMAND = runner;
  await pg.psql('CREATE DATABASE shop');
  await pg.psql('CREATE TABLE marks (id serial PRIMARY KEY, phase text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())', 'shop');
  const config = {
    namespace: 'shop',
    name: 'pitr',
    engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), mode: 'physical', wal: { partialSeconds: 1 } } },
    locations: [{ name: 's3', type: 's3', prefix: 'db', s3: s3.location('backups') }],
  };
  cfgPath = join(dir, 'runner.yaml');
  await writeFile(cfgPath, stringify(config), { mode: 0o644 });
  const fakeBin = join(dir, 'bin');
  await mkdir(fakeBin);
  for (const tool of await readdir(pg.binDir)) if (tool !== 'postgres') await symlink(join(pg.binDir, tool), join(fakeBin, tool));
  await writeFile(join(fakeBin, 'postgres'), `#!/bin/sh\n[ "$1" = --version ] && exec ${join(pg.binDir, 'postgres')} --version\necho 'FATAL:  could not access file "timescaledb": No such file or directory' >&2\nexit 1\n`, { mode: 0o755 });
  brokenServerCfg = join(dir, 'broken-server.yaml');
  await writeFile(brokenServerCfg, stringify({ ...config, engine: { type: 'postgresql', postgresql: { ...config.engine.postgresql, binDir: fakeBin } } }), { mode: 0o644 });
  rt = await createRuntime(await loadConfig(cfgPath), silentLogger(), process.env);
  const [service] = rt.engine.services!({ walStore: createWalStore(rt, silentLogger()), spool: join(dir, 'spool'), logger: silentLogger(), owner: { namespace: 'shop', name: 'pitr' } });
  const ac = new AbortController();
  let facts: Record<string, unknown> | undefined;
  const ran = service!.run(ac.signal, (f) => (facts = f)).catch((err: unknown) => err);
  archiver = {
    facts: () => facts,
    stop: async () => {
      ac.abort();
      return ran;
    },
  };
  await eventually('the archiver streams', () => Promise.resolve(facts?.receiving === true), 30_000);

  const base = await runCli(cfgPath, ['backup']);
  if (base.code !== 0) throw new Error(base.out);
  const commitPhase = async (phase: string): Promise<string> => {
    await pg.psql(`INSERT INTO marks (phase) SELECT '${phase}' FROM generate_series(1, 200)`, 'shop');
    return pg.psql('SELECT clock_timestamp()');
  };
  marks.afterA = await commitPhase('a');
  await pg.psql('SELECT pg_switch_wal()');
  await delay(1200);
  marks.afterB = await commitPhase('b');
  await delay(1200);
  const afterC = await commitPhase('c');
  marks.afterC = afterC;
  // The last phase is only in the segment being written: wait until its partial is stored, then the server dies. A listing
  // dates objects to the second (S3's Last-Modified), so the archive reaches past the last commit by at least 0.5 s.
  await eventually('a partial stored after the last phase', () => Promise.resolve(typeof facts?.lastPartialAt === 'string' && Date.parse(facts.lastPartialAt) > Date.parse(afterC) + 1500), 30_000);
  await pg.stop();
  await archiver.stop();
}, 180_000);

afterAll(async () => {
  if (previousCommand === undefined) delete process.env.BACKUP_RUNNER_COMMAND;
  else process.env.BACKUP_RUNNER_COMMAND = previousCommand;
  await archiver?.stop().catch(() => undefined);
  if (rt) await closeRuntime(rt);
  await pg?.stop();
  await s3?.stop();
  for (const d of [dir, ...restored]) if (d) await rm(d, { recursive: true, force: true });
});

describe('point-in-time recovery from a base backup and the WAL archive', () => {
  it('to an instant after the first phase: its rows, none of the later ones', async () => {
    const r = await restoreTo(['--to-time', new Date(marks.afterA!).toISOString()]);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(r.json).toMatchObject({ dataDirectory: { recovery: { targetTime: new Date(marks.afterA!).toISOString() } }, walArchive: { partial: true } });
    expect(await phasesIn(r.target)).toEqual({ a: '200', b: '0', c: '0' });
  }, 240_000);

  it('to an instant after the second phase: both, not the third', async () => {
    const r = await restoreTo(['--to-time', new Date(marks.afterB!).toISOString()]);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(await phasesIn(r.target)).toEqual({ a: '200', b: '200', c: '0' });
  }, 240_000);

  it('to the latest: the last phase too, committed in the segment the server was writing when it died', async () => {
    const r = await restoreTo(['--latest']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(await phasesIn(r.target)).toEqual({ a: '200', b: '200', c: '200' });
  }, 240_000);

  it('--start: the runner recovers the directory itself, reports the instant reached and the commit left out, and leaves it promoted and stopped', async () => {
    const asked = new Date(marks.afterB!);
    const r = await restoreTo(['--to-time', asked.toISOString(), '--start']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    const recovered = (r.json.dataDirectory as { recovered: { promoted: boolean; segments: number; lastTransactionAt: string; firstExcludedAt: string; timeline: number } }).recovered;
    expect(recovered).toMatchObject({ promoted: true, timeline: 2 });
    expect(recovered.segments).toBeGreaterThan(0);
    // The last transaction replayed is phase B's (at or before the target), the one left out phase C's (after it).
    expect(Date.parse(recovered.lastTransactionAt)).toBeLessThanOrEqual(asked.getTime());
    expect(Date.parse(recovered.lastTransactionAt)).toBeGreaterThan(Date.parse(marks.afterA!));
    expect(Date.parse(recovered.firstExcludedAt)).toBeGreaterThan(asked.getTime());
    // No recovery settings are left: the database's own server starts it as a promoted cluster.
    const auto = await readFile(join(r.target, 'postgresql.auto.conf'), 'utf8');
    expect(auto).not.toMatch(/restore_command|recovery_target/);
    expect(existsSync(join(r.target, 'recovery.signal'))).toBe(false);
    expect(existsSync(join(r.target, 'pg_wal', '.backup-runner-prefetch'))).toBe(false);
    expect(await phasesIn(r.target)).toEqual({ a: '200', b: '200', c: '0' });
  }, 240_000);

  it('--start whose server fails: says why and what the directory holds, and the same restore run again resumes and recovers', async () => {
    const target = await serviceOwnedDir('pgpitr-');
    restored.push(target);
    const asked = new Date(marks.afterA!).toISOString();
    const failed = await runCli(brokenServerCfg, ['restore', '--to-time', asked, '--start', '--data-dir', target]);
    expect(failed.code).toBe(1);
    expect(failed.json).toMatchObject({ error: { code: 'RECOVERY_FAILED' } });
    expect(String((failed.json.error as { message: string }).message)).toMatch(/could not access file "timescaledb".*part way through its recovery: run the same restore again/s);
    expect(existsSync(join(target, '.backup-runner-restore.json'))).toBe(true);
    const again = await runCli(cfgPath, ['restore', '--to-time', asked, '--start', '--data-dir', target]);
    expect(again.code, again.out).toBe(0);
    expect(again.json).toMatchObject({ dataDirectory: { resumed: true, recovered: { promoted: true } } });
    expect(existsSync(join(target, '.backup-runner-restore.json'))).toBe(false);
    expect(await phasesIn(target)).toEqual({ a: '200', b: '0', c: '0' });
  }, 240_000);

  it('--start to an instant after the last commit the archive holds: recovered to the archive\'s end, which is the state then, and said so', async () => {
    const asked = new Date(Date.parse(marks.afterC!) + 200);
    const r = await restoreTo(['--to-time', asked.toISOString(), '--start']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(r.json).toMatchObject({ dataDirectory: { recovered: { promoted: true, archiveEndedBeforeTarget: true } } });
    expect(await phasesIn(r.target)).toEqual({ a: '200', b: '200', c: '200' });
  }, 240_000);

  it('a segment of another database system under the same name (a server initialised anew on this archive) is passed over: the recovery takes its own', async () => {
    const loc = rt.locations[0]!;
    const prefix = walPrefix(loc.scope);
    const complete: string[] = [];
    for await (const o of loc.storage.list(prefix)) {
      const f = parseWalFile(o.key.slice(prefix.length));
      if (f && !f.partial && /^[0-9A-F]{24}$/.test(f.wal)) complete.push(f.wal);
    }
    expect(complete.length).toBeGreaterThan(1);
    const foreign = join(dir, 'foreign');
    await mkdir(foreign, { recursive: true });
    const store = createWalStore(rt, silentLogger());
    for (const wal of complete) {
      await walFetch(rt, wal, join(foreign, wal));
      const bytes = await readFile(join(foreign, wal));
      bytes.writeBigUInt64LE(bytes.readBigUInt64LE(24) ^ 0xffffn, 24);
      await writeFile(join(foreign, wal), bytes);
      const stored = await store.store(join(foreign, wal), wal, { partial: false });
      expect(stored.conflicts).toHaveLength(1);
    }
    const r = await restoreTo(['--to-time', new Date(marks.afterB!).toISOString(), '--start']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(await phasesIn(r.target)).toEqual({ a: '200', b: '200', c: '0' });
  }, 240_000);

  it('refuses an instant the archive does not reach, before anything changes', async () => {
    const r = await restoreTo(['--to-time', new Date(Date.now() + 3600_000).toISOString()]);
    expect(r.code).toBe(4);
    expect(r.json).toMatchObject({ error: { code: 'OUTSIDE_RECOVERY_WINDOW' } });
    expect(String((r.json.error as { message: string }).message)).toMatch(/the WAL archive reaches only to .*nothing was changed/);
  });
});
