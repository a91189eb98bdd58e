/**
 * Storage steps shared by retention and the orphan sweeper.
 *
 * Invariants:
 * - `deleteKeys` never throws for one key: each failure is returned, so a
 *   caller can delete what it can and report the rest. It stops starting new
 *   deletions once `signal` is aborted (the remaining keys are returned as
 *   failed with ABORTED).
 * - A backup id is used as one key segment; `checkBackupId` rejects anything
 *   that is not a well-formed backup id (runner/backup-id.ts), so nothing can
 *   widen a prefix to other backups (empty, `/`, `.`, `..`).
 */
import { isBackupId } from '../backup-id.js';
import { BackupError, toBackupError } from '../errors.js';
import type { Storage } from '../storage/types.js';
import { mapLimit } from '../util/async.js';

/** Deletions in flight at once per location. */
export const DELETE_CONCURRENCY = 8;

export interface KeyFailure {
  key: string;
  error: BackupError;
}

export async function deleteKeys(storage: Storage, keys: readonly string[], signal?: AbortSignal): Promise<KeyFailure[]> {
  const results = await mapLimit(keys, DELETE_CONCURRENCY, async (key): Promise<KeyFailure | undefined> => {
    if (signal?.aborted) return { key, error: new BackupError('ABORTED', `delete ${key} not started: aborted`) };
    try {
      await storage.delete(key, { signal });
      return undefined;
    } catch (err) {
      return { key, error: toBackupError(err, 'STORAGE_FAILED') };
    }
  });
  return results.filter((r): r is KeyFailure => r !== undefined);
}

/** Keys under `prefix`, in listing order. Throws the listing's error. */
export async function listKeys(storage: Storage, prefix: string, signal?: AbortSignal): Promise<string[]> {
  const keys: string[] = [];
  for await (const obj of storage.list(prefix, { signal })) keys.push(obj.key);
  return keys;
}

export function checkBackupId(id: string): void {
  if (!isBackupId(id)) {
    throw new BackupError('INTERNAL', `retention: ${JSON.stringify(id)} is not a backup id`, { details: { backup: id } });
  }
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new BackupError('ABORTED', `${what} aborted`, { cause: signal.reason });
}
