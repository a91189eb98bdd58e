/**
 * End to end through the CLI: a real PostgreSQL with rich data, backed up to a
 * filesystem, a real S3 server and the GCS emulator at once; dropped;
 * restored; compared table by table with checksums.
 */
import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../runner/cli/main.js';
import { silentLogger } from '../../runner/logger.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { startGcs, type GcsEmulator } from '../../testenv/gcs.js';
import { startFaultProxy } from '../../testenv/fault-proxy.js';

interface Env {
  pg: PgInstance;
  s3: S3Server;
  gcs: GcsEmulator;
  dir: string;
  config: Record<string, unknown>;
  cfgPath: string;
  seeded: Record<string, string>;
}

let env: Env | undefined;
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

interface CliResult {
  code: number;
  out: string;
  json: Record<string, unknown>;
}

async function cli(args: string[], cfgPath = ready().cfgPath): Promise<CliResult> {
  let out = '';
  const code = await main([...args, '-c', cfgPath, '-o', 'json'], process.env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
  return { code, out, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

async function writeConfig(name: string, patch: (c: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
  const e = ready();
  const file = join(e.dir, `${name}.yaml`);
  await writeFile(file, stringify(patch(structuredClone(e.config))));
  return file;
}

interface ListJson {
  backups: { id: string; locations: string[]; manifest: { consistentAt: string; objects: { name: string; size: number }[] } }[];
  problems: unknown[];
}

beforeAll(async () => {
  try {
    const pg = await startPostgres();
    const s3 = await startS3();
    const gcs = await startGcs();
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-e2e-'));
    await seedRich(pg, 'shop', { rows: 120_000 });
    await s3.createBucket('backups');
    const config = {
      namespace: 'shop',
      name: 'orders',
      engine: { type: 'postgresql', postgresql: pg.connection('shop') },
      locations: [
        { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
        { name: 's3', type: 's3', prefix: 'db', s3: s3.location('backups') },
        { name: 'gcs', type: 'gcs', gcs: gcs.location('gcs-backups') },
      ],
    };
    const cfgPath = join(dir, 'runner.yaml');
    await writeFile(cfgPath, stringify(config));
    env = { pg, s3, gcs, dir, config, cfgPath, seeded: await tableChecksums(pg, 'shop') };
  } catch (err) {
    setupError = err;
  }
}, 240_000);

afterAll(async () => {
  await env?.pg.stop();
  await env?.s3.stop();
  await env?.gcs.stop();
  if (env) await rm(env.dir, { recursive: true, force: true });
});

describe('backup and restore through the CLI', () => {
  let first: string;

  it('backs up once to the filesystem, S3 and GCS at the same time', async () => {
    const r = await cli(['backup']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ status: 'Succeeded' });
    const locations = r.json.locations as { location: string; status: string }[];
    expect(locations.map((l) => [l.location, l.status])).toEqual([
      ['fs', 'Succeeded'],
      ['s3', 'Succeeded'],
      ['gcs', 'Succeeded'],
    ]);
    first = r.json.id as string;
    const manifest = r.json.manifest as { objects: { name: string; size: number }[]; engine: { name: string } };
    expect(manifest.objects[0]!.name).toMatch(/^data\.dump\.(zst|gz)$/);
    expect(manifest.engine.name).toBe('postgresql');
  });

  it('lists the backup in every location, read from the manifests', async () => {
    const r = await cli(['list']);
    expect(r.code).toBe(0);
    const l = r.json as unknown as ListJson;
    expect(l.backups.map((b) => [b.id, b.locations])).toEqual([[first, ['fs', 's3', 'gcs']]]);
    expect(l.problems).toEqual([]);
  });

  it('refuses to restore over a database that holds data, and changes nothing', async () => {
    const r = await cli(['restore', '--latest']);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(await tableChecksums(ready().pg, 'shop')).toEqual(ready().seeded);
  });

  it('restores a dropped database: every table, sequence and large object is identical', async () => {
    const { pg, seeded } = ready();
    await pg.psql('DROP DATABASE shop');
    const r = await cli(['restore', '--latest']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ database: 'shop', location: 'fs' });
    const restored = await tableChecksums(pg, 'shop');
    expect(Object.keys(restored).length).toBeGreaterThan(5);
    expect(restored).toEqual(seeded);
  });

  it('restores into another database with --target-database', async () => {
    const r = await cli(['restore', '--backup', first, '--target-database', 'shop_copy']);
    expect(r.code, r.out).toBe(0);
    expect(await tableChecksums(ready().pg, 'shop_copy')).toEqual(ready().seeded);
  });

  it('--to-time picks the newest backup consistent at or before the time, never a newer one', async () => {
    const { pg } = ready();
    await pg.psql("CREATE TABLE public.after_first (note text); INSERT INTO public.after_first VALUES ('added after the first backup');", 'shop');
    const between = new Date();
    await new Promise((r) => setTimeout(r, 1100));
    const second = await cli(['backup']);
    expect(second.code).toBe(0);
    const listing = (await cli(['list'])).json as unknown as ListJson;
    expect(listing.backups).toHaveLength(2);
    const firstAt = listing.backups[0]!.manifest.consistentAt;
    expect(Date.parse(firstAt)).toBeLessThanOrEqual(between.getTime());

    const atBetween = await cli(['restore', '--to-time', between.toISOString(), '--target-database', 'pit_between']);
    expect(atBetween.code, atBetween.out).toBe(0);
    expect(atBetween.json).toMatchObject({ backup: { id: first } });
    expect(await pg.psql("SELECT to_regclass('public.after_first') IS NULL", 'pit_between')).toBe('t');

    const atNow = await cli(['restore', '--to-time', new Date(Date.now() + 1000).toISOString(), '--target-database', 'pit_now']);
    expect(atNow.code).toBe(0);
    expect(atNow.json).toMatchObject({ backup: { id: second.json.id } });
    expect(await pg.psql('SELECT note FROM public.after_first', 'pit_now')).toBe('added after the first backup');
  });

  it('--to-time before the first backup and an unknown id are "not found" (exit 4)', async () => {
    const early = await cli(['restore', '--to-time', '2001-01-01T00:00:00Z', '--target-database', 'never']);
    expect(early.code).toBe(4);
    expect(early.json).toMatchObject({ error: { code: 'NO_BACKUP_BEFORE_TIME' } });
    expect((early.json.error as { message: string }).message).toContain('earliest');
    const unknown = await cli(['restore', '--backup', '20010101T000000Z-dead', '--target-database', 'never']);
    expect(unknown.code).toBe(4);
    expect(unknown.json).toMatchObject({ error: { code: 'BACKUP_NOT_FOUND' } });
    expect(await ready().pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'never'")).toBe('0');
  });

  it('verify checks every object in every location', async () => {
    const r = await cli(['verify']);
    expect(r.code, r.out).toBe(0);
    const checks = (r.json as { checks: { status: string; location: string }[] }).checks;
    expect(checks).toHaveLength(6);
    expect(checks.every((c) => c.status === 'ok')).toBe(true);
  });

  it('a corrupted copy fails verify (exit 6), and restore falls back to an intact location', async () => {
    const { dir, pg, seeded } = ready();
    const dataDir = join(dir, 'fs', 'shop', 'orders', 'backups', first);
    const dataFile = join(dataDir, (await readdir(dataDir)).find((f) => f.startsWith('data.'))!);
    const bytes = await readFile(dataFile);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    await writeFile(dataFile, bytes);

    const v = await cli(['verify', first]);
    expect(v.code).toBe(6);
    const checks = (v.json as { checks: { status: string; location: string }[] }).checks;
    expect(checks.find((c) => c.location === 'fs')?.status).toBe('corrupt');
    expect(checks.filter((c) => c.location !== 'fs').every((c) => c.status === 'ok')).toBe(true);

    const r = await cli(['restore', '--backup', first, '--target-database', 'from_fallback']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ location: 's3', skipped: [{ location: 'fs', status: 'corrupt' }] });
    expect(await tableChecksums(pg, 'from_fallback')).toEqual(seeded);
  });

  it('when no intact copy exists, restore fails before touching the database', async () => {
    const { s3, gcs, pg } = ready();
    // Truncate the S3 and GCS copies too: every location now holds a bad object.
    for (const [storage, key] of [
      [s3.storage('backups'), `db/shop/orders/backups/${first}`],
      [gcs.storage('gcs-backups'), `shop/orders/backups/${first}`],
    ] as const) {
      for await (const o of storage.list(`${key}/`)) {
        if (o.key.includes('/data.')) await storage.put(o.key, Buffer.from('truncated'));
      }
    }
    const before = await tableChecksums(pg, 'shop');
    const r = await cli(['restore', '--backup', first, '--force']);
    expect(r.code).toBe(6);
    expect(r.json).toMatchObject({ error: { code: 'INTEGRITY' } });
    expect(await tableChecksums(pg, 'shop')).toEqual(before);
  });
});

describe('edge cases', () => {
  it('an empty database backs up and restores (tiny dumps are not lost in the pipes)', async () => {
    const { pg } = ready();
    await pg.psql('CREATE DATABASE empty_db');
    const cfg = await writeConfig('empty', (c) => {
      (c.engine as { postgresql: { database: string } }).postgresql.database = 'empty_db';
      c.name = 'empty';
      return c;
    });
    const b = await cli(['backup'], cfg);
    expect(b.code, b.out).toBe(0);
    await pg.psql('DROP DATABASE empty_db');
    const r = await cli(['restore', '--latest'], cfg);
    expect(r.code, r.out).toBe(0);
    expect(await pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'empty_db'")).toBe('1');
  });
});

describe('bad input gets a clear error and loses nothing', () => {
  it('a wrong password fails the backup with DB_AUTH_FAILED and stores nothing', async () => {
    const before = ((await cli(['list'])).json as unknown as ListJson).backups.length;
    const cfg = await writeConfig('wrong-password', (c) => {
      (c.engine as { postgresql: { password: unknown } }).postgresql.password = { value: 'not-the-password' };
      return c;
    });
    const r = await cli(['backup'], cfg);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ status: 'Failed', error: { code: 'DB_AUTH_FAILED' } });
    expect(r.out).not.toContain('not-the-password');
    expect(((await cli(['list'])).json as unknown as ListJson).backups.length).toBe(before);
  });

  it('an unreachable database fails with DB_UNREACHABLE', async () => {
    const cfg = await writeConfig('unreachable', (c) => {
      (c.engine as { postgresql: { port: number } }).postgresql.port = 1;
      return c;
    });
    const r = await cli(['backup'], cfg);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ status: 'Failed', error: { code: 'DB_UNREACHABLE' } });
  });

  it('a missing bucket fails that location only: partial success, exit 3', async () => {
    const cfg = await writeConfig('missing-bucket', (c) => {
      const locs = c.locations as { name: string; s3?: { bucket: string } }[];
      locs[1]!.s3!.bucket = 'no-such-bucket';
      return c;
    });
    const r = await cli(['backup'], cfg);
    expect(r.code).toBe(3);
    expect(r.json).toMatchObject({ status: 'PartiallySucceeded' });
    const byName = Object.fromEntries((r.json.locations as { location: string; status: string; error?: { code: string } }[]).map((l) => [l.location, l]));
    expect(byName.s3).toMatchObject({ status: 'Failed', error: { code: 'STORAGE_BUCKET_MISSING' } });
    expect(byName.fs?.status).toBe('Succeeded');
    expect(byName.gcs?.status).toBe('Succeeded');
  });

  it('S3 going down mid-upload fails that location only; nothing partial stays in the bucket', async () => {
    const { s3 } = ready();
    const proxy = await startFaultProxy({ port: s3.port });
    try {
      const cfg = await writeConfig('flaky-s3', (c) => {
        const locs = c.locations as { name: string; s3?: { endpoint: string } }[];
        locs[1]!.s3!.endpoint = proxy.url;
        return c;
      });
      // Down for 3 s: the SDK's three attempts of a part (backoff well under a second) all meet the outage even
      // on a loaded machine (300 ms was not always enough: a late retry finished the upload), and the runner's
      // abort retries (after 0.25, 0.75, 1.75, 3.75 and 7.75 s) still land once it is back.
      const cut = proxy.cutAfter(3 * 1024 * 1024, { refuseMs: 3000 });
      const r = await cli(['backup'], cfg);
      await cut;
      expect(r.code, r.out).toBe(3);
      expect(r.json).toMatchObject({ status: 'PartiallySucceeded' });
      const byName = Object.fromEntries((r.json.locations as { location: string; status: string; error?: { code: string } }[]).map((l) => [l.location, l]));
      expect(byName.s3?.status).toBe('Failed');
      expect(byName.s3?.error?.code).toMatch(/^STORAGE_/);
      expect(byName.fs?.status).toBe('Succeeded');
      expect(byName.gcs?.status).toBe('Succeeded');
      proxy.up();
      const left: string[] = [];
      for await (const o of s3.storage('backups').list(`db/shop/orders/backups/${r.json.id as string}/`)) left.push(o.key);
      expect(left).toEqual([]);
      expect(await s3.openUploads('backups')).toEqual([]);
      const v = await cli(['verify', r.json.id as string]);
      expect(v.code, v.out).toBe(0);
      expect((v.json as { checks: { location: string }[] }).checks.map((c) => c.location)).toEqual(['fs', 'gcs']);
    } finally {
      await proxy.close();
    }
  });

  it('an invalid config lists every bad field and exits 2', async () => {
    const cfg = await writeConfig('invalid', (c) => ({ ...c, name: 'Bad_Name', locations: [{ name: 'x', type: 'ftp' }] }));
    const r = await cli(['backup'], cfg);
    expect(r.code).toBe(2);
    const message = (r.json.error as { message: string }).message;
    expect(message).toContain('name: must be');
    expect(message).toContain('locations[0].type: must be one of');
  });
});
