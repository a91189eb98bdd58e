/**
 * Redis through the engine contract, end to end: a real redis-server backed
 * up by the shipped tool (`db-backup-tool redis`, a separate process speaking
 * the contract) to a filesystem and an encrypted S3 location, verified,
 * refused over data, restored into an empty server and over changed data,
 * with every key, type, value and TTL as it was.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startRedis, type RedisInstance } from '../../testenv/redis.js';
import { redisFingerprint, seedRedis } from '../../testenv/redis-seed.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { definition } from '../../tools/redis/definition.js';
import { runCli, type CliResult } from '../cli.js';
import { shippedToolCommand } from '../engine-helpers.js';

interface Env {
  redis: RedisInstance;
  other: RedisInstance;
  s3: S3Server;
  dir: string;
  cfgPath: string;
  otherCfgPath: string;
  seeded: Awaited<ReturnType<typeof redisFingerprint>>;
}

let env: Env | undefined;
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

function config(redis: RedisInstance, s3: S3Server, dir: string, recipient: string): Record<string, unknown> {
  return {
    namespace: 'cache',
    name: 'sessions',
    engine: {
      type: 'command',
      command: {
        definition: { ...definition, command: shippedToolCommand('redis') },
        host: redis.host,
        port: redis.port,
        password: { value: redis.password },
        config: { batchSize: 100 },
      },
    },
    locations: [
      { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
      { name: 's3', type: 's3', prefix: 'redis', s3: s3.location('backups'), encryption: { age: { recipients: [recipient], identities: [{ file: join(dir, 'age.key') }] } } },
    ],
  };
}

beforeAll(async () => {
  try {
    const [redis, other, s3] = await Promise.all([startRedis(), startRedis(), startS3()]);
    await s3.createBucket('backups');
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-redis-e2e-'));
    execFileSync('age-keygen', ['-o', join(dir, 'age.key')], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', join(dir, 'age.key')]).toString().trim();
    await seedRedis(redis, { keys: 5000 });
    const cfgPath = join(dir, 'runner.yaml');
    const otherCfgPath = join(dir, 'other.yaml');
    await writeFile(cfgPath, stringify(config(redis, s3, dir, recipient)));
    await writeFile(otherCfgPath, stringify(config(other, s3, dir, recipient)));
    env = { redis, other, s3, dir, cfgPath, otherCfgPath, seeded: await redisFingerprint(redis) };
  } catch (err) {
    setupError = err;
  }
}, 120_000);

afterAll(async () => {
  await env?.redis.stop();
  await env?.other.stop();
  await env?.s3.stop();
  if (env) await rm(env.dir, { recursive: true, force: true });
});

const cli = (args: string[], cfg = ready().cfgPath): Promise<CliResult> => runCli(cfg, args);

describe('Redis through the engine contract', () => {
  let first: string;

  it('the seeded dataset has every type, two databases, a binary key and a TTL', () => {
    const { seeded } = ready();
    expect(Object.keys(seeded).sort()).toEqual(['db0', 'db3', 'functions']);
    expect(seeded.functions!.keys).toBe(1);
    expect(seeded.db0!.keys).toBeGreaterThan(5000);
    expect(seeded.db0!.withTtl).toEqual([Buffer.from('expiring').toString('hex')]);
  });

  it('refuses a config the engine schema rejects, naming the field and the rule, before anything runs', async () => {
    const bad = join(ready().dir, 'bad.yaml');
    const { parse } = await import('yaml');
    const { readFile } = await import('node:fs/promises');
    const cfg = parse(await readFile(ready().cfgPath, 'utf8')) as { engine: { command: { config: unknown } } };
    cfg.engine.command.config = { batchSize: 'many', flushFirst: true };
    await writeFile(bad, stringify(cfg));
    const r = await cli(['list'], bad);
    expect(r.code).toBe(2);
    expect(r.out).toContain('engine.command.config.batchSize');
    expect(r.out).toContain('engine.command.config.flushFirst');
    expect(r.out).toMatch(/is not a setting of this engine/);
  });

  it('backs up once to both locations: the RDB snapshot, the server version, the tool version', async () => {
    const r = await cli(['backup']);
    expect(r.code, r.out).toBe(0);
    expect((r.json.locations as { status: string }[]).map((l) => l.status)).toEqual(['Succeeded', 'Succeeded']);
    first = r.json.id as string;
    const manifest = r.json.manifest as { objects: { name: string }[]; engine: Record<string, unknown>; database: string };
    expect(manifest.objects[0]!.name).toMatch(/^data\.rdb\.(zst|gz)$/);
    expect(manifest.database).toBe('redis');
    expect(manifest.engine).toMatchObject({ name: 'redis', format: 'redis-rdb', serverVersion: ready().redis.version, toolVersion: expect.stringMatching(/^\d+\.\d+\.\d+$/) as string });
  });

  it('verifies both copies, the encrypted one decrypted and its RDB header checked', async () => {
    const v = await cli(['verify']);
    expect(v.code, v.out).toBe(0);
    expect((v.json.checks as { status: string; contents?: string }[]).map((c) => c.status)).toEqual(['ok', 'ok']);
  });

  it('refuses to restore over a server that holds keys, and changes nothing', async () => {
    const r = await cli(['restore', '--latest']);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(await redisFingerprint(ready().redis)).toEqual(ready().seeded);
  });

  it('restores into an empty server with every key, type, value and TTL identical', async () => {
    const r = await cli(['restore', '--backup', first], ready().otherCfgPath);
    expect(r.code, r.out).toBe(0);
    expect(await redisFingerprint(ready().other)).toEqual(ready().seeded);
  });

  it('with --force restores over changed data (replaced keys back, other keys kept), from the encrypted copy', async () => {
    const { redis, dir } = ready();
    await redis.cli('SET', 'user:1', 'changed');
    await redis.cli('DEL', 'hash');
    await redis.cli('SET', 'added-later', 'kept');
    await rm(join(dir, 'fs'), { recursive: true, force: true });
    const r = await cli(['restore', '--latest', '--force']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ location: 's3' });
    expect(await redis.cli('GET', 'user:1')).toBe('name-1-ünïcødé-🙂');
    expect(await redis.cli('GET', 'added-later')).toBe('kept');
    await redis.cli('DEL', 'added-later');
    expect(await redisFingerprint(redis)).toEqual(ready().seeded);
  });

  it('imports an RDB file made elsewhere (redis-cli --rdb, gzip-compressed) into an empty server, refusing one that is not an RDB', async () => {
    const { redis, other, dir } = ready();
    const file = join(dir, 'elsewhere.rdb');
    execFileSync('redis-cli', ['-h', redis.host, '-p', String(redis.port), '--no-auth-warning', '--rdb', file], { env: { ...process.env, REDISCLI_AUTH: redis.password }, stdio: 'ignore' });
    execFileSync('gzip', [file]);
    const notRdb = join(dir, 'notes.txt');
    await writeFile(notRdb, 'not a dump\n');
    const refused = await cli(['import', notRdb], ready().otherCfgPath);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain('FORMAT_MISMATCH');
    await other.cli('FLUSHALL');
    // FLUSHALL keeps function libraries: one of the backup's still there is refused without --force.
    const clash = await cli(['import', `${file}.gz`], ready().otherCfgPath);
    expect(clash.code).toBe(5);
    expect(clash.out).toContain('function libraries shoplib');
    await other.cli('FUNCTION', 'FLUSH');
    const r = await cli(['import', `${file}.gz`], ready().otherCfgPath);
    expect(r.code, r.out).toBe(0);
    expect(await redisFingerprint(other)).toEqual(await redisFingerprint(redis));
  });

  it('a restore that fails part way says what it left: the keys it wrote removed again (emptied), or partial with --force', async () => {
    const { s3, dir } = ready();
    const small = await startRedis();
    try {
      // Room for a part of the backup only (about 2.5 MB): the target refuses writes past it (OOM) half way.
      const baseline = Number(/used_memory:(\d+)/.exec(await small.cli('INFO', 'memory'))![1]);
      await small.cli('CONFIG', 'SET', 'maxmemory', String(baseline + 512 * 1024));
      await small.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
      const cfg = join(dir, 'small.yaml');
      await writeFile(cfg, stringify(config(small, s3, dir, execFileSync('age-keygen', ['-y', join(dir, 'age.key')]).toString().trim())));
      const r = await cli(['restore', '--latest'], cfg);
      expect(r.code).toBe(1);
      expect(r.json, r.out).toMatchObject({ error: { code: 'RESTORE_FAILED', target: { state: 'emptied' } } });
      expect(r.out).toMatch(/OOM/);
      expect(await small.cli('DBSIZE')).toBe('0');
      await small.cli('SET', 'app-key', 'kept');
      const f = await cli(['restore', '--latest', '--force'], cfg);
      expect(f.code).toBe(1);
      expect(f.json, f.out).toMatchObject({ error: { code: 'RESTORE_FAILED', target: { state: 'partial', detail: expect.stringMatching(/keys of the backup were written/) as string } } });
      expect(await small.cli('GET', 'app-key')).toBe('kept');
    } finally {
      await small.stop();
    }
  });

  it('refuses --target-database: a Redis backup restores into the configured server as a whole', async () => {
    const r = await cli(['restore', '--latest', '--force', '--target-database', 'elsewhere']);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ error: { code: 'CONFIG_INVALID' } });
    expect(r.out).toContain('nothing was changed');
  });

  it('verify checks each object against the header its definition declares (FORMAT_MISMATCH when it differs)', async () => {
    const { dir } = ready();
    const b = await cli(['backup']);
    expect(b.code, b.out).toBe(0);
    // The shipped definition's magic is what verify checks: a definition claiming another header fails it.
    const { parse } = await import('yaml');
    const { readFile } = await import('node:fs/promises');
    const cfg = parse(await readFile(ready().cfgPath, 'utf8')) as { engine: { command: { definition: { formats: { magicHex: string[] }[] } } } };
    cfg.engine.command.definition.formats[0]!.magicHex = [Buffer.from('NOTREDIS').toString('hex')];
    const lying = join(dir, 'lying.yaml');
    await writeFile(lying, stringify(cfg));
    const v = await cli(['verify', b.json.id as string], lying);
    expect(v.code, v.out).toBe(6);
    expect(JSON.stringify(v.json)).toContain('FORMAT_MISMATCH');
  });
});
