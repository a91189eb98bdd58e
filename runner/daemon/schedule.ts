/**
 * When scheduled backups are due: pure functions of the schedule and the
 * instants passed in. Nothing here reads the clock.
 *
 * Cron semantics. A cron expression names wall-clock times in
 * `schedule.timeZone`; each named wall-clock time gives one slot:
 * - a wall time that exists once runs at that instant;
 * - a wall time skipped by a spring-forward change (02:30 in Europe/Berlin on
 *   the last Sunday of March) runs at the instant of the change (03:00 local
 *   summer time); several skipped wall times share that one slot;
 * - a wall time repeated by a fall-back change (02:30 twice in Europe/Berlin on
 *   the last Sunday of October) runs at its first occurrence only.
 * So `30 2 * * *` runs exactly once on both change days. The price: an
 * every-ten-minutes expression pauses during the repeated hour; an `interval`
 * schedule is the choice for a steady cadence in elapsed time.
 * Day-of-month and day-of-week must both match (node-cron's reading).
 *
 * Invariant: the mapping from wall time to slot instant is non-decreasing, so
 * the slots form one well-defined ordered set of instants, and `nextRun` and
 * `missedRun` agree about it whatever instant they start from.
 */
import { DateTime, IANAZone } from 'luxon';
import cron from 'node-cron';
import { expandCron, type Schedule } from '../../api/runner-config.js';
import { parseDuration } from '../../api/duration.js';
import { BackupError } from '../errors.js';

/**
 * The next slot strictly after `after`.
 * - cron: the next slot of the expression in `schedule.timeZone`; `lastRun`
 *   is not used.
 * - interval: slots lie on the grid `lastRun + k * interval` (k >= 1), so the
 *   interval is the time between backups and a late start does not shift the
 *   grid; without a last run the grid starts at `after` (the first backup is
 *   one interval after the daemon's first start).
 * Never at or before `after`.
 */
export function nextRun(schedule: Schedule, after: Date, lastRun?: Date): Date {
  const plan = planOf(schedule);
  if (plan.kind === 'cron') return nextCronTime(plan.expr, schedule.timeZone, after);
  const anchor = (lastRun ?? after).getTime();
  const k = Math.max(1, Math.floor((after.getTime() - anchor) / plan.ms) + 1);
  return new Date(anchor + k * plan.ms);
}

/**
 * The most recent slot in (lastRun, now], or undefined when there is none.
 * A daemon that was down across several slots gets one slot back, so it runs
 * once at start, not once per missed slot. Without a last run nothing counts
 * as missed: a fresh daemon has no schedule it fell behind on, and the first
 * backup follows the schedule like every other.
 */
export function missedRun(schedule: Schedule, lastRun: Date | undefined, now: Date): Date | undefined {
  if (lastRun === undefined || now.getTime() <= lastRun.getTime()) return undefined;
  const plan = planOf(schedule);
  if (plan.kind === 'interval') {
    const k = Math.floor((now.getTime() - lastRun.getTime()) / plan.ms);
    return k >= 1 ? new Date(lastRun.getTime() + k * plan.ms) : undefined;
  }
  const next = (t: number): number => nextCronTime(plan.expr, schedule.timeZone, new Date(t)).getTime();
  const end = now.getTime();
  // Invariants: `slot` is a slot <= now; no slot lies in (hi, now]. Each
  // round halves hi - slot or returns, and slots are at least 1s apart, so
  // this ends after about log2((now - lastRun) / slot spacing) rounds.
  let slot = next(lastRun.getTime());
  if (slot > end) return undefined;
  let hi = end;
  for (;;) {
    const following = next(slot);
    if (following > end) return new Date(slot);
    slot = following;
    const mid = slot + Math.floor((hi - slot) / 2);
    const probe = next(mid);
    if (probe <= end) slot = probe;
    else hi = mid;
  }
}

/** How far ahead `longestGap` looks at a cron schedule: a year, or this many slots if they come first. */
export const GAP_HORIZON_MS = 366 * 86_400_000;
export const GAP_MAX_SLOTS = 2_000;

/**
 * The longest time (ms) a healthy runner may go without starting a backup:
 * for an interval schedule the interval, for a cron schedule the longest
 * time between two consecutive slots in the year after `from` (or its next
 * GAP_MAX_SLOTS slots, which for an expression every 5 minutes still span a
 * week, so nights and weekends are seen; at most about 0.5 s of CPU), and at
 * least the time between its next two slots, plus the jitter either way.
 * Alerts compare the age of the newest backup with it.
 */
export function longestGap(schedule: Schedule, from: Date): number {
  const plan = planOf(schedule);
  const jitter = schedule.jitter === undefined ? 0 : (parseDuration(schedule.jitter) ?? 0);
  if (plan.kind === 'interval') return plan.ms + jitter;
  const end = from.getTime() + GAP_HORIZON_MS;
  let slot = nextCronTime(plan.expr, schedule.timeZone, from).getTime();
  let longest = 0;
  for (let i = 0; i < GAP_MAX_SLOTS && (i === 0 || slot <= end); i++) {
    const following = nextCronTime(plan.expr, schedule.timeZone, new Date(slot)).getTime();
    longest = Math.max(longest, following - slot);
    slot = following;
  }
  return longest + jitter;
}

/** A random delay in [0, jitter) ms to add to a slot; 0 without jitter. */
export function jitterDelay(schedule: Schedule, random: () => number): number {
  const ms = schedule.jitter === undefined ? 0 : (parseDuration(schedule.jitter) ?? 0);
  if (ms <= 0) return 0;
  return Math.min(ms - 1, Math.max(0, Math.floor(random() * ms)));
}

type Plan = { kind: 'cron'; expr: string } | { kind: 'interval'; ms: number };

function planOf(schedule: Schedule): Plan {
  if (schedule.cron !== undefined && schedule.interval === undefined) return { kind: 'cron', expr: expandCron(schedule.cron) };
  const ms = schedule.interval === undefined ? undefined : parseDuration(schedule.interval);
  if (schedule.cron === undefined && ms !== undefined && ms > 0) return { kind: 'interval', ms };
  throw new BackupError('CONFIG_INVALID', 'schedule: set exactly one of cron, interval (a positive duration)', {
    details: { cron: schedule.cron, interval: schedule.interval },
  });
}

// ---------------------------------------------------------------------------
// The cron calculator. Only `nextCronTime` is used above; it is the one place
// that would change to use another cron library.
//
// Calendar matching runs in "wall-clock space": wall times written as if they
// were UTC instants, where no day has a gap or a repeat. node-cron matches
// there (time zone UTC) and luxon maps each wall time to its instant in the
// real zone, applying the DST rules above.

/**
 * The first slot of `expr` (5 fields, 6 with seconds first, or a macro such as @daily) read in the IANA
 * zone `timeZone` that lies strictly after `after`. Slots are whole seconds.
 */
export function nextCronTime(cronExpr: string, timeZone: string, after: Date): Date {
  const expr = expandCron(cronExpr);
  const zone = zoneOf(timeZone);
  const afterMs = after.getTime();
  let wall = wallOf(afterMs, zone);
  // Inside the second pass of a repeated hour, every wall time up to the end
  // of the repeat maps to its first occurrence, at or before `after`: start
  // the search from the end of the repeat.
  const occurrences = DateTime.fromMillis(afterMs, { zone }).getPossibleOffsets().map((d) => d.toMillis());
  const first = Math.min(...occurrences);
  if (first < afterMs) {
    const change = changeInstant(zone, first, afterMs);
    wall = wallOf(change + (afterMs - first), zone) - 1;
  }
  // Otherwise the wall time of `after` maps to `after` itself. With the
  // mapping non-decreasing, the first later wall time that matches gives the
  // slot; the loop only guards that invariant.
  for (;;) {
    wall = nextWallMatch(expr, wall);
    const at = wallToInstant(wall, zone);
    if (at > afterMs) return new Date(at);
  }
}

function zoneOf(timeZone: string): IANAZone {
  const zone = IANAZone.create(timeZone);
  if (!zone.isValid) throw new BackupError('CONFIG_INVALID', `schedule.timeZone: "${timeZone}" is not an IANA time zone`);
  return zone;
}

/** The wall time of an instant, written as a UTC instant. */
function wallOf(instant: number, zone: IANAZone): number {
  return DateTime.fromMillis(instant, { zone }).setZone('utc', { keepLocalTime: true }).toMillis();
}

/** The instant of a wall time: the change instant inside a gap, the first occurrence inside a repeat. */
function wallToInstant(wall: number, zone: IANAZone): number {
  const local = DateTime.fromMillis(wall, { zone: 'utc' }).setZone(zone, { keepLocalTime: true });
  const shifted = local.setZone('utc', { keepLocalTime: true }).toMillis();
  if (shifted === wall) return Math.min(...local.getPossibleOffsets().map((d) => d.toMillis()));
  // In a gap luxon reads the wall time with the offset from before the change,
  // landing in [change, change + gap).
  const landed = local.toMillis();
  const gap = shifted - wall;
  return gap > 0 && zone.offset(landed - gap) !== zone.offset(landed) ? changeInstant(zone, landed - gap, landed) : landed;
}

/** The first instant in (lo, hi] at hi's offset, given that lo's offset differs (one change in between). */
function changeInstant(zone: IANAZone, lo: number, hi: number): number {
  const target = zone.offset(hi);
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (zone.offset(mid) === target) hi = mid;
    else lo = mid;
  }
  return hi;
}

// --- node-cron adapter --------------------------------------------------------
// node-cron 4.6's public API computes next runs only from the real current
// time (`getNextRun`, `getNextRuns` read `new Date()`). Its task object holds a
// `timeMatcher` whose `getNextMatch(date)` returns the first match strictly
// after any date (at second resolution); this adapter uses that one method.
// It is verified against node-cron 4.6.x (see test/unit/schedule.test.ts) and
// fails loudly if the shape changes.

interface WallMatcher {
  getNextMatch(date: Date): Date;
}

const MATCHER_CACHE_SIZE = 32;
const matchers = new Map<string, WallMatcher>();

function nextWallMatch(expr: string, wall: number): number {
  try {
    return wallMatcher(expr).getNextMatch(new Date(wall)).getTime();
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError('CONFIG_INVALID', `schedule.cron: "${expr}" never matches or is not valid: ${(err as Error).message}`, { cause: err });
  }
}

function wallMatcher(expr: string): WallMatcher {
  const cached = matchers.get(expr);
  if (cached) return cached;
  const task = cron.createTask(expr, () => undefined, { timezone: 'UTC' });
  // The task is never started; destroying it drops it from node-cron's registry.
  const inner = (task as unknown as { timeMatcher?: Partial<WallMatcher> }).timeMatcher;
  void task.destroy();
  if (typeof inner?.getNextMatch !== 'function') {
    throw new BackupError('INTERNAL', 'node-cron no longer exposes timeMatcher.getNextMatch; the cron adapter needs updating');
  }
  const matcher = inner as WallMatcher;
  if (matchers.size >= MATCHER_CACHE_SIZE) matchers.clear();
  matchers.set(expr, matcher);
  return matcher;
}
