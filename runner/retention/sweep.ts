/**
 * The orphan sweeper: removes the data of backups that never got a manifest
 * (crashed or aborted runs) or whose data outlived their manifest (a removal
 * that failed half way).
 *
 * Invariants:
 * - A backup directory that holds a manifest is never touched.
 * - An orphan is removed only when its newest object is older than the grace
 *   period (strictly): a backup in progress writes its data before its
 *   manifest and must be left alone. An object without a modification time
 *   counts as new.
 * - Right before deleting, the manifest is looked up once more: a backup that
 *   completed since the listing is left alone, and so is one whose manifest
 *   cannot be looked up.
 * - Objects directly under the database prefix (not in a backup directory)
 *   are not backups and are left alone.
 */
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Location } from '../runtime.js';
import { MANIFEST_FILE, databasePrefix, manifestKey, parseKey } from '../storage/layout.js';
import { deleteKeys, throwIfAborted } from './objects.js';

export interface SweepOptions {
  gracePeriodMs: number;
  now: Date;
  dryRun: boolean;
  signal?: AbortSignal;
  logger: Logger;
}

export interface Orphan {
  /** The backup id (directory name) the objects lie under. */
  id: string;
  objects: number;
  bytes: number;
  /** Modification time of its newest object, when every object has one. */
  newest?: Date;
}

export interface SweepResult {
  location: string;
  dryRun: boolean;
  /** Orphans deleted (or, in a dry run, that would be). */
  removed: Orphan[];
  /** Orphans younger than the grace period (possibly backups in progress), left alone. */
  young: Orphan[];
  /** Orphans that could not be deleted entirely; the next sweep tries again. */
  failed: (Orphan & { error: BackupError })[];
}

interface Group extends Orphan {
  keys: string[];
  hasManifest: boolean;
  undated: boolean;
}

async function groupByBackup(location: Location, signal?: AbortSignal): Promise<Group[]> {
  const groups = new Map<string, Group>();
  for await (const obj of location.storage.list(databasePrefix(location.scope), { signal })) {
    const parsed = parseKey(location.scope, obj.key);
    if (!parsed) continue;
    let g = groups.get(parsed.backupId);
    if (!g) groups.set(parsed.backupId, (g = { id: parsed.backupId, objects: 0, bytes: 0, keys: [], hasManifest: false, undated: false }));
    g.keys.push(obj.key);
    g.objects++;
    g.bytes += obj.size;
    if (parsed.file === MANIFEST_FILE) g.hasManifest = true;
    if (!obj.modifiedAt) g.undated = true;
    else if (!g.newest || obj.modifiedAt > g.newest) g.newest = obj.modifiedAt;
  }
  return [...groups.values()];
}

const orphanOf = (g: Group): Orphan => ({ id: g.id, objects: g.objects, bytes: g.bytes, ...(g.undated || !g.newest ? {} : { newest: g.newest }) });

/** Looks the manifest up again right before deleting; a lookup error keeps the orphan for the next sweep. */
async function manifestNow(location: Location, id: string, signal?: AbortSignal): Promise<'absent' | 'present' | BackupError> {
  try {
    await location.storage.stat(manifestKey(location.scope, id), { signal });
    return 'present';
  } catch (err) {
    return isBackupError(err, 'STORAGE_NOT_FOUND') ? 'absent' : toBackupError(err, 'STORAGE_FAILED');
  }
}

export async function sweepOrphans(location: Location, opts: SweepOptions): Promise<SweepResult> {
  const result: SweepResult = { location: location.name, dryRun: opts.dryRun, removed: [], young: [], failed: [] };
  if (!Number.isFinite(opts.gracePeriodMs) || opts.gracePeriodMs < 0) {
    throw new BackupError('CONFIG_INVALID', `orphan grace period must be a duration >= 0, not ${opts.gracePeriodMs} ms`, { details: { path: 'retention.orphanGracePeriod' } });
  }
  if (Number.isNaN(opts.now.getTime())) throw new BackupError('INTERNAL', 'orphan sweep: `now` is an invalid time');
  const cutoff = opts.now.getTime() - opts.gracePeriodMs;
  for (const g of await groupByBackup(location, opts.signal)) {
    if (g.hasManifest) continue;
    const orphan = orphanOf(g);
    if (!orphan.newest || orphan.newest.getTime() >= cutoff) {
      result.young.push(orphan);
      continue;
    }
    throwIfAborted(opts.signal, `orphan sweep in ${location.name}`);
    const log = opts.logger.child({ backup: g.id });
    if (opts.dryRun) {
      log.info({ objects: g.objects, bytes: g.bytes, newest: orphan.newest.toISOString() }, 'would remove orphaned data (dry run)');
      result.removed.push(orphan);
      continue;
    }
    const manifest = await manifestNow(location, g.id, opts.signal);
    if (manifest === 'present') {
      log.debug('backup completed since the listing; not an orphan');
      continue;
    }
    const failures = manifest === 'absent' ? await deleteKeys(location.storage, g.keys, opts.signal) : [];
    const error = manifest === 'absent' ? failures[0]?.error : manifest;
    if (error) {
      log.warn({ err: error, failedObjects: failures.length }, 'orphaned data not removed; the next sweep tries again');
      result.failed.push({ ...orphan, error });
    } else {
      log.info({ objects: g.objects, bytes: g.bytes, newest: orphan.newest.toISOString() }, 'removed orphaned data');
      result.removed.push(orphan);
    }
  }
  return result;
}
