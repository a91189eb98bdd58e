/** Inputs shared by the retention policy tests, the golden files and the benchmark. */
import type { Retention } from '../../api/runner-config.js';
import type { RetentionCandidate, RetentionPlan } from '../../runner/retention/policy.js';

/** A policy with nothing set but what is given; minKeep 0 (no floor) unless given. */
export function policy(p: Partial<Retention> = {}): Retention {
  return { minKeep: 0, orphanGracePeriod: '24h', ...p };
}

/** A candidate whose id is its instant, e.g. `2026-11-21T10:15:00Z`. */
export function at(iso: string): RetentionCandidate {
  const time = new Date(iso);
  return { id: time.toISOString().replace('.000Z', 'Z'), time };
}

export const many = (...isos: string[]): RetentionCandidate[] => isos.map(at);

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Backups from `from` on, `stepMs` apart, each moved by up to ±jitterMs; oldest first. */
export function series(from: string, count: number, stepMs: number, jitterMs = 0, seed = 1): RetentionCandidate[] {
  const rnd = random(seed);
  const start = Date.parse(from);
  return Array.from({ length: count }, (_, i) => at(new Date(start + i * stepMs + Math.round((rnd() * 2 - 1) * jitterMs)).toISOString()));
}

/** The plan as plain JSON: ISO times, for golden files and readable diffs. */
export function planJson(plan: RetentionPlan): unknown {
  return {
    keep: plan.keep.map((k) => ({ id: k.id, time: k.time.toISOString(), reasons: k.reasons })),
    remove: plan.remove.map((r) => ({ id: r.id, time: r.time.toISOString() })),
  };
}

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export interface GoldenCase {
  description: string;
  now: string;
  timeZone?: string;
  policy: Retention;
  backups: RetentionCandidate[];
}

/** The golden-file cases (test/unit/golden/retention/<name>.json). */
export const GOLDEN: Record<string, GoldenCase> = {
  'gfs-utc': {
    description: 'three years of irregular backups (every 2-6 days), then hourly ones for the last two days; a typical GFS policy',
    now: '2026-11-21T12:00:00.000Z',
    policy: policy({ keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 3, minKeep: 1 }),
    backups: [...series('2023-11-01T03:00Z', 272, 4 * DAY, 1.9 * DAY, 11), ...series('2026-11-19T12:00Z', 48, HOUR, 0, 12)],
  },
  'berlin-spring-forward': {
    description: 'a backup every hour for two days around 2026-03-29 in Europe/Berlin: local 02:00-03:00 does not exist, the day has 23 hours',
    now: '2026-03-30T00:00:00.000Z',
    timeZone: 'Europe/Berlin',
    policy: policy({ keepHourly: 30, keepDaily: 5, minKeep: 1 }),
    backups: series('2026-03-28T00:30Z', 48, HOUR),
  },
  'berlin-fall-back': {
    description: 'a backup every hour for two days around 2026-10-25 in Europe/Berlin: local 02:00-03:00 happens twice (two hourly buckets), the day has 25 hours',
    now: '2026-10-26T00:00:00.000Z',
    timeZone: 'Europe/Berlin',
    policy: policy({ keepHourly: 30, keepDaily: 5, minKeep: 1 }),
    backups: series('2026-10-24T00:30Z', 48, HOUR),
  },
  'iso-week-year-edges': {
    description: 'a daily backup from Dec 24 to Jan 8 around two ISO years with 53 weeks (2020, 2026)',
    now: '2027-02-01T00:00:00.000Z',
    policy: policy({ keepWeekly: 10, keepMonthly: 4, keepYearly: 4, minKeep: 1 }),
    backups: [...series('2020-12-24T12:00Z', 16, DAY), ...series('2026-12-24T12:00Z', 16, DAY)],
  },
  'within-maxage-floor': {
    description: 'keepWithin from the newest backup (one backup dated after now is ignored as reference), maxAge from now, monthly, and a floor of 3',
    now: '2026-11-21T12:00:00.000Z',
    policy: policy({ keepWithin: '5d', maxAge: '14d', keepMonthly: 2, minKeep: 3 }),
    backups: [...series('2026-09-20T06:00Z', 20, 2.5 * DAY, 0.8 * DAY, 21), at('2026-11-22T09:00Z')],
  },
  'sparse-gaps-kolkata': {
    description: 'clusters of backups separated by weeks without any, in Asia/Kolkata (+05:30): empty periods use no count',
    now: '2026-11-21T12:00:00.000Z',
    timeZone: 'Asia/Kolkata',
    policy: policy({ keepDaily: 5, keepWeekly: 5, keepMonthly: 5, keepYearly: 2, minKeep: 1 }),
    backups: [...series('2025-06-01T18:00Z', 6, 7 * HOUR), ...series('2026-02-10T18:15Z', 5, 11 * HOUR), ...series('2026-08-30T17:45Z', 8, 13 * HOUR), ...series('2026-11-20T10:00Z', 4, 5 * HOUR)],
  },
  'no-rules': {
    description: 'no keep rule set: everything is kept, the newest also by the floor',
    now: '2026-11-21T12:00:00.000Z',
    policy: policy({ minKeep: 1, timeZone: 'Europe/Berlin', orphanGracePeriod: '12h' }),
    backups: series('2026-01-15T00:00Z', 6, 45 * DAY, 5 * DAY, 31),
  },
};
