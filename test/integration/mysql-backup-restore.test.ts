/**
 * MariaDB end to end through the CLI: a real MariaDB with a binary log and
 * every kind of object, backed up at once to a filesystem and to a real S3
 * server that encrypts with age; listed, verified, restored under another
 * name and over the original, and compared by fingerprint.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startMariaDb, type MariaDbInstance } from '../../testenv/mariadb.js';
import { mariaFingerprint, seedMariaRich } from '../../testenv/mariadb-seed.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { runCli, type CliResult } from '../cli.js';

interface Env {
  db: MariaDbInstance;
  s3: S3Server;
  dir: string;
  cfgPath: string;
  seeded: Record<string, string>;
}

let env: Env | undefined;
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

function cli(args: string[]): Promise<CliResult> {
  return runCli(ready().cfgPath, args);
}

beforeAll(async () => {
  try {
    const [db, s3] = await Promise.all([startMariaDb({ binlog: true }), startS3()]);
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-mysql-e2e-'));
    await seedMariaRich(db, 'shop', { rows: 20_000 });
    await s3.createBucket('backups');
    // A key made by the real age-keygen.
    execFileSync('age-keygen', ['-o', join(dir, 'age.key')], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', join(dir, 'age.key')]).toString().trim();
    const config = {
      namespace: 'shop',
      name: 'orders',
      engine: { type: 'mysql', mysql: { host: db.host, port: db.port, database: 'shop', user: db.user, password: { value: db.password } } },
      locations: [
        { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
        {
          name: 's3',
          type: 's3',
          prefix: 'db',
          s3: s3.location('backups'),
          encryption: { age: { recipients: [recipient], identities: [{ file: join(dir, 'age.key') }] } },
        },
      ],
    };
    const cfgPath = join(dir, 'runner.yaml');
    await writeFile(cfgPath, stringify(config));
    env = { db, s3, dir, cfgPath, seeded: await mariaFingerprint(db, 'shop') };
  } catch (err) {
    setupError = err;
  }
}, 240_000);

afterAll(async () => {
  await env?.db.stop();
  await env?.s3.stop();
  if (env) await rm(env.dir, { recursive: true, force: true });
});

describe('MariaDB backup and restore through the CLI', () => {
  let first: string;

  it('backs up once to both locations, recording the engine, SQL format and binlog position', async () => {
    const r = await cli(['backup']);
    expect(r.code, r.out).toBe(0);
    expect((r.json.locations as { status: string }[]).map((l) => l.status)).toEqual(['Succeeded', 'Succeeded']);
    first = r.json.id as string;
    const manifest = r.json.manifest as { objects: { name: string }[]; engine: Record<string, unknown>; database: string };
    expect(manifest.objects[0]!.name).toMatch(/^data\.sql\.(zst|gz)$/);
    expect(manifest.database).toBe('shop');
    expect(manifest.engine).toMatchObject({ name: 'mysql', format: 'mysql-sql', serverVersion: ready().db.version, position: { binlogFile: expect.stringMatching(/^binlog\.\d+$/) as string } });
  });

  it('lists it in both locations and verifies every copy, the encrypted one included', async () => {
    const list = await cli(['list']);
    expect((list.json.backups as { id: string; locations: string[] }[]).map((b) => [b.id, b.locations])).toEqual([[first, ['fs', 's3']]]);
    const v = await cli(['verify']);
    expect(v.code, v.out).toBe(0);
    expect((v.json.checks as { status: string }[]).map((c) => c.status)).toEqual(['ok', 'ok']);
  });

  it('refuses to restore over the database that holds data, and changes nothing', async () => {
    const r = await cli(['restore', '--latest']);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(await mariaFingerprint(ready().db, 'shop')).toEqual(ready().seeded);
  });

  it('restores under another name with identical tables, view, trigger, routines and event', async () => {
    const r = await cli(['restore', '--backup', first, '--target-database', 'shop_copy']);
    expect(r.code, r.out).toBe(0);
    expect(await mariaFingerprint(ready().db, 'shop_copy')).toEqual(ready().seeded);
  });

  it('with --force restores over changed data, reading the encrypted copy when the plain one is gone', async () => {
    const { db, dir } = ready();
    await db.sql("DELETE FROM orders WHERE id % 2 = 0; UPDATE customers SET name = 'x';", 'shop');
    await rm(join(dir, 'fs'), { recursive: true, force: true });
    const r = await cli(['restore', '--latest', '--force']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ location: 's3' });
    expect(await mariaFingerprint(db, 'shop')).toEqual(ready().seeded);
  });
});
