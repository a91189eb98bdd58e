import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { compress, decompress, hasZstd, planCompression, storedAlgorithm } from '../../runner/pipeline/compression.js';
import { DigestStream } from '../../runner/pipeline/digest.js';
import { FanOut } from '../../runner/pipeline/fanout.js';

function source(chunks: number, size = 64 * 1024): { stream: Readable; sha: string; pulled: () => number } {
  const hash = createHash('sha256');
  let n = 0;
  const data = Array.from({ length: chunks }, () => randomBytes(size));
  for (const d of data) hash.update(d);
  const stream = new Readable({
    read() {
      this.push(n < chunks ? data[n++] : null);
    },
  });
  return { stream, sha: hash.digest('hex'), pulled: () => n };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('FanOut', () => {
  it('delivers every byte to every branch', async () => {
    const src = source(50);
    const fan = new FanOut(['a', 'b', 'c']);
    const reads = fan.branches.map((b) => buffer(b.stream));
    await pipeline(src.stream, fan);
    for (const r of await Promise.all(reads)) expect(sha(r)).toBe(src.sha);
  });

  it('is paced by the slowest branch (bounded buffering)', async () => {
    const src = source(400); // 25 MiB
    const fan = new FanOut(['fast', 'slow'], { highWaterMark: 256 * 1024 });
    void buffer(fan.branches[0]!.stream);
    const slow = fan.branches[1]!.stream;
    const done = pipeline(src.stream, fan);
    await delay(100);
    // Nobody reads "slow": the source must stall after a few buffers, not run ahead.
    expect(src.pulled()).toBeLessThan(40);
    const rest = buffer(slow);
    await done;
    expect((await rest).length).toBe(400 * 64 * 1024);
  });

  it('a detached branch stops receiving; the others complete', async () => {
    const src = source(100);
    const fan = new FanOut(['ok', 'bad']);
    const ok = buffer(fan.branches[0]!.stream);
    const bad = fan.branches[1]!.stream;
    let badBytes = 0;
    const badDone = pipeline(
      bad,
      new Writable({
        write(chunk: Buffer, _e, cb) {
          badBytes += chunk.length;
          if (badBytes > 1024 * 1024) {
            fan.detach('bad', new Error('location down'));
            return cb(new Error('location down'));
          }
          cb();
        },
      }),
    );
    await pipeline(src.stream, fan);
    expect(sha(await ok)).toBe(src.sha);
    await expect(badDone).rejects.toThrow('location down');
    expect(fan.activeBranches).toEqual(['ok']);
  });

  it('fails when every branch is detached, stopping the source', async () => {
    const src = source(1000);
    const fan = new FanOut(['a', 'b']);
    setTimeout(() => {
      fan.detach('a', new Error('a down'));
      fan.detach('b', new Error('b down'));
    }, 5);
    await expect(pipeline(src.stream, fan)).rejects.toThrow('every storage location failed');
    expect(src.pulled()).toBeLessThan(1000);
  });

  it('destroys the branches instead of ending them when beforeEnd rejects', async () => {
    const src = source(10);
    const fan = new FanOut(['a'], { beforeEnd: () => Promise.reject(new Error('dump failed')) });
    const read = buffer(fan.branches[0]!.stream);
    await expect(pipeline(src.stream, fan)).rejects.toThrow('dump failed');
    await expect(read).rejects.toThrow();
  });
});

describe('DigestStream', () => {
  it('counts and hashes', async () => {
    const d = new DigestStream();
    await pipeline(Readable.from([Buffer.from('hello '), Buffer.from('world')]), d, new Writable({ write: (_c, _e, cb) => cb() }));
    expect(d.bytes).toBe(11);
    expect(d.sha256).toBe(sha(Buffer.from('hello world')));
  });

  it.each([
    ['size', { size: 10, sha256: sha(Buffer.from('hello world')) }],
    ['sha256', { size: 11, sha256: sha(Buffer.from('hello worle')) }],
  ])('fails with INTEGRITY at the end when %s differs', async (_what, exp) => {
    const d = new DigestStream({ ...exp, what: 'loc: key' });
    const run = pipeline(Readable.from([Buffer.from('hello world')]), d, new Writable({ write: (_c, _e, cb) => cb() }));
    await expect(run).rejects.toMatchObject({ code: 'INTEGRITY', message: expect.stringContaining('loc: key') as string });
  });
});

describe('compression', () => {
  it.each([
    [{ algorithm: 'auto' as const }, true, { algorithm: 'zstd', level: 3, suffix: '.zst' }],
    [{ algorithm: 'auto' as const }, false, { algorithm: 'gzip', level: 6, suffix: '.gz' }],
    [{ algorithm: 'gzip' as const, level: 15 }, true, { algorithm: 'gzip', level: 9, suffix: '.gz' }],
    [{ algorithm: 'none' as const, level: 5 }, true, { algorithm: 'none', level: undefined, suffix: '' }],
    [{ algorithm: 'zstd' as const, level: 19 }, false, { algorithm: 'zstd', level: 19, suffix: '.zst' }],
  ])('plan %j (zstd present: %s)', (cfg, zstd, want) => {
    expect(planCompression(cfg, zstd)).toEqual(want);
  });

  it('reads the algorithm a manifest names; one it does not know is MANIFEST_UNSUPPORTED, naming it', () => {
    for (const a of ['zstd', 'gzip', 'none']) expect(storedAlgorithm(a, 'fs: k')).toBe(a);
    for (const a of ['lz4', 'constructor', '__proto__', 'ZSTD']) {
      expect(() => storedAlgorithm(a, 'fs: k')).toThrow(expect.objectContaining({ code: 'MANIFEST_UNSUPPORTED', message: expect.stringContaining(`fs: k: compression "${a}"`) }));
    }
  });

  it.each(['zstd', 'gzip', 'none'] as const)('%s round-trips', async (algorithm) => {
    if (algorithm === 'zstd') expect(await hasZstd(), 'zstd binary missing: apt-get install -y zstd').toBe(true);
    const input = Buffer.concat(Array.from({ length: 200 }, (_, i) => Buffer.from(`row ${i} ${'x'.repeat(i % 50)}\n`)));
    const c = compress(Readable.from([input]), planCompression({ algorithm }, true));
    const packed = await buffer(c.output);
    await c.done;
    if (algorithm !== 'none') expect(packed.length).toBeLessThan(input.length);
    const d = decompress(Readable.from([packed]), algorithm);
    const out = await buffer(d.output);
    await d.done;
    expect(out.equals(input)).toBe(true);
  });

  it('a corrupt zstd stream fails the stage', async () => {
    const d = decompress(Readable.from([Buffer.from('definitely not zstd data')]), 'zstd');
    const out = buffer(d.output).catch(() => Buffer.alloc(0));
    await expect(d.done).rejects.toMatchObject({ code: 'PROCESS_FAILED' });
    await out;
  });
});
