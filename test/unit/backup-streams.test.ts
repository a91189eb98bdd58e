/**
 * A backup of several streams dumped at a time (runner/ops/backup.ts storeStreams), with a fake engine and
 * in-memory locations: objects keep the streams' order whatever order they finish in; a stream that fails
 * stops the others and nothing of the backup stays, not even what a stopped stream had stored.
 */
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { validateRunnerConfig } from '../../api/index.js';
import type { DumpHandle, DumpOptions, Engine, StreamSpec } from '../../runner/engines/types.js';
import { recipientFingerprint } from '../../runner/crypto/age.js';
import { BackupError } from '../../runner/errors.js';
import { silentLogger } from '../../runner/logger.js';
import { runBackup } from '../../runner/ops/backup.js';
import type { Runtime } from '../../runner/runtime.js';
import { MemoryStorage } from '../../runner/storage/memory.js';

/** Per stream: how long its dump takes, and whether it fails at the end. */
type Plan = Record<string, { ms: number; fails?: boolean }>;

function engine(plan: Plan): Engine {
  const names = Object.keys(plan);
  return {
    name: 'fake',
    database: 'server',
    dumpsIntoPipe: false,
    streamConcurrency: 2,
    probe: () => Promise.resolve({ serverVersion: '1', toolVersion: '1' }),
    streams: () => Promise.resolve(names.map((name): StreamSpec => ({ name, kind: 'database', properties: { settings: [`app.secret=${name}-s3cret`], comment: 'c' } }))),
    dump(opts: DumpOptions = {}): Promise<DumpHandle> {
      const p = plan[opts.stream!.name]!;
      const stream = new Readable({ read() {} });
      stream.push(Buffer.from(`FAKE ${opts.stream!.name} `.repeat(1000)));
      const done = delay(p.ms).then(() => {
        if (p.fails) {
          const err = new BackupError('DUMP_FAILED', `dump of ${opts.stream!.name} failed`);
          stream.destroy(err);
          throw err;
        }
        stream.push(null);
      });
      done.catch(() => undefined);
      const consistentAt = done.then(() => new Date());
      consistentAt.catch(() => undefined);
      return Promise.resolve({ format: 'fake', extension: 'fake', compressed: false, magic: ['FAKE'], stream, consistentAt, done });
    },
    inspectTarget: () => Promise.reject(new Error('unused')),
    restore: () => Promise.reject(new Error('unused')),
  };
}

function runtime(plan: Plan, stores: MemoryStorage[]): Runtime {
  const cfg = validateRunnerConfig({
    namespace: 'data',
    name: 'server',
    engine: { type: 'postgresql', postgresql: { host: 'x', database: 'postgres', user: 'u', databases: Object.keys(plan) } },
    compression: { algorithm: 'none' },
    locations: stores.map((_, i) => ({ name: `l${i}`, type: 'filesystem', filesystem: { path: '/unused' } })),
  });
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const scope = { prefix: '', namespace: 'data', name: 'server' };
  return { config: cfg.value, engine: engine(plan), locations: stores.map((storage, i) => ({ name: `l${i}`, storage, scope })), logger: silentLogger(), clock: () => new Date(), runnerVersion: 'test' };
}

async function keys(s: MemoryStorage): Promise<string[]> {
  const out: string[] = [];
  for await (const o of s.list('')) out.push(o.key);
  return out.sort();
}

describe('several streams at a time', () => {
  it('keep their order in the manifest whatever order they finish in', async () => {
    const stores = [new MemoryStorage('a'), new MemoryStorage('b')];
    const r = await runBackup(runtime({ slow: { ms: 300 }, fast: { ms: 10 }, last: { ms: 10 } }, stores), { trigger: 'manual' });
    expect(r.status).toBe('Succeeded');
    expect(r.manifest!.objects.map((o) => [o.name, o.stream!.name])).toEqual([
      ['data-001.fake', 'slow'],
      ['data-002.fake', 'fast'],
      ['data-003.fake', 'last'],
    ]);
  });

  it('a location that fails in two streams running at once drops out once, and the others finish', async () => {
    const broken = Object.assign(new MemoryStorage('broken'), {
      put: () => Promise.reject(new BackupError('STORAGE_FAILED', 'the disk is full')),
    });
    const good = new MemoryStorage('good');
    const r = await runBackup(runtime({ a: { ms: 50 }, b: { ms: 50 }, c: { ms: 10 } }, [good, broken]), { trigger: 'manual' });
    expect(r.status).toBe('PartiallySucceeded');
    expect(r.locations.map((l) => [l.location, l.status])).toEqual([
      ['l1', 'Failed'],
      ['l0', 'Succeeded'],
    ]);
    expect(r.manifest!.objects.map((o) => o.stream!.name)).toEqual(['a', 'b', 'c']);
  });

  it('an encrypted location\'s manifest keeps no database settings or comment (they may hold secrets); a plain one keeps them', async () => {
    const plain = new MemoryStorage('plain');
    const sealed = new MemoryStorage('sealed');
    const rt = runtime({ a: { ms: 10 } }, [plain, sealed]);
    const R1 = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
    rt.locations[1]!.crypto = { to: { recipients: [R1] }, encryption: { scheme: 'age', recipients: [recipientFingerprint(R1)] }, identityFiles: [] };
    const r = await runBackup(rt, { trigger: 'manual' });
    expect(r.status).toBe('Succeeded');
    const manifestOf = async (s: MemoryStorage) => {
      const key = (await keys(s)).find((k) => k.endsWith('/manifest.json'))!;
      const chunks: Buffer[] = [];
      for await (const c of await s.get(key)) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    };
    expect(await manifestOf(plain)).toContain('a-s3cret');
    expect(await manifestOf(sealed)).not.toContain('s3cret');
    expect(await manifestOf(sealed)).not.toContain('"comment"');
  });

  it('a stream that fails after another stored its object: the backup fails with its cause, and nothing of it stays anywhere', async () => {
    const stores = [new MemoryStorage('a'), new MemoryStorage('b')];
    const r = await runBackup(runtime({ first: { ms: 10 }, second: { ms: 200, fails: true }, third: { ms: 400 } }, stores), { trigger: 'manual' });
    expect(r.status).toBe('Failed');
    expect(r.error?.message).toBe('dump of second failed');
    // Each location is reported once, with the cause, never as a stream stopped by it.
    expect(r.locations.map((l) => [l.location, l.error?.code])).toEqual([
      ['l0', 'DUMP_FAILED'],
      ['l1', 'DUMP_FAILED'],
    ]);
    for (const s of stores) expect(await keys(s)).toEqual([]);
  });

  it('report one total of every stream\'s bytes, never going back, ending at their sum', async () => {
    const stores = [new MemoryStorage('a')];
    const seen: number[] = [];
    const r = await runBackup(runtime({ slow: { ms: 300 }, fast: { ms: 10 }, last: { ms: 10 } }, stores), { trigger: 'manual', onProgress: (e) => seen.push(e.bytesIn) });
    expect(r.status).toBe('Succeeded');
    const sum = ['slow', 'fast', 'last'].reduce((n, name) => n + `FAKE ${name} `.length * 1000, 0);
    expect(seen.at(-1)).toBe(sum);
    expect(seen.every((b, i) => i === 0 || b >= seen[i - 1]!)).toBe(true);
  });
});
