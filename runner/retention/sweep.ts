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
 * - Only keys of the exact layout are ever deleted:
 *   `<prefix>/<ns>/<name>/[backups/]<backupId>/<known file>` (layout.ts
 *   classifyKey); orphans are grouped by backup directory.
 *   Anything else under the database prefix is foreign (another runner whose
 *   prefix nests inside this one, or an object someone planted): left alone
 *   and reported once (log line and metric, storage/foreign.ts).
 * - A backup directory holding a manifest at ANY depth is never touched, and
 *   neither is one holding any foreign key.
 */
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Location } from '../runtime.js';
import { type ForeignObjects, processForeignObjects } from '../storage/foreign.js';
import { MANIFEST_FILE, classifyKey, databasePrefix, keyIn } from '../storage/layout.js';
import { deleteKeys, throwIfAborted } from './objects.js';

export interface SweepOptions {
  gracePeriodMs: number;
  now: Date;
  dryRun: boolean;
  signal?: AbortSignal;
  logger: Logger;
  /** Where foreign keys are reported; the process's tracker by default. */
  foreign?: ForeignObjects;
}

export interface Orphan {
  /** The backup id (directory name) the objects lie under. */
  id: string;
  /** The backup directory (ending in `/`). */
  dir: string;
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
  /** Keys under the database prefix that are not of the runner's layout: never deleted. */
  foreign: number;
  /** Backup directories left whole because they hold foreign keys (a nested manifest among them or not). */
  shielded: string[];
}

interface Group extends Orphan {
  keys: string[];
  hasManifest: boolean;
  /** Holds keys that are not of the runner's layout (e.g. another runner's nested prefix). */
  hasForeign: boolean;
  undated: boolean;
}

/** The backup id of a backup directory (its last segment). */
const idOf = (dir: string): string => dir.slice(0, -1).split('/').pop()!;

async function groupByBackup(location: Location, opts: SweepOptions): Promise<{ groups: Group[]; foreign: number }> {
  const groups = new Map<string, Group>();
  const group = (dir: string): Group => {
    let g = groups.get(dir);
    if (!g) groups.set(dir, (g = { id: idOf(dir), dir, objects: 0, bytes: 0, keys: [], hasManifest: false, hasForeign: false, undated: false }));
    return g;
  };
  const tracker = opts.foreign ?? processForeignObjects;
  let foreign = 0;
  for await (const obj of location.storage.list(databasePrefix(location.scope), { signal: opts.signal })) {
    const c = classifyKey(location.scope, obj.key);
    // The WAL archive is the WAL archiver's and retention's, never an orphan of a backup.
    if (c.kind === 'outside' || c.kind === 'wal') continue;
    if (c.kind === 'foreign') {
      foreign++;
      tracker.note(location.name, obj.key, c.reason, opts.logger);
      if (c.group !== undefined) {
        const g = group(c.group);
        g.hasForeign = true;
        if (c.nestedManifest) g.hasManifest = true;
      }
      continue;
    }
    const g = group(c.dir);
    g.keys.push(obj.key);
    g.objects++;
    g.bytes += obj.size;
    if (c.file === MANIFEST_FILE) g.hasManifest = true;
    if (!obj.modifiedAt) g.undated = true;
    else if (!g.newest || obj.modifiedAt > g.newest) g.newest = obj.modifiedAt;
  }
  return { groups: [...groups.values()], foreign };
}

const orphanOf = (g: Group): Orphan => ({ id: g.id, dir: g.dir, objects: g.objects, bytes: g.bytes, ...(g.undated || !g.newest ? {} : { newest: g.newest }) });

/** Looks the manifest up again right before deleting; a lookup error keeps the orphan for the next sweep. */
async function manifestNow(location: Location, dir: string, signal?: AbortSignal): Promise<'absent' | 'present' | BackupError> {
  try {
    await location.storage.stat(keyIn(dir, MANIFEST_FILE), { signal });
    return 'present';
  } catch (err) {
    return isBackupError(err, 'STORAGE_NOT_FOUND') ? 'absent' : toBackupError(err, 'STORAGE_FAILED');
  }
}

export async function sweepOrphans(location: Location, opts: SweepOptions): Promise<SweepResult> {
  const result: SweepResult = { location: location.name, dryRun: opts.dryRun, removed: [], young: [], failed: [], foreign: 0, shielded: [] };
  if (!Number.isFinite(opts.gracePeriodMs) || opts.gracePeriodMs < 0) {
    throw new BackupError('CONFIG_INVALID', `orphan grace period must be a duration >= 0, not ${opts.gracePeriodMs} ms`, { details: { path: 'retention.orphanGracePeriod' } });
  }
  if (Number.isNaN(opts.now.getTime())) throw new BackupError('INTERNAL', 'orphan sweep: `now` is an invalid time');
  const cutoff = opts.now.getTime() - opts.gracePeriodMs;
  const { groups, foreign } = await groupByBackup(location, opts);
  result.foreign = foreign;
  for (const g of groups) {
    if (g.hasManifest) continue;
    if (g.hasForeign) {
      opts.logger.debug({ backup: g.id }, 'backup directory holds foreign objects; left whole');
      result.shielded.push(g.dir);
      continue;
    }
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
    const manifest = await manifestNow(location, g.dir, opts.signal);
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
