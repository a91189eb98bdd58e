/**
 * The calendar rules (keepHourly … keepYearly) as one counter that is fed
 * backups newest first.
 *
 * Invariants:
 * - A rule keeps a backup when the backup is the first one met (so the
 *   newest) in a bucket not seen before, and the rule still has count left;
 *   buckets without a backup are never met, so they use no count.
 * - Once a rule's count is used up it is never consulted again.
 * - Each rule remembers where the bucket of the last backup it looked at
 *   starts. A backup at or after that instant (and, fed newest first, not
 *   after the last one) lies in the same bucket, so no calendar work is done
 *   for it: one luxon conversion per bucket change, not per backup. This
 *   relies on a bucket being one stretch of time. Hourly buckets (an hour
 *   with its offset) always are; a day is split only by a clock change that
 *   jumps back across midnight, which no current zone rule does
 *   (America/St_Johns did, by one minute, until 2011: a backup in that
 *   minute counts with the day around it).
 */
import type { DateTimeUnit } from 'luxon';
import { BackupError } from '../errors.js';
import { bucketLabel, localTime } from './buckets.js';
import type { Period } from './rules.js';

const UNIT: Record<Period, DateTimeUnit> = { hourly: 'hour', daily: 'day', weekly: 'week', monthly: 'month', yearly: 'year' };

interface RuleState {
  period: Period;
  remaining: number;
  seen: Set<string>;
  /** Start (ms) of the bucket of the last backup looked at; +Infinity before the first. */
  bucketStart: number;
}

export class CalendarCounter {
  private readonly rules: RuleState[];
  private lastTime = Infinity;

  constructor(
    periods: readonly { period: Period; count: number }[],
    private readonly zone: string,
  ) {
    this.rules = periods.map(({ period, count }) => ({ period, remaining: count, seen: new Set(), bucketStart: Infinity }));
  }

  /** Reasons such as `daily 2026-11-21` for the next backup; call newest first. */
  reasons(time: Date): string[] {
    const t = time.getTime();
    if (t > this.lastTime) throw new BackupError('INTERNAL', 'retention: backups must be counted newest first');
    this.lastTime = t;
    const out: string[] = [];
    let local;
    for (const rule of this.rules) {
      if (rule.remaining === 0 || t >= rule.bucketStart) continue;
      local ??= localTime(time, this.zone);
      const label = bucketLabel(local, rule.period);
      const start = local.startOf(UNIT[rule.period]);
      // Skipping relies on the start lying in the same bucket; otherwise look at every backup of it.
      rule.bucketStart = bucketLabel(start, rule.period) === label ? Math.min(start.toMillis(), t) : t;
      if (rule.seen.has(label)) continue;
      rule.seen.add(label);
      rule.remaining--;
      out.push(`${rule.period} ${label}`);
    }
    return out;
  }
}
