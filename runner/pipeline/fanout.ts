import { PassThrough, Writable } from 'node:stream';

export interface Branch {
  readonly name: string;
  /** The stream the branch's consumer reads. Ended when the source ends; destroyed when the branch is detached. */
  readonly stream: PassThrough;
}

/**
 * Writes every chunk to several branches, each read by its own consumer (one
 * per storage location). Backpressure: a chunk is acknowledged only once every
 * attached branch has room again, so the slowest healthy branch paces the
 * source. A branch whose consumer fails is detached with `detach()`; the
 * others continue. When the last branch is detached the fan-out fails, which
 * stops the source.
 */
export class FanOut extends Writable {
  private readonly attached = new Map<string, PassThrough>();
  private readonly waiters = new Set<() => void>();
  readonly branches: Branch[];

  private readonly beforeEnd: () => Promise<void>;

  /**
   * `beforeEnd` gates the clean end of every branch: if it rejects, the
   * branches are destroyed instead, so consumers abort rather than commit.
   */
  constructor(names: readonly string[], opts: { highWaterMark?: number; beforeEnd?: () => Promise<void> } = {}) {
    const branchHighWaterMark = opts.highWaterMark ?? 1024 * 1024;
    super({ highWaterMark: branchHighWaterMark });
    this.beforeEnd = opts.beforeEnd ?? (() => Promise.resolve());
    this.branches = names.map((name) => {
      const stream = new PassThrough({ highWaterMark: branchHighWaterMark });
      this.attached.set(name, stream);
      stream.on('drain', () => this.wake());
      // A branch's consumer learns of its failure through its own listeners;
      // this one only keeps an error on a branch nobody reads from crashing the process.
      stream.on('error', () => undefined);
      return { name, stream };
    });
  }

  private readonly detached = new Set<string>();

  /** Branches never detached (they received, or are receiving, every byte). */
  get activeBranches(): string[] {
    return this.branches.map((b) => b.name).filter((n) => !this.detached.has(n));
  }

  /** Stops feeding a branch and destroys its stream with `reason`. Idempotent. */
  detach(name: string, reason: Error): void {
    const stream = this.attached.get(name);
    if (!stream) return;
    this.detached.add(name);
    this.attached.delete(name);
    stream.destroy(reason);
    this.wake();
    if (this.attached.size === 0) this.destroy(new AggregateError([reason], 'every storage location failed'));
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private waitForRoom(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        for (const s of this.attached.values()) if (s.writableNeedDrain) return;
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
      check();
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.attached.size === 0) return callback(new Error('no storage location is attached'));
    let full = false;
    for (const s of this.attached.values()) if (!s.write(chunk)) full = true;
    if (!full) return callback();
    this.waitForRoom().then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.beforeEnd().then(
      () => {
        for (const s of this.attached.values()) s.end();
        callback();
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // After a clean finish the branches were ended and may still hold unread
    // data: leave them to their consumers. Otherwise stop them.
    if (error || !this.writableFinished) {
      for (const [, s] of this.attached) s.destroy(error ?? new Error('source stopped before the end'));
    }
    this.attached.clear();
    this.wake();
    callback(error);
  }
}
