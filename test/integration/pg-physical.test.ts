/**
 * Physical PostgreSQL backups end to end: a real server backed up with pg_basebackup through the runner to
 * a filesystem and a real S3 server at once, laid into new data directories, and started there with the
 * server's own binaries: what was committed before the backup is there, what came after is not. Also the
 * refusals (a directory holding data, the wrong kind of backup) and a restore stopped half way, resumed.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML, { stringify } from 'yaml';
import { createRuntime } from '../../runner/build-runtime.js';
import { loadConfig } from '../../runner/config/load.js';
import { silentLogger } from '../../runner/logger.js';
import { runRestore } from '../../runner/ops/restore.js';
import { closeRuntime } from '../../runner/runtime.js';
import { RESTORE_STATE_FILE } from '../../runner/engines/postgresql/physical/entries.js';
import { runCli } from '../cli.js';
import { serviceOwnedDir, startPostgres, startPostgresOn, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';

let pg: PgInstance;
let s3: S3Server;
let dir: string;
let cfgPath: string;
const dirs: string[] = [];

async function restoredDir(): Promise<string> {
  const d = await serviceOwnedDir('pgrestore-');
  dirs.push(d);
  return d;
}

/** Starts a server on a restored directory and reads the marker rows; always stops it. */
async function rowsIn(dataDir: string): Promise<{ before: string; after: string; big: string }> {
  const server = await startPostgresOn(dataDir, { user: pg.user, password: pg.password });
  try {
    const q = async (sql: string) => server.psql(sql, 'shop');
    return { before: await q("SELECT count(*) FROM marks WHERE phase = 'before'"), after: await q("SELECT count(*) FROM marks WHERE phase = 'after'"), big: await q('SELECT count(*) FROM big') };
  } finally {
    await server.stop();
  }
}

let backupId = '';

beforeAll(async () => {
  pg = await startPostgres();
  s3 = await startS3();
  await s3.createBucket('backups');
  dir = await mkdtemp(join(tmpdir(), 'dbbc-physical-'));
  await pg.psql('CREATE DATABASE shop');
  await pg.psql("CREATE TABLE marks (id serial PRIMARY KEY, phase text NOT NULL); CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 12) AS pad FROM generate_series(1, 150000) g;", 'shop');
  const config = {
    namespace: 'shop',
    name: 'cluster',
    engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), mode: 'physical' } },
    locations: [
      { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
      { name: 's3', type: 's3', prefix: 'db', s3: s3.location('backups') },
    ],
  };
  cfgPath = join(dir, 'runner.yaml');
  await writeFile(cfgPath, stringify(config));
}, 120_000);

afterAll(async () => {
  await pg?.stop();
  await s3?.stop();
  for (const d of [dir, ...dirs]) if (d) await rm(d, { recursive: true, force: true });
});

describe('physical base backups', () => {
  it('stores one base backup in every location, with its WAL range and size in the manifest', async () => {
    await pg.psql("INSERT INTO marks (phase) SELECT 'before' FROM generate_series(1, 500)", 'shop');
    const r = await runCli(cfgPath, ['backup']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ status: 'Succeeded' });
    backupId = r.json.id as string;
    const manifest = r.json.manifest as { objects: { name: string }[]; engine: { format: string; position: Record<string, string> } };
    expect(manifest.engine.format).toBe('pg_basebackup-tar');
    expect(manifest.objects[0]!.name).toMatch(/^data\.tar\.(zst|gz)$/);
    const pos = manifest.engine.position;
    expect(pos.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(pos.stopLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(pos.startWalFile).toMatch(/^[0-9A-F]{24}$/);
    expect(pos.timeline).toBe('1');
    expect(Number(pos.dataBytes)).toBeGreaterThan(50 * 1024 * 1024);
    await pg.psql("INSERT INTO marks (phase) SELECT 'after' FROM generate_series(1, 70)", 'shop');
    const list = await runCli(cfgPath, ['list']);
    expect((list.json.backups as { id: string; locations: string[] }[]).map((b) => [b.id, b.locations])).toEqual([[backupId, ['fs', 's3']]]);
    const verify = await runCli(cfgPath, ['verify']);
    expect(verify.code, verify.out).toBe(0);
  }, 120_000);

  it('lays the backup into an empty data directory, where PostgreSQL starts with exactly what was committed before it', async () => {
    const target = await restoredDir();
    const r = await runCli(cfgPath, ['restore', '--latest', '--data-dir', target]);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ backup: { id: backupId }, location: 'fs', dataDirectory: { dataDir: target, resumed: false, replaced: false, verified: 'pg_verifybackup' } });
    expect(existsSync(join(target, RESTORE_STATE_FILE))).toBe(false);
    expect(await rowsIn(target)).toEqual({ before: '500', after: '0', big: '150000' });
  }, 120_000);

  it('into an empty directory the first copy streams at once; one that fails its check on the way is removed and the next copy, verified first, laid in', async () => {
    const objects = (await readdir(join(dir, 'fs'), { recursive: true })).filter((f) => f.endsWith('data.tar.zst'));
    expect(objects).toHaveLength(1);
    const object = join(dir, 'fs', objects[0]!);
    const original = await readFile(object);
    const corrupt = Buffer.from(original);
    corrupt[Math.floor(corrupt.length * 0.8)]! ^= 0xff;
    await writeFile(object, corrupt);
    try {
      const target = await restoredDir();
      const r = await runCli(cfgPath, ['restore', '--latest', '--data-dir', target]);
      expect(r.code, r.out).toBe(0);
      expect(r.json).toMatchObject({ location: 's3', skipped: [{ location: 'fs', status: 'corrupt' }], dataDirectory: { resumed: false, replaced: false, verified: 'pg_verifybackup' } });
      expect(await rowsIn(target)).toEqual({ before: '500', after: '0', big: '150000' });
    } finally {
      await writeFile(object, original);
    }
  }, 120_000);

  it('refuses a data directory that holds anything and changes nothing; --force replaces what it holds', async () => {
    const target = await restoredDir();
    await writeFile(join(target, 'keep.txt'), 'mine');
    const refused = await runCli(cfgPath, ['restore', '--backup', backupId, '--data-dir', target]);
    expect(refused.code).toBe(5);
    expect(refused.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(await readdir(target)).toEqual(['keep.txt']);
    const forced = await runCli(cfgPath, ['restore', '--backup', backupId, '--data-dir', target, '--force']);
    expect(forced.code, forced.out).toBe(0);
    expect(forced.json).toMatchObject({ dataDirectory: { replaced: true } });
    expect(existsSync(join(target, 'keep.txt'))).toBe(false);
    expect(await rowsIn(target)).toMatchObject({ before: '500', after: '0' });
  }, 120_000);

  it('--start: the base backup recovered to its end by a server the restore runs, left promoted and stopped; a server of another major version is refused first', async () => {
    // A `postgres` of another major version: refused before anything is read or written.
    const fakeBin = join(dir, 'other-major');
    await mkdir(fakeBin, { recursive: true });
    for (const tool of await readdir(pg.binDir)) if (tool !== 'postgres') await symlink(join(pg.binDir, tool), join(fakeBin, tool));
    await writeFile(join(fakeBin, 'postgres'), `#!/bin/sh\necho "postgres (PostgreSQL) ${pg.major + 1}.0"\n`, { mode: 0o755 });
    const cfg = join(dir, 'other-major.yaml');
    const config = YAML.parse(await readFile(cfgPath, 'utf8')) as { engine: { postgresql: Record<string, unknown> } };
    config.engine.postgresql.binDir = fakeBin;
    await writeFile(cfg, stringify(config));
    const target = await restoredDir();
    const refused = await runCli(cfg, ['restore', '--backup', backupId, '--data-dir', target, '--start']);
    expect(refused.code).toBe(1);
    expect(refused.json).toMatchObject({ error: { code: 'TOOL_INCOMPATIBLE' } });
    expect(await readdir(target)).toEqual([]);

    const r = await runCli(cfgPath, ['restore', '--backup', backupId, '--data-dir', target, '--start']);
    expect(r.code, r.out).toBe(0);
    // No recovery.signal: crash recovery to the end of the backup, no promotion.
    expect(r.json).toMatchObject({ dataDirectory: { recovered: { promoted: false } } });
    expect(existsSync(join(target, RESTORE_STATE_FILE))).toBe(false);
    // Shut down cleanly: no backup_label left to replay from, no server running.
    expect(existsSync(join(target, 'backup_label'))).toBe(false);
    expect(existsSync(join(target, 'postmaster.pid'))).toBe(false);
    expect(await rowsIn(target)).toMatchObject({ before: '500', after: '0' });
  }, 120_000);

  it('refuses to restore a base backup into a database, and says how to restore it', async () => {
    const byId = await runCli(cfgPath, ['restore', '--backup', backupId]);
    expect(byId.code).toBe(2);
    expect(byId.json).toMatchObject({ error: { code: 'USAGE' } });
    expect(String((byId.json.error as { message: string }).message)).toContain('--data-dir');
    const latest = await runCli(cfgPath, ['restore', '--latest']);
    expect(latest.code).toBe(4);
    expect(String((latest.json.error as { message: string }).message)).toContain(`backup ${backupId} is a physical base backup`);
  });

  it('a user without REPLICATION gets a backup failure saying what it lacks', async () => {
    await pg.psql("CREATE ROLE norepl LOGIN PASSWORD 'norepl-pw'");
    const cfg = join(dir, 'norepl.yaml');
    const config = {
      namespace: 'shop',
      name: 'norepl',
      engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), user: 'norepl', password: { value: 'norepl-pw' }, mode: 'physical' } },
      locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs-norepl') } }],
    };
    await writeFile(cfg, stringify(config));
    const r = await runCli(cfg, ['backup']);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ status: 'Failed', error: { code: 'DB_AUTH_FAILED' } });
    expect(String((r.json.error as { message: string }).message)).toContain('ALTER ROLE "norepl" WITH REPLICATION');
    expect(String((r.json.error as { message: string }).message)).not.toContain('norepl-pw');
  });

  it('resumes a restore stopped half way, keeping the files it had finished', async () => {
    const target = await restoredDir();
    const config = await loadConfig(cfgPath);
    const rt = await createRuntime(config, silentLogger(), process.env);
    const ac = new AbortController();
    // Stopped once the restore has recorded finished members (its record is rewritten every 32 MiB).
    const watch = setInterval(() => {
      void readFile(join(target, RESTORE_STATE_FILE), 'utf8')
        .then((t) => (JSON.parse(t) as { entries: number }).entries > 0 && ac.abort(new Error('stopped for the test')))
        .catch(() => undefined);
    }, 5);
    let stopped: unknown;
    try {
      await runRestore(rt, { selector: { kind: 'id', id: backupId }, force: false, dataDir: target, signal: ac.signal });
    } catch (err) {
      stopped = err;
    } finally {
      clearInterval(watch);
      await closeRuntime(rt);
    }
    expect(stopped, 'the restore finished before it could be stopped').toBeDefined();
    expect((stopped as Error).message).toContain(`holds part of backup ${backupId}: run restore --backup ${backupId} --data-dir ${target} again to resume it`);
    expect(existsSync(join(target, RESTORE_STATE_FILE))).toBe(true);
    const r = await runCli(cfgPath, ['restore', '--backup', backupId, '--data-dir', target]);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ dataDirectory: { resumed: true, replaced: false, verified: 'pg_verifybackup' } });
    expect((r.json.dataDirectory as { notes: string[] }).notes.join('\n')).toMatch(/resumed a restore of the same backup that had stopped \([1-9]\d* files? already there byte for byte kept\)/);
    expect(await rowsIn(target)).toEqual({ before: '500', after: '0', big: '150000' });
  }, 120_000);
});
