/**
 * Backups written by an earlier release stay listable, verifiable, restorable
 * and retirable: the format 1 backup committed in test/fixtures/format-1
 * (written by release 0.1.0) in a filesystem location and on the S3 server,
 * beside a format 2 backup the current runner writes; a manifest of a format
 * newer than this runner reads is reported, never guessed at.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../runner/cli/main.js';
import { silentLogger } from '../../runner/logger.js';
import { FilesystemStorage } from '../../runner/storage/filesystem.js';
import type { Storage } from '../../runner/storage/types.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'format-1');
const V1_ID = '20261203T185900Z-e278';

let pg: PgInstance;
let s3: S3Server;
let dir: string;
let cfgPath: string;

async function cli(args: string[]): Promise<{ code: number; json: Record<string, unknown> }> {
  let out = '';
  const code = await main([...args, '-c', cfgPath, '-o', 'json'], process.env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
  return { code, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

/** Every file under `root`, relative and sorted. */
async function files(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name))).sort();
}

async function keys(storage: Storage, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of storage.list(prefix)) out.push(o.key);
  return out.sort();
}

const bucket = () => s3.storage('compat');
const folder = () => new FilesystemStorage(join(dir, 'fs'));

interface ListJson {
  backups: { id: string; locations: string[]; manifest: { formatVersion: number; objects: { name: string }[] }; copies: { location: string; dir: string }[] }[];
  problems: { location: string; key?: string; error: { code: string; message: string } }[];
}

beforeAll(async () => {
  pg = await startPostgres();
  s3 = await startS3();
  dir = await mkdtemp(join(tmpdir(), 'dbbc-compat-'));
  await seedRich(pg, 'shop', { rows: 100 });
  await s3.createBucket('compat');
  // The fixture, byte for byte, where release 0.1.0 put it: a filesystem location without prefix, and S3 under "db".
  for (const file of (await files(FIXTURE)).filter((f) => f.startsWith('shop/'))) {
    const data = await readFile(join(FIXTURE, file));
    await folder().put(file, data);
    await bucket().put(`db/${file}`, data);
  }
  cfgPath = join(dir, 'runner.yaml');
  await writeFile(
    cfgPath,
    stringify({
      namespace: 'shop',
      name: 'orders',
      engine: { type: 'postgresql', postgresql: pg.connection('shop') },
      locations: [
        { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
        { name: 's3', type: 's3', prefix: 'db', s3: s3.location('compat') },
      ],
      retention: { keepLast: 1, minKeep: 1 },
    }),
  );
}, 180_000);

afterAll(async () => {
  await pg?.stop();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a format 1 backup written by release 0.1.0', () => {
  it('is listed in both locations, read as format 1', async () => {
    const r = await cli(['list']);
    expect(r.code).toBe(0);
    const l = r.json as unknown as ListJson;
    expect(l.problems).toEqual([]);
    expect(l.backups.map((b) => [b.id, b.locations, b.manifest.formatVersion])).toEqual([[V1_ID, ['fs', 's3'], 1]]);
    expect(l.backups[0]!.copies.map((c) => c.dir)).toEqual([`shop/orders/${V1_ID}/`, `db/shop/orders/${V1_ID}/`]);
  });

  it('verifies in both locations', async () => {
    const r = await cli(['verify', V1_ID]);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect((r.json.checks as { location: string; status: string }[]).map((c) => [c.location, c.status])).toEqual([
      ['fs', 'ok'],
      ['s3', 'ok'],
    ]);
  });

  it('restores into a new database with every table, large object, sequence, view and function as it was', async () => {
    const r = await cli(['restore', '--backup', V1_ID, '--target-database', 'from_v1']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    const want = JSON.parse(await readFile(join(FIXTURE, 'checksums.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(want).length).toBeGreaterThan(10);
    expect(await tableChecksums(pg, 'from_v1')).toEqual(want);
  });

  it('a new backup is written in format 2 under backups/, and both are listed', async () => {
    const b = await cli(['backup']);
    expect(b.code, JSON.stringify(b.json)).toBe(0);
    const id = b.json.id as string;
    expect(await keys(bucket(), `db/shop/orders/backups/${id}/`)).toEqual([`db/shop/orders/backups/${id}/data.dump.zst`, `db/shop/orders/backups/${id}/manifest.json`]);
    const l = (await cli(['list'])).json as unknown as ListJson;
    expect(l.backups.map((x) => [x.id, x.manifest.formatVersion])).toEqual([
      [V1_ID, 1],
      [id, 2],
    ]);
    const v = await cli(['verify']);
    expect(v.code, JSON.stringify(v.json)).toBe(0);
  });

  it('retention retires it from its own directory in each location, and nothing else', async () => {
    const r = await cli(['retention']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(await keys(bucket(), `db/shop/orders/${V1_ID}/`)).toEqual([]);
    expect((await files(join(dir, 'fs'))).filter((f) => f.includes(V1_ID))).toEqual([]);
    const l = (await cli(['list'])).json as unknown as ListJson;
    expect(l.backups.map((x) => x.manifest.formatVersion)).toEqual([2]);
  });
});

describe('a manifest of a format newer than this runner reads', () => {
  it('is reported as MANIFEST_UNSUPPORTED ("upgrade the runner"), and restore --latest does not guess past it', async () => {
    const id = '20261203T235959Z-ffff';
    const manifest = { formatVersion: 5, kind: 'backup', id, namespace: 'shop', name: 'orders', somethingNew: { x: 1 } };
    await folder().put(`shop/orders/backups/${id}/manifest.json`, Buffer.from(JSON.stringify(manifest)));
    const l = await cli(['list']);
    expect(l.code).toBe(3);
    const problems = (l.json as unknown as ListJson).problems;
    expect(problems).toEqual([expect.objectContaining({ location: 'fs', key: `shop/orders/backups/${id}/manifest.json`, error: expect.objectContaining({ code: 'MANIFEST_UNSUPPORTED' }) })]);
    expect(problems[0]!.error.message).toContain('upgrade the runner');
    const r = await cli(['restore', '--latest', '--target-database', 'never']);
    expect(r.code).toBe(3);
    expect(r.json).toMatchObject({ error: { code: 'LISTING_INCOMPLETE' } });
    expect(await pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'never'")).toBe('0');
  });
});
