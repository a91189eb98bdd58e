import { BackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RestoreTargetOutcome } from './types.js';

/** Pure: what a failed restore left in the target, as a sentence for the error message. */
export function describeTargetOutcome(t: RestoreTargetOutcome): string {
  switch (t.state) {
    case 'unchanged':
      return `database "${t.database}" is unchanged${t.detail ? ` (${t.detail})` : ''}`;
    case 'dropped':
      return `database "${t.database}" was created for this restore and dropped again`;
    case 'emptied':
      return `database "${t.database}" held no data before and what the failed restore wrote was removed: it is empty again`;
    case 'partial':
      return `database "${t.database}" is NOT as it was: ${t.detail ?? 'the restore replaced part of it before it failed'}; restore a backup into it again with --force`;
    case 'left':
      return `database "${t.database}" was created for this restore and could NOT be dropped (${t.dropError ?? 'unknown error'}); drop it with: ${t.dropCommand ?? ''}`;
  }
}

/** The same error, with the target's state in its message and in `details.target`. */
export function withOutcome(err: BackupError, target: RestoreTargetOutcome): BackupError {
  return new BackupError(err.code, `${err.message}; ${describeTargetOutcome(target)}`, {
    cause: err.cause ?? err,
    details: { ...err.details, target },
    retryable: err.retryable,
  });
}

/** Throws ABORTED when `signal` has fired, before an engine starts anything. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new BackupError('ABORTED', 'operation aborted', { cause: signal.reason });
}

/** The refusal to restore into a database that holds data without --force (TARGET_NOT_EMPTY); `server` is host:port. */
export function targetNotEmpty(database: string, server: string): BackupError {
  return new BackupError(
    'TARGET_NOT_EMPTY',
    `database "${database}" on ${server} already holds data; restoring into it would mix the backup with that data. ` +
      'Use --force to replace the objects the backup contains (other objects are kept), or restore into another database.',
    { details: { database } },
  );
}

/**
 * Drops a database an engine created for a restore that then failed (`drop`), and says whether it is gone:
 * `dropped`, or `left` with the command that drops it by hand. Never throws: the restore's error stays the error.
 */
export async function dropCreatedDatabase(database: string, drop: () => Promise<unknown>, dropCommand: string, log: Logger): Promise<RestoreTargetOutcome> {
  try {
    await drop();
    log.info({ target: database }, 'dropped the database created for the failed restore');
    return { database, state: 'dropped' };
  } catch (err) {
    log.error({ err, target: database, dropCommand }, 'could not drop the database created for the failed restore; drop it by hand');
    return { database, state: 'left', dropCommand, dropError: toBackupError(err, 'DB_QUERY_FAILED').message };
  }
}
