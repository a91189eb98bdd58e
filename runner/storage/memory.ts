/**
 * A backend that keeps objects in a Map, for unit tests of pure logic
 * (retention, listing, manifests). It passes the same contract suite as the
 * real backends; by its nature it holds every stored object in memory.
 */
import { Readable } from 'node:stream';
import { PutBody } from './body.js';
import { asStorageError, storageError, throwIfAborted, type CallContext } from './errors.js';
import { checkKey, checkPrefix, compareKeys } from './keys.js';
import type { CallOptions, GetOptions, ObjectInfo, PutResult, Storage } from './types.js';

interface Entry {
  data: Buffer;
  modifiedAt: Date;
}

export class MemoryStorage implements Storage {
  readonly description: string;
  private readonly objects = new Map<string, Entry>();

  constructor(name = 'test') {
    this.description = `memory://${name}`;
  }

  private ctx(op: CallContext['op'], key?: string): CallContext {
    return { location: this.description, op, key };
  }

  async put(key: string, body: Readable | Buffer, opts: CallOptions = {}): Promise<PutResult> {
    const ctx = this.ctx('put', key);
    if (Buffer.isBuffer(body)) {
      checkKey(key, ctx);
      throwIfAborted(opts.signal, ctx);
      this.objects.set(key, { data: Buffer.from(body), modifiedAt: new Date() });
      return { size: body.length };
    }
    const source = new PutBody(body, opts.signal, ctx);
    try {
      checkKey(key, ctx);
      const chunks: Buffer[] = [];
      for await (const chunk of source.stream) chunks.push(chunk as Buffer);
      // Stored only once the whole body arrived: a failed put leaves nothing.
      this.objects.set(key, { data: Buffer.concat(chunks), modifiedAt: new Date() });
      source.release();
      return { size: source.bytes };
    } catch (err) {
      throw source.failure(err, (e) => asStorageError(e, ctx));
    }
  }

  get(key: string, opts: GetOptions = {}): Promise<Readable> {
    return settle(() => {
      const entry = this.entry(key, this.ctx('get', key), opts);
      const start = opts.range?.start ?? 0;
      const end = opts.range?.end === undefined ? entry.data.length : Math.min(opts.range.end + 1, entry.data.length);
      return Readable.from([entry.data.subarray(start, end)], { objectMode: false });
    });
  }

  async *list(prefix: string, opts: CallOptions = {}): AsyncIterable<ObjectInfo> {
    const ctx = this.ctx('list');
    checkPrefix(prefix, ctx);
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
    for (const key of keys) {
      await Promise.resolve(); // one key per microtask, like a real listing
      throwIfAborted(opts.signal, ctx);
      const entry = this.objects.get(key);
      if (entry) yield { key, size: entry.data.length, modifiedAt: entry.modifiedAt };
    }
  }

  stat(key: string, opts: CallOptions = {}): Promise<ObjectInfo> {
    return settle(() => {
      const entry = this.entry(key, this.ctx('stat', key), opts);
      return { key, size: entry.data.length, modifiedAt: entry.modifiedAt };
    });
  }

  delete(key: string, opts: CallOptions = {}): Promise<void> {
    return settle(() => {
      const ctx = this.ctx('delete', key);
      checkKey(key, ctx);
      throwIfAborted(opts.signal, ctx);
      this.objects.delete(key);
    });
  }


  /** Nothing here outlives a failed put (see Storage.sweepIncomplete). */
  sweepIncomplete(): Promise<number> {
    return Promise.resolve(0);
  }
  preflight(opts: CallOptions = {}): Promise<void> {
    return settle(() => throwIfAborted(opts.signal, this.ctx('preflight')));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private entry(key: string, ctx: CallContext, opts: CallOptions): Entry {
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    const entry = this.objects.get(key);
    if (!entry) throw storageError('STORAGE_NOT_FOUND', ctx, `object ${key} not found`);
    return entry;
  }
}

/** Runs `fn` and turns its result or throw into a promise, so errors never escape synchronously. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
