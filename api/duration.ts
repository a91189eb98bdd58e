/**
 * Durations in human units, everywhere: `90s`, `15m`, `36h`, `7d`, `2w`, or
 * combinations such as `1d12h`. Never nanoseconds.
 */
export const DURATION_PATTERN = '^(\\d+(ms|s|m|h|d|w))+$';
const PART = /(\d+)(ms|s|m|h|d|w)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses a duration to milliseconds, or returns undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (!new RegExp(DURATION_PATTERN).test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms;
}

/** Formats milliseconds in the largest units that divide it, e.g. 129600000 -> `1d12h`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
