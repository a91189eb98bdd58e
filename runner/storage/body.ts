/**
 * The body of one `put`, as every backend consumes it.
 *
 * Invariants:
 * - The backend reads `stream` (never the caller's body directly), so the
 *   size is counted once and a failure of the caller's stream is told apart
 *   from a failure of the backend writing it.
 * - An abort that arrives before the body has ended destroys the body: the
 *   backend then sees a failed stream and discards what it has written. An
 *   abort after the body has ended is ignored: the backend is committing a
 *   complete object and the put finishes.
 * - Whatever the outcome, the caller's body is destroyed or fully read when
 *   the put settles, so a producer never waits on a dead consumer.
 */
import { Readable } from 'node:stream';
import type { BackupError } from '../errors.js';
import { abortedError, bodyError, type CallContext } from './errors.js';

export class PutBody {
  /** What the backend consumes: the caller's bytes, passed through unchanged. */
  readonly stream: Readable;
  /** Bytes read from the caller's body so far. */
  bytes = 0;
  private ended = false;
  private aborted = false;
  private sourceFailed = false;
  private sourceError: unknown;
  private readonly onAbort: () => void;

  constructor(
    private readonly body: Readable,
    private readonly signal: AbortSignal | undefined,
    private readonly ctx: CallContext,
  ) {
    this.stream = Readable.from(this.chunks(), { objectMode: false, highWaterMark: 64 * 1024 });
    this.onAbort = () => {
      if (this.ended) return;
      this.aborted = true;
      body.destroy(abortedError(ctx, signal?.reason));
    };
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /**
   * Only errors raised while reading the caller's body count as source
   * errors; an error thrown into the generator by a failing consumer (at the
   * `yield`) skips the inner catch and just stops reading.
   */
  private async *chunks(): AsyncGenerator<Buffer> {
    const it = (this.body as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<Buffer | string>;
        try {
          next = await it.next();
        } catch (err) {
          this.sourceFailed = true;
          this.sourceError = err;
          throw err;
        }
        if (next.done) break;
        const buf = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        this.bytes += buf.length;
        yield buf;
      }
      this.ended = true;
    } finally {
      if (!this.ended) await it.return?.();
    }
  }

  /** True once the caller's body ended cleanly: the backend holds every byte. */
  get complete(): boolean {
    return this.ended;
  }

  /**
   * The error the put rejects with: ABORTED when the signal fired first, the
   * body's own error when the caller's stream failed, otherwise the backend's
   * classification of `err`.
   */
  failure(err: unknown, classify: (err: unknown) => BackupError): BackupError {
    const result = this.aborted
      ? abortedError(this.ctx, this.signal?.reason)
      : this.sourceFailed
        ? bodyError(this.sourceError, this.ctx)
        : classify(err);
    this.discard();
    return result;
  }

  /** Stops listening to the signal and destroys an unfinished body. Idempotent. */
  discard(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    if (!this.ended && !this.body.destroyed) this.body.destroy();
    if (!this.stream.destroyed && !this.ended) this.stream.destroy();
  }

  /** Stops listening to the signal after a successful put. */
  release(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
  }
}
