/**
 * Calendar buckets of an instant in a time zone, computed by luxon.
 *
 * A bucket is named by a label; two instants share a bucket exactly when their
 * labels are equal:
 * - hourly  `2026-10-25T02:00+02:00`: the local hour together with its UTC
 *   offset, so every real hour is its own bucket (the hour repeated when DST
 *   ends is two buckets; the hour skipped when it starts does not exist);
 * - daily   `2026-10-25`: the local calendar day, 23 or 25 hours long on DST days;
 * - weekly  `2026-W53`: the ISO week (Monday start) with its ISO week-year, so
 *   2027-01-01 belongs to 2026-W53 and 2025-12-29 to 2026-W01;
 * - monthly `2026-11`, yearly `2026`: the local calendar month and year.
 */
import { DateTime } from 'luxon';
import type { Period } from './rules.js';

const pad = (n: number, width = 2): string => String(Math.abs(n)).padStart(width, '0');

function offsetText(minutes: number): string {
  return `${minutes < 0 ? '-' : '+'}${pad(Math.trunc(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

const LABEL: Record<Period, (d: DateTime) => string> = {
  hourly: (d) => `${pad(d.year, 4)}-${pad(d.month)}-${pad(d.day)}T${pad(d.hour)}:00${offsetText(d.offset)}`,
  daily: (d) => `${pad(d.year, 4)}-${pad(d.month)}-${pad(d.day)}`,
  weekly: (d) => `${pad(d.weekYear, 4)}-W${pad(d.weekNumber)}`,
  monthly: (d) => `${pad(d.year, 4)}-${pad(d.month)}`,
  yearly: (d) => pad(d.year, 4),
};

/** The instant as seen in `zone` (a zone already checked by resolveRules). */
export function localTime(time: Date, zone: string): DateTime {
  return DateTime.fromMillis(time.getTime(), { zone });
}

export function bucketLabel(local: DateTime, period: Period): string {
  return LABEL[period](local);
}
