import { pipeline } from 'node:stream/promises';
import { BackupError, toBackupError } from '../errors.js';
import { algorithmForSuffix, decompress } from '../pipeline/compression.js';
import { DigestStream } from '../pipeline/digest.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { objectKey } from '../storage/layout.js';
import { everyInterval, linkedAbort } from '../util/async.js';
import { type ListedBackup, listBackups } from './list.js';
import { type Selector, selectBackup } from './select.js';
import { type ObjectCheck, checkObject } from './verify.js';

export interface RestoreRequest {
  selector: Selector;
  /** Defaults to the configured database. */
  targetDatabase?: string;
  force: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

export interface RestoreResult {
  backup: ListedBackup;
  database: string;
  /** The location the data was read from. */
  location: string;
  /** Locations tried first whose copy failed verification. */
  skipped: ObjectCheck[];
}

/** The first location (config order) whose copy verifies; nothing touches the database before this. */
async function findVerifiedCopy(rt: Runtime, backup: ListedBackup, req: RestoreRequest): Promise<{ loc: Location; skipped: ObjectCheck[] }> {
  const skipped: ObjectCheck[] = [];
  const object = backup.manifest.objects[0]!;
  for (const name of backup.locations) {
    const loc = rt.locations.find((l) => l.name === name)!;
    const check = await checkObject(loc, backup.manifest, object, req);
    if (check.status === 'ok') return { loc, skipped };
    rt.logger.warn({ location: name, backupId: backup.id, status: check.status, err: check.error }, 'copy failed verification; trying the next location');
    skipped.push(check);
  }
  throw new BackupError('INTEGRITY', `no location holds an intact copy of backup ${backup.id}: ${skipped.map((s) => `${s.location} ${s.status}${s.error ? ` (${s.error.message})` : ''}`).join('; ')}`, {
    details: { backupId: backup.id, checks: skipped.map((s) => ({ location: s.location, status: s.status })) },
  });
}

/**
 * Restores a backup. Order of safety: choose the backup, refuse a target
 * holding data unless forced, verify a copy end to end (size and sha256)
 * before anything is written, then stream it into the engine's restore,
 * hashing again on the way so a copy changed since verification fails the
 * restore instead of completing it.
 */
export async function runRestore(rt: Runtime, req: RestoreRequest): Promise<RestoreResult> {
  const log = rt.logger.child({ op: 'restore' });
  const listing = await listBackups(rt, req);
  for (const p of listing.problems) log.warn({ location: p.location, err: p.error }, 'location could not be read while choosing the backup');
  const backup = selectBackup(listing.backups, req.selector);
  const database = req.targetDatabase ?? rt.engine.database;
  log.info({ backupId: backup.id, consistentAt: backup.manifest.consistentAt, database }, 'restore selected backup');

  const target = await rt.engine.inspectTarget(database, req);
  if (target.hasData && !req.force) {
    throw new BackupError('TARGET_NOT_EMPTY', `database "${database}" already holds data; nothing was changed. Re-run with --force to replace its objects, or restore into another database with --target-database`, {
      details: { database },
    });
  }

  const { loc, skipped } = await findVerifiedCopy(rt, backup, req);
  const object = backup.manifest.objects[0]!;
  const key = objectKey(loc.scope, backup.id, object.name);
  const abort = linkedAbort(req.signal);
  const digest = new DigestStream({ size: object.size, sha256: object.sha256, what: `${loc.name}: ${key}` });
  const ticker = everyInterval(1000, () => req.onProgress?.({ phase: 'restore', bytesIn: digest.bytes, total: object.size, location: loc.name }));
  try {
    const body = await loc.storage.get(key, { signal: abort.signal });
    const download = pipeline(body, digest, { signal: abort.signal });
    const plain = decompress(digest, algorithmForSuffix(object.name), abort.signal);
    const restored = rt.engine.restore(plain.output, { database, force: req.force, signal: abort.signal });
    // Any stage failing stops the others, so the engine never commits a partial stream.
    const stages = [download, plain.done, restored].map((p) => p.catch((err: unknown) => {
      abort.abort(err);
      throw err;
    }));
    const results = await Promise.allSettled(stages);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof BackupError && r.reason.code === 'ABORTED'));
    const first = failed ?? results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (first) throw toBackupError(first.reason, 'RESTORE_FAILED');
  } finally {
    ticker.stop();
    abort.dispose();
  }
  log.info({ backupId: backup.id, database, location: loc.name }, 'restore finished');
  return { backup, database, location: loc.name, skipped };
}
