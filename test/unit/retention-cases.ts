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
