/**
 * Runs the daemon's long-running services (engines' ServiceSpecs, e.g. WAL archiving) beside its scheduled
 * operations: each started at once, restarted with exponential backoff whenever it ends or fails, stopped
 * with the daemon. Its state (running, backing off, stopped; restarts; last error; what it reports of
 * itself) feeds `status` and the metrics.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { toBackupError } from '../errors.js';
import type { ServiceSpec } from '../engines/types.js';
import type { Logger } from '../logger.js';

export interface ServiceStatus {
  name: string;
  state: 'running' | 'backoff' | 'stopped';
  /** When it entered this state. */
  since: string;
  restarts: number;
  lastError?: { code: string; message: string; at: string };
  /** When the next start is due (state backoff). */
  retryAt?: string;
  /** What the service reports of itself (e.g. the last archived WAL segment). */
  facts: Record<string, unknown>;
}

/** A run this long resets the backoff: the service had been working. */
export const HEALTHY_RUN_MS = 60_000;
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

/** Pure: the wait before the restart that follows `failures` failed runs in a row (1 s, 2 s, 4 s, ... at most 60 s). */
export function backoffMs(failures: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, failures - 1));
}

export class Supervisor {
  private readonly status: ServiceStatus[];
  private readonly ac = new AbortController();
  private loops: Promise<void>[] = [];

  constructor(
    private readonly specs: readonly ServiceSpec[],
    private readonly log: Logger,
    private readonly onChange: () => void = () => undefined,
  ) {
    const now = new Date().toISOString();
    this.status = specs.map((s) => ({ name: s.name, state: 'stopped', since: now, restarts: 0, facts: {} }));
  }

  start(): void {
    this.loops = this.specs.map((spec, i) => this.supervise(spec, this.status[i]!));
  }

  /** Stops every service (each is asked through its signal) and waits for them, at most `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.ac.abort(new Error('the daemon is stopping'));
    await Promise.race([Promise.allSettled(this.loops), delay(graceMs)]);
  }

  statuses(): ServiceStatus[] {
    return this.status.map((s) => ({ ...s, facts: { ...s.facts } }));
  }

  private set(st: ServiceStatus, state: ServiceStatus['state'], extra: Partial<ServiceStatus> = {}): void {
    st.state = state;
    st.since = new Date().toISOString();
    if (state !== 'backoff') delete st.retryAt;
    Object.assign(st, extra);
    this.onChange();
  }

  private async supervise(spec: ServiceSpec, st: ServiceStatus): Promise<void> {
    const signal = this.ac.signal;
    let failures = 0;
    const log = this.log.child({ service: spec.name });
    while (!signal.aborted) {
      const startedAt = Date.now();
      this.set(st, 'running');
      log.info('service started');
      let error: unknown;
      try {
        await spec.run(signal, (facts) => {
          st.facts = facts;
          this.onChange();
        });
        if (!signal.aborted) error = new Error('the service ended by itself');
      } catch (err) {
        error = err;
      }
      if (signal.aborted) break;
      failures = Date.now() - startedAt >= HEALTHY_RUN_MS ? 1 : failures + 1;
      const e = toBackupError(error, 'INTERNAL');
      const wait = backoffMs(failures);
      st.restarts++;
      this.set(st, 'backoff', { lastError: { code: e.code, message: e.message, at: new Date().toISOString() }, retryAt: new Date(Date.now() + wait).toISOString() });
      log.error({ err: e, retryInMs: wait, failures }, 'service failed; restarting it after a pause');
      await delay(wait, undefined, { signal }).catch(() => undefined);
    }
    this.set(st, 'stopped');
    log.info('service stopped');
  }
}
