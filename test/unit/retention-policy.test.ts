import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import type { Retention } from '../../api/runner-config.js';
import { planRetention, type RetentionCandidate, type RetentionPlan } from '../../runner/retention/policy.js';
import { PERIODS, type Period } from '../../runner/retention/rules.js';
import { expectGolden } from './golden-files.js';
import { DAY, GOLDEN, HOUR, at, many, planJson, policy, random, series } from './retention-cases.js';

const NOW = '2026-11-21T12:00:00Z';

function plan(backups: RetentionCandidate[], p: Partial<Retention>, opts: { now?: string; tz?: string } = {}): RetentionPlan {
  return planRetention(backups, policy(p), new Date(opts.now ?? NOW), opts.tz === undefined ? {} : { timeZone: opts.tz });
}

/** id -> reasons of the kept backups, newest first. */
const kept = (pl: RetentionPlan): Record<string, string[]> => Object.fromEntries(pl.keep.map((k) => [k.id, k.reasons]));
const removed = (pl: RetentionPlan): string[] => pl.remove.map((r) => r.id);
const id = (iso: string): string => at(iso).id;

describe('planRetention: each rule alone', () => {
  it('keepLast keeps the N newest', () => {
    const pl = plan(many('2026-11-17T10:00Z', '2026-11-18T10:00Z', '2026-11-19T10:00Z', '2026-11-20T10:00Z', '2026-11-21T10:00Z'), { keepLast: 3 });
    expect(kept(pl)).toEqual({ [id('2026-11-21T10:00Z')]: ['last 1/3'], [id('2026-11-20T10:00Z')]: ['last 2/3'], [id('2026-11-19T10:00Z')]: ['last 3/3'] });
    expect(removed(pl)).toEqual([id('2026-11-18T10:00Z'), id('2026-11-17T10:00Z')]);
  });

  it.each<[string, Partial<Retention>, string[], Record<string, string>]>([
    [
      'keepHourly: an hour without a backup (12:00) uses no count',
      { keepHourly: 3 },
      ['2026-11-21T10:05Z', '2026-11-21T10:35Z', '2026-11-21T10:55Z', '2026-11-21T11:10Z', '2026-11-21T13:20Z', '2026-11-21T13:40Z'],
      { '2026-11-21T13:40Z': 'hourly 2026-11-21T13:00+00:00', '2026-11-21T11:10Z': 'hourly 2026-11-21T11:00+00:00', '2026-11-21T10:55Z': 'hourly 2026-11-21T10:00+00:00' },
    ],
    [
      'keepDaily: days without a backup use no count',
      { keepDaily: 3 },
      ['2026-11-10T12:00Z', '2026-11-17T01:00Z', '2026-11-20T23:59:59Z', '2026-11-21T08:00Z', '2026-11-21T20:00Z'],
      { '2026-11-21T20:00Z': 'daily 2026-11-21', '2026-11-20T23:59:59Z': 'daily 2026-11-20', '2026-11-17T01:00Z': 'daily 2026-11-17' },
    ],
    [
      'keepWeekly: ISO weeks start on Monday',
      { keepWeekly: 3 },
      ['2026-10-20T12:00Z', '2026-11-01T12:00Z', '2026-11-15T23:59Z', '2026-11-16T00:00Z', '2026-11-21T12:00Z'],
      { '2026-11-21T12:00Z': 'weekly 2026-W47', '2026-11-15T23:59Z': 'weekly 2026-W46', '2026-11-01T12:00Z': 'weekly 2026-W44' },
    ],
    [
      'keepMonthly: month edges to the millisecond',
      { keepMonthly: 3 },
      ['2026-07-01T00:00Z', '2026-09-15T12:00Z', '2026-10-31T23:59:59.999Z', '2026-11-01T00:00Z', '2026-11-21T12:00Z'],
      { '2026-11-21T12:00Z': 'monthly 2026-11', '2026-10-31T23:59:59.999Z': 'monthly 2026-10', '2026-09-15T12:00Z': 'monthly 2026-09' },
    ],
    [
      'keepYearly: year edges, years without a backup use no count',
      { keepYearly: 3 },
      ['2022-06-01T00:00Z', '2023-06-01T00:00Z', '2025-12-31T23:59:59Z', '2026-01-01T00:00Z', '2026-11-21T12:00Z'],
      { '2026-11-21T12:00Z': 'yearly 2026', '2025-12-31T23:59:59Z': 'yearly 2025', '2023-06-01T00:00Z': 'yearly 2023' },
    ],
  ])('%s', (_what, p, isos, want) => {
    const pl = plan(many(...isos), p);
    expect(kept(pl)).toEqual(Object.fromEntries(Object.entries(want).map(([iso, r]) => [id(iso), [r]])));
    expect(pl.remove).toHaveLength(isos.length - Object.keys(want).length);
  });

  it('keepWithin keeps what is less than D older than the newest backup (strictly)', () => {
    const backups = series('2026-11-01T00:00Z', 11, DAY); // 11-01 … 11-11, midnight
    const pl = plan(backups, { keepWithin: '3d' });
    expect(kept(pl)).toEqual({ [id('2026-11-11T00:00Z')]: ['within 3d of newest'], [id('2026-11-10T00:00Z')]: ['within 3d of newest'], [id('2026-11-09T00:00Z')]: ['within 3d of newest'] });
  });

  it('maxAge keeps what is less than D older than now', () => {
    const backups = series('2026-11-01T00:00Z', 11, DAY);
    expect(plan(backups, { maxAge: '3d' }).keep).toEqual([]);
    expect(kept(plan(backups, { maxAge: '11d' }))).toEqual({ [id('2026-11-11T00:00Z')]: ['younger than 11d'] });
    // 2026-11-10T00:00Z is exactly 1d12h old at this `now`: not younger than 1d12h.
    expect(Object.keys(kept(plan(backups, { maxAge: '1d12h' }, { now: '2026-11-11T12:00Z' })))).toEqual([id('2026-11-11T00:00Z')]);
    expect(Object.keys(kept(plan(backups, { maxAge: '1d12h1ms' }, { now: '2026-11-11T12:00Z' })))).toEqual([id('2026-11-11T00:00Z'), id('2026-11-10T00:00Z')]);
  });
});

describe('planRetention: combinations, floor, no rules', () => {
  it('rules combine with OR and every reason is listed', () => {
    const backups = series('2026-08-01T02:00Z', 113, DAY); // daily until 2026-11-21
    const pl = plan(backups, { keepLast: 2, keepDaily: 3, keepWeekly: 2, keepMonthly: 2 });
    expect(kept(pl)).toEqual({
      [id('2026-11-21T02:00Z')]: ['last 1/2', 'daily 2026-11-21', 'weekly 2026-W47', 'monthly 2026-11'],
      [id('2026-11-20T02:00Z')]: ['last 2/2', 'daily 2026-11-20'],
      [id('2026-11-19T02:00Z')]: ['daily 2026-11-19'],
      [id('2026-11-15T02:00Z')]: ['weekly 2026-W46'],
      [id('2026-10-31T02:00Z')]: ['monthly 2026-10'],
    });
    expect(pl.remove).toHaveLength(108);
  });

  it('keepWithin measures from the newest backup, maxAge from now', () => {
    const backups = series('2026-11-01T00:00Z', 11, DAY);
    const pl = plan(backups, { keepWithin: '2d', maxAge: '11d' });
    expect(kept(pl)).toEqual({ [id('2026-11-11T00:00Z')]: ['within 2d of newest', 'younger than 11d'], [id('2026-11-10T00:00Z')]: ['within 2d of newest'] });
  });

  it('a backup dated after now is not the keepWithin reference (restic semantics)', () => {
    const backups = [...series('2026-11-01T00:00Z', 11, DAY), at('2026-11-25T00:00Z')];
    const pl = plan(backups, { keepWithin: '3d' });
    expect(Object.keys(kept(pl))).toEqual([id('2026-11-25T00:00Z'), id('2026-11-11T00:00Z'), id('2026-11-10T00:00Z'), id('2026-11-09T00:00Z')]);
    expect(plan(many('2026-12-01T00:00Z', '2026-12-24T00:00Z'), { keepWithin: '1d' }).remove).toEqual([]);
  });

  it('the floor keeps the newest minKeep backups whatever the rules say', () => {
    const backups = series('2026-11-01T00:00Z', 5, DAY);
    const pl = plan(backups, { maxAge: '1h', minKeep: 3 });
    expect(kept(pl)).toEqual({ [id('2026-11-05T00:00Z')]: ['floor: newest 3'], [id('2026-11-04T00:00Z')]: ['floor: newest 3'], [id('2026-11-03T00:00Z')]: ['floor: newest 3'] });
    expect(kept(plan(backups, { keepLast: 1, minKeep: 2 }))).toEqual({ [id('2026-11-05T00:00Z')]: ['last 1/1', 'floor: newest 2'], [id('2026-11-04T00:00Z')]: ['floor: newest 2'] });
    expect(plan(backups, { keepLast: 1, minKeep: 10 }).remove).toEqual([]);
  });

  it.each<[string, Partial<Retention>]>([
    ['only minKeep', { minKeep: 1 }],
    ['only a zone and a grace period', { minKeep: 1, timeZone: 'Europe/Berlin', orphanGracePeriod: '1h' }],
    ['counts and durations of 0 (not set, as in restic)', { minKeep: 1, keepLast: 0, keepDaily: 0, keepWithin: '0s', maxAge: '0d' }],
  ])('no retention rules (%s): everything is kept', (_what, p) => {
    const pl = plan(series('2026-01-01T00:00Z', 4, 40 * DAY), p);
    expect(pl.remove).toEqual([]);
    expect(pl.keep.map((k) => k.reasons)).toEqual([['no retention rules', 'floor: newest 1'], ['no retention rules'], ['no retention rules'], ['no retention rules']]);
  });

  it('many backups in one bucket: the newest wins; at the same instant the greater id', () => {
    const day = series('2026-11-21T00:00Z', 10, HOUR);
    expect(Object.keys(kept(plan(day, { keepDaily: 1 })))).toEqual([id('2026-11-21T09:00Z')]);
    const t = new Date('2026-11-21T00:00Z');
    const same = [{ id: 'a', time: t }, { id: 'c', time: t }, { id: 'b', time: t }];
    expect(plan(same, { keepLast: 1 }).keep.map((k) => k.id)).toEqual(['c']);
    expect(plan(same, { keepDaily: 5 }).keep.map((k) => k.id)).toEqual(['c']);
    expect(plan(same, { keepDaily: 5 }).remove.map((k) => k.id)).toEqual(['b', 'a']);
  });

  it.each<[string, Partial<Retention>]>([
    ['no rules', { minKeep: 1 }],
    ['a typical policy', { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepWithin: '2d', maxAge: '30d', minKeep: 1 }],
  ])('empty input gives an empty plan (%s)', (_what, p) => {
    expect(plan([], p)).toEqual({ keep: [], remove: [] });
  });
});

describe('planRetention: calendar edges', () => {
  // ISO 8601: weeks start on Monday; week 1 holds the year's first Thursday (so always January 4th).
  it.each([
    ['2015-12-28', '2015-W53'], ['2016-01-03', '2015-W53'], ['2016-01-04', '2016-W01'],
    ['2020-12-28', '2020-W53'], ['2020-12-31', '2020-W53'], ['2021-01-01', '2020-W53'], ['2021-01-03', '2020-W53'], ['2021-01-04', '2021-W01'],
    ['2024-12-28', '2024-W52'], ['2024-12-29', '2024-W52'], ['2024-12-30', '2025-W01'], ['2025-01-01', '2025-W01'], ['2025-01-04', '2025-W01'],
    ['2025-12-28', '2025-W52'], ['2025-12-29', '2026-W01'], ['2026-01-01', '2026-W01'], ['2026-01-04', '2026-W01'],
    ['2026-12-28', '2026-W53'], ['2026-12-31', '2026-W53'], ['2027-01-01', '2026-W53'], ['2027-01-03', '2026-W53'], ['2027-01-04', '2027-W01'],
    ['2027-12-28', '2027-W52'], ['2028-01-01', '2027-W52'], ['2028-01-02', '2027-W52'], ['2028-01-03', '2028-W01'], ['2028-01-04', '2028-W01'],
  ])('%s is in ISO week %s', (date, week) => {
    expect(plan([at(`${date}T12:00Z`)], { keepWeekly: 1 }, { now: '2030-01-01T00:00Z' }).keep[0]!.reasons).toEqual([`weekly ${week}`]);
  });

  it.each([2015, 2020, 2024, 2025, 2026, 2027])('across %i/next year, keepWeekly keeps each week’s newest: the Sundays and the newest day', (year) => {
    const backups = series(`${year}-12-24T12:00Z`, 14, DAY); // Dec 24 … Jan 6
    const want = backups.filter((b, i) => b.time.getUTCDay() === 0 || i === backups.length - 1).map((b) => b.id).reverse();
    expect(plan(backups, { keepWeekly: 10 }, { now: `${year + 1}-02-01T00:00Z` }).keep.map((k) => k.id)).toEqual(want);
  });

  it('a week, month and year edge as seen from the configured zone', () => {
    const backups = many('2026-12-31T22:30Z', '2026-12-31T23:30Z');
    const reasons = (tz: string): string[][] => plan(backups, { keepWeekly: 5, keepMonthly: 5, keepYearly: 5 }, { tz, now: '2027-02-01T00:00Z' }).keep.map((k) => k.reasons);
    expect(reasons('UTC')).toEqual([['weekly 2026-W53', 'monthly 2026-12', 'yearly 2026']]);
    // 23:30Z is 00:30 on January 1st in Berlin; still ISO week 2026-W53.
    expect(reasons('Europe/Berlin')).toEqual([['weekly 2026-W53', 'monthly 2027-01', 'yearly 2027'], ['monthly 2026-12', 'yearly 2026']]);
    // Sunday 23:30Z is Monday 00:30 in Berlin: a new ISO week there, the same one in UTC.
    const sunday = many('2027-01-03T22:30Z', '2027-01-03T23:30Z');
    expect(plan(sunday, { keepWeekly: 5 }, { tz: 'Europe/Berlin' }).keep.map((k) => k.reasons)).toEqual([['weekly 2027-W01'], ['weekly 2026-W53']]);
    expect(plan(sunday, { keepWeekly: 5 }, { tz: 'UTC' }).keep.map((k) => k.reasons)).toEqual([['weekly 2026-W53']]);
    // 05:00Z on March 1st is still February 28th in Los Angeles.
    expect(plan(many('2026-03-01T05:00Z'), { keepMonthly: 1, keepDaily: 1 }, { tz: 'America/Los_Angeles' }).keep[0]!.reasons).toEqual(['daily 2026-02-28', 'monthly 2026-02']);
    expect(plan(many('2028-02-29T12:00Z'), { keepMonthly: 1, keepDaily: 1 }).keep[0]!.reasons).toEqual(['daily 2028-02-29', 'monthly 2028-02']);
  });
});

describe('planRetention: DST in Europe/Berlin', () => {
  const berlin = (backups: RetentionCandidate[], p: Partial<Retention>): Record<string, string[]> => kept(plan(backups, p, { tz: 'Europe/Berlin' }));

  it('spring forward (2026-03-29, 02:00 -> 03:00): hourly buckets are real hours, 02:00 does not exist', () => {
    const backups = series('2026-03-28T22:10Z', 10, HOUR / 2); // 22:10Z … 02:40Z
    expect(berlin(backups, { keepHourly: 100 })).toEqual({
      [id('2026-03-29T02:40Z')]: ['hourly 2026-03-29T04:00+02:00'],
      [id('2026-03-29T01:40Z')]: ['hourly 2026-03-29T03:00+02:00'],
      [id('2026-03-29T00:40Z')]: ['hourly 2026-03-29T01:00+01:00'],
      [id('2026-03-28T23:40Z')]: ['hourly 2026-03-29T00:00+01:00'],
      [id('2026-03-28T22:40Z')]: ['hourly 2026-03-28T23:00+01:00'],
    });
  });

  it('spring forward: the 23-hour day is one daily bucket', () => {
    // Local 03-28 23:59, 03-29 00:00, 03-29 23:59 (CEST), 03-30 00:00.
    const backups = many('2026-03-28T22:59Z', '2026-03-28T23:00Z', '2026-03-29T21:59Z', '2026-03-29T22:00Z');
    expect(berlin(backups, { keepDaily: 10 })).toEqual({
      [id('2026-03-29T22:00Z')]: ['daily 2026-03-30'],
      [id('2026-03-29T21:59Z')]: ['daily 2026-03-29'],
      [id('2026-03-28T22:59Z')]: ['daily 2026-03-28'],
    });
    const everyHour = series('2026-03-28T23:30Z', 23, HOUR); // one per real hour of local 03-29
    expect(Object.keys(berlin(everyHour, { keepDaily: 10 }))).toEqual([id('2026-03-29T21:30Z')]);
    expect(Object.keys(berlin(everyHour, { keepHourly: 100 }))).toHaveLength(23);
  });

  it('fall back (2026-10-25, 03:00 -> 02:00): the repeated hour is two hourly buckets', () => {
    const backups = many('2026-10-25T00:15Z', '2026-10-25T00:45Z', '2026-10-25T01:15Z', '2026-10-25T01:45Z', '2026-10-25T02:15Z');
    expect(berlin(backups, { keepHourly: 10 })).toEqual({
      [id('2026-10-25T02:15Z')]: ['hourly 2026-10-25T03:00+01:00'],
      [id('2026-10-25T01:45Z')]: ['hourly 2026-10-25T02:00+01:00'],
      [id('2026-10-25T00:45Z')]: ['hourly 2026-10-25T02:00+02:00'],
    });
    expect(Object.keys(kept(plan(backups, { keepHourly: 10 })))).toEqual([id('2026-10-25T02:15Z'), id('2026-10-25T01:45Z'), id('2026-10-25T00:45Z')]);
  });

  it('fall back: the 25-hour day is one daily bucket', () => {
    // Local 10-24 23:59 (CEST), 10-25 00:00 (CEST), 10-25 23:59 (CET), 10-26 00:00.
    const backups = many('2026-10-24T21:59Z', '2026-10-24T22:00Z', '2026-10-25T22:59Z', '2026-10-25T23:00Z');
    expect(berlin(backups, { keepDaily: 10 })).toEqual({
      [id('2026-10-25T23:00Z')]: ['daily 2026-10-26'],
      [id('2026-10-25T22:59Z')]: ['daily 2026-10-25'],
      [id('2026-10-24T21:59Z')]: ['daily 2026-10-24'],
    });
    const everyHour = series('2026-10-24T22:30Z', 25, HOUR); // one per real hour of local 10-25
    expect(Object.keys(berlin(everyHour, { keepDaily: 10 }))).toEqual([id('2026-10-25T22:30Z')]);
    expect(Object.keys(berlin(everyHour, { keepHourly: 100 }))).toHaveLength(25);
  });
});

/** A direct restic-style reference: one luxon conversion per backup and rule, labels by luxon's own formatter. */
function referencePlan(backups: RetentionCandidate[], p: Retention, zone: string): Map<string, string[]> {
  const formats: Record<Period, string> = { hourly: "yyyy-MM-dd'T'HH':00'ZZ", daily: 'yyyy-MM-dd', weekly: "kkkk-'W'WW", monthly: 'yyyy-MM', yearly: 'yyyy' };
  const counts: Record<Period, number> = { hourly: p.keepHourly ?? 0, daily: p.keepDaily ?? 0, weekly: p.keepWeekly ?? 0, monthly: p.keepMonthly ?? 0, yearly: p.keepYearly ?? 0 };
  const sorted = [...backups].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1));
  const out = new Map<string, string[]>(sorted.map((b) => [b.id, []]));
  for (const period of PERIODS) {
    const seen = new Set<string>();
    for (const b of sorted) {
      if (seen.size >= counts[period]) break;
      const label = DateTime.fromJSDate(b.time, { zone }).toFormat(formats[period]);
      if (!seen.has(label)) out.get(b.id)!.push(`${period} ${label}`);
      seen.add(label);
    }
  }
  return out;
}

describe('planRetention: invariants', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Santiago', 'Pacific/Chatham'];

  it.each(zones)('calendar rules match a per-backup reference and every backup is planned once (%s)', (zone) => {
    const rnd = random(zone.length * 7919);
    for (let round = 0; round < 25; round++) {
      const n = Math.floor(rnd() * 300);
      const span = [2 * DAY, 60 * DAY, 3 * 365 * DAY][round % 3]!;
      const start = Date.parse('2025-09-01T00:00Z');
      const backups = Array.from({ length: n }, (_, i) => ({ id: `b${i}`, time: new Date(start + Math.floor(rnd() * span)) }));
      const pick = (max: number): number | undefined => (rnd() < 0.6 ? Math.floor(rnd() * max) : undefined);
      const p = policy({ keepHourly: pick(40), keepDaily: pick(20), keepWeekly: pick(10), keepMonthly: pick(8), keepYearly: pick(4), keepLast: pick(5), minKeep: Math.floor(rnd() * 3) });
      const pl = planRetention(backups, p, new Date(start + span), { timeZone: zone });

      const ids = [...pl.keep.map((k) => k.id), ...pl.remove.map((r) => r.id)];
      expect(new Set(ids).size).toBe(n);
      expect(ids).toHaveLength(n);
      for (const list of [pl.keep, pl.remove]) {
        for (let i = 1; i < list.length; i++) expect(list[i - 1]!.time.getTime()).toBeGreaterThanOrEqual(list[i]!.time.getTime());
      }
      expect(pl.keep.every((k) => k.reasons.length > 0)).toBe(true);

      const calendarOnly = (rs: string[]): string[] => rs.filter((r) => PERIODS.some((x) => r.startsWith(`${x} `)));
      const reference = referencePlan(backups, p, zone);
      const got = new Map(pl.keep.map((k) => [k.id, calendarOnly(k.reasons)]));
      for (const [bid, want] of reference) expect(got.get(bid) ?? [], `${zone} round ${round} ${bid}`).toEqual(want);

      const shuffled = [...backups].sort(() => rnd() - 0.5);
      expect(planRetention(shuffled, p, new Date(start + span), { timeZone: zone })).toEqual(pl);
    }
  });

  it('the zone comes from opts, then the policy, then UTC', () => {
    const backups = many('2026-11-20T23:30Z');
    const reasons = (p: Partial<Retention>, tz?: string): string[] => plan(backups, { keepDaily: 1, ...p }, { tz }).keep[0]!.reasons;
    expect(reasons({})).toEqual(['daily 2026-11-20']);
    expect(reasons({ timeZone: 'Europe/Berlin' })).toEqual(['daily 2026-11-21']);
    expect(reasons({ timeZone: 'Europe/Berlin' }, 'America/New_York')).toEqual(['daily 2026-11-20']);
  });

  it.each<[string, Partial<Retention>, string]>([
    ['an unknown zone', { keepDaily: 1, timeZone: 'Mars/Olympus' }, 'retention.timeZone'],
    ['a bad keepWithin', { keepWithin: 'soon' }, 'retention.keepWithin'],
    ['a bad maxAge', { maxAge: '7 days' }, 'retention.maxAge'],
    ['a negative count', { keepDaily: -1 }, 'retention.keepDaily'],
    ['a fractional count', { keepLast: 1.5 }, 'retention.keepLast'],
  ])('rejects %s with CONFIG_INVALID naming the field', (_what, p, path) => {
    expect(() => plan(many('2026-11-21T00:00Z'), p)).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID', details: { path } }) as Error);
  });

  it('rejects duplicate ids and invalid times (a caller bug) with INTERNAL', () => {
    const t = new Date('2026-11-21T00:00Z');
    expect(() => plan([{ id: 'a', time: t }, { id: 'a', time: t }], { keepLast: 1 })).toThrowError(expect.objectContaining({ code: 'INTERNAL' }) as Error);
    expect(() => plan([{ id: 'a', time: new Date('nope') }], { keepLast: 1 })).toThrowError(expect.objectContaining({ code: 'INTERNAL' }) as Error);
  });
});

describe('planRetention: golden files (UPDATE_GOLDEN=1 rewrites test/unit/golden/retention/)', () => {
  it.each(Object.entries(GOLDEN))('%s', (name, c) => {
    const pl = planRetention(c.backups, c.policy, new Date(c.now), c.timeZone === undefined ? {} : { timeZone: c.timeZone });
    expectGolden(`retention/${name}.json`, {
      description: c.description,
      now: c.now,
      timeZone: c.timeZone ?? null,
      policy: c.policy,
      backups: c.backups.map((b) => ({ id: b.id, time: b.time.toISOString() })),
      ...(planJson(pl) as object),
    });
  });
});
