/**
 * Carries out a retention plan in one location.
 *
 * Invariants:
 * - Only backups in `plan.remove` are touched; a plan that lists an id both
 *   to keep and to remove is refused before anything is deleted.
 * - A backup's manifest is deleted FIRST: from that moment the backup no
 *   longer exists for list, restore and retention, even if deleting its data
 *   then fails. If the manifest cannot be deleted the backup is left whole
 *   and reported as failed.
 * - Only keys of the exact layout (`[backups/]<backupId>/<known file>`, and
 *   in layout 2 a server-side backup's `server/<path>` with no nested
 *   manifest, in the directory the listing found the backup's manifest in)
 *   are deleted; anything else nested deeper is left alone, and a backup
 *   whose directory the caller does not name is not touched.
 * - Data left behind after the manifest is gone is an orphan: it is logged,
 *   not failed, and the sweeper removes it later.
 * - Removal goes oldest first, so an interrupted run leaves the newest
 *   backups. Between backups an aborted signal stops the run with ABORTED.
 * - A dry run reads and deletes nothing; it reports what would be removed.
 */
import { BackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Location } from '../runtime.js';
import { MANIFEST_FILE, keyIn, parseKey } from '../storage/layout.js';
import { checkBackupId, deleteKeys, listKeys, throwIfAborted } from './objects.js';
import type { RemovedBackup, RetentionPlan } from './policy.js';

export { retentionCandidates, type LocationCandidates } from './candidates.js';
export { sweepOrphans, type SweepOptions, type SweepResult, type Orphan } from './sweep.js';

export interface ApplyOptions {
  dryRun: boolean;
  /** The directory of each backup in this location, by id, as the listing found its manifest (retentionCandidates' `dirs`). */
  dirs: ReadonlyMap<string, string>;
  signal?: AbortSignal;
  logger: Logger;
}

export interface RemovalOutcome {
  id: string;
  time: Date;
  /** `planned`: dry run; `deleted`: the manifest is gone; `failed`: the backup is untouched. */
  status: 'planned' | 'deleted' | 'failed';
  /** Data objects that could not be deleted after the manifest was (orphans for the sweeper). */
  leftover: number;
  error?: BackupError;
}

export interface ApplyResult {
  location: string;
  dryRun: boolean;
  /** Newest first, as in the plan. */
  outcomes: RemovalOutcome[];
  /** Ids deleted (or, in a dry run, that would be). */
  removed: string[];
  /** Ids whose removal failed; these backups still exist. */
  failed: string[];
}

function checkPlan(plan: RetentionPlan): void {
  const kept = new Set(plan.keep.map((k) => k.id));
  for (const r of plan.remove) {
    checkBackupId(r.id);
    if (kept.has(r.id)) throw new BackupError('INTERNAL', `retention plan both keeps and removes backup ${r.id}`, { details: { backup: r.id } });
  }
}

/** Deletes the backup's data after its manifest is gone; returns how many objects were left. */
async function deleteData(location: Location, id: string, dir: string, signal: AbortSignal | undefined, log: Logger): Promise<number> {
  let keys: string[];
  try {
    // Only the backup's own files: a key nested deeper (another runner's prefix) is not this backup's data, but for a server-side backup's server/ objects.
    keys = (await listKeys(location.storage, dir, signal)).filter((k) => parseKey(location.scope, k)?.dir === dir);
  } catch (err) {
    log.warn({ err: toBackupError(err, 'STORAGE_FAILED') }, 'backup removed, but its data could not be listed; the orphan sweeper will remove it');
    return 1;
  }
  const failures = await deleteKeys(location.storage, keys, signal);
  if (failures.length > 0) {
    log.warn({ err: failures[0]!.error, objects: failures.length }, 'backup removed, but some of its data could not be deleted; the orphan sweeper will remove it');
  }
  return failures.length;
}

async function removeOne(location: Location, b: RemovedBackup, opts: ApplyOptions): Promise<RemovalOutcome> {
  const log = opts.logger.child({ backup: b.id });
  if (opts.dryRun) {
    log.info({ consistentAt: b.time.toISOString() }, 'would remove backup (dry run)');
    return { id: b.id, time: b.time, status: 'planned', leftover: 0 };
  }
  const dir = opts.dirs.get(b.id);
  if (!dir) {
    const error = new BackupError('INTERNAL', `retention: no directory known for backup ${b.id} in ${location.name}; it is kept whole`, { details: { backup: b.id } });
    log.error({ err: error }, 'backup not removed');
    return { id: b.id, time: b.time, status: 'failed', leftover: 0, error };
  }
  try {
    await location.storage.delete(keyIn(dir, MANIFEST_FILE), { signal: opts.signal });
  } catch (err) {
    const error = toBackupError(err, 'STORAGE_FAILED');
    log.warn({ err: error }, 'could not delete the manifest; the backup is kept whole');
    return { id: b.id, time: b.time, status: 'failed', leftover: 0, error };
  }
  const leftover = await deleteData(location, b.id, dir, opts.signal, log);
  log.info({ consistentAt: b.time.toISOString(), leftover }, 'removed backup');
  return { id: b.id, time: b.time, status: 'deleted', leftover };
}

export async function applyRetention(location: Location, plan: RetentionPlan, opts: ApplyOptions): Promise<ApplyResult> {
  checkPlan(plan);
  const outcomes: RemovalOutcome[] = [];
  for (const b of [...plan.remove].reverse()) {
    throwIfAborted(opts.signal, `retention in ${location.name}`);
    outcomes.push(await removeOne(location, b, opts));
  }
  outcomes.reverse();
  return {
    location: location.name,
    dryRun: opts.dryRun,
    outcomes,
    removed: outcomes.filter((o) => o.status !== 'failed').map((o) => o.id),
    failed: outcomes.filter((o) => o.status === 'failed').map((o) => o.id),
  };
}
