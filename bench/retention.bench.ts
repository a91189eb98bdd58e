/**
 * Retention planning speed: one backup every 10 minutes for ~2 years
 * (100,000 backups) against a typical GFS policy, with 10,000 for comparison.
 * Prints medians and the 100k/10k ratio next to the n·log n ratio (12.5);
 * never asserts times.
 *
 *   BENCH_RUNS=7 npx tsx bench/retention.bench.ts
 */
import type { Retention } from '../api/runner-config.js';
import { planRetention, type RetentionCandidate } from '../runner/retention/policy.js';
import { fmt, median } from './lib.js';

const runs = Number(process.env.BENCH_RUNS ?? 7);
const STEP_MS = 10 * 60_000;
const NOW = Date.parse('2026-11-21T12:00:00Z');
const policy: Retention = { keepLast: 24, keepDaily: 30, keepWeekly: 12, keepMonthly: 24, keepYearly: 5, minKeep: 1, orphanGracePeriod: '24h' };

/** `n` backups, the newest 5 minutes before now, oldest first (as a listing returns them). */
function backups(n: number): RetentionCandidate[] {
  return Array.from({ length: n }, (_, i) => {
    const time = new Date(NOW - 5 * 60_000 - (n - 1 - i) * STEP_MS);
    return { id: `b${String(i).padStart(7, '0')}`, time };
  });
}

function timePlan(input: RetentionCandidate[], p: Retention, timeZone: string): { ms: number; kept: number } {
  planRetention(input, p, new Date(NOW), { timeZone }); // warm-up
  const times: number[] = [];
  let kept = 0;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    kept = planRetention(input, p, new Date(NOW), { timeZone }).keep.length;
    times.push(performance.now() - t0);
  }
  return { ms: median(times), kept };
}

const small = backups(10_000);
const large = backups(100_000);
const spanDays = (100_000 * STEP_MS) / 86_400_000;
console.log(`retention plan, median of ${runs} runs; 100,000 backups span ${fmt(spanDays, 0)} days`);
console.log(`policy: ${JSON.stringify(policy)}`);
const variants: [string, Retention][] = [
  ['typical', policy],
  ['typical + keepHourly 10000', { ...policy, keepHourly: 10_000 }],
];
for (const [name, p] of variants) {
  for (const zone of ['UTC', 'Europe/Berlin']) {
    const a = timePlan(small, p, zone);
    const b = timePlan(large, p, zone);
    console.log(
      `${name.padEnd(27)} ${zone.padEnd(14)} 10k: ${fmt(a.ms, 1).padStart(7)} ms (${a.kept} kept)   100k: ${fmt(b.ms, 1).padStart(7)} ms (${b.kept} kept)   ratio ${fmt(b.ms / a.ms, 1)} (n log n: 12.5, n: 10)`,
    );
  }
}
