/**
 * Grandfather-father-son retention as a pure function: backups, policy and
 * `now` in, a plan out (which backups to keep, each with every reason, and
 * which to remove). Semantics follow restic `forget`:
 *
 * - Backups are taken newest first (same instant: the greater id first).
 * - keepLast N keeps the N newest.
 * - keepHourly/Daily/Weekly/Monthly/Yearly N keep the newest backup of each of
 *   the N most recent buckets that hold a backup; a period without a backup
 *   uses no count. Buckets are calendar units in the resolved time zone (see
 *   buckets.ts).
 * - keepWithin D keeps every backup taken less than D before the newest
 *   backup; a backup dated after `now` (clock skew) is never the reference.
 * - maxAge D keeps every backup taken less than D before `now`.
 * - The rules combine with OR. The floor keeps the newest `minKeep` backups
 *   whatever the rules say. With no rule set at all, everything is kept.
 *
 * Invariants: every candidate appears exactly once, in `keep` or `remove`;
 * both lists are newest first; a kept backup has at least one reason, a
 * removed one has none. Nothing here reads the clock.
 */
import { BackupError } from '../errors.js';
import type { Retention } from '../../api/runner-config.js';
import { CalendarCounter } from './calendar.js';
import { resolveRules, type Rules } from './rules.js';

export interface RetentionCandidate {
  id: string;
  /** The backup's consistency instant. */
  time: Date;
}

export interface KeptBackup {
  id: string;
  time: Date;
  /** Every rule that keeps this backup, e.g. `daily 2026-11-21`, `floor: newest 1`. */
  reasons: string[];
}

export interface RemovedBackup {
  id: string;
  time: Date;
}

export interface RetentionPlan {
  /** Newest first. */
  keep: KeptBackup[];
  /** Newest first. */
  remove: RemovedBackup[];
}

export interface PlanOptions {
  /** Zone of the calendar buckets; overrides policy.timeZone (default UTC). */
  timeZone?: string;
}

export const NO_RULES_REASON = 'no retention rules';

/** Copies and sorts newest first; rejects invalid times and duplicate ids (a caller bug). */
function newestFirst(backups: readonly RetentionCandidate[]): RetentionCandidate[] {
  const ids = new Set<string>();
  const entries = backups.map((b) => {
    const t = b.time.getTime();
    if (Number.isNaN(t)) throw new BackupError('INTERNAL', `retention: backup ${b.id} has an invalid time`);
    if (ids.has(b.id)) throw new BackupError('INTERNAL', `retention: backup ${b.id} is listed twice`);
    ids.add(b.id);
    return { t, b };
  });
  entries.sort((x, y) => y.t - x.t || (x.b.id < y.b.id ? 1 : x.b.id > y.b.id ? -1 : 0));
  return entries.map((e) => e.b);
}

/** The instant keepWithin measures from: the newest backup not dated after `now`. */
function withinReference(sorted: readonly RetentionCandidate[], now: number): number | undefined {
  return sorted.find((b) => b.time.getTime() <= now)?.time.getTime();
}

/**
 * Returns a function giving the reasons to keep the i-th backup (newest
 * first). It must be called for i = 0, 1, 2, … in order: the calendar rules
 * count buckets as they go.
 */
function reasoner(rules: Rules, sorted: readonly RetentionCandidate[], now: number): (b: RetentionCandidate, i: number) => string[] {
  const calendar = new CalendarCounter(rules.periods, rules.timeZone);
  const reference = rules.within ? withinReference(sorted, now) : undefined;
  // No backup at or before `now`: as in restic, every backup counts as within.
  const withinFrom = rules.within ? (reference === undefined ? -Infinity : reference - rules.within.ms) : undefined;
  const maxAgeFrom = rules.maxAge ? now - rules.maxAge.ms : undefined;

  return (b, i) => {
    const t = b.time.getTime();
    const reasons: string[] = [];
    if (rules.empty) reasons.push(NO_RULES_REASON);
    if (i < rules.last) reasons.push(`last ${i + 1}/${rules.last}`);
    reasons.push(...calendar.reasons(b.time));
    if (withinFrom !== undefined && t > withinFrom) reasons.push(`within ${rules.within!.text} of newest`);
    if (maxAgeFrom !== undefined && t > maxAgeFrom) reasons.push(`younger than ${rules.maxAge!.text}`);
    if (i < rules.minKeep) reasons.push(`floor: newest ${rules.minKeep}`);
    return reasons;
  };
}

/**
 * Plans retention for the complete backups of one location. Throws
 * CONFIG_INVALID for a bad policy or zone, INTERNAL for bad candidates.
 */
export function planRetention(backups: readonly RetentionCandidate[], policy: Readonly<Retention>, now: Date, opts: PlanOptions = {}): RetentionPlan {
  const rules = resolveRules(policy, opts);
  if (Number.isNaN(now.getTime())) throw new BackupError('INTERNAL', 'retention: `now` is an invalid time');
  const sorted = newestFirst(backups);
  const reasonsOf = reasoner(rules, sorted, now.getTime());
  const plan: RetentionPlan = { keep: [], remove: [] };
  sorted.forEach((b, i) => {
    const reasons = reasonsOf(b, i);
    if (reasons.length > 0) plan.keep.push({ id: b.id, time: b.time, reasons });
    else plan.remove.push({ id: b.id, time: b.time });
  });
  return plan;
}
