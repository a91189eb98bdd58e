/**
 * Retries as a wrapper around any Storage (restic's backend/retry), so no
 * backend carries its own retry loop.
 *
 * Invariants:
 * - Only errors marked `retryable` (STORAGE_UNAVAILABLE: 5xx, throttling,
 *   network) are retried; everything else fails at once.
 * - A put is retried only when its body is a Buffer. A stream cannot be
 *   replayed, so a stream put is attempted exactly once.
 * - `list` is retried only until it yields its first object; a failure after
 *   that propagates (the caller has already seen part of the listing).
 * - A `get` is retried until it returns its stream; errors while reading the
 *   stream are the reader's to handle.
 * - Backoff is exponential with jitter, capped at `maxDelayMs`, and the wait
 *   ends early with ABORTED when the call's signal fires.
 */
import type { Readable } from 'node:stream';
import { BackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { abortedError, type CallContext } from './errors.js';
import type { CallOptions, GetOptions, IncompleteUpload, ObjectInfo, PutResult, SpliceSource, Storage } from './types.js';

export interface RetryOptions {
  /** Total attempts, including the first (1 disables retries). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  logger: Logger;
  /** Waits `ms`, rejecting when `signal` fires; injectable for tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Returns a number in [0, 1); injectable for tests. */
  random?: () => number;
}

export const DEFAULT_RETRY = { attempts: 4, baseDelayMs: 500, maxDelayMs: 15_000 } as const;

/** Delay before attempt `attempt + 1`: half fixed, half random ("equal jitter"). */
export function backoffDelay(attempt: number, opts: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs'>, random: () => number): number {
  const cap = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(cap / 2 + random() * (cap / 2));
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class RetryingStorage implements Storage {
  readonly description: string;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;

  constructor(
    private readonly inner: Storage,
    private readonly opts: RetryOptions,
  ) {
    this.description = inner.description;
    this.sleep = opts.sleep ?? abortableSleep;
    this.random = opts.random ?? Math.random;
    this.passOptional();
  }

  /** Runs `call` until it succeeds, fails permanently, or attempts run out. */
  private async retry<T>(ctx: CallContext, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof BackupError) || !err.retryable || attempt >= this.opts.attempts || signal?.aborted) throw err;
        const delayMs = backoffDelay(attempt, this.opts, this.random);
        this.opts.logger.warn(
          { location: this.description, op: ctx.op, key: ctx.key, attempt, attempts: this.opts.attempts, delayMs, code: err.code, reason: err.message },
          'storage call failed, retrying',
        );
        try {
          await this.sleep(delayMs, signal);
        } catch (cause) {
          throw abortedError(ctx, cause);
        }
      }
    }
  }

  private ctx(op: CallContext['op'], key?: string): CallContext {
    return { location: this.description, op, key };
  }

  put(key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult> {
    if (!Buffer.isBuffer(body)) return this.inner.put(key, body, opts);
    return this.retry(this.ctx('put', key), opts?.signal, () => this.inner.put(key, body, opts));
  }

  get(key: string, opts?: GetOptions): Promise<Readable> {
    return this.retry(this.ctx('get', key), opts?.signal, () => this.inner.get(key, opts));
  }

  async *list(prefix: string, opts?: CallOptions): AsyncIterable<ObjectInfo> {
    const { it, first } = await this.retry(this.ctx('list'), opts?.signal, async () => {
      const iterator = this.inner.list(prefix, opts)[Symbol.asyncIterator]();
      return { it: iterator, first: await iterator.next() };
    });
    if (first.done) return;
    let finished = false;
    try {
      yield first.value;
      for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
      finished = true;
    } finally {
      // The consumer stopped early: let the inner listing release what it holds.
      if (!finished) await it.return?.();
    }
  }

  stat(key: string, opts?: CallOptions): Promise<ObjectInfo> {
    return this.retry(this.ctx('stat', key), opts?.signal, () => this.inner.stat(key, opts));
  }

  delete(key: string, opts?: CallOptions): Promise<void> {
    return this.retry(this.ctx('delete', key), opts?.signal, () => this.inner.delete(key, opts));
  }

  listIncompleteUploads?: (prefix: string, opts?: CallOptions) => AsyncIterable<IncompleteUpload>;
  abortIncompleteUpload?: (key: string, uploadId: string, opts?: CallOptions) => Promise<void>;
  putSpliced?: (key: string, head: Buffer, source: SpliceSource, opts?: CallOptions) => Promise<PutResult>;

  /** The optional calls exist exactly when the wrapped backend has them; a listing is not retried (a sweep runs again next time). */
  private passOptional(): void {
    const inner = this.inner;
    if (inner.listIncompleteUploads) this.listIncompleteUploads = (prefix, opts) => inner.listIncompleteUploads!(prefix, opts);
    if (inner.abortIncompleteUpload) {
      this.abortIncompleteUpload = (key, uploadId, opts) => this.retry(this.ctx('delete', key), opts?.signal, () => inner.abortIncompleteUpload!(key, uploadId, opts));
    }
    // Replayable: the head is a Buffer and the rest is copied from a stored object.
    if (inner.putSpliced) this.putSpliced = (key, head, source, opts) => this.retry(this.ctx('put', key), opts?.signal, () => inner.putSpliced!(key, head, source, opts));
  }

  sweepIncomplete(prefix: string, olderThan: Date, opts?: CallOptions): Promise<number> {
    return this.retry(this.ctx('list'), opts?.signal, () => this.inner.sweepIncomplete(prefix, olderThan, opts));
  }

  preflight(opts?: CallOptions): Promise<void> {
    return this.retry(this.ctx('preflight'), opts?.signal, () => this.inner.preflight(opts));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Wraps `storage` so that retryable failures are retried with backoff (see the invariants above). */
export function withRetry(storage: Storage, opts: RetryOptions): Storage {
  if (opts.attempts < 1) throw new RangeError('attempts must be at least 1');
  return new RetryingStorage(storage, opts);
}
