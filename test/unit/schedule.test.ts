import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Schedule } from '../../api/runner-config.js';
import { isBackupError } from '../../runner/errors.js';
import { jitterDelay, longestGap, missedRun, nextCronTime, nextRun } from '../../runner/daemon/schedule.js';

const sched = (s: Partial<Schedule>): Schedule => ({ timeZone: 'UTC', suspend: false, catchUp: true, ...s });
const at = (iso: string): Date => new Date(iso);
const iso = (d: Date | undefined): string | undefined => d?.toISOString();

/** Every slot in (from, to], by repeated nextRun. */
function slots(s: Schedule, from: Date, to: Date): string[] {
  const out: string[] = [];
  for (let t = nextRun(s, from); t <= to; t = nextRun(s, t)) out.push(t.toISOString());
  return out;
}

describe('nextRun with cron', () => {
  it.each([
    // [expression, time zone, after, expected]
    ['0 3 * * *', 'UTC', '2025-01-01T00:00:00Z', '2025-01-01T03:00:00.000Z'],
    ['0 3 * * *', 'UTC', '2025-01-01T03:00:00Z', '2025-01-02T03:00:00.000Z'], // strictly after
    ['0 3 * * *', 'UTC', '2025-01-01T03:00:00.500Z', '2025-01-02T03:00:00.000Z'],
    ['0 3 * * *', 'UTC', '2025-01-01T02:59:59.999Z', '2025-01-01T03:00:00.000Z'],
    ['*/15 * * * *', 'UTC', '2025-01-01T10:07:00Z', '2025-01-01T10:15:00.000Z'],
    // 6 fields: seconds first
    ['*/15 * * * * *', 'UTC', '2025-01-01T10:00:07.200Z', '2025-01-01T10:00:15.000Z'],
    ['30 0 0 * * *', 'UTC', '2025-01-01T00:00:30Z', '2025-01-02T00:00:30.000Z'],
    ['5 * * * * *', 'UTC', '2025-01-01T10:59:59Z', '2025-01-01T11:00:05.000Z'],
    // month and year rollovers
    ['0 0 31 * *', 'UTC', '2025-04-01T00:00:00Z', '2025-05-31T00:00:00.000Z'],
    ['0 0 1 * *', 'UTC', '2025-01-31T12:00:00Z', '2025-02-01T00:00:00.000Z'],
    ['59 23 31 12 *', 'UTC', '2025-12-31T23:59:00Z', '2026-12-31T23:59:00.000Z'],
    ['0 0 1 1 *', 'UTC', '2025-12-31T23:00:00Z', '2026-01-01T00:00:00.000Z'],
    ['0 12 29 2 *', 'UTC', '2025-03-01T00:00:00Z', '2028-02-29T12:00:00.000Z'],
    // time zones
    ['0 9 * * 1-5', 'America/New_York', '2025-01-03T15:00:00Z', '2025-01-06T14:00:00.000Z'], // Fri 10:00 EST -> Mon 09:00
    ['0 0 * * *', 'Asia/Kolkata', '2025-01-01T00:00:00Z', '2025-01-01T18:30:00.000Z'],
    ['0 3 * * *', 'Europe/Berlin', '2025-01-10T00:00:00Z', '2025-01-10T02:00:00.000Z'], // CET
    ['0 3 * * *', 'Europe/Berlin', '2025-07-01T00:00:00Z', '2025-07-01T01:00:00.000Z'], // CEST
    ['0 0 1 1 *', 'Pacific/Auckland', '2025-06-01T00:00:00Z', '2025-12-31T11:00:00.000Z'], // NZDT, +13
    ['0 0 1 * *', 'Europe/Berlin', '2025-12-31T22:00:00Z', '2025-12-31T23:00:00.000Z'], // year rolls over in Berlin first
  ])('%s in %s after %s -> %s', (expr, timeZone, after, expected) => {
    expect(iso(nextRun(sched({ cron: expr, timeZone }), at(after)))).toBe(expected);
  });

  it('computes from any instant, not from the current time', () => {
    expect(iso(nextCronTime('0 0 * * *', 'UTC', at('2000-02-28T12:00:00Z')))).toBe('2000-02-29T00:00:00.000Z');
    expect(iso(nextCronTime('0 0 1 1 *', 'UTC', at('2090-06-01T00:00:00Z')))).toBe('2091-01-01T00:00:00.000Z');
  });

  it('ignores lastRun', () => {
    expect(iso(nextRun(sched({ cron: '0 3 * * *' }), at('2025-01-01T00:00:00Z'), at('2024-01-01T00:00:00Z')))).toBe('2025-01-01T03:00:00.000Z');
  });
});

describe('nextRun across daylight-saving changes', () => {
  it.each([
    // Europe/Berlin: 2025-03-30 02:00 CET -> 03:00 CEST (01:00Z); 2025-10-26 03:00 CEST -> 02:00 CET (01:00Z).
    // A skipped wall time runs at the change; a repeated one at its first occurrence.
    ['30 2 * * *', 'Europe/Berlin', '2025-03-29T12:00:00Z', '2025-03-30T01:00:00.000Z'], // 03:00 CEST
    ['30 2 * * *', 'Europe/Berlin', '2025-03-30T01:00:00Z', '2025-03-31T00:30:00.000Z'],
    ['30 2 * * *', 'Europe/Berlin', '2025-03-30T00:59:59Z', '2025-03-30T01:00:00.000Z'],
    ['30 2 * * *', 'Europe/Berlin', '2025-10-25T12:00:00Z', '2025-10-26T00:30:00.000Z'], // 02:30 CEST
    ['30 2 * * *', 'Europe/Berlin', '2025-10-26T00:30:00Z', '2025-10-27T01:30:00.000Z'], // not again at 02:30 CET
    ['30 2 * * *', 'Europe/Berlin', '2025-10-26T01:15:00Z', '2025-10-27T01:30:00.000Z'], // from the repeated hour
    ['0 * * * *', 'Europe/Berlin', '2025-03-30T00:30:00Z', '2025-03-30T01:00:00.000Z'],
    ['0 * * * *', 'Europe/Berlin', '2025-03-30T01:00:00Z', '2025-03-30T02:00:00.000Z'],
    ['0 * * * *', 'Europe/Berlin', '2025-10-26T00:00:00Z', '2025-10-26T02:00:00.000Z'], // second 02:00 CET is not a slot
    ['*/10 * * * *', 'Europe/Berlin', '2025-10-26T01:05:00Z', '2025-10-26T02:00:00.000Z'],
    ['* * * * * *', 'Europe/Berlin', '2025-10-26T01:00:01Z', '2025-10-26T02:00:00.000Z'],
    // America/New_York: 2025-03-09 02:00 EST -> 03:00 EDT (07:00Z); 2025-11-02 02:00 EDT -> 01:00 EST (06:00Z).
    ['30 2 * * *', 'America/New_York', '2025-03-08T12:00:00Z', '2025-03-09T07:00:00.000Z'], // 03:00 EDT
    ['30 2 * * *', 'America/New_York', '2025-03-09T07:00:00Z', '2025-03-10T06:30:00.000Z'],
    ['30 1 * * *', 'America/New_York', '2025-11-01T12:00:00Z', '2025-11-02T05:30:00.000Z'], // 01:30 EDT
    ['30 1 * * *', 'America/New_York', '2025-11-02T05:30:00Z', '2025-11-03T06:30:00.000Z'],
    ['30 1 * * *', 'America/New_York', '2025-11-02T06:10:00Z', '2025-11-03T06:30:00.000Z'],
    // Australia/Lord_Howe moves by 30 minutes: 2025-10-05 02:00 -> 02:30 (15:30Z the day before).
    ['15 2 * * *', 'Australia/Lord_Howe', '2025-10-04T12:00:00Z', '2025-10-04T15:30:00.000Z'],
  ])('%s in %s after %s -> %s', (expr, timeZone, after, expected) => {
    expect(iso(nextRun(sched({ cron: expr, timeZone }), at(after)))).toBe(expected);
  });

  it.each([
    ['Europe/Berlin', '2025-03-28T00:00:00Z', '2025-04-01T00:00:00Z'],
    ['Europe/Berlin', '2025-10-24T00:00:00Z', '2025-10-28T00:00:00Z'],
    ['America/New_York', '2025-03-07T00:00:00Z', '2025-03-11T00:00:00Z'],
    ['America/New_York', '2025-10-31T00:00:00Z', '2025-11-04T00:00:00Z'],
  ])('a daily job in %s runs once per local day around %s', (timeZone, from, to) => {
    const s = sched({ cron: timeZone === 'Europe/Berlin' ? '30 2 * * *' : '30 1 * * *', timeZone });
    const days = slots(s, at(from), at(to)).map((t) => new Intl.DateTimeFormat('en-CA', { timeZone }).format(new Date(t)));
    expect(days).toHaveLength(4);
    expect(new Set(days).size).toBe(4);
  });

  it('Samoa skipping 2011-12-30 entirely runs that day\'s slot at the change', () => {
    const s = sched({ cron: '0 12 * * *', timeZone: 'Pacific/Apia' });
    expect(slots(s, at('2011-12-29T12:00:00Z'), at('2012-01-01T00:00:00Z'))).toEqual([
      '2011-12-29T22:00:00.000Z', // 12:00 -10:00
      '2011-12-30T10:00:00.000Z', // the change: 2011-12-31T00:00 +14:00
      '2011-12-30T22:00:00.000Z', // 12:00 +14:00 on the 31st
      '2011-12-31T22:00:00.000Z',
    ]);
  });
});

describe('nextRun with an interval', () => {
  const hourly = sched({ interval: '1h' });
  it.each([
    // [after, lastRun, expected]
    ['2025-01-01T10:00:00Z', '2025-01-01T09:30:00Z', '2025-01-01T10:30:00.000Z'],
    ['2025-01-01T10:00:00Z', '2025-01-01T06:10:00Z', '2025-01-01T10:10:00.000Z'], // stays on lastRun's grid
    ['2025-01-01T10:00:00Z', '2025-01-01T09:00:00Z', '2025-01-01T11:00:00.000Z'], // strictly after
    ['2025-01-01T10:00:00Z', undefined, '2025-01-01T11:00:00.000Z'], // no last run: one interval from now
    ['2025-01-01T10:00:00Z', '2025-01-01T10:30:00Z', '2025-01-01T11:30:00.000Z'], // last run ahead of the clock
  ])('after %s, last run %s -> %s', (after, last, expected) => {
    expect(iso(nextRun(hourly, at(after), last === undefined ? undefined : at(last)))).toBe(expected);
  });

  it('ignores the time zone and DST (elapsed time)', () => {
    const s = sched({ interval: '1d', timeZone: 'Europe/Berlin' });
    expect(iso(nextRun(s, at('2025-03-29T12:00:00Z'), at('2025-03-29T02:00:00Z')))).toBe('2025-03-30T02:00:00.000Z');
  });
});

describe('missedRun', () => {
  const daily = sched({ cron: '0 3 * * *' });
  it.each([
    // [schedule, lastRun, now, expected]
    ['no last run', daily, undefined, '2025-01-10T12:00:00Z', undefined],
    ['nothing due yet', daily, '2025-01-09T03:00:05Z', '2025-01-10T02:00:00Z', undefined],
    ['one missed', daily, '2025-01-09T03:00:05Z', '2025-01-10T04:00:00Z', '2025-01-10T03:00:00.000Z'],
    ['a week down: the newest only', daily, '2025-01-03T03:00:05Z', '2025-01-10T12:00:00Z', '2025-01-10T03:00:00.000Z'],
    ['now is the slot', daily, '2025-01-09T03:00:05Z', '2025-01-10T03:00:00Z', '2025-01-10T03:00:00.000Z'],
    ['last run is the slot', daily, '2025-01-10T03:00:00Z', '2025-01-10T03:00:30Z', undefined],
    ['now before last run', daily, '2025-01-10T03:00:00Z', '2025-01-09T03:00:00Z', undefined],
    ['every second', sched({ cron: '* * * * * *' }), '2024-01-01T00:00:00Z', '2025-01-10T12:00:00.700Z', '2025-01-10T12:00:00.000Z'],
    ['6 fields', sched({ cron: '30 */5 * * * *' }), '2025-01-10T00:00:00Z', '2025-01-10T00:17:00Z', '2025-01-10T00:15:30.000Z'],
    ['year rollover', sched({ cron: '0 0 1 1 *' }), '2023-06-01T00:00:00Z', '2025-03-01T00:00:00Z', '2025-01-01T00:00:00.000Z'],
    ['spring forward', sched({ cron: '30 2 * * *', timeZone: 'Europe/Berlin' }), '2025-03-29T01:30:00Z', '2025-03-30T05:00:00Z', '2025-03-30T01:00:00.000Z'],
    ['fall back', sched({ cron: '30 2 * * *', timeZone: 'Europe/Berlin' }), '2025-10-25T00:30:00Z', '2025-10-26T01:45:00Z', '2025-10-26T00:30:00.000Z'],
    ['interval: several missed', sched({ interval: '1h' }), '2025-01-10T00:00:00Z', '2025-01-10T05:30:00Z', '2025-01-10T05:00:00.000Z'],
    ['interval: not yet', sched({ interval: '1h' }), '2025-01-10T00:00:00Z', '2025-01-10T00:59:59Z', undefined],
    ['interval: exactly due', sched({ interval: '1h' }), '2025-01-10T00:00:00Z', '2025-01-10T01:00:00Z', '2025-01-10T01:00:00.000Z'],
  ] as const)('%s', (_name, s, last, now, expected) => {
    expect(iso(missedRun(s, last === undefined ? undefined : at(last), at(now)))).toBe(expected);
  });

  it.each([
    ['*/7 * * * *', 'Europe/Berlin', '2025-10-25T22:00:00Z', '2025-10-26T03:00:00Z'],
    ['30 2 * * *', 'Europe/Berlin', '2025-03-25T00:00:00Z', '2025-04-02T00:00:00Z'],
    ['0 */3 * * *', 'America/New_York', '2025-11-01T00:00:00Z', '2025-11-03T00:00:00Z'],
    ['*/20 */2 * * * *', 'America/New_York', '2025-03-09T05:00:00Z', '2025-03-09T09:00:00Z'],
  ])('agrees with walking nextRun for %s in %s', (cron, timeZone, from, to) => {
    const s = sched({ cron, timeZone });
    const all = slots(s, at(from), at(to));
    for (let now = at(from).getTime(); now <= at(to).getTime(); now += 37 * 60_000 + 13_000) {
      const due = all.filter((t) => new Date(t).getTime() <= now);
      expect(iso(missedRun(s, at(from), new Date(now)))).toBe(due[due.length - 1]);
    }
  });
});

describe('jitterDelay', () => {
  it.each([
    [undefined, 0.5, 0],
    ['10m', 0, 0],
    ['10m', 0.5, 300_000],
    ['10m', 0.999_999_9, 599_999],
    ['10m', 1, 599_999], // a generator that returns 1 still stays below the bound
    ['10m', -0.1, 0],
    ['0s', 0.5, 0],
  ])('jitter %s with random %s -> %s', (jitter, r, expected) => {
    expect(jitterDelay(sched({ cron: '* * * * *', jitter }), () => r)).toBe(expected);
  });

  it('stays within [0, jitter) for many draws', () => {
    const s = sched({ cron: '* * * * *', jitter: '90s' });
    for (let i = 0; i < 1000; i++) {
      const d = jitterDelay(s, Math.random);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(90_000);
      expect(Number.isInteger(d)).toBe(true);
    }
  });
});

describe('cron macros', () => {
  it.each([
    // [macro, the expression it stands for, after, next slot]
    ['@hourly', '0 * * * *', '2025-01-10T12:34:56Z', '2025-01-10T13:00:00.000Z'],
    ['@daily', '0 0 * * *', '2025-01-10T12:00:00Z', '2025-01-11T00:00:00.000Z'],
    ['@midnight', '0 0 * * *', '2025-01-10T12:00:00Z', '2025-01-11T00:00:00.000Z'],
    ['@weekly', '0 0 * * 0', '2025-01-10T12:00:00Z', '2025-01-12T00:00:00.000Z'],
    ['@monthly', '0 0 1 * *', '2025-01-10T12:00:00Z', '2025-02-01T00:00:00.000Z'],
    ['@yearly', '0 0 1 1 *', '2025-01-10T12:00:00Z', '2026-01-01T00:00:00.000Z'],
    ['@annually', '0 0 1 1 *', '2025-01-10T12:00:00Z', '2026-01-01T00:00:00.000Z'],
  ])('%s runs like %s (next run, missed run, longest gap)', (macro, expr, after, expected) => {
    const m = sched({ cron: macro, timeZone: 'Europe/Berlin' });
    const e = sched({ cron: expr, timeZone: 'Europe/Berlin' });
    expect(iso(nextRun(m, at(after)))).toBe(iso(nextRun(e, at(after))));
    expect(iso(nextRun(sched({ cron: macro }), at(after)))).toBe(expected);
    expect(iso(missedRun(m, at('2024-06-01T00:00:00Z'), at(after)))).toBe(iso(missedRun(e, at('2024-06-01T00:00:00Z'), at(after))));
    expect(longestGap(m, at(after))).toBe(longestGap(e, at(after)));
  });
});

describe('longestGap', () => {
  const H = 3_600_000;
  it.each<[string, Partial<Schedule>, number]>([
    ['an interval', { interval: '6h' }, 6 * H],
    ['an interval with jitter', { interval: '6h', jitter: '10m' }, 6 * H + 10 * 60_000],
    ['daily in UTC', { cron: '0 3 * * *' }, 24 * H],
    ['daily in Berlin: the autumn change makes one day 25 h', { cron: '0 3 * * *', timeZone: 'Europe/Berlin' }, 25 * H],
    ['weekly', { cron: '0 3 * * 0' }, 7 * 24 * H],
    ['weekdays: Friday to Monday', { cron: '0 3 * * 1-5' }, 3 * 24 * H],
    ['every 5 minutes in office hours on weekdays: the weekend', { cron: '*/5 9-17 * * 1-5' }, 63 * H + 5 * 60_000],
    ['monthly on the 1st: the longest month', { cron: '0 3 1 * *' }, 31 * 24 * H],
    ['twice a day, unevenly', { cron: '0 2,8 * * *' }, 18 * H],
    ['on leap days only: beyond the horizon, still the gap to the next', { cron: '0 0 29 2 *' }, Date.parse('2032-02-29') - Date.parse('2028-02-29')],
    ['daily with jitter', { cron: '0 3 * * *', jitter: '30m' }, 24 * H + 30 * 60_000],
  ])('%s', (_name, s, expected) => {
    expect(longestGap(sched(s), at('2026-11-21T10:00:00Z'))).toBe(expected);
  });
});

describe('invalid schedules', () => {
  it.each([
    ['neither cron nor interval', sched({})],
    ['both cron and interval', sched({ cron: '* * * * *', interval: '1h' })],
    ['a malformed cron', sched({ cron: 'every day' })],
    ['a cron that never matches', sched({ cron: '0 0 30 2 *' })],
    ['an unknown time zone', sched({ cron: '0 3 * * *', timeZone: 'Mars/Olympus' })],
    ['a zero interval', sched({ interval: '0s' })],
  ])('%s is CONFIG_INVALID', (_name, s) => {
    let caught: unknown;
    try {
      nextRun(s, at('2025-01-01T00:00:00Z'));
    } catch (err) {
      caught = err;
    }
    expect(isBackupError(caught, 'CONFIG_INVALID')).toBe(true);
  });
});

describe('node-cron adapter', () => {
  it('runs on the node-cron version it was verified against', () => {
    // nextCronTime reads node-cron's internal timeMatcher; re-verify before moving off 4.6.x.
    const pkg = JSON.parse(readFileSync(new URL('../../node_modules/node-cron/package.json', import.meta.url), 'utf8')) as { version: string };
    expect(pkg.version).toMatch(/^4\.6\./);
  });
});
