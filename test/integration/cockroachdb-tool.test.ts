/**
 * CONTRACT PLUMBING ONLY, NOT A COCKROACHDB TEST. CockroachDB is not in Debian, so no cluster runs here:
 * `psql` is a stand-in (test/fixtures/stand-in-psql.mjs) on PATH that records what the shipped tool
 * (`db-backup-tool cockroachdb`, run by the runner as a server-side engine) hands it, keeps "the cluster" in
 * a JSON file, and writes and reads the backup in the real S3 server through the storage URL the tool built.
 * What this checks is the tool's side: the SQL it sends, secrets only in 0600 files, the URL's keys working
 * against S3, refusals before anything is written, the scratch-and-swap restore and honest target states.
 * Whether a real cluster does the right thing with those statements is not tested here (docs/engines.md).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { CommandEngine } from '../../runner/engines/command/index.js';
import { silentLogger } from '../../runner/logger.js';
import { definition } from '../../tools/cockroachdb/definition.js';
import { runCli } from '../cli.js';
import { shippedToolCommand } from '../engine-helpers.js';

const STAND_IN = fileURLToPath(new URL('../fixtures/stand-in-psql.mjs', import.meta.url));
const PASSWORD = 'pa:ss\\wörd #1';

let s3: S3Server;
let dir = '';
let state = '';
let cfg = '';
const path = process.env.PATH;

interface Call {
  argv: string;
  sql: string;
  sqlMode: string;
  env: Record<string, string>;
  pgpass?: string;
  pgpassMode?: string;
}

async function calls(): Promise<Call[]> {
  const root = join(state, 'calls');
  const names = (await readdir(root).catch(() => [])).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  const read = (n: string, f: string) => readFile(join(root, n, f), 'utf8').catch(() => undefined);
  return Promise.all(
    names.map(async (n) => ({
      argv: (await read(n, 'argv'))!,
      sql: (await read(n, 'sql'))!,
      sqlMode: (await read(n, 'sql.mode'))!,
      env: JSON.parse((await read(n, 'env'))!) as Record<string, string>,
      ...(await read(n, 'pgpass').then((p) => (p === undefined ? {} : { pgpass: p }))),
      ...(await read(n, 'pgpass.mode').then((p) => (p === undefined ? {} : { pgpassMode: p }))),
    })),
  );
}

async function setCluster(c: Record<string, unknown>): Promise<void> {
  await rm(join(state, 'calls'), { recursive: true, force: true });
  await writeFile(join(state, 'cluster.json'), JSON.stringify(c));
}

async function cluster(): Promise<{ databases: Record<string, { tables: string[] }> }> {
  return JSON.parse(await readFile(join(state, 'cluster.json'), 'utf8')) as { databases: Record<string, { tables: string[] }> };
}

async function writeConfig(name: string, locations: unknown[]): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    stringify({
      namespace: 'apps',
      name,
      engine: { type: 'command', command: { definition: { ...definition, command: shippedToolCommand('cockroachdb') }, host: 'crdb.shop.svc', port: 26257, user: 'backup', password: { value: PASSWORD }, database: 'shop', config: { sslmode: 'require' } } },
      locations,
    }),
  );
  return file;
}

beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket('shared');
  dir = await mkdtemp(join(tmpdir(), 'dbbc-crdb-'));
  state = join(dir, 'state');
  const bin = join(dir, 'bin');
  await mkdir(state);
  await mkdir(bin);
  await writeFile(join(bin, 'psql'), `#!/bin/sh\nexec "${process.execPath}" "${STAND_IN}" "${state}" "$@"\n`);
  await chmod(join(bin, 'psql'), 0o755);
  process.env.PATH = `${bin}:${path ?? ''}`;
  cfg = await writeConfig('crdb', [
    { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
    { name: 's3', type: 's3', prefix: 'team', s3: s3.location('shared'), serverAccess: 'credentials' },
  ]);
}, 60_000);

afterAll(async () => {
  process.env.PATH = path;
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('db-backup-tool cockroachdb (stand-in psql, real S3 server)', () => {
  let id = '';

  it('backs up: BACKUP DATABASE INTO the S3 directory as of the cluster timestamp it read, secrets only in 0600 files', async () => {
    await setCluster({ databases: { shop: { tables: ['orders', 'customers'] } } });
    const r = await runCli(cfg, ['backup']);
    expect(r.code, r.out).toBe(0);
    id = r.json.id as string;
    const c = await calls();
    expect(c.map((x) => x.sql.split(' ')[0])).toEqual(['SELECT', 'SELECT', 'BACKUP']);
    const hlc = c[1]!.sql && /AS OF SYSTEM TIME '(\d+)\.\d+'/.exec(c[2]!.sql)![1]!;
    expect(c[2]!.sql).toMatch(new RegExp(`^BACKUP DATABASE "shop" INTO 's3://shared/team/apps/crdb/backups/${id}/server\\?AUTH=specified&AWS_ACCESS_KEY_ID=S3RVER&AWS_SECRET_ACCESS_KEY=S3RVER&AWS_REGION=us-east-1&AWS_ENDPOINT=`));
    const manifest = r.json.manifest as { formatVersion: number; consistentAt: string; engine: { position: Record<string, string> }; objects: { name: string }[] };
    expect(manifest.formatVersion).toBe(4);
    expect(manifest.consistentAt).toBe(new Date(Number(BigInt(hlc) / 1_000_000n)).toISOString());
    expect(manifest.engine.position).toEqual({ scope: 'database', database: 'shop', jobId: '812' });
    expect(manifest.objects.map((o) => o.name).sort()).toEqual(['server/2026/12/04-101500.00/BACKUP_MANIFEST', 'server/2026/12/04-101500.00/data/812.sst']);
    for (const call of c) {
      expect(call.sqlMode).toBe('600');
      expect(call.argv).not.toContain('S3RVER');
      expect(JSON.stringify(call.env)).not.toContain(PASSWORD);
      expect(call.env).toMatchObject({ PGHOST: 'crdb.shop.svc', PGPORT: '26257', PGUSER: 'backup', PGSSLMODE: 'require' });
      expect(call.pgpass).toBe('*:*:*:*:pa\\:ss\\\\wörd #1\n');
      expect(call.pgpassMode).toBe('600');
    }
    // The runner copied what the cluster wrote into the filesystem location, which the cluster cannot write.
    const l = await runCli(cfg, ['list']);
    expect((l.json.backups as { locations: string[] }[])[0]!.locations.sort()).toEqual(['fs', 's3']);
  });

  it('restores under another name: RESTORE into a scratch database, renamed to the target', async () => {
    await rm(join(state, 'calls'), { recursive: true, force: true });
    const r = await runCli(cfg, ['restore', '--latest', '--target-database', 'shop_copy']);
    expect(r.code, r.out).toBe(0);
    const sql = (await calls()).map((x) => x.sql).filter((s) => !s.startsWith('SELECT'));
    expect(sql[0]).toMatch(new RegExp(`^RESTORE DATABASE "shop" FROM '/2026/12/04-101500.00' IN 's3://shared/team/apps/crdb/backups/${id}/server\\?AUTH=specified.*' WITH new_db_name = 'shop_copy_restore_[0-9a-f]{8}';$`));
    expect(sql[1]).toMatch(/^ALTER DATABASE "shop_copy_restore_[0-9a-f]{8}" RENAME TO "shop_copy";$/);
    expect((await cluster()).databases).toEqual({ shop: { tables: ['orders', 'customers'] }, shop_copy: { tables: ['orders', 'customers'] } });
  });

  it('refuses a target that exists without --force, before any RESTORE; with --force puts the restored copy in its place step by step', async () => {
    await setCluster({ databases: { shop: { tables: ['changed'] } } });
    const refused = await runCli(cfg, ['restore', '--latest']);
    expect(refused.code).toBe(5);
    expect(refused.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect((await calls()).some((x) => x.sql.startsWith('RESTORE'))).toBe(false);
    expect((await cluster()).databases).toEqual({ shop: { tables: ['changed'] } });
    const forced = await runCli(cfg, ['restore', '--latest', '--force']);
    expect(forced.code, forced.out).toBe(0);
    const steps = (await calls()).map((x) => x.sql).filter((s) => /^(ALTER|DROP)/.test(s));
    expect(steps).toEqual([
      expect.stringMatching(/^ALTER DATABASE "shop" RENAME TO "shop_previous_[0-9a-f]{8}";$/),
      expect.stringMatching(/^ALTER DATABASE "shop_restore_[0-9a-f]{8}" RENAME TO "shop";$/),
      expect.stringMatching(/^DROP DATABASE IF EXISTS "shop_previous_[0-9a-f]{8}" CASCADE;$/),
    ]);
    expect((await cluster()).databases).toEqual({ shop: { tables: ['orders', 'customers'] } });
  });

  it('an old database that cannot be dropped after the swap is named in the restore\'s output', async () => {
    await setCluster({ databases: { shop: { tables: ['changed'] } }, mode: 'drop-fails' });
    const r = await runCli(cfg, ['restore', '--latest', '--force']);
    expect(r.code, r.out).toBe(0);
    expect(r.json.conflicts).toEqual([expect.stringMatching(/^the database "shop" held before the restore is kept as "shop_previous_[0-9a-f]{8}" \(dropping it failed: .*still in use by a changefeed\): drop it when it is no longer needed$/)]);
    expect(Object.keys((await cluster()).databases).sort()).toEqual([expect.stringMatching(/^shop$/), expect.stringMatching(/^shop_previous_/)]);
  });

  it('a stopped backup cancels its job in the cluster, naming this backup\'s directory only', async () => {
    await setCluster({ databases: { shop: { tables: ['orders'] } }, mode: 'hang-backup' });
    await rm(join(state, 'backup-started'), { force: true });
    const engine = await CommandEngine.create(
      { definition: { ...definition, command: shippedToolCommand('cockroachdb') }, host: 'crdb.shop.svc', port: 26257, user: 'backup', password: { value: PASSWORD }, database: 'shop', config: { sslmode: 'require' } },
      silentLogger(),
      process.env,
    );
    const prefix = 'team/apps/crdb/backups/20261204T000000Z-ab_c/server/';
    const place = {
      destination: { location: 's3', type: 's3' as const, url: `s3://shared/${prefix}`, bucket: 'shared', prefix, region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true },
      secret: JSON.stringify({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }),
    };
    const abort = new AbortController();
    const running = engine.serverSide!.backup(place, { signal: abort.signal });
    running.catch(() => undefined);
    for (let i = 0; i < 200 && !existsSync(join(state, 'backup-started')); i++) await delay(50);
    expect(existsSync(join(state, 'backup-started'))).toBe(true);
    abort.abort();
    await expect(running).rejects.toMatchObject({ code: 'ABORTED' });
    const cancel = (await calls()).filter((c) => c.sql.startsWith('CANCEL'));
    expect(cancel.map((c) => c.sql)).toEqual([
      "CANCEL JOBS (SELECT job_id FROM [SHOW JOBS] WHERE job_type = 'BACKUP' AND status IN ('pending', 'running', 'paused') AND description LIKE '%team/apps/crdb/backups/20261204T000000Z-ab\\_c/server%' ESCAPE '\\');",
    ]);
  });

  it('a RESTORE that fails drops the scratch database and says the target is unchanged', async () => {
    await setCluster({ databases: { shop: { tables: ['changed'] } }, mode: 'restore-fails' });
    const r = await runCli(cfg, ['restore', '--latest', '--force']);
    expect(r.code).not.toBe(0);
    expect(r.json).toMatchObject({ error: { code: 'RESTORE_FAILED', message: expect.stringMatching(/node 2 is unavailable; database "shop" is unchanged/) as string, target: { database: 'shop', state: 'unchanged' } } });
    expect((await calls()).map((x) => x.sql).filter((s) => s.startsWith('DROP'))).toEqual([expect.stringMatching(/^DROP DATABASE IF EXISTS "shop_restore_[0-9a-f]{8}" CASCADE;$/)]);
    expect((await cluster()).databases).toEqual({ shop: { tables: ['changed'] } });
  });

  it('refused credentials are DB_AUTH_FAILED, with no backup and no object left', async () => {
    await setCluster({ databases: { shop: { tables: ['orders'] } }, mode: 'auth' });
    const r = await runCli(cfg, ['backup']);
    expect(r.json).toMatchObject({ status: 'Failed', error: { code: 'DB_AUTH_FAILED' } });
    const l = await runCli(cfg, ['list']);
    expect((l.json.backups as unknown[]).length).toBe(1);
  });

  it('a configuration with only a filesystem location is refused: the cluster cannot write it', async () => {
    const fsOnly = await writeConfig('fsonly', [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs2') } }]);
    const r = await runCli(fsOnly, ['backup']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('serverAccess on an s3 location, or serverAccess on a gcs location');
  });
});
