/**
 * Server-side engines (`output: location`): the database server writes the
 * backup into a location itself. Through the runner's CLI, with a real tool
 * process (test/fixtures/server-side-tool.mjs, whose "server" is a directory
 * of files) and the real S3 server: the server writes with the tenant's own
 * keys only, the runner reads every object back for its digest and copies it
 * to the other locations, and writes the manifests last; verify, restore,
 * retention and the orphan sweeper treat the objects like any backup's; a
 * failed or misbehaving server backup leaves nothing behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { runCli } from '../cli.js';
import { listAll } from './storage-helpers.js';
import { SERVER_SIDE_DEFINITION } from '../server-side-tool.js';

const DEFINITION = SERVER_SIDE_DEFINITION;

let s3: S3Server;
let dir = '';
let server = '';
let spy = '';

/** Each file of a directory with its sha256: what "the database" holds. */
async function fingerprint(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out[relative(root, join(d, e.name))] = createHash('sha256').update(await readFile(join(d, e.name))).digest('hex');
    }
  };
  await walk(root);
  return out;
}

interface Setup {
  /** The locations in config order. */
  locations: Record<string, unknown>[];
  definition?: Record<string, unknown>;
  config?: Record<string, unknown>;
  retention?: Record<string, unknown>;
}

async function writeConfig(name: string, setup: Setup): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(
    path,
    stringify({
      namespace: 'apps',
      name,
      engine: { type: 'command', command: { definition: { ...DEFINITION, ...setup.definition }, database: server, config: { spyDir: spy, ...setup.config } } },
      locations: setup.locations,
      ...(setup.retention ? { retention: setup.retention } : {}),
    }),
  );
  return path;
}

const s3Location = (extra: Record<string, unknown> = {}) => ({ name: 's3', type: 's3', prefix: 'team', s3: s3.location('shared'), ...extra });
const fsLocation = (name: string) => ({ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, `${name}-fs`) } });

beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket('shared');
  dir = await mkdtemp(join(tmpdir(), 'dbbc-server-side-'));
  server = join(dir, 'server');
  spy = join(dir, 'spy');
  await mkdir(spy);
  await mkdir(join(server, 'range-1'), { recursive: true });
  await writeFile(join(server, 'range-1', '0001.sst'), randomBytes(300_000));
  await writeFile(join(server, 'range-1', '0002.sst'), randomBytes(5_000));
  await writeFile(join(server, 'meta.sst'), 'descriptor');
}, 60_000);

afterAll(async () => {
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Listed {
  id: string;
  locations: string[];
  copies: { location: string; manifest: { formatVersion: number; objects: { name: string; size: number; sha256: string }[]; engine: Record<string, unknown> } }[];
}

async function listed(cfg: string): Promise<Listed[]> {
  const l = await runCli(cfg, ['list']);
  expect(l.code, l.out).toBe(0);
  return l.json.backups as Listed[];
}

describe('the server writes to S3 with the tenant\'s own keys; the runner copies to the filesystem', () => {
  let cfg = '';
  let id = '';

  beforeAll(async () => {
    cfg = await writeConfig('orders', { locations: [s3Location({ serverAccess: 'credentials' }), fsLocation('orders')] });
  });

  it('backs up: format 4, every object read back with its digest, the same objects in both locations', async () => {
    const r = await runCli(cfg, ['backup']);
    expect(r.code, r.out).toBe(0);
    id = r.json.id as string;
    expect(r.json.manifest).toMatchObject({ formatVersion: 4, engine: { name: 'fakeserver', format: 'fake-server-backup', position: { job: '812' } } });
    const [b] = await listed(cfg);
    expect(b!.locations.sort()).toEqual(['fs', 's3']);
    const want = await fingerprint(server);
    for (const copy of b!.copies) {
      const objects = Object.fromEntries(copy.manifest.objects.map((o) => [o.name, o.sha256]));
      expect(objects).toMatchObject(Object.fromEntries(Object.entries(want).map(([p, sha]) => [`server/data/${p}`, sha])));
      expect(Object.keys(objects).sort()).toEqual([...Object.keys(want).map((p) => `server/data/${p}`), 'server/BACKUP_MANIFEST'].sort());
    }
    const onDisk = await fingerprint(join(dir, 'orders-fs', 'apps', 'orders', 'backups', id, 'server', 'data'));
    expect(onDisk).toEqual(want);
  });

  it('the server was told its own directory and the location\'s keys, as a 0600 file, never in the request', async () => {
    const req = JSON.parse(await readFile(join(spy, 'backup.request.json'), 'utf8')) as { destination: Record<string, unknown> };
    expect(req.destination).toMatchObject({ location: 's3', type: 's3', bucket: 'shared', prefix: `team/apps/orders/backups/${id}/server/`, url: `s3://shared/team/apps/orders/backups/${id}/server/`, credentials: { source: 'file' } });
    expect(await readFile(join(spy, 'backup.credentials.mode'), 'utf8')).toBe('600');
    expect(JSON.stringify(req)).not.toContain('S3RVER');
  });

  it('verifies every object of both copies', async () => {
    const v = await runCli(cfg, ['verify']);
    expect(v.code, v.out).toBe(0);
    const checks = v.json.checks as { location: string; object: string; status: string }[];
    expect(checks.filter((c) => c.status === 'ok')).toHaveLength(8);
  });

  it('restores into an empty directory, identical, refuses one holding data, and replaces it with --force', async () => {
    const target = join(dir, 'restored');
    const r = await runCli(cfg, ['restore', '--latest', '--target-database', target]);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ location: 's3' });
    expect(await fingerprint(target)).toEqual(await fingerprint(server));
    const req = JSON.parse(await readFile(join(spy, 'restore.request.json'), 'utf8')) as { restore: { source: Record<string, unknown>; objects: unknown[] } };
    expect(req.restore.source).toMatchObject({ type: 's3', prefix: `team/apps/orders/backups/${id}/server/` });
    expect(req.restore.objects).toHaveLength(4);

    await writeFile(join(target, 'meta.sst'), 'changed');
    const refused = await runCli(cfg, ['restore', '--latest', '--target-database', target]);
    expect(refused.code).toBe(5);
    expect(refused.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(await readFile(join(target, 'meta.sst'), 'utf8')).toBe('changed');
    const forced = await runCli(cfg, ['restore', '--latest', '--target-database', target, '--force']);
    expect(forced.code, forced.out).toBe(0);
    expect(await fingerprint(target)).toEqual(await fingerprint(server));
  });

  it('a copy changed in the bucket is skipped: the server restores from the copy that verifies', async () => {
    const bucket = s3.storage('shared');
    const key = `team/apps/orders/backups/${id}/server/data/meta.sst`;
    await bucket.put(key, Buffer.from('tampered!!'));
    const v = await runCli(cfg, ['verify']);
    expect(v.code).not.toBe(0);
    expect((v.json.checks as { location: string; object: string; status: string }[]).find((c) => c.location === 's3' && c.object === 'server/data/meta.sst')?.status).toBe('corrupt');
    const target = join(dir, 'restored-2');
    const r = await runCli(cfg, ['restore', '--latest', '--target-database', target]);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ location: 'fs' });
    expect(await fingerprint(target)).toEqual(await fingerprint(server));
    await bucket.put(key, await readFile(join(server, 'meta.sst')));
  });

  it('a copy whose directory holds an object its manifest does not name is not handed to the server', async () => {
    const bucket = s3.storage('shared');
    const planted = `team/apps/orders/backups/${id}/server/data/planted.sst`;
    await bucket.put(planted, Buffer.from('not the backup\'s'));
    const target = join(dir, 'restored-3');
    const r = await runCli(cfg, ['restore', '--latest', '--target-database', target]);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ location: 'fs' });
    expect(await fingerprint(target)).toEqual(await fingerprint(server));
    await bucket.delete(planted);
  });
});

describe('a location whose keys are not the tenant\'s is never handed to the server', () => {
  it('the server writes to the filesystem location, and the runner copies into S3', async () => {
    const cfg = await writeConfig('classkeys', { locations: [s3Location(), fsLocation('classkeys')] });
    const r = await runCli(cfg, ['backup']);
    expect(r.code, r.out).toBe(0);
    const req = JSON.parse(await readFile(join(spy, 'backup.request.json'), 'utf8')) as { destination: Record<string, unknown> };
    expect(req.destination).toMatchObject({ location: 'fs', type: 'filesystem' });
    expect(req.destination.credentials).toBeUndefined();
    const [b] = await listed(cfg);
    expect(b!.locations.sort()).toEqual(['fs', 's3']);
    const keys = await listAll(s3.storage('shared'), `team/apps/classkeys/backups/${r.json.id as string}/server/`);
    expect(keys).toHaveLength(4);
  });

  it('a server that cannot write filesystem locations (locationTypes) writes the S3 location it may, after one it cannot', async () => {
    const cfg = await writeConfig('remote', { locations: [fsLocation('remote'), s3Location({ serverAccess: 'credentials' })], definition: { locationTypes: ['s3', 'gcs'] } });
    const r = await runCli(cfg, ['backup']);
    expect(r.code, r.out).toBe(0);
    const req = JSON.parse(await readFile(join(spy, 'backup.request.json'), 'utf8')) as { destination: Record<string, unknown> };
    expect(req.destination).toMatchObject({ location: 's3', type: 's3' });
    expect((await listed(cfg))[0]!.locations.sort()).toEqual(['fs', 's3']);
  });

  it('refuses a configuration where no location is the server\'s to write, and one that encrypts, naming the field', async () => {
    const none = await writeConfig('nowhere', { locations: [s3Location()] });
    const r = await runCli(none, ['backup']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('locations: a server-side engine');
    const sealed = await writeConfig('sealed', { locations: [fsLocation('sealed'), { ...s3Location(), encryption: { age: { recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] } } }] });
    const e = await runCli(sealed, ['backup']);
    expect(e.code).toBe(2);
    expect(e.out).toContain('locations[1].encryption');
  });
});

describe('a server-side backup that fails or misbehaves leaves nothing, and older backups alone', () => {
  let good = '';

  beforeAll(async () => {
    const cfg = await writeConfig('faults', { locations: [s3Location({ serverAccess: 'credentials' }), fsLocation('faults')] });
    const r = await runCli(cfg, ['backup']);
    expect(r.code, r.out).toBe(0);
    good = r.json.id as string;
  });

  async function attempt(mode: string): Promise<{ code: number; json: Record<string, unknown>; left: string[] }> {
    const cfg = await writeConfig('faults', { locations: [s3Location({ serverAccess: 'credentials' }), fsLocation('faults')], config: { mode } });
    const r = await runCli(cfg, ['backup']);
    const left = (await listAll(s3.storage('shared'), 'team/apps/faults/backups/')).map((o) => o.key).filter((k) => !k.includes(`/${good}/`));
    const [b, ...rest] = await listed(cfg);
    expect(rest).toEqual([]);
    expect(b!.id).toBe(good);
    return { code: r.code, json: r.json, left };
  }

  it('the tool fails part way: the backup fails and what the server wrote is removed', async () => {
    const a = await attempt('fail-part-way');
    expect(a.code).not.toBe(0);
    expect(a.json).toMatchObject({ status: 'Failed', error: { code: 'DUMP_FAILED' } });
    expect(a.left).toEqual([]);
  });

  it('a tool that prints the keys it was handed: they appear in no output', async () => {
    const a = await attempt('leak');
    expect(a.json).toMatchObject({ status: 'Failed', error: { code: 'DUMP_FAILED', message: expect.stringContaining('denied for [redacted] / [redacted]') as string } });
    expect(JSON.stringify(a.json)).not.toContain('S3RVER');
    expect(a.left).toEqual([]);
  });

  it('the server writes outside server/: refused, nothing kept', async () => {
    const a = await attempt('plant-outside');
    expect(a.json).toMatchObject({ status: 'Failed', error: { code: 'INTEGRITY', message: expect.stringContaining('planted.txt') as string } });
    expect(a.left).toEqual([]);
  });

  it('the server writes a name the layout does not allow: refused, nothing kept', async () => {
    const a = await attempt('bad-name');
    expect(a.json).toMatchObject({ status: 'Failed', error: { code: 'INTEGRITY', message: expect.stringContaining('.hidden') as string } });
    expect(a.left).toEqual([]);
  });

  it('a symbolic link the tool leaves in a filesystem destination fails the backup: never followed, never copied, nothing kept', async () => {
    const cfg = await writeConfig('links', { locations: [fsLocation('links'), s3Location()], config: { mode: 'symlink' } });
    const r = await runCli(cfg, ['backup']);
    expect(r.json).toMatchObject({ status: 'Failed', error: { code: 'INTEGRITY', message: expect.stringContaining('data/link') as string } });
    expect(await readdir(join(dir, 'links-fs', 'apps', 'links', 'backups')).catch(() => [])).toEqual([]);
    expect(await listAll(s3.storage('shared'), 'team/apps/links/')).toEqual([]);
  });
});

describe('retention and the orphan sweeper remove a server-side backup whole', () => {
  it('retention deletes every object of a removed backup; the sweeper removes a directory the server wrote without a manifest', async () => {
    const cfg = await writeConfig('kept', { locations: [fsLocation('kept')], retention: { keepLast: 1, orphanGracePeriod: '0s' } });
    const first = await runCli(cfg, ['backup']);
    expect(first.code, first.out).toBe(0);
    const second = await runCli(cfg, ['backup']);
    expect(second.code, second.out).toBe(0);
    // A crash between the server's write and the manifest: objects under server/ and no manifest.
    const crashed = '20200101T000000Z-aaaa';
    const orphan = join(dir, 'kept-fs', 'apps', 'kept', 'backups', crashed, 'server', 'data');
    await mkdir(orphan, { recursive: true });
    await writeFile(join(orphan, 'x.sst'), 'half');
    const r = await runCli(cfg, ['retention']);
    expect(r.code, r.out).toBe(0);
    const backups = await readdir(join(dir, 'kept-fs', 'apps', 'kept', 'backups'));
    expect(backups).toEqual([second.json.id]);
    await expect(stat(join(dir, 'kept-fs', 'apps', 'kept', 'backups', first.json.id as string))).rejects.toThrow();
  });
});
