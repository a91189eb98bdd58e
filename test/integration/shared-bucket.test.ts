/**
 * Runners sharing one bucket (and one directory) with nesting prefixes, and
 * objects planted in a runner's own prefix, against a real PostgreSQL, a real
 * S3 server (s3rver) and a filesystem, through the CLI.
 *
 * Runner A: prefix "", DatabaseBackup shop/orders  -> shop/orders/...
 * Runner B: prefix "shop", DatabaseBackup orders/x -> shop/orders/x/...
 * B's keys lie inside A's database prefix.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { validateRunnerConfig } from '../../api/index.js';
import { createRuntime } from '../../runner/build-runtime.js';
import { main } from '../../runner/cli/main.js';
import { Daemon } from '../../runner/daemon/daemon.js';
import { silentLogger } from '../../runner/logger.js';
import { type Manifest, MANIFEST_FORMAT_VERSION, serializeManifest } from '../../runner/manifest.js';
import { closeRuntime } from '../../runner/runtime.js';
import { manifestKey, objectKey, type Scope } from '../../runner/storage/layout.js';
import { createStorage } from '../../runner/storage/registry.js';
import type { Storage } from '../../runner/storage/types.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { plainObject } from '../retention-fixtures.js';

interface Env {
  pg: PgInstance;
  s3: S3Server;
  dir: string;
  /** The shared bucket and the shared directory, seen without any runner's scope. */
  bucket: Storage;
  folder: Storage;
}

let env: Env | undefined;
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

const A = { namespace: 'shop', name: 'orders', prefix: '' };
const B = { namespace: 'orders', name: 'x', prefix: 'shop' };

async function config(who: { namespace: string; name: string; prefix: string }, file: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { pg, s3, dir } = ready();
  const path = join(dir, file);
  await writeFile(
    path,
    stringify({
      namespace: who.namespace,
      name: who.name,
      engine: { type: 'postgresql', postgresql: pg.connection(who === A ? 'orders' : 'billing') },
      compression: { algorithm: 'zstd' },
      locations: [
        { name: 's3', type: 's3', prefix: who.prefix, s3: s3.location('shared') },
        { name: 'fs', type: 'filesystem', prefix: who.prefix, filesystem: { path: join(dir, 'shared-fs') } },
      ],
      // Never the default socket: a daemon of another test must not answer these commands.
      daemon: { socket: join(dir, `${file}.sock`) },
      ...extra,
    }),
  );
  return path;
}

async function cli(args: string[], cfg: string): Promise<{ code: number; json: Record<string, unknown>; text: string }> {
  let out = '';
  const code = await main([...args, '-c', cfg, '-o', 'json'], process.env, { stdout: (t) => (out += t), logger: silentLogger() });
  let table = '';
  if (args[0] === 'list' && code === 0) await main([...args, '-c', cfg], process.env, { stdout: (t) => (table += t), logger: silentLogger() });
  return { code, json: out ? (JSON.parse(out) as Record<string, unknown>) : {}, text: table };
}

/** sha256 of every object, by key. */
async function checksums(storage: Storage): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const o of storage.list('')) {
    const chunks: Buffer[] = [];
    for await (const c of await storage.get(o.key)) chunks.push(c as Buffer);
    out[o.key] = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
  }
  return out;
}


function manifestFor(scope: Scope, id: string, when: string, name: string, data: Buffer): Manifest {
  return {
    formatVersion: MANIFEST_FORMAT_VERSION,
    kind: 'backup',
    id,
    namespace: scope.namespace,
    name: scope.name,
    database: 'orders',
    engine: { name: 'postgresql', serverVersion: '15.8', toolVersion: '15.8', format: 'pg_dump-custom' },
    startedAt: when,
    consistentAt: when,
    finishedAt: when,
    trigger: 'schedule',
    objects: [plainObject(name, data)],
    runnerVersion: '0.1.0',
  };
}

/** Writes a data object and its manifest into both shared locations. */
async function plant(scope: Scope, id: string, when: string, data: Buffer): Promise<void> {
  for (const s of [ready().bucket, ready().folder]) {
    await s.put(objectKey(scope, id, 'data.dump.zst'), data);
    await s.put(manifestKey(scope, id), serializeManifest(manifestFor(scope, id, when, 'data.dump.zst', data)));
  }
}

/** A real custom-format archive of another database (with a table `pwned`), compressed with zstd. */
async function foreignArchive(): Promise<Buffer> {
  const { pg } = ready();
  await pg.psql('CREATE DATABASE evil;', 'postgres');
  await pg.psql('CREATE TABLE pwned(x int); INSERT INTO pwned VALUES (1);', 'evil');
  const dump = execFileSync(join(pg.binDir, 'pg_dump'), ['-Fc', '-Z0', '-h', pg.host, '-p', String(pg.port), '-U', pg.user, 'evil'], { env: { ...process.env, PGPASSWORD: pg.password } });
  return execFileSync('zstd', ['-q', '-c'], { input: dump });
}

beforeAll(async () => {
  try {
    const pg = await startPostgres();
    const s3 = await startS3();
    await s3.createBucket('shared');
    await pg.psql('CREATE DATABASE orders; CREATE DATABASE billing;', 'postgres');
    await pg.psql('CREATE TABLE orders(id int primary key, item text); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 2000) g;', 'orders');
    await pg.psql('CREATE TABLE invoices(id int primary key, total numeric); INSERT INTO invoices SELECT g, g * 1.5 FROM generate_series(1, 2000) g;', 'billing');
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-shared-'));
    const folder = await createStorage({ name: 'fs', type: 'filesystem', prefix: '', filesystem: { path: join(dir, 'shared-fs') } }, { logger: silentLogger() });
    env = { pg, s3, dir, bucket: s3.storage('shared'), folder };
  } catch (err) {
    setupError = err;
  }
}, 180_000);

afterAll(async () => {
  await env?.s3.stop();
  await env?.pg.stop();
  if (env) await rm(env.dir, { recursive: true, force: true });
});

describe('two runners on one bucket and one directory, with nesting prefixes', () => {
  it("A's retention and orphan sweep (grace 0) leave every object of B byte-identical; B's listing and retention are unaffected", async () => {
    const cfgA = await config(A, 'a.yaml', { retention: { keepLast: 1, orphanGracePeriod: '0s' } });
    const cfgB = await config(B, 'b.yaml', { retention: { keepLast: 5 } });
    const idsB: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await cli(['backup'], cfgB);
      expect(r.code, JSON.stringify(r.json)).toBe(0);
      idsB.push(r.json.id as string);
    }
    for (let i = 0; i < 2; i++) expect((await cli(['backup'], cfgA)).code).toBe(0);
    // B's backup in progress: data, no manifest yet.
    const inProgress = '20261121T235959Z-b0b0';
    for (const s of [ready().bucket, ready().folder]) await s.put(objectKey(B, inProgress, 'data.dump.zst'), Buffer.from('in flight'));

    const before = { s3: await checksums(ready().bucket), fs: await checksums(ready().folder) };
    const ofB = (sums: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(sums).filter(([k]) => k.startsWith('shop/orders/x/')));
    expect(Object.keys(ofB(before.s3))).toHaveLength(2 * 2 + 1);
    expect(Object.keys(ofB(before.fs))).toHaveLength(2 * 2 + 1);

    await new Promise((r) => setTimeout(r, 1100)); // S3 times have whole seconds: every object is older than grace 0
    const retained = await cli(['retention'], cfgA);
    expect(retained.code, JSON.stringify(retained.json)).toBe(0);
    const locations = retained.json.locations as { location: string; plan: { remove: unknown[] }; error?: unknown; multipart?: { supported: boolean; note?: string } }[];
    expect(locations.map((l) => [l.location, l.plan.remove.length, l.error])).toEqual([['s3', 1, undefined], ['fs', 1, undefined]]);

    const after = { s3: await checksums(ready().bucket), fs: await checksums(ready().folder) };
    expect(ofB(after.s3)).toEqual(ofB(before.s3));
    expect(ofB(after.fs)).toEqual(ofB(before.fs));

    const listB = await cli(['list'], cfgB);
    expect(listB.code).toBe(0);
    expect((listB.json.backups as { id: string; locations: string[] }[]).map((b) => [b.id, b.locations])).toEqual(idsB.map((id) => [id, ['s3', 'fs']]));
    const planB = await cli(['retention', '--dry-run'], cfgB);
    expect((planB.json.locations as { plan: { keep: { id: string }[]; remove: unknown[] } }[]).map((l) => [l.plan.keep.map((k) => k.id).sort(), l.plan.remove.length])).toEqual([
      [[...idsB].sort(), 0],
      [[...idsB].sort(), 0],
    ]);

    // s3rver lacks ListMultipartUploads: the retention result says so, and names the remedy.
    expect(locations[0]!.multipart).toMatchObject({ supported: false, note: expect.stringContaining('AbortIncompleteMultipartUpload') });
    expect(locations[1]!.multipart).toBeUndefined();
  }, 120_000);

  it('a prefix with a ".." segment is refused before anything runs, naming the field', async () => {
    const cfg = await config({ ...B, prefix: 'shop/../shop' }, 'dotdot.yaml');
    const r = await cli(['list'], cfg);
    expect(r.code).toBe(2);
    expect(JSON.stringify(r.json)).toMatch(/locations\[0\]\.prefix: must not contain a \\"\.\.\\" segment/);
  });
});

describe("objects planted in a runner's own prefix", () => {
  const FUTURE = '20991231T000000Z-dead';
  const WRONG_FORMAT = '20261120T000000Z-beef';

  it('a future-dated manifest over a real foreign archive: flagged by list and verify, never restored by --latest, never moves the schedule or the metrics', async () => {
    const cfgA = await config(A, 'a2.yaml');
    const real = await cli(['backup'], cfgA);
    expect(real.code).toBe(0);
    await plant(A, FUTURE, '2099-12-31T00:00:00.000Z', await foreignArchive());

    const list = await cli(['list'], cfgA);
    expect(list.code).toBe(0);
    expect((list.json.backups as { id: string }[]).map((b) => b.id)).not.toContain(FUTURE);
    expect(list.json.future).toEqual([expect.objectContaining({ id: FUTURE, field: 'startedAt', locations: ['s3', 'fs'] })]);
    expect(list.text).toMatch(/FUTURE-DATED manifests/);
    expect(list.text).toMatch(new RegExp(`${FUTURE}\\s+startedAt\\s+2099-12-31T00:00:00.000Z\\s+s3,fs`));

    const verify = await cli(['verify', FUTURE], cfgA);
    expect(verify.code).not.toBe(0);
    expect((verify.json.checks as { backupId: string; status: string; error?: { code: string } }[]).filter((c) => c.backupId === FUTURE)).toEqual([
      expect.objectContaining({ status: 'error', error: expect.objectContaining({ code: 'MANIFEST_FUTURE' }) }),
      expect.objectContaining({ status: 'error', error: expect.objectContaining({ code: 'MANIFEST_FUTURE' }) }),
    ]);

    const restored = await cli(['restore', '--latest', '--target-database', 'restored_latest'], cfgA);
    expect(restored.code, JSON.stringify(restored.json)).toBe(0);
    expect((restored.json.backup as { id: string }).id).not.toBe(FUTURE);
    const tables = await ready().pg.psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public';", 'restored_latest');
    expect(tables).toBe('orders');

    // The daemon: an interval schedule and the last-success metric ignore it.
    const parsed = validateRunnerConfig({
      namespace: A.namespace,
      name: A.name,
      engine: { type: 'postgresql', postgresql: ready().pg.connection('orders') },
      locations: [{ name: 's3', type: 's3', prefix: '', s3: ready().s3.location('shared') }],
      schedule: { interval: '1h', catchUp: true },
      daemon: { socket: join(ready().dir, 'a-daemon', 'control.sock'), metricsHost: '127.0.0.1', metricsPort: 0 },
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const rt = await createRuntime(parsed.value, silentLogger());
    const daemon = new Daemon(rt);
    try {
      await daemon.start();
      const now = Date.now() / 1000;
      const metrics = await daemon.metrics.render();
      const value = (name: string): number => Number(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[2]);
      expect(value('backup_runner_next_run_timestamp_seconds')).toBeLessThanOrEqual(now + 3600 + 5);
      expect(value('backup_runner_next_run_timestamp_seconds')).toBeGreaterThan(now);
      expect(value('backup_runner_last_success_timestamp_seconds')).toBeLessThanOrEqual(now);
      expect(value('backup_runner_last_success_timestamp_seconds')).toBeGreaterThan(now - 600);
    } finally {
      await daemon.stop();
      await closeRuntime(rt);
    }
  }, 120_000);

  it('an object that is not what its manifest says (plain SQL as a custom archive) fails verify and restore before the engine sees a byte', async () => {
    const cfgA = await config(A, 'a3.yaml');
    const sql = execFileSync('zstd', ['-q', '-c'], { input: Buffer.from('CREATE TABLE pwned(x int);\n') });
    await plant(A, WRONG_FORMAT, '2026-11-20T00:00:00.000Z', sql);

    const verify = await cli(['verify', WRONG_FORMAT], cfgA);
    expect(verify.code).not.toBe(0);
    expect((verify.json.checks as { status: string; error?: { code: string } }[]).map((c) => [c.status, c.error?.code])).toEqual([
      ['corrupt', 'FORMAT_MISMATCH'],
      ['corrupt', 'FORMAT_MISMATCH'],
    ]);

    const restore = await cli(['restore', '--backup', WRONG_FORMAT, '--target-database', 'restored_wrong'], cfgA);
    expect(restore.code).not.toBe(0);
    expect(JSON.stringify(restore.json)).toMatch(/FORMAT_MISMATCH|PGDMP/);
    expect(await ready().pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'restored_wrong';", 'postgres')).toBe('0');
  }, 120_000);

  it('a manifest naming another database or another id is a problem, not a backup', async () => {
    const cfgA = await config(A, 'a4.yaml');
    const data = Buffer.from('x');
    const id = '20261119T000000Z-cafe';
    for (const s of [ready().bucket, ready().folder]) {
      await s.put(objectKey(A, id, 'data.dump.zst'), data);
      await s.put(manifestKey(A, id), serializeManifest(manifestFor({ ...A, namespace: 'billing' }, id, '2026-11-19T00:00:00.000Z', 'data.dump.zst', data)));
    }
    const list = await cli(['list'], cfgA);
    expect((list.json.backups as { id: string }[]).map((b) => b.id)).not.toContain(id);
    expect((list.json.problems as { key?: string; error: { code: string } }[]).filter((p) => p.key === manifestKey(A, id)).map((p) => p.error.code)).toEqual(['MANIFEST_MISPLACED', 'MANIFEST_MISPLACED']);
    await text(await ready().bucket.get(manifestKey(A, id))); // still there
  }, 60_000);
});
