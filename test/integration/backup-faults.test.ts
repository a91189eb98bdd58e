/**
 * Faults in the middle of a backup, against a real PostgreSQL and real
 * storage: whatever breaks, nothing partial becomes visible and older backups
 * stay.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRunnerConfig } from '../../api/index.js';
import { BackupError } from '../../runner/errors.js';
import { PostgresqlEngine } from '../../runner/engines/postgresql/index.js';
import { silentLogger } from '../../runner/logger.js';
import { runBackup } from '../../runner/ops/backup.js';
import { listBackups } from '../../runner/ops/list.js';
import type { Location, Runtime } from '../../runner/runtime.js';
import { FilesystemStorage } from '../../runner/storage/filesystem.js';
import type { CallOptions, Storage } from '../../runner/storage/types.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich } from '../../testenv/seed.js';

/** A real filesystem location that accepts at most one chunk per `ms`: a slow link. */
function throttled(inner: Storage, ms: number): Storage {
  return Object.assign(Object.create(inner) as Storage, {
    put(key: string, body: Readable | Buffer, opts?: CallOptions) {
      if (Buffer.isBuffer(body)) return inner.put(key, body, opts);
      const slow = new Transform({
        transform(chunk: Buffer, _e, cb) {
          setTimeout(() => cb(null, chunk), ms);
        },
      });
      body.on('error', (err) => slow.destroy(err));
      return inner.put(key, body.pipe(slow), opts);
    },
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
  } catch {
    return [];
  }
}

let pg: PgInstance | undefined;
let dir: string;
let setupError: unknown;

function runtime(locations: Location[]): Runtime {
  const cfg = validateRunnerConfig({
    namespace: 'shop',
    name: 'orders',
    engine: { type: 'postgresql', postgresql: pg!.connection('shop') },
    locations: locations.map((l) => ({ name: l.name, type: 'filesystem', filesystem: { path: '/unused' } })),
  });
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const logger = silentLogger();
  return { config: cfg.value, engine: new PostgresqlEngine(cfg.value.engine.postgresql!, logger), locations, logger, clock: () => new Date(), runnerVersion: 'test' };
}

const scope = { prefix: '', namespace: 'shop', name: 'orders' };

beforeAll(async () => {
  try {
    pg = await startPostgres();
    await seedRich(pg, 'shop', { rows: 120_000 });
    dir = await mkdtemp(join(tmpdir(), 'dbbc-faults-'));
  } catch (err) {
    setupError = err;
  }
}, 120_000);

afterAll(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('faults during a backup', () => {
  it('a dump that dies midway aborts every upload: nothing visible, the older backup stays', async () => {
    if (setupError) throw setupError as Error;
    const good = { name: 'good', storage: new FilesystemStorage(join(dir, 'good')), scope };
    const ok = await runBackup(runtime([good]), { trigger: 'manual' });
    expect(ok.status).toBe('Succeeded');

    const slowDir = join(dir, 'slow');
    const slow = { name: 'slow', storage: throttled(new FilesystemStorage(slowDir), 40), scope };
    const rt = runtime([good, slow]);
    const running = runBackup(rt, { trigger: 'manual' });
    // Kill pg_dump's server session while the slow location holds the dump back.
    let killed = '0';
    for (let i = 0; i < 100 && killed === '0'; i++) {
      await delay(100);
      killed = await pg!.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'COPY %' AND pid <> pg_backend_pid()", 'shop');
    }
    expect(killed).not.toBe('0');
    const failed = await running;
    expect(failed.status).toBe('Failed');
    expect(failed.error?.code).toMatch(/DUMP_FAILED|DB_/);
    expect(failed.manifest).toBeUndefined();
    expect((await filesUnder(slowDir)).filter((f) => f.includes(failed.id))).toEqual([]);
    expect((await filesUnder(join(dir, 'good'))).filter((f) => f.includes(failed.id))).toEqual([]);
    const listing = await listBackups(rt);
    expect(listing.backups.map((b) => b.id)).toEqual([ok.id]);
  });

  it('an abort (SIGTERM) mid-backup leaves nothing visible', async () => {
    if (setupError) throw setupError as Error;
    const slowDir = join(dir, 'abort');
    const rt = runtime([{ name: 'slow', storage: throttled(new FilesystemStorage(slowDir), 40), scope }]);
    const ac = new AbortController();
    const running = runBackup(rt, { trigger: 'manual', signal: ac.signal });
    await delay(700);
    ac.abort(new Error('SIGTERM'));
    const r = await running;
    expect(r.status).toBe('Failed');
    expect(r.error?.code).toBe('ABORTED');
    expect(await filesUnder(slowDir)).toEqual([]);
    // The server session ended too: no pg_dump left behind.
    await delay(200);
    expect(await pg!.psql("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY %' AND pid <> pg_backend_pid()", 'shop')).toBe('0');
  });

  it('a whole server: a database that fails while another is being dumped beside it stops both, and nothing of the backup stays', async () => {
    if (setupError) throw setupError as Error;
    await pg!.psql('CREATE DATABASE small;');
    const cfg = validateRunnerConfig({
      namespace: 'shop',
      name: 'server',
      engine: { type: 'postgresql', postgresql: { ...pg!.connection('postgres'), databases: ['shop', 'small', 'postgres'], globals: false, parallel: 2 } },
      locations: [{ name: 'slow', type: 'filesystem', filesystem: { path: '/unused' } }],
    });
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    const logger = silentLogger();
    const engine = new PostgresqlEngine(cfg.value.engine.postgresql!, logger);
    let startedBeside = false;
    // The second database's dump fails a moment after it started, while the first (120k rows, a slow link) is still going.
    const failing = Object.assign(Object.create(engine) as PostgresqlEngine, {
      async dump(opts: Parameters<PostgresqlEngine['dump']>[0] = {}) {
        if (opts.stream?.name !== 'small') return engine.dump(opts);
        for (let i = 0; i < 20 && !startedBeside; i++) {
          await delay(100);
          startedBeside = (await pg!.psql("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY %'", 'postgres')) !== '0';
        }
        throw new BackupError('DUMP_FAILED', 'pg_dump of small failed (planted)');
      },
    });
    const slowDir = join(dir, 'server');
    const rt: Runtime = { config: cfg.value, engine: failing, locations: [{ name: 'slow', storage: throttled(new FilesystemStorage(slowDir), 40), scope: { ...scope, name: 'server' } }], logger, clock: () => new Date(), runnerVersion: 'test' };
    const r = await runBackup(rt, { trigger: 'manual' });
    expect(startedBeside, 'the two dumps ran at the same time').toBe(true);
    expect(r.status).toBe('Failed');
    expect(r.error?.message).toContain('pg_dump of small failed (planted)');
    expect(r.manifest).toBeUndefined();
    expect(await filesUnder(slowDir)).toEqual([]);
    await delay(200);
    expect(await pg!.psql("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY %' AND pid <> pg_backend_pid()", 'shop')).toBe('0');
  });

  it.each([
    ['landed (the answer was lost): the backup is there, whole', true],
    ['did not land: the location holds nothing of it', false],
  ])('a manifest write that fails and %s', async (_what, lands) => {
    if (setupError) throw setupError as Error;
    const where = join(dir, lands ? 'manifest-landed' : 'manifest-lost');
    const inner = new FilesystemStorage(where);
    const flaky = Object.assign(Object.create(inner) as Storage, {
      async put(key: string, body: Readable | Buffer, opts?: CallOptions) {
        if (!key.endsWith('/manifest.json')) return inner.put(key, body, opts);
        if (lands) await inner.put(key, body, opts);
        throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
      },
    });
    const rt = runtime([{ name: 'flaky', storage: flaky, scope }]);
    const r = await runBackup(rt, { trigger: 'manual' });
    expect(r.status).toBe(lands ? 'Succeeded' : 'Failed');
    const listing = await listBackups(rt);
    expect(listing.backups.map((b) => b.id)).toEqual(lands ? [r.id] : []);
    expect((await filesUnder(where)).length).toBe(lands ? 2 : 0);
  });
});
