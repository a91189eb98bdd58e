/**
 * The retention candidates of one location: its complete backups, read from
 * their manifests (a backup without a manifest does not exist).
 *
 * Invariants:
 * - A listing failure throws: retention must never plan on a partial view.
 * - Manifests are read through runner/catalog.ts: one that cannot be read,
 *   is invalid or does not match where it lies (id, namespace, name) is
 *   reported as a problem and is not a candidate, so retention never removes
 *   it; its data is not an orphan either (the sweeper sees its manifest key).
 * - A future-dated manifest is not a candidate either (it would count as the
 *   newest backup and push real ones out of the policy); it is returned in
 *   `future` and never removed.
 * - A candidate's id is the backup's directory name; `dirs` names the
 *   directory removal deletes in (format 1 or 2 layout).
 */
import { scanLocation, type FutureEntry } from '../catalog.js';
import type { BackupError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Location } from '../runtime.js';
import type { RetentionCandidate } from './policy.js';

export interface LocationCandidates {
  /** Oldest first, as listed. */
  candidates: RetentionCandidate[];
  /** The directory of each candidate, by id (what removal deletes in: ApplyOptions.dirs). */
  dirs: Map<string, string>;
  /** Manifests that could not be used. */
  problems: { key: string; error: BackupError }[];
  /** Future-dated manifests: never candidates. */
  future: FutureEntry[];
}

export async function retentionCandidates(location: Location, opts: { signal?: AbortSignal; now?: Date; logger?: Logger } = {}): Promise<LocationCandidates> {
  const c = await scanLocation(location, { now: opts.now ?? new Date(), logger: opts.logger ?? silentLogger(), ...(opts.signal ? { signal: opts.signal } : {}) });
  const candidates = c.entries
    .map((e) => ({ id: e.id, time: new Date(e.manifest.consistentAt) }))
    .sort((a, b) => a.time.getTime() - b.time.getTime() || (a.id < b.id ? -1 : 1));
  return { candidates, dirs: new Map(c.entries.map((e) => [e.id, e.dir])), problems: c.problems, future: c.future };
}
