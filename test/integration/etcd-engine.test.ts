/**
 * etcd through the engine contract, end to end: a real etcd (authentication
 * on) backed up by the shipped tool (`db-backup-tool etcd`, a separate
 * process speaking the contract) to a filesystem and an encrypted S3
 * location, verified, refused over data, restored into an empty server (with
 * another root password) and over changed data, with every key, value and
 * lease as it was; a damaged snapshot refused before the target is touched,
 * and a restore that fails after writing undone (empty target) or reported
 * (target with data).
 */
import { execFileSync } from 'node:child_process';
import { readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { ETCD_SNAPSHOT_MAGIC, definition } from '../../tools/etcd/definition.js';
import { BINARY_KEY, etcdFingerprint, seedEtcd, startEtcd, type EtcdFingerprint, type EtcdInstance } from '../../testenv/etcd.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { runCli, type CliResult } from '../cli.js';
import { shippedToolCommand } from '../engine-helpers.js';

interface Env {
  etcd: EtcdInstance;
  other: EtcdInstance;
  /** No authentication, and requests limited to 256 KiB: the seeded 600 KiB values cannot be written into it. */
  small: EtcdInstance;
  s3: S3Server;
  dir: string;
  cfgPath: string;
  otherCfgPath: string;
  smallCfgPath: string;
  seeded: EtcdFingerprint;
}

let env: Env | undefined;
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

function config(etcd: EtcdInstance, s3: S3Server, dir: string, recipient: string): Record<string, unknown> {
  return {
    namespace: 'platform',
    name: 'etcd',
    engine: {
      type: 'command',
      command: {
        definition: { ...definition, command: shippedToolCommand('etcd') },
        host: etcd.host,
        port: etcd.port,
        ...(etcd.user ? { user: etcd.user, password: { value: etcd.password } } : {}),
        config: { restoreBatch: 50 },
      },
    },
    locations: [
      { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
      { name: 's3', type: 's3', prefix: 'etcd', s3: s3.location('backups'), encryption: { age: { recipients: [recipient], identities: [{ file: join(dir, 'age.key') }] } } },
    ],
  };
}

beforeAll(async () => {
  try {
    const [etcd, other, small, s3] = await Promise.all([startEtcd(), startEtcd(), startEtcd({ auth: false, extraArgs: ['--max-request-bytes=262144'] }), startS3()]);
    await s3.createBucket('backups');
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-etcd-e2e-'));
    execFileSync('age-keygen', ['-o', join(dir, 'age.key')], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', join(dir, 'age.key')]).toString().trim();
    await seedEtcd(etcd, { keys: 1000 });
    const [cfgPath, otherCfgPath, smallCfgPath] = ['runner.yaml', 'other.yaml', 'small.yaml'].map((f) => join(dir, f)) as [string, string, string];
    await writeFile(cfgPath, stringify(config(etcd, s3, dir, recipient)));
    await writeFile(otherCfgPath, stringify(config(other, s3, dir, recipient)));
    await writeFile(smallCfgPath, stringify(config(small, s3, dir, recipient)));
    env = { etcd, other, small, s3, dir, cfgPath, otherCfgPath, smallCfgPath, seeded: await etcdFingerprint(etcd) };
  } catch (err) {
    setupError = err;
  }
}, 120_000);

afterAll(async () => {
  await env?.etcd.stop();
  await env?.other.stop();
  await env?.small.stop();
  await env?.s3.stop();
  if (env) await rm(env.dir, { recursive: true, force: true });
});

const cli = (args: string[], cfg = ready().cfgPath): Promise<CliResult> => runCli(cfg, args);

/** A copy of the runner config at `from` with `change` applied, written beside it as `name`. */
async function variant(from: string, name: string, change: (cfg: { engine: { command: Record<string, unknown> & { definition: { formats: { magicHex: string[] }[] } } } }) => void): Promise<string> {
  const cfg = parse(await readFile(from, 'utf8')) as Parameters<typeof change>[0];
  change(cfg);
  const path = join(ready().dir, name);
  await writeFile(path, stringify(cfg));
  return path;
}

describe('etcd through the engine contract', () => {
  let first: string;
  let snapshot: Buffer;

  it('the seeded dataset has binary keys and values, keys on two leases and more keys than one transaction holds', () => {
    const { seeded } = ready();
    expect(seeded.keys).toBe(1009);
    expect(seeded.leases).toEqual([
      { ttl: 600, keys: [Buffer.from('/leased/lock/x').toString('hex')] },
      { ttl: 3600, keys: [Buffer.from('/leased/session/a').toString('hex'), Buffer.from('/leased/session/b').toString('hex')] },
    ]);
  });

  it('refuses a config the engine schema rejects, naming the field and the rule, before anything runs', async () => {
    const bad = await variant(ready().cfgPath, 'bad.yaml', (cfg) => (cfg.engine.command.config = { restoreBatch: 500, compact: true }));
    const r = await cli(['list'], bad);
    expect(r.code).toBe(2);
    expect(r.out).toContain('engine.command.config.restoreBatch');
    expect(r.out).toContain('engine.command.config.compact');
    expect(r.out).toMatch(/is not a setting of this engine/);
  });

  it('refuses a wrong password, saying so without repeating it', async () => {
    const wrong = await variant(ready().cfgPath, 'wrong.yaml', (cfg) => (cfg.engine.command.password = { value: 'not-the-password' }));
    const r = await cli(['backup'], wrong);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/authentication failed, invalid user ID or password/);
    // The tool's own code survives its failed probe (its result carries no versions).
    expect(r.out).toContain('DB_AUTH_FAILED');
    expect(r.out).not.toContain('not-the-password');
  });

  it('backs up once to both locations: the snapshot, its revision and hash, the server and tool versions', async () => {
    const r = await cli(['backup']);
    expect(r.code, r.out).toBe(0);
    expect((r.json.locations as { status: string }[]).map((l) => l.status)).toEqual(['Succeeded', 'Succeeded']);
    first = r.json.id as string;
    const manifest = r.json.manifest as { objects: { name: string }[]; engine: Record<string, unknown>; database: string };
    expect(manifest.objects[0]!.name).toMatch(/^data\.snap\.(zst|gz)$/);
    expect(manifest.database).toBe('etcd');
    expect(manifest.engine).toMatchObject({ name: 'etcd', format: 'etcd-snapshot', serverVersion: ready().etcd.version, toolVersion: expect.stringMatching(/^\d+\.\d+\.\d+$/) as string });
    expect(JSON.stringify(manifest.engine)).toMatch(/"revision":"\d+"/);
    expect(JSON.stringify(manifest.engine)).toMatch(/"hash":"\d+"/);
  });

  it('verifies both copies, the encrypted one decrypted and its bbolt header checked', async () => {
    const v = await cli(['verify']);
    expect(v.code, v.out).toBe(0);
    expect((v.json.checks as { status: string }[]).map((c) => c.status)).toEqual(['ok', 'ok']);
  });

  it('declares the header every snapshot starts with (two snapshots of different contents)', async () => {
    const { etcd, dir } = ready();
    const a = join(dir, 'a.db');
    const b = join(dir, 'b.db');
    await etcd.ctl('snapshot', 'save', a);
    await etcd.put('between', 'snapshots');
    await etcd.ctl('snapshot', 'save', b);
    await etcd.del('between');
    snapshot = await readFile(a);
    const magic = Buffer.from(ETCD_SNAPSHOT_MAGIC, 'hex');
    expect(magic.length).toBe(24);
    expect(snapshot.subarray(0, 24)).toEqual(magic);
    expect((await readFile(b)).subarray(0, 24)).toEqual(magic);
  });

  it('refuses to restore over a server that holds keys, and changes nothing', async () => {
    const r = await cli(['restore', '--latest']);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(await etcdFingerprint(ready().etcd)).toEqual(ready().seeded);
  });

  it('restores into an empty server (another root password) with every key, value and lease identical', async () => {
    const r = await cli(['restore', '--backup', first], ready().otherCfgPath);
    expect(r.code, r.out).toBe(0);
    expect(await etcdFingerprint(ready().other)).toEqual(ready().seeded);
    expect(await ready().other.get(BINARY_KEY)).toEqual(Buffer.from([0, 0, 255, 10, 1]));
  });

  it('with --force restores over changed data (replaced keys back, other keys kept), from the encrypted copy', async () => {
    const { etcd, dir } = ready();
    await etcd.put('/registry/items/00001', 'changed');
    await etcd.del('/leased/session/a');
    await etcd.del(BINARY_KEY);
    await etcd.put('added-later', 'kept');
    await rm(join(dir, 'fs'), { recursive: true, force: true });
    const r = await cli(['restore', '--latest', '--force']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ location: 's3' });
    expect((await etcd.get('/registry/items/00001'))?.toString()).toBe('item-1-ünïcødé-🙂');
    expect((await etcd.get('added-later'))?.toString()).toBe('kept');
    await etcd.del('added-later');
    expect(await etcdFingerprint(etcd)).toEqual(ready().seeded);
  });

  it('refuses a damaged snapshot (its sha256 does not match) before the target is touched, even with --force', async () => {
    const { etcd, dir } = ready();
    await etcd.put('added-later', 'kept');
    const damaged = Buffer.from(snapshot);
    damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
    const file = join(dir, 'damaged.snap');
    await writeFile(file, damaged);
    const r = await cli(['import', file, '--force']);
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/damaged|sha256/);
    expect(r.out).toMatch(/unchanged/);
    expect((await etcd.get('added-later'))?.toString()).toBe('kept');
    await etcd.del('added-later');
    expect(await etcdFingerprint(etcd)).toEqual(ready().seeded);
  });

  it('a restore into an empty server that fails after writing deletes exactly what it wrote, and revokes the leases it granted', async () => {
    const { small } = ready();
    const r = await cli(['restore', '--latest'], ready().smallCfgPath);
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/request is too large|too large/i);
    expect(r.out).toMatch(/empty again/);
    expect((await etcdFingerprint(small)).keys).toBe(0);
    expect((await small.api('/v3/lease/leases', {})).leases ?? []).toEqual([]);
  });

  it('a forced restore into a server with data that fails after writing says the target is partial', async () => {
    const { small } = ready();
    await small.put('own', 'data');
    const r = await cli(['restore', '--latest', '--force'], ready().smallCfgPath);
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/NOT as it was/);
    expect(r.out).toMatch(/keys of the backup were written/);
    expect((await small.get('own'))?.toString()).toBe('data');
    expect((await etcdFingerprint(small)).keys).toBeGreaterThan(1);
  });
});
