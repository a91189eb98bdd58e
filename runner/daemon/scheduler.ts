/**
 * Fires scheduled backups: one timer for the next slot, re-armed after each.
 *
 * Invariants:
 * - At most one slot is pending and at most one timer is armed.
 * - A slot never fires before its time by the clock: a timer that wakes early
 *   (a slice of a long wait, a wall-clock step) re-arms for the remainder.
 * - Backups never stack: a slot that comes due while the previous onDue has
 *   not settled is skipped (logged, and told to onSkipped), and the next slot
 *   is armed as usual.
 * - A late wake-up fires one slot, then plans from the current time, so slots
 *   slept through (a paused VM) are not replayed one by one.
 * - A last run dated beyond now plus the clock-skew allowance is ignored, so
 *   no stored manifest can push the next slot out of reach.
 * - Suspended or stopped: nothing is pending, nextRunAt() is undefined. A
 *   backup already running is not touched by stop(), suspend() or update().
 */
import type { Schedule } from '../../api/runner-config.js';
import { toBackupError } from '../errors.js';
import { MAX_CLOCK_SKEW_MS } from '../manifest.js';
import type { Logger } from '../logger.js';
import { MAX_TIMER_MS, type Clock } from './clock.js';
import { jitterDelay, missedRun, nextRun } from './schedule.js';

export type TriggerReason = 'schedule' | 'catch-up';

export interface Trigger {
  /** The slot this run stands for; for a catch-up, the most recent missed slot. */
  slot: Date;
  reason: TriggerReason;
}

export interface SchedulerOptions {
  schedule: Schedule;
  clock: Clock;
  /** Uniform in [0, 1); draws the jitter delay of each run. */
  random: () => number;
  logger: Logger;
  /** Start of the newest scheduled backup (from its manifest), undefined when there is none. */
  lastRun: () => Promise<Date | undefined>;
  /** Runs the backup; settles when it has finished. A rejection is logged. */
  onDue: (trigger: Trigger) => Promise<void>;
  /** Told about each slot skipped because the previous backup was still running. */
  onSkipped?: (trigger: Trigger) => void;
}

interface Pending {
  trigger: Trigger;
  /** The slot plus its jitter delay, in ms since the epoch. */
  fireAt: number;
}

type State = 'new' | 'starting' | 'started' | 'stopped';

export class Scheduler {
  private schedule: Schedule;
  private state: State = 'new';
  private pending: Pending | undefined;
  private timer: { handle: unknown } | undefined;
  private running = false;
  /**
   * Where interval slots are counted from: the newest backup's start at
   * first, then the slot of each scheduled run (so jitter does not drift the
   * grid), or the moment a catch-up run fired.
   */
  private anchor: Date | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: SchedulerOptions) {
    this.schedule = opts.schedule;
    this.log = opts.logger.child({ module: 'scheduler' });
  }

  /**
   * Reads the last run, then arms either one catch-up run (when catchUp is on
   * and a slot was missed) or the next slot. A failure to read the last run is
   * logged and treated as "no last run": the daemon keeps its schedule.
   */
  async start(): Promise<void> {
    if (this.state === 'starting' || this.state === 'started') return;
    this.state = 'starting';
    const last = await this.readLastRun();
    if (this.state !== 'starting') return; // stopped while reading
    this.state = 'started';
    this.anchor = last;
    const now = this.opts.clock.now();
    const s = this.schedule;
    const missed = !s.suspend && s.catchUp ? missedRun(s, last, now) : undefined;
    if (missed) {
      this.log.info({ missedSlot: missed.toISOString(), lastRun: last?.toISOString() }, 'a scheduled backup was missed; catching up once');
      this.arm({ trigger: { slot: missed, reason: 'catch-up' }, fireAt: now.getTime() + jitterDelay(s, this.opts.random) });
    } else {
      this.arm(this.plan(s, now));
    }
  }

  /** Disarms the timer. A running backup continues; start() may be called again. */
  stop(): void {
    this.state = 'stopped';
    this.disarm();
  }

  /** When the next run starts (slot plus jitter); undefined when suspended, stopped or not started. */
  nextRunAt(): Date | undefined {
    return this.state === 'started' && this.pending ? new Date(this.pending.fireAt) : undefined;
  }

  /** Whether a backup started by this scheduler is still running. */
  isRunning(): boolean {
    return this.running;
  }

  suspend(): void {
    this.update({ ...this.schedule, suspend: true });
  }

  /** Arms the next slot from now; slots passed while suspended are not caught up. */
  resume(): void {
    this.update({ ...this.schedule, suspend: false });
  }

  /**
   * Takes a changed schedule and re-plans from now. A catch-up still waiting
   * out its jitter is kept unless the new schedule is suspended or has catchUp
   * off. Throws (and changes nothing) when the new schedule has no slots.
   */
  update(schedule: Schedule): void {
    const now = this.opts.clock.now();
    const next = this.plan(schedule, now);
    this.schedule = schedule;
    if (this.state !== 'started') return;
    if (this.pending?.trigger.reason === 'catch-up' && !schedule.suspend && schedule.catchUp) return;
    this.disarm();
    this.arm(next);
  }

  /** The next scheduled slot after `after`, or undefined when suspended. */
  private plan(schedule: Schedule, after: Date): Pending | undefined {
    if (schedule.suspend) return undefined;
    const slot = nextRun(schedule, after, this.anchor);
    return { trigger: { slot, reason: 'schedule' }, fireAt: slot.getTime() + jitterDelay(schedule, this.opts.random) };
  }

  private arm(pending: Pending | undefined): void {
    this.pending = pending;
    if (pending) this.log.debug({ slot: pending.trigger.slot.toISOString(), at: new Date(pending.fireAt).toISOString(), reason: pending.trigger.reason }, 'next scheduled backup');
    this.armSlice();
  }

  /** Arms one timer for the rest of the wait, capped at the largest delay a timer takes. */
  private armSlice(): void {
    this.clearTimer();
    const pending = this.pending;
    if (!pending) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, pending.fireAt - this.opts.clock.now().getTime()));
    // Each timer owns its token object, so a stale callback is recognisable.
    const timer: { handle: unknown } = { handle: undefined };
    timer.handle = this.opts.clock.setTimer(() => this.wake(timer), wait);
    this.timer = timer;
  }

  private wake(timer: { handle: unknown }): void {
    if (this.timer !== timer) return;
    this.timer = undefined;
    const pending = this.pending;
    if (!pending || this.state !== 'started') return;
    const now = this.opts.clock.now();
    if (now.getTime() < pending.fireAt) {
      this.armSlice();
      return;
    }
    this.pending = undefined;
    this.fire(pending.trigger, now);
    try {
      this.arm(this.plan(this.schedule, new Date(Math.max(pending.trigger.slot.getTime(), now.getTime()))));
    } catch (err) {
      this.log.error({ err: toBackupError(err) }, 'cannot plan the next scheduled backup; scheduling stopped');
    }
  }

  private fire(trigger: Trigger, now: Date): void {
    const fields = { slot: trigger.slot.toISOString(), reason: trigger.reason };
    if (this.running) {
      this.log.warn(fields, 'scheduled backup skipped: the previous one is still running');
      try {
        this.opts.onSkipped?.(trigger);
      } catch (err) {
        this.log.error({ err: toBackupError(err), ...fields }, 'onSkipped failed');
      }
      return;
    }
    this.anchor = trigger.reason === 'schedule' ? trigger.slot : now;
    this.running = true;
    this.log.info(fields, 'scheduled backup due');
    void (async () => {
      try {
        await this.opts.onDue(trigger);
      } catch (err) {
        this.log.error({ err: toBackupError(err), ...fields }, 'scheduled backup failed');
      } finally {
        this.running = false;
      }
    })();
  }

  /** A last run in the future (beyond the clock-skew allowance) is ignored: it would push interval slots out of reach. */
  private async readLastRun(): Promise<Date | undefined> {
    try {
      const last = await this.opts.lastRun();
      if (last && last.getTime() > this.opts.clock.now().getTime() + MAX_CLOCK_SKEW_MS) {
        this.log.warn({ lastRun: last.toISOString() }, 'the last scheduled backup is dated in the future; ignored for scheduling');
        return undefined;
      }
      return last;
    } catch (err) {
      this.log.warn({ err: toBackupError(err) }, 'cannot read the last scheduled backup; no catch-up run');
      return undefined;
    }
  }

  private disarm(): void {
    this.clearTimer();
    this.pending = undefined;
  }

  private clearTimer(): void {
    if (this.timer) this.opts.clock.clearTimer(this.timer.handle);
    this.timer = undefined;
  }
}
