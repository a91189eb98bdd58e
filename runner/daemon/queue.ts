import { BackupError } from '../errors.js';
import { linkedAbort } from '../util/async.js';

export interface OperationInfo {
  id: string;
  kind: string;
  /** Who asked: a command (kubectl exec), the schedule, a catch-up at start. */
  source: string;
  submittedAt: Date;
  startedAt?: Date;
}

export type QueueEvent = { event: 'queued'; position: number; running: OperationInfo | undefined } | { event: 'started'; operation: OperationInfo };

interface Entry<T> {
  info: OperationInfo;
  work: (signal: AbortSignal) => Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
  onEvent: (e: QueueEvent) => void;
}

/**
 * Runs operations that change or read a lot (backup, restore, verify,
 * retention) one at a time, in arrival order. A submission beyond
 * `maxWaiting` is refused with BUSY naming what runs, never left silent.
 */
export class OperationQueue {
  private running: { info: OperationInfo; abort: (reason?: unknown) => void; done: Promise<unknown> } | undefined;
  private readonly waiting: Entry<unknown>[] = [];
  private seq = 0;
  private closed = false;

  constructor(
    private readonly clock: () => Date,
    private readonly maxWaiting = 4,
  ) {}

  current(): OperationInfo | undefined {
    return this.running?.info;
  }

  pending(): OperationInfo[] {
    return this.waiting.map((w) => w.info);
  }

  /** True when an operation of `kind` runs or waits. */
  has(kind: string): boolean {
    return this.running?.info.kind === kind || this.waiting.some((w) => w.info.kind === kind);
  }

  submit<T>(kind: string, source: string, work: (signal: AbortSignal) => Promise<T>, onEvent: (e: QueueEvent) => void = () => undefined): Promise<T> {
    if (this.closed) return Promise.reject(new BackupError('ABORTED', 'the daemon is shutting down; no new operation starts'));
    if (this.waiting.length >= this.maxWaiting) {
      const r = this.running?.info;
      return Promise.reject(
        new BackupError('BUSY', `busy: ${r ? `${r.kind} (${r.source}) running since ${r.startedAt?.toISOString()}` : 'operations running'} and ${this.waiting.length} waiting; try again later`, {
          details: { running: r, waiting: this.pending() },
        }),
      );
    }
    const info: OperationInfo = { id: `op-${++this.seq}`, kind, source, submittedAt: this.clock() };
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ info, work, resolve, reject, onEvent } as Entry<unknown>);
      if (this.running) onEvent({ event: 'queued', position: this.waiting.length, running: this.running.info });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running) return;
    const next = this.waiting.shift();
    if (!next) return;
    next.info.startedAt = this.clock();
    const ac = linkedAbort();
    next.onEvent({ event: 'started', operation: next.info });
    const done = next.work(ac.signal).then(next.resolve, next.reject);
    this.running = { info: next.info, abort: ac.abort, done };
    void done.finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  /**
   * Stops taking work, refuses what waits, lets the running operation finish
   * within `graceMs`, then aborts it. Resolves when nothing runs.
   */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new BackupError('ABORTED', 'the daemon is shutting down; the operation did not start'));
    const r = this.running;
    if (!r) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), graceMs)));
    const outcome = await Promise.race([r.done.then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      r.abort(new BackupError('ABORTED', `shutdown grace period of ${graceMs} ms ran out`));
      await r.done;
    }
  }
}
