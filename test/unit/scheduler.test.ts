import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Schedule } from '../../api/runner-config.js';
import { MAX_TIMER_MS, realClock, type Clock } from '../../runner/daemon/clock.js';
import { Scheduler, type SchedulerOptions, type Trigger } from '../../runner/daemon/scheduler.js';
import { createLogger } from '../../runner/logger.js';

/** A clock that moves only when told to, firing due timers in order. */
class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  /** Every delay ever passed to setTimer. */
  readonly delays: number[] = [];

  constructor(start: string) {
    this.t = Date.parse(start);
  }
  now(): Date {
    return new Date(this.t);
  }
  setTimer(fn: () => void, ms: number): unknown {
    if (!(ms >= 0 && ms <= MAX_TIMER_MS)) throw new Error(`timer delay out of range: ${ms}`);
    this.delays.push(ms);
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Moves to `iso`, firing each timer due by then at its own time, and lets promises settle. */
  async advanceTo(iso: string): Promise<void> {
    const to = Date.parse(iso);
    await settle();
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
      await settle();
    }
    this.t = Math.max(this.t, to);
    await settle();
  }
  async advance(ms: number): Promise<void> {
    await this.advanceTo(new Date(this.t + ms).toISOString());
  }
  /** Steps the clock without firing anything (a paused VM, an NTP step). */
  jump(iso: string): void {
    this.t = Date.parse(iso);
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sched = (s: Partial<Schedule>): Schedule => ({ timeZone: 'UTC', suspend: false, catchUp: true, ...s });
const daily = sched({ cron: '0 3 * * *' });

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Harness {
  clock: FakeClock;
  scheduler: Scheduler;
  fired: Array<Trigger & { at: string }>;
  skipped: Trigger[];
  logs: Array<{ level: number; msg: string }>;
}

function harness(opts: { start: string; schedule: Schedule; lastRun?: string | Error; onDue?: SchedulerOptions['onDue']; random?: number }): Harness {
  const clock = new FakeClock(opts.start);
  const fired: Harness['fired'] = [];
  const skipped: Trigger[] = [];
  const logs: Harness['logs'] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line) as { level: number; msg: string });
      cb();
    },
  });
  const scheduler = new Scheduler({
    schedule: opts.schedule,
    clock,
    random: () => opts.random ?? 0,
    logger: createLogger({ destination, pretty: false, level: 'debug' }),
    lastRun: () => (opts.lastRun instanceof Error ? Promise.reject(opts.lastRun) : Promise.resolve(opts.lastRun === undefined ? undefined : new Date(opts.lastRun))),
    onDue: async (t) => {
      fired.push({ ...t, at: clock.now().toISOString() });
      await opts.onDue?.(t);
    },
    onSkipped: (t) => skipped.push(t),
  });
  return { clock, scheduler, fired, skipped, logs };
}

const firedAt = (h: Harness): Array<[string, string, string]> => h.fired.map((f) => [f.reason, f.slot.toISOString(), f.at]);

describe('Scheduler', () => {
  it('fires on schedule and re-arms after each slot', async () => {
    const h = harness({ start: '2025-01-01T00:00:00Z', schedule: daily, lastRun: '2024-12-31T03:00:01Z' });
    await h.scheduler.start();
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-01T03:00:00.000Z');
    await h.clock.advanceTo('2025-01-01T02:59:59.999Z');
    expect(h.fired).toEqual([]);
    await h.clock.advanceTo('2025-01-03T12:00:00Z');
    expect(firedAt(h)).toEqual([
      ['schedule', '2025-01-01T03:00:00.000Z', '2025-01-01T03:00:00.000Z'],
      ['schedule', '2025-01-02T03:00:00.000Z', '2025-01-02T03:00:00.000Z'],
      ['schedule', '2025-01-03T03:00:00.000Z', '2025-01-03T03:00:00.000Z'],
    ]);
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-04T03:00:00.000Z');
    expect(h.clock.timers.size).toBe(1);
  });

  it('catches up a missed run exactly once at start, then follows the schedule', async () => {
    const h = harness({ start: '2025-01-10T12:00:00Z', schedule: daily, lastRun: '2025-01-03T03:00:00Z' });
    await h.scheduler.start();
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-10T12:00:00.000Z');
    await h.clock.advanceTo('2025-01-11T02:59:00Z');
    expect(firedAt(h)).toEqual([['catch-up', '2025-01-10T03:00:00.000Z', '2025-01-10T12:00:00.000Z']]);
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-11T03:00:00.000Z');
    await h.clock.advanceTo('2025-01-11T03:00:00Z');
    expect(h.fired.map((f) => f.reason)).toEqual(['catch-up', 'schedule']);
  });

  it.each([
    ['catchUp is off', sched({ cron: '0 3 * * *', catchUp: false }), '2025-01-03T03:00:00Z'],
    ['there was never a run', daily, undefined],
    ['nothing was missed', daily, '2025-01-10T03:00:05Z'],
  ])('does not catch up when %s', async (_name, schedule, lastRun) => {
    const h = harness({ start: '2025-01-10T12:00:00Z', schedule, lastRun });
    await h.scheduler.start();
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-11T03:00:00.000Z');
    await h.clock.advanceTo('2025-01-11T02:59:00Z');
    expect(h.fired).toEqual([]);
  });

  it('adds the jitter delay to slots and to the catch-up run', async () => {
    const h = harness({ start: '2025-01-10T12:00:00Z', schedule: sched({ cron: '0 3 * * *', jitter: '10m' }), lastRun: '2025-01-09T03:00:00Z', random: 0.5 });
    await h.scheduler.start();
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-10T12:05:00.000Z');
    await h.clock.advanceTo('2025-01-11T03:04:59Z');
    expect(h.fired).toHaveLength(1);
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-11T03:05:00.000Z');
    await h.clock.advanceTo('2025-01-11T03:05:00Z');
    expect(firedAt(h)[1]).toEqual(['schedule', '2025-01-11T03:00:00.000Z', '2025-01-11T03:05:00.000Z']);
  });

  it('fires nothing while suspended, and resumes without catching up', async () => {
    const h = harness({ start: '2025-01-10T12:00:00Z', schedule: sched({ cron: '0 3 * * *', suspend: true }), lastRun: '2025-01-03T03:00:00Z' });
    await h.scheduler.start();
    expect(h.scheduler.nextRunAt()).toBeUndefined();
    expect(h.clock.timers.size).toBe(0);
    await h.clock.advanceTo('2025-01-13T00:00:00Z');
    expect(h.fired).toEqual([]);
    h.scheduler.resume();
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-13T03:00:00.000Z');
    await h.clock.advanceTo('2025-01-13T03:00:00Z');
    expect(h.fired.map((f) => f.reason)).toEqual(['schedule']);
    h.scheduler.suspend();
    expect(h.scheduler.nextRunAt()).toBeUndefined();
    expect(h.clock.timers.size).toBe(0);
    await h.clock.advanceTo('2025-01-20T00:00:00Z');
    expect(h.fired).toHaveLength(1);
  });

  it('skips a slot that comes due while the previous backup runs, without stacking', async () => {
    const running = deferred();
    let calls = 0;
    const h = harness({
      start: '2025-01-10T12:01:00Z',
      schedule: sched({ cron: '*/10 * * * *' }),
      lastRun: '2025-01-10T12:00:05Z',
      onDue: () => (++calls === 1 ? running.promise : Promise.resolve()),
    });
    await h.scheduler.start();
    await h.clock.advanceTo('2025-01-10T12:10:00Z');
    expect(h.scheduler.isRunning()).toBe(true);
    await h.clock.advanceTo('2025-01-10T12:25:00Z');
    expect(h.fired.map((f) => f.slot.toISOString())).toEqual(['2025-01-10T12:10:00.000Z']);
    expect(h.skipped.map((t) => t.slot.toISOString())).toEqual(['2025-01-10T12:20:00.000Z']);
    expect(h.logs.some((l) => l.level === 40 && l.msg.includes('skipped'))).toBe(true);
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-10T12:30:00.000Z');
    running.resolve();
    await h.clock.advanceTo('2025-01-10T12:30:00Z');
    expect(h.fired.map((f) => f.slot.toISOString())).toEqual(['2025-01-10T12:10:00.000Z', '2025-01-10T12:30:00.000Z']);
    expect(h.scheduler.isRunning()).toBe(false);
  });

  it('keeps scheduling after a failed backup', async () => {
    const h = harness({ start: '2025-01-10T12:00:00Z', schedule: sched({ interval: '1h' }), lastRun: '2025-01-10T11:30:00Z', onDue: () => Promise.reject(new Error('dump failed')) });
    await h.scheduler.start();
    await h.clock.advanceTo('2025-01-10T14:30:00Z');
    expect(h.fired.map((f) => f.slot.toISOString())).toEqual(['2025-01-10T12:30:00.000Z', '2025-01-10T13:30:00.000Z', '2025-01-10T14:30:00.000Z']);
    expect(h.logs.filter((l) => l.level === 50 && l.msg === 'scheduled backup failed')).toHaveLength(3);
  });

  it('counts interval slots from the catch-up run', async () => {
    const h = harness({ start: '2025-01-10T12:00:00Z', schedule: sched({ interval: '1h' }), lastRun: '2025-01-10T08:15:00Z' });
    await h.scheduler.start();
    await h.clock.advanceTo('2025-01-10T13:00:00Z');
    expect(firedAt(h)).toEqual([
      ['catch-up', '2025-01-10T11:15:00.000Z', '2025-01-10T12:00:00.000Z'],
      ['schedule', '2025-01-10T13:00:00.000Z', '2025-01-10T13:00:00.000Z'],
    ]);
  });

  it('update() re-arms for the new schedule', async () => {
    const h = harness({ start: '2025-01-10T00:00:00Z', schedule: daily, lastRun: '2025-01-09T03:00:00Z' });
    await h.scheduler.start();
    h.scheduler.update(sched({ cron: '0 5 * * *' }));
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-10T05:00:00.000Z');
    expect(h.clock.timers.size).toBe(1);
    await h.clock.advanceTo('2025-01-10T06:00:00Z');
    expect(h.fired.map((f) => f.slot.toISOString())).toEqual(['2025-01-10T05:00:00.000Z']);
    expect(() => h.scheduler.update(sched({}))).toThrow(/exactly one of cron, interval/);
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-11T05:00:00.000Z');
  });

  it('stop() clears the timer; a running backup is left alone', async () => {
    const running = deferred();
    const h = harness({ start: '2025-01-10T02:00:00Z', schedule: daily, lastRun: '2025-01-09T03:00:00Z', onDue: () => running.promise });
    await h.scheduler.start();
    await h.clock.advanceTo('2025-01-10T03:00:00Z');
    h.scheduler.stop();
    expect(h.clock.timers.size).toBe(0);
    expect(h.scheduler.nextRunAt()).toBeUndefined();
    await h.clock.advanceTo('2025-01-15T00:00:00Z');
    expect(h.fired).toHaveLength(1);
    expect(h.scheduler.isRunning()).toBe(true);
    running.resolve();
    await h.clock.advance(1);
    expect(h.scheduler.isRunning()).toBe(false);
  });

  it('stop() during start() leaves nothing armed', async () => {
    const h = harness({ start: '2025-01-10T00:00:00Z', schedule: daily, lastRun: '2025-01-01T03:00:00Z' });
    const started = h.scheduler.start();
    h.scheduler.stop();
    await started;
    expect(h.clock.timers.size).toBe(0);
    expect(h.scheduler.nextRunAt()).toBeUndefined();
  });

  it('waits out delays longer than a timer takes in slices', async () => {
    const h = harness({ start: '2025-01-01T00:00:01Z', schedule: sched({ cron: '0 0 1 1 *' }), lastRun: '2025-01-01T00:00:00Z' });
    await h.scheduler.start();
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    await h.clock.advanceTo('2025-12-31T23:59:59Z');
    expect(h.fired).toEqual([]);
    await h.clock.advanceTo('2026-01-01T00:00:00Z');
    expect(firedAt(h)).toEqual([['schedule', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z']]);
    expect(Math.max(...h.clock.delays)).toBe(MAX_TIMER_MS);
    expect(h.clock.delays.length).toBeGreaterThanOrEqual(15); // a year is about 14.7 slices
  });

  it('after a late wake-up fires one slot and plans from now', async () => {
    const h = harness({ start: '2025-01-10T12:00:30Z', schedule: sched({ cron: '* * * * *' }), lastRun: '2025-01-10T12:00:05Z' });
    await h.scheduler.start();
    h.clock.jump('2025-01-10T12:30:10Z');
    await h.clock.advance(0);
    expect(firedAt(h)).toEqual([['schedule', '2025-01-10T12:01:00.000Z', '2025-01-10T12:30:10.000Z']]);
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-10T12:31:00.000Z');
  });

  it('re-arms instead of firing when the clock is behind the slot', async () => {
    const h = harness({ start: '2025-01-10T02:00:00Z', schedule: daily, lastRun: '2025-01-09T03:00:00Z' });
    await h.scheduler.start();
    h.clock.jump('2025-01-10T01:00:00Z'); // the wall clock stepped back an hour
    await h.clock.advanceTo('2025-01-10T02:00:00Z'); // the timer armed for 1h wakes
    expect(h.fired).toEqual([]);
    await h.clock.advanceTo('2025-01-10T03:00:00Z');
    expect(h.fired).toHaveLength(1);
  });

  it('without a readable last run, logs and keeps the schedule', async () => {
    const h = harness({ start: '2025-01-10T12:00:00Z', schedule: daily, lastRun: new Error('storage unavailable') });
    await h.scheduler.start();
    expect(h.scheduler.nextRunAt()?.toISOString()).toBe('2025-01-11T03:00:00.000Z');
    expect(h.logs.some((l) => l.level === 40 && l.msg.includes('cannot read the last scheduled backup'))).toBe(true);
  });
});

describe('realClock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires after delays beyond setTimeout\'s limit, in slices', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    realClock.setTimer(fn, MAX_TIMER_MS * 2 + 5);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(4);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('clearTimer stops a sliced timer between slices', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const handle = realClock.setTimer(fn, MAX_TIMER_MS + 1000);
    vi.advanceTimersByTime(MAX_TIMER_MS + 1);
    realClock.clearTimer(handle);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not keep the process alive', () => {
    const handle = realClock.setTimer(() => undefined, 60_000) as { timeout: NodeJS.Timeout };
    expect(handle.timeout.hasRef()).toBe(false);
    realClock.clearTimer(handle);
  });
});
