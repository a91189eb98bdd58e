/**
 * The scheduler's view of time, injected so tests can drive it.
 */
export interface Clock {
  now(): Date;
  /** Calls `fn` once after `ms` milliseconds, unless cleared first. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** setTimeout's largest delay (2^31 - 1 ms, about 24.8 days); longer ones overflow and fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

interface RealTimer {
  timeout: NodeJS.Timeout | undefined;
}

/**
 * The process clock. Timers never keep the process alive, and a delay beyond
 * MAX_TIMER_MS is waited out in slices, each re-armed on expiry.
 */
export const realClock: Clock = {
  now: () => new Date(),
  setTimer(fn, ms) {
    const timer: RealTimer = { timeout: undefined };
    // Slices count down `left` rather than re-reading the wall clock, so a
    // wall-clock step does not change the total delay.
    const arm = (left: number): void => {
      const slice = Math.min(Math.max(0, left), MAX_TIMER_MS);
      timer.timeout = setTimeout(() => (left > slice ? arm(left - slice) : fn()), slice);
      timer.timeout.unref();
    };
    arm(ms);
    return timer;
  },
  clearTimer(handle) {
    const timer = handle as RealTimer | undefined;
    if (timer?.timeout !== undefined) clearTimeout(timer.timeout);
    if (timer) timer.timeout = undefined;
  },
};
