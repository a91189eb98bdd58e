/**
 * Objects under a database prefix that the runner did not write (see
 * layout.ts classifyKey). They are never deleted; each is reported once per
 * key per process (a warn log line), and counted per location for the
 * backup_runner_foreign_objects metric.
 *
 * Memory is bounded: at most MAX_TRACKED keys are remembered per location;
 * past that, further keys are neither logged nor counted (one warn line says so).
 */
import type { Logger } from '../logger.js';

export const MAX_TRACKED = 10_000;

export class ForeignObjects {
  private readonly seen = new Map<string, Set<string>>();

  /** Logs `key` the first time this process sees it in `location`; returns whether it was new. */
  note(location: string, key: string, reason: string, logger: Logger): boolean {
    let keys = this.seen.get(location);
    if (!keys) this.seen.set(location, (keys = new Set()));
    if (keys.has(key) || keys.size > MAX_TRACKED) return false;
    if (keys.size === MAX_TRACKED) {
      keys.add(''); // marks the overflow, so this line is written once
      logger.warn({ location, tracked: MAX_TRACKED }, 'more foreign objects under the database prefix than are tracked; further ones are not logged');
      return false;
    }
    keys.add(key);
    logger.warn({ location, key, reason }, 'foreign object under the database prefix: not written by this runner; left alone');
    return true;
  }

  /** Distinct foreign keys seen in `location` so far. */
  count(location: string): number {
    return Math.min(this.seen.get(location)?.size ?? 0, MAX_TRACKED);
  }

  locations(): string[] {
    return [...this.seen.keys()];
  }
}

/** The process's tracker: one report per key per process, whichever operation saw it. */
export const processForeignObjects = new ForeignObjects();
