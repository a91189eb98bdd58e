/**
 * Incomplete multipart uploads (S3, MinIO, Ceph) left by interrupted
 * backups: their parts are invisible to listings and cost storage until
 * aborted.
 *
 * Invariants:
 * - Only uploads whose key is of the runner's exact layout under its own
 *   database prefix (`<backupId>/<known file>`, layout.ts classifyKey) are
 *   aborted; any other upload under the prefix (another runner's nested
 *   prefix) is counted as foreign and left alone.
 * - Only uploads initiated strictly before `olderThan` are aborted; one
 *   without an initiation time counts as young (a backup may be writing it).
 * - A backend without the optional calls has nothing to do here (undefined);
 *   a server that lacks ListMultipartUploads is reported as unsupported, not
 *   as a failure: the bucket needs a lifecycle rule
 *   (AbortIncompleteMultipartUpload) instead.
 * - A dry run aborts nothing.
 */
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Location } from '../runtime.js';
import { classifyKey, databasePrefix } from '../storage/layout.js';
import type { IncompleteUpload } from '../storage/types.js';
import { throwIfAborted } from './objects.js';

export interface MultipartSweep {
  /** False when the server does not support listing incomplete uploads; `note` says what to do instead. */
  supported: boolean;
  note?: string;
  /** Uploads aborted (in a dry run: that would be). */
  aborted: number;
  /** Own uploads younger than the grace period, left alone. */
  young: number;
  /** Uploads under the prefix that are not of the runner's layout, left alone. */
  foreign: number;
  /** Own uploads whose abort failed; the next sweep tries again. */
  failed: { key: string; error: BackupError }[];
}

export async function abortStaleUploads(location: Location, opts: { olderThan: Date; dryRun: boolean; signal?: AbortSignal; logger: Logger }): Promise<MultipartSweep | undefined> {
  const storage = location.storage;
  if (!storage.listIncompleteUploads || !storage.abortIncompleteUpload) return undefined;
  const result: MultipartSweep = { supported: true, aborted: 0, young: 0, foreign: 0, failed: [] };
  const stale: IncompleteUpload[] = [];
  try {
    for await (const u of storage.listIncompleteUploads(databasePrefix(location.scope), { signal: opts.signal })) {
      const kind = classifyKey(location.scope, u.key).kind;
      if (kind !== 'backup' && kind !== 'wal') result.foreign++;
      else if (!u.initiated || u.initiated.getTime() >= opts.olderThan.getTime()) result.young++;
      else stale.push(u);
    }
  } catch (err) {
    if (!isBackupError(err, 'STORAGE_UNSUPPORTED')) throw err;
    const note = `incomplete multipart uploads cannot be listed here (${err.message}); add a bucket lifecycle rule (AbortIncompleteMultipartUpload) to remove them`;
    opts.logger.info({ location: location.name }, note);
    return { ...result, supported: false, note };
  }
  for (const u of stale) {
    throwIfAborted(opts.signal, `multipart sweep in ${location.name}`);
    const fields = { key: u.key, uploadId: u.uploadId, initiated: u.initiated?.toISOString() };
    if (opts.dryRun) {
      opts.logger.info(fields, 'would abort an incomplete multipart upload (dry run)');
      result.aborted++;
      continue;
    }
    try {
      await storage.abortIncompleteUpload(u.key, u.uploadId, { signal: opts.signal });
      opts.logger.info(fields, 'aborted an incomplete multipart upload');
      result.aborted++;
    } catch (err) {
      const error = toBackupError(err, 'STORAGE_FAILED');
      opts.logger.warn({ ...fields, err: error }, 'could not abort an incomplete multipart upload; the next sweep tries again');
      result.failed.push({ key: u.key, error });
    }
  }
  return result;
}
