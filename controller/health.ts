/**
 * Liveness of the controller process (/healthz), decided from what its loops
 * report. The kubelet restarts a pod whose liveness probe fails: the remedy
 * for a loop that is stuck, never for a short API-server outage (a restart
 * storm during an API-server upgrade would be worse than waiting). So:
 * - a cache (list+watch) is unhealthy only once it has failed without a
 *   break for longer than liveness.watchFailureTimeout;
 * - the leader-election loop is unhealthy once it has not completed an
 *   attempt for longer than a period it always keeps when it runs, plus the
 *   same allowance for a slow or unreachable API server.
 *
 * Invariants: every function here is pure (time comes in as `now`); the
 * first failing check names the reason.
 */
import type { Logger } from 'pino';
import type { LeaderTimings } from './leader.js';

export interface Liveness {
  ok: boolean;
  /** Why not ok, in one line (the 503 body of /healthz). */
  reason?: string;
}

export const LIVE: Liveness = { ok: true };

/** Default of liveness.watchFailureTimeout. */
export const DEFAULT_WATCH_FAILURE_TIMEOUT_MS = 5 * 60_000;

/** One cache's own view of its list+watch. */
export interface CacheHealth {
  /** The watched resource, e.g. `databasebackups`. */
  resource: string;
  /** Consecutive failed lists or watches; 0 once a watch is established again. */
  failures: number;
  /** When the current run of failures began; undefined while the watch is up. */
  failingSince?: Date;
  /** The last failure, in one line. */
  lastError?: string;
}

/** RFC 3339 in whole seconds, e.g. 2026-11-21T10:00:00Z. */
export function isoSeconds(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Not ok when a cache has been failing for longer than `timeoutMs`; the one failing longest is named. */
export function cachesLiveness(caches: readonly CacheHealth[], now: Date, timeoutMs: number): Liveness {
  let worst: { resource: string; since: Date; lastError?: string } | undefined;
  for (const c of caches) {
    if (c.failingSince && (!worst || c.failingSince < worst.since)) worst = { resource: c.resource, since: c.failingSince, ...(c.lastError ? { lastError: c.lastError } : {}) };
  }
  if (!worst || now.getTime() - worst.since.getTime() <= timeoutMs) return LIVE;
  return { ok: false, reason: `watch ${worst.resource} failing since ${isoSeconds(worst.since)}${worst.lastError ? `: ${worst.lastError}` : ''}` };
}

/**
 * How long the election loop may go without completing an attempt: a running loop completes one at least
 * every retry period (a slow API server answers within the lease duration or fails), plus `allowanceMs` for
 * an attempt that waits on an unreachable API server (a connect timeout, the API server's own 60 s limit).
 */
export function leaderStallMs(t: Pick<LeaderTimings, 'leaseDurationMs' | 'retryPeriodMs'>, allowanceMs: number): number {
  return Math.max(t.leaseDurationMs, 3 * t.retryPeriodMs) + allowanceMs;
}

/** Not ok when the last attempt completed (or the loop started) more than `stallMs` before `now`. */
export function leaderLiveness(lastAttemptAt: Date, now: Date, stallMs: number): Liveness {
  const idleMs = now.getTime() - lastAttemptAt.getTime();
  return idleMs > stallMs ? { ok: false, reason: `leader election loop has not run for ${Math.round(idleMs / 1000)} s` } : LIVE;
}

/** The first check that is not ok, else LIVE; later checks are not evaluated. */
export function firstFailing(checks: Iterable<() => Liveness>): Liveness {
  for (const check of checks) {
    const l = check();
    if (!l.ok) return l;
  }
  return LIVE;
}

/** Wraps `check` to log once (warn) when liveness turns false, with the reason, and once (info) when it is back. */
export function logTransitions(check: () => Liveness, logger: Logger): () => Liveness {
  let wasOk = true;
  return () => {
    const l = check();
    if (l.ok !== wasOk) {
      if (l.ok) logger.info('liveness: healthy again');
      else logger.warn({ reason: l.reason }, 'liveness: unhealthy; /healthz answers 503 and the kubelet will restart this pod');
    }
    wasOk = l.ok;
    return l;
  };
}
