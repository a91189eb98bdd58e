/**
 * Encryption per location, end to end through the CLI: a real PostgreSQL, an
 * encrypted location on the S3 server and a plain filesystem location; keys
 * made by `age-keygen`; the Debian `age` command decrypting what the runner
 * wrote (docs/encryption.md's emergency procedure, run as written) and the
 * runner restoring what `age` encrypted; a wrong key, altered and truncated
 * objects, rotated keys.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../runner/cli/main.js';
import { headerEnd } from '../../runner/crypto/age.js';
import { silentLogger } from '../../runner/logger.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';

const AGE_HINT = 'the age command is missing: apt-get install -y age (make deps installs it)';

let pg: PgInstance;
let s3: S3Server;
let dir: string;
let seeded: Record<string, string>;
const keys: Record<'a' | 'b', { file: string; recipient: string }> = {} as never;

interface Cli {
  code: number;
  json: Record<string, unknown>;
}

async function cli(cfg: string, args: string[], stdin?: string): Promise<Cli> {
  let out = '';
  const code = await main([...args, '-c', cfg, '-o', 'json'], process.env, {
    stdout: (t) => (out += `${t}\n`),
    logger: silentLogger(),
    ...(stdin !== undefined ? { stdin: () => Promise.resolve(stdin) } : {}),
  });
  return { code, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

/** A runner config: `fs` plain and `s3` encrypted for `recipients`, in `order`; database `shop` under S3 prefix `db` unless told. */
async function config(name: string, recipients: string[], order: ('fs' | 's3')[] = ['fs', 's3'], opts: { database?: string; prefix?: string } = {}): Promise<string> {
  const locations = {
    fs: { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
    s3: { name: 's3', type: 's3', prefix: opts.prefix ?? 'db', s3: s3.location('enc'), encryption: { age: { recipients } } },
  };
  const file = join(dir, `${name}.yaml`);
  const engine = { type: 'postgresql', postgresql: pg.connection(opts.database ?? 'shop') };
  await writeFile(file, stringify({ namespace: 'shop', name: 'orders', engine, locations: order.map((l) => locations[l]) }));
  return file;
}

const bucket = () => s3.storage('enc');
const objectKey = (id: string) => `db/shop/orders/backups/${id}/data.dump.zst.age`;
const manifestKey = (id: string) => `db/shop/orders/backups/${id}/manifest.json`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const dbExists = async (db: string) => (await pg.psql(`SELECT count(*) FROM pg_database WHERE datname = '${db}'`)) === '1';

/** Replaces the S3 copy's object and rewrites its manifest's stored size and sha256 to match (what an attacker with bucket write can do). */
async function replaceObject(id: string, data: Buffer): Promise<void> {
  await bucket().put(objectKey(id), data);
  const m = JSON.parse((await buffer(await bucket().get(manifestKey(id)))).toString()) as { objects: { size: number; sha256: string }[] };
  m.objects[0]!.size = data.length;
  m.objects[0]!.sha256 = sha(data);
  await bucket().put(manifestKey(id), Buffer.from(JSON.stringify(m)));
}

let cfgBoth: string;
let cfgS3: string;
let first: string;
let original: Buffer;

beforeAll(async () => {
  if (spawnSync('age', ['--version']).status !== 0) throw new Error(AGE_HINT);
  pg = await startPostgres();
  s3 = await startS3();
  dir = await mkdtemp(join(tmpdir(), 'dbbc-enc-'));
  await seedRich(pg, 'shop', { rows: 2000 });
  seeded = await tableChecksums(pg, 'shop');
  await s3.createBucket('enc');
  for (const k of ['a', 'b'] as const) {
    const file = join(dir, `${k}.key`);
    execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
    keys[k] = { file, recipient: execFileSync('age-keygen', ['-y', file]).toString().trim() };
  }
  cfgBoth = await config('both', [keys.a.recipient]);
  cfgS3 = await config('s3', [keys.a.recipient], ['s3']);
}, 180_000);

afterAll(async () => {
  await pg?.stop();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('one backup, an encrypted S3 location and a plain filesystem location', () => {
  it('stores an age file in S3 and the plain dump on the filesystem; each manifest says what its copy is', async () => {
    const r = await cli(cfgBoth, ['backup']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    first = r.json.id as string;
    original = await buffer(await bucket().get(objectKey(first)));
    expect(original.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    const l = await cli(cfgBoth, ['list']);
    const b = (l.json.backups as { copies: { location: string; manifest: { objects: Record<string, unknown>[] } }[] }[])[0]!;
    const [fs, enc] = b.copies.map((c) => c.manifest.objects[0]!);
    expect(fs).toMatchObject({ name: 'data.dump.zst', encryption: { scheme: 'none' } });
    const fingerprint = `sha256:${sha(Buffer.from(keys.a.recipient)).slice(0, 16)}`;
    expect(enc).toMatchObject({ name: 'data.dump.zst.age', size: original.length, sha256: sha(original), plain: fs!.plain, encryption: { scheme: 'age', recipients: [fingerprint] } });
    expect(JSON.stringify(enc)).not.toContain(keys.a.recipient);
  });

  it('verify without an identity checks the stored bytes and says the contents were not checked; with one, the contents too', async () => {
    const bare = await cli(cfgBoth, ['verify', first]);
    expect(bare.code, JSON.stringify(bare.json)).toBe(0);
    expect(bare.json.checks).toEqual([expect.objectContaining({ location: 'fs', status: 'ok' }), expect.objectContaining({ location: 's3', status: 'ok', contents: expect.stringMatching(/^not checked/) })]);
    const full = await cli(cfgBoth, ['verify', first, '--identity', keys.a.file]);
    expect(full.code).toBe(0);
    expect((full.json.checks as { contents?: string }[])[1]!.contents).toMatch(/^checked/);
  });

  it('restores from each location, and both databases equal the original', async () => {
    const fromFs = await cli(cfgBoth, ['restore', '--backup', first, '--target-database', 'from_fs']);
    expect(fromFs.code, JSON.stringify(fromFs.json)).toBe(0);
    expect(fromFs.json).toMatchObject({ location: 'fs' });
    const fromS3 = await cli(cfgS3, ['restore', '--backup', first, '--target-database', 'from_s3', '--identity', '-'], await readFile(keys.a.file, 'utf8'));
    expect(fromS3.code, JSON.stringify(fromS3.json)).toBe(0);
    expect(fromS3.json).toMatchObject({ location: 's3' });
    expect(await tableChecksums(pg, 'from_fs')).toEqual(seeded);
    expect(await tableChecksums(pg, 'from_s3')).toEqual(seeded);
  });

  it('without an identity, or with the wrong one: refused naming the location and object; no database is created', async () => {
    const none = await cli(cfgS3, ['restore', '--backup', first, '--target-database', 'never1']);
    expect(none.code).toBe(1);
    expect(none.json).toMatchObject({ error: { code: 'NO_MATCHING_IDENTITY', message: expect.stringContaining('no identity was given') } });
    const wrong = await cli(cfgS3, ['restore', '--backup', first, '--target-database', 'never2', '--identity', keys.b.file]);
    expect(wrong.code).toBe(1);
    expect(wrong.json).toMatchObject({ error: { code: 'NO_MATCHING_IDENTITY', message: expect.stringContaining(objectKey(first)) } });
    expect(await dbExists('never1')).toBe(false);
    expect(await dbExists('never2')).toBe(false);
  });
});

describe('the age command: the emergency procedure, and the other direction', () => {
  it('docs/encryption.md\'s emergency restore block, run as written, restores the database', async () => {
    const doc = await readFile(join(import.meta.dirname, '..', '..', 'docs', 'encryption.md'), 'utf8');
    const block = /<!-- emergency-restore -->\n```sh\n([\s\S]*?)```\n<!-- \/emergency-restore -->/.exec(doc)?.[1];
    expect(block, 'the emergency-restore block of docs/encryption.md').toBeDefined();
    const object = join(dir, 'downloaded.age');
    await writeFile(object, await buffer(await bucket().get(objectKey(first))));
    await pg.psql('CREATE DATABASE by_hand');
    const c = pg.connection('by_hand');
    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', block!], {
      env: { PATH: `${c.binDir ?? ''}:${process.env.PATH ?? ''}`, PGSSLMODE: 'disable', IDENTITY_FILE: keys.a.file, OBJECT: object, TARGET_DB: 'by_hand', PGHOST: c.host, PGPORT: String(c.port), PGUSER: c.user, ...(c.password?.value ? { PGPASSWORD: c.password.value } : {}) },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(await tableChecksums(pg, 'by_hand')).toEqual(seeded);
  });

  it('the runner restores an object the age command encrypted', async () => {
    const plain = join(dir, 'plain.zst');
    await writeFile(plain, await readFile(join(dir, 'fs', 'shop', 'orders', 'backups', first, 'data.dump.zst')));
    const sealed = join(dir, 'by-age.age');
    execFileSync('age', ['-r', keys.a.recipient, '-o', sealed, plain]);
    await replaceObject(first, await readFile(sealed));
    const r = await cli(cfgS3, ['restore', '--backup', first, '--target-database', 'from_age_cli', '--identity', keys.a.file]);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(await tableChecksums(pg, 'from_age_cli')).toEqual(seeded);
    await replaceObject(first, original);
  });
});

describe('altered and truncated objects, even with the manifest rewritten to match: found before the database is touched', () => {
  it.each([
    ['a flipped byte in the header', (b: Buffer) => flipAt(b, 40), /age header (is invalid or )?was altered/],
    ['a flipped byte in the payload', (b: Buffer) => flipAt(b, headerEnd(b) + 16 + 1000), /failed authentication/],
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 100), /failed authentication|truncated/],
  ])('%s: INTEGRITY naming the location and object', async (_what, alter, message) => {
    await replaceObject(first, alter(Buffer.from(original)));
    const db = `never_${Math.random().toString(36).slice(2, 8)}`;
    const r = await cli(cfgS3, ['restore', '--backup', first, '--target-database', db, '--identity', keys.a.file]);
    expect(r.code).toBe(6);
    expect(r.json).toMatchObject({ error: { code: 'INTEGRITY', message: expect.stringMatching(message) } });
    expect((r.json.error as { message: string }).message).toContain(`s3: ${objectKey(first)}`);
    expect(await dbExists(db)).toBe(false);
    const v = await cli(cfgS3, ['verify', first, '--identity', keys.a.file]);
    expect(v.code).toBe(6);
    await replaceObject(first, original);
  });

  function flipAt(b: Buffer, at: number): Buffer {
    b[at] = b[at]! ^ 0x01;
    return b;
  }
});

describe('rotated keys', () => {
  it('new backups for the new recipient; the old one stays readable with the old identity; both identities read both', async () => {
    const rotated = await config('rotated', [keys.b.recipient], ['s3']);
    const r = await cli(rotated, ['backup']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    const second = r.json.id as string;
    const oldOnly = await cli(rotated, ['restore', '--backup', first, '--target-database', 'rot_old', '--identity', keys.a.file]);
    expect(oldOnly.code, JSON.stringify(oldOnly.json)).toBe(0);
    const newWithOld = await cli(rotated, ['restore', '--backup', second, '--target-database', 'rot_never', '--identity', keys.a.file]);
    expect(newWithOld.json).toMatchObject({ error: { code: 'NO_MATCHING_IDENTITY' } });
    const both = await cli(rotated, ['restore', '--backup', second, '--target-database', 'rot_new', '--identity', keys.a.file, '--identity', keys.b.file]);
    expect(both.code, JSON.stringify(both.json)).toBe(0);
    expect(await tableChecksums(pg, 'rot_new')).toEqual(seeded);
    expect(await dbExists('rot_never')).toBe(false);
  });
});

describe('rekey', () => {
  it('re-wraps a stored object for the new recipient, its payload copied by the S3 server; the age command decrypts it with the new key', async () => {
    // About 8 MiB of random bytes: the compressed dump is longer than one S3 part, so the payload is copied server-side.
    await pg.psql('CREATE DATABASE noise');
    await pg.psql("CREATE TABLE noise AS SELECT decode(md5(random()::text) || md5(random()::text), 'hex') AS b FROM generate_series(1, 250000)", 'noise');
    const forA = await config('noise-a', [keys.a.recipient], ['s3'], { database: 'noise', prefix: 'rekey' });
    const b = await cli(forA, ['backup']);
    expect(b.code, JSON.stringify(b.json)).toBe(0);
    const id = b.json.id as string;
    const forB = await config('noise-b', [keys.b.recipient], ['s3'], { database: 'noise', prefix: 'rekey' });

    const dry = await cli(forB, ['rekey', '--dry-run']);
    expect(dry.json.objects).toMatchObject([{ backupId: id, status: 'planned' }]);
    const noKey = await cli(forB, ['rekey']);
    expect(noKey.code).toBe(1);
    expect(noKey.json.objects).toMatchObject([{ status: 'failed', error: { code: 'NO_MATCHING_IDENTITY' } }]);

    const r = await cli(forB, ['rekey', id, '--identity', keys.a.file]);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(r.json.objects).toMatchObject([{ backupId: id, status: 'rekeyed', newName: 'data.dump.zst.rekeyed.age', serverSide: true }]);
    const dirKey = `rekey/shop/orders/backups/${id}/`;
    const keysLeft: string[] = [];
    for await (const o of bucket().list(dirKey)) keysLeft.push(o.key);
    expect(keysLeft.sort()).toEqual([`${dirKey}data.dump.zst.rekeyed.age`, `${dirKey}manifest.json`]);

    const m = JSON.parse((await buffer(await bucket().get(`${dirKey}manifest.json`))).toString()) as { objects: { plain: { sha256: string } }[] };
    const stored = join(dir, 'rekeyed.age');
    await writeFile(stored, await buffer(await bucket().get(`${dirKey}data.dump.zst.rekeyed.age`)));
    expect(sha(execFileSync('age', ['-d', '-i', keys.b.file, stored], { maxBuffer: 64 * 1024 * 1024 }))).toBe(m.objects[0]!.plain.sha256);
    expect(spawnSync('age', ['-d', '-i', keys.a.file, stored]).status).not.toBe(0);

    expect((await cli(forB, ['verify', '--identity', keys.b.file])).code).toBe(0);
    const restored = await cli(forB, ['restore', '--latest', '--target-database', 'noise_back', '--identity', keys.b.file]);
    expect(restored.code, JSON.stringify(restored.json)).toBe(0);
    expect(await pg.psql('SELECT count(*), sum(length(b)) FROM noise', 'noise_back')).toBe(await pg.psql('SELECT count(*), sum(length(b)) FROM noise', 'noise'));
  });
});
