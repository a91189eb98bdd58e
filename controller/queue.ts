/**
 * The work queue: keys (namespace/name of a DatabaseBackup) in, a handler
 * run for each with these guarantees:
 * - one key is never handled twice at once; a key added while it is being
 *   handled runs once more afterwards (the latest state wins);
 * - a key waiting in the queue is there once, however often it was added;
 * - at most `workers` keys are handled at once;
 * - a failed key is retried with exponential backoff per key (base doubling
 *   up to max), reset by the next success;
 * - each key starts in its own turn of the event loop, so timers and I/O run
 *   between keys even when handlers do no I/O.
 */
export interface QueueOptions {
  workers: number;
  handle: (key: string) => Promise<void>;
  onError?: (key: string, err: unknown, retryInMs: number) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called with the depth (keys waiting or being handled) whenever it changes, e.g. to set a gauge. */
  onDepth?: (depth: number) => void;
  /** For tests: how to wait. */
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

const defaultTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
};

export class WorkQueue {
  private readonly waiting: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { cancel(): void }>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private reportedDepth = 0;

  constructor(private readonly opts: QueueOptions) {}

  /** Keys waiting or being handled. */
  get depth(): number {
    return this.queued.size + this.active.size;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.waiting.push(key);
    this.pump();
    this.reportDepth();
  }

  /** Adds the key after a delay (a later add or addAfter of the same key keeps the earliest). */
  addAfter(key: string, ms: number): void {
    if (this.stopped || this.timers.has(key)) return;
    const timer = (this.opts.setTimer ?? defaultTimer)(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, timer);
  }

  /** Resolves when nothing waits, runs or is scheduled for retry. */
  async idle(): Promise<void> {
    if (this.depth === 0 && this.timers.size === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.waiting.length = 0;
    this.queued.clear();
    this.reportDepth();
    this.checkIdle();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.workers && this.waiting.length > 0) {
      const key = this.waiting.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    try {
      // A handler that finds nothing to do never waits on I/O; without this, a whole queue of such keys (a
      // resync where nothing changed) would run as one chain of microtasks, holding back timers and I/O
      // (lease renewal, watch events, /healthz) until the last key is done.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await this.opts.handle(key);
      this.failures.delete(key);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = Math.min((this.opts.baseDelayMs ?? 500) * 2 ** (n - 1), this.opts.maxDelayMs ?? 300_000);
      this.opts.onError?.(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.active.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      this.reportDepth();
      this.checkIdle();
    }
  }

  private reportDepth(): void {
    const depth = this.depth;
    if (depth === this.reportedDepth) return;
    this.reportedDepth = depth;
    this.opts.onDepth?.(depth);
  }

  private checkIdle(): void {
    if (this.depth > 0 || (this.timers.size > 0 && !this.stopped)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
