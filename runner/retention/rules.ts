/**
 * A retention policy checked once and reduced to what the planner needs.
 *
 * Invariants:
 * - A count of 0 and a duration of 0 mean "not set", as in restic: such a rule
 *   keeps nothing and does not count as a rule for the "no rules" case.
 * - Every duration is exact elapsed time (`7d` is 168 hours, also across a
 *   DST change); only the calendar buckets follow the time zone.
 * - The zone is resolved as opts.timeZone, then policy.timeZone, then UTC.
 */
import { IANAZone } from 'luxon';
import { parseDuration } from '../../api/duration.js';
import type { Retention } from '../../api/runner-config.js';
import { BackupError } from '../errors.js';

/** Calendar rules, finest first; the order of reasons on a kept backup follows it. */
export const PERIODS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type Period = (typeof PERIODS)[number];

const COUNT_FIELD = {
  hourly: 'keepHourly',
  daily: 'keepDaily',
  weekly: 'keepWeekly',
  monthly: 'keepMonthly',
  yearly: 'keepYearly',
} as const satisfies Record<Period, keyof Retention>;

export interface TimeRule {
  ms: number;
  /** The duration as the policy wrote it, for reasons. */
  text: string;
}

export interface Rules {
  /** keepLast; 0 when not set. */
  last: number;
  /** The calendar rules that are set (count > 0), finest first. */
  periods: { period: Period; count: number }[];
  within?: TimeRule;
  maxAge?: TimeRule;
  /** The floor: the newest `minKeep` backups are always kept (0: no floor). */
  minKeep: number;
  timeZone: string;
  /** No keep rule at all is set: the plan keeps everything. */
  empty: boolean;
}

function invalid(field: string, message: string): BackupError {
  return new BackupError('CONFIG_INVALID', `retention.${field} ${message}`, { details: { path: `retention.${field}` } });
}

function count(policy: Readonly<Retention>, field: keyof Retention): number {
  const v = policy[field] as unknown;
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(field, `must be a whole number >= 0, not ${JSON.stringify(v)}`);
  return v;
}

function duration(policy: Readonly<Retention>, field: 'keepWithin' | 'maxAge'): TimeRule | undefined {
  const text = policy[field];
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined) throw invalid(field, `must be a duration such as 36h, 7d or 2w, not ${JSON.stringify(text)}`);
  return ms > 0 ? { ms, text } : undefined;
}

/** Checks the policy and resolves its zone; throws CONFIG_INVALID naming the field. */
export function resolveRules(policy: Readonly<Retention>, opts: { timeZone?: string } = {}): Rules {
  const timeZone = opts.timeZone ?? policy.timeZone ?? 'UTC';
  if (!IANAZone.isValidZone(timeZone)) throw invalid('timeZone', `"${timeZone}" is not an IANA time zone (e.g. UTC, Europe/Berlin)`);
  const last = count(policy, 'keepLast');
  const periods = PERIODS.map((period) => ({ period, count: count(policy, COUNT_FIELD[period]) })).filter((p) => p.count > 0);
  const within = duration(policy, 'keepWithin');
  const maxAge = duration(policy, 'maxAge');
  const minKeep = policy.minKeep === undefined ? 1 : count(policy, 'minKeep');
  const empty = last === 0 && periods.length === 0 && within === undefined && maxAge === undefined;
  return { last, periods, within, maxAge, minKeep, timeZone, empty };
}
