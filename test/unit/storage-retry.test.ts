import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { BackupError } from '../../runner/errors.js';
import type { Logger } from '../../runner/logger.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import { backoffDelay, withRetry, type RetryOptions } from '../../runner/storage/retry.js';
import type { CallOptions, GetOptions, ObjectInfo, PutResult, Storage } from '../../runner/storage/types.js';

const unavailable = (): BackupError => new BackupError('STORAGE_UNAVAILABLE', 'memory://test: 503 slow down');
const denied = (): BackupError => new BackupError('STORAGE_DENIED', 'memory://test: access denied');

/** A MemoryStorage whose calls fail with queued errors first; counts every call. */
class Flaky implements Storage {
  readonly description = 'memory://flaky';
  readonly inner = new MemoryStorage('flaky');
  readonly calls: string[] = [];
  failures: BackupError[] = [];
  /** For list: fail after yielding this many objects (once). */
  failListAfter: number | undefined;

  private next(op: string): void {
    this.calls.push(op);
    const err = this.failures.shift();
    if (err) throw err;
  }
  async put(key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult> {
    this.next('put');
    return this.inner.put(key, body, opts);
  }
  async sweepIncomplete(): Promise<number> {
    this.next('sweepIncomplete');
    return Promise.resolve(0);
  }
  async get(key: string, opts?: GetOptions): Promise<Readable> {
    this.next('get');
    return this.inner.get(key, opts);
  }
  async *list(prefix: string, opts?: CallOptions): AsyncIterable<ObjectInfo> {
    this.next('list');
    let n = 0;
    for await (const o of this.inner.list(prefix, opts)) {
      if (this.failListAfter !== undefined && n++ === this.failListAfter) {
        this.failListAfter = undefined;
        throw unavailable();
      }
      yield o;
    }
  }
  async stat(key: string, opts?: CallOptions): Promise<ObjectInfo> {
    this.next('stat');
    return this.inner.stat(key, opts);
  }
  async delete(key: string, opts?: CallOptions): Promise<void> {
    this.next('delete');
    return this.inner.delete(key, opts);
  }
  async preflight(): Promise<void> {
    this.next('preflight');
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function setup(attempts = 3, extra: Partial<RetryOptions> = {}) {
  const flaky = new Flaky();
  const delays: number[] = [];
  const warn = vi.fn();
  const storage = withRetry(flaky, {
    attempts,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    logger: { warn } as unknown as Logger,
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
    random: () => 0.5,
    ...extra,
  });
  return { flaky, storage, delays, warn };
}

describe('withRetry', () => {
  it('retries retryable failures with growing delays, then succeeds', async () => {
    const { flaky, storage, delays, warn } = setup(4);
    await flaky.inner.put('k', Buffer.from('v'));
    flaky.failures = [unavailable(), unavailable(), unavailable()];
    expect((await storage.stat('k')).size).toBe(1);
    expect(flaky.calls).toEqual(['stat', 'stat', 'stat', 'stat']);
    expect(delays).toEqual([75, 150, 300]);
    expect(warn).toHaveBeenCalledTimes(3);
    expect(warn.mock.calls[0]![0]).toMatchObject({ location: 'memory://flaky', op: 'stat', key: 'k', attempt: 1, code: 'STORAGE_UNAVAILABLE' });
  });

  it('gives up after the last attempt with the last error', async () => {
    const { flaky, storage } = setup(3);
    const last = unavailable();
    flaky.failures = [unavailable(), unavailable(), last];
    await expect(storage.delete('k')).rejects.toBe(last);
    expect(flaky.calls).toHaveLength(3);
  });

  it('does not retry permanent errors', async () => {
    const { flaky, storage, delays } = setup(5);
    flaky.failures = [denied()];
    await expect(storage.preflight()).rejects.toMatchObject({ code: 'STORAGE_DENIED' });
    await expect(storage.get('missing')).rejects.toMatchObject({ code: 'STORAGE_NOT_FOUND' });
    expect(flaky.calls).toEqual(['preflight', 'get']);
    expect(delays).toEqual([]);
  });

  it('retries a put whose body is a Buffer', async () => {
    const { flaky, storage } = setup(3);
    flaky.failures = [unavailable()];
    expect(await storage.put('m.json', Buffer.from('{}'))).toEqual({ size: 2 });
    expect(flaky.calls).toEqual(['put', 'put']);
    expect((await flaky.inner.stat('m.json')).size).toBe(2);
  });

  it('never retries a put whose body is a stream', async () => {
    const { flaky, storage } = setup(3);
    flaky.failures = [unavailable()];
    await expect(storage.put('data', Readable.from([Buffer.from('abc')]))).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(flaky.calls).toEqual(['put']);
  });

  it('retries a listing that fails before its first object', async () => {
    const { flaky, storage } = setup(3);
    for (const k of ['p/a', 'p/b', 'p/c']) await flaky.inner.put(k, Buffer.from(k));
    flaky.failures = [unavailable()];
    const keys: string[] = [];
    for await (const o of storage.list('p/')) keys.push(o.key);
    expect(keys).toEqual(['p/a', 'p/b', 'p/c']);
    expect(flaky.calls).toEqual(['list', 'list']);
  });

  it('does not retry a listing that fails after yielding objects', async () => {
    const { flaky, storage } = setup(3);
    for (const k of ['p/a', 'p/b', 'p/c']) await flaky.inner.put(k, Buffer.from(k));
    flaky.failListAfter = 2;
    const keys: string[] = [];
    await expect(
      (async () => {
        for await (const o of storage.list('p/')) keys.push(o.key);
      })(),
    ).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(keys).toEqual(['p/a', 'p/b']);
    expect(flaky.calls).toEqual(['list']);
  });

  it('an empty listing is fine, and stopping early is fine', async () => {
    const { flaky, storage } = setup(3);
    for await (const _ of storage.list('none/')) throw new Error('unexpected object');
    for (const k of ['p/a', 'p/b']) await flaky.inner.put(k, Buffer.from(k));
    for await (const o of storage.list('p/')) {
      expect(o.key).toBe('p/a');
      break;
    }
  });

  it('ends the wait with ABORTED when the signal fires during backoff', async () => {
    const ac = new AbortController();
    const { flaky, storage } = setup(5, { baseDelayMs: 60_000, maxDelayMs: 60_000, sleep: undefined });
    flaky.failures = [unavailable(), unavailable()];
    const started = Date.now();
    const p = storage.stat('k', { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(flaky.calls).toEqual(['stat']);
  });

  it('does not start another attempt once the signal has fired', async () => {
    const ac = new AbortController();
    const { flaky, storage } = setup(5);
    flaky.failures = [unavailable()];
    ac.abort();
    await expect(storage.stat('k', { signal: ac.signal })).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(flaky.calls).toEqual(['stat']);
  });

  it('keeps the description and refuses zero attempts', () => {
    const { storage } = setup();
    expect(storage.description).toBe('memory://flaky');
    expect(() => withRetry(new MemoryStorage(), { attempts: 0, baseDelayMs: 1, maxDelayMs: 1, logger: {} as Logger })).toThrow(RangeError);
  });
});

describe('backoffDelay', () => {
  const opts = { baseDelayMs: 500, maxDelayMs: 15_000 };
  it('doubles per attempt and stays within [cap/2, cap]', () => {
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, opts, () => 0))).toEqual([250, 500, 1000, 2000]);
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, opts, () => 0.999999))).toEqual([500, 1000, 2000, 4000]);
  });
  it('is capped at maxDelayMs', () => {
    expect(backoffDelay(20, opts, () => 0.999999)).toBe(15_000);
    expect(backoffDelay(20, opts, () => 0)).toBe(7_500);
  });
});
