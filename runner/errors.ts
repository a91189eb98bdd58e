/**
 * The one table of typed errors. Callers branch on `code`, never on message
 * text. Each code fixes the CLI exit code and whether a retry can help.
 */
import { CodedError, type CodedErrorOptions } from '../api/errors.js';

export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  PARTIAL: 3,
  NOT_FOUND: 4,
  REFUSED: 5,
  INTEGRITY: 6,
  BUSY: 7,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const table = {
  USAGE: { exit: EXIT.USAGE, retryable: false },
  CONFIG_INVALID: { exit: EXIT.USAGE, retryable: false },
  SECRET_UNREADABLE: { exit: EXIT.USAGE, retryable: false },
  TOOL_MISSING: { exit: EXIT.FAILED, retryable: false },
  TOOL_TOO_OLD: { exit: EXIT.FAILED, retryable: false },
  /** A dump tool of another database flavor than the server's (e.g. MySQL's mysqldump against MariaDB). */
  TOOL_INCOMPATIBLE: { exit: EXIT.FAILED, retryable: false },
  DB_UNREACHABLE: { exit: EXIT.FAILED, retryable: true },
  DB_AUTH_FAILED: { exit: EXIT.FAILED, retryable: false },
  DB_NOT_FOUND: { exit: EXIT.FAILED, retryable: false },
  DB_QUERY_FAILED: { exit: EXIT.FAILED, retryable: false },
  DUMP_FAILED: { exit: EXIT.FAILED, retryable: false },
  RESTORE_FAILED: { exit: EXIT.FAILED, retryable: false },
  PROCESS_FAILED: { exit: EXIT.FAILED, retryable: false },
  TARGET_NOT_EMPTY: { exit: EXIT.REFUSED, retryable: false },
  /** The restore's target (a data directory) has too little free space for what the backup holds. */
  TARGET_NO_SPACE: { exit: EXIT.REFUSED, retryable: false },
  /** A replication slot a WAL sender streams from (`active`): never dropped while it does. */
  SLOT_ACTIVE: { exit: EXIT.REFUSED, retryable: true },
  STORAGE_NOT_FOUND: { exit: EXIT.NOT_FOUND, retryable: false },
  STORAGE_BUCKET_MISSING: { exit: EXIT.FAILED, retryable: false },
  STORAGE_DENIED: { exit: EXIT.FAILED, retryable: false },
  STORAGE_NO_SPACE: { exit: EXIT.FAILED, retryable: false },
  STORAGE_UNAVAILABLE: { exit: EXIT.FAILED, retryable: true },
  STORAGE_FAILED: { exit: EXIT.FAILED, retryable: false },
  /** The server lacks an optional call (e.g. ListMultipartUploads on s3rver). */
  STORAGE_UNSUPPORTED: { exit: EXIT.FAILED, retryable: false },
  BACKUP_NOT_FOUND: { exit: EXIT.NOT_FOUND, retryable: false },
  NO_BACKUP_BEFORE_TIME: { exit: EXIT.NOT_FOUND, retryable: false },
  NO_BACKUPS: { exit: EXIT.NOT_FOUND, retryable: false },
  /** A point-in-time recovery to an instant the WAL archive does not reach (after its last stored WAL, or past a gap). */
  OUTSIDE_RECOVERY_WINDOW: { exit: EXIT.NOT_FOUND, retryable: false },
  /** restore --start: the server started on the restored directory stopped before it promoted (its log says why). */
  RECOVERY_FAILED: { exit: EXIT.FAILED, retryable: false },
  // A location could not be listed or a manifest read: the backup asked for may be there (restore refuses to guess).
  LISTING_INCOMPLETE: { exit: EXIT.PARTIAL, retryable: true },
  INTEGRITY: { exit: EXIT.INTEGRITY, retryable: false },
  /** An encrypted object none of the given identities (or passphrases) can decrypt, or no identity given. */
  NO_MATCHING_IDENTITY: { exit: EXIT.FAILED, retryable: false },
  MANIFEST_INVALID: { exit: EXIT.INTEGRITY, retryable: false },
  /** A manifest whose id, namespace or name differs from the key it lies under. */
  MANIFEST_MISPLACED: { exit: EXIT.INTEGRITY, retryable: false },
  /** With verification keys configured: a manifest without a signature (never a backup of this database). */
  MANIFEST_UNSIGNED: { exit: EXIT.INTEGRITY, retryable: false },
  /** With verification keys configured: a manifest signed by another key, or altered since it was signed. */
  MANIFEST_SIGNATURE_INVALID: { exit: EXIT.INTEGRITY, retryable: false },
  /** A manifest of a format newer than this runner reads (a later major version): upgrade the runner. */
  MANIFEST_UNSUPPORTED: { exit: EXIT.INTEGRITY, retryable: false },
  /** A manifest whose instants lie in the future beyond the clock-skew allowance. */
  MANIFEST_FUTURE: { exit: EXIT.INTEGRITY, retryable: false },
  /** A stored object that is not what its manifest's format says. */
  FORMAT_MISMATCH: { exit: EXIT.INTEGRITY, retryable: false },
  ALL_LOCATIONS_FAILED: { exit: EXIT.FAILED, retryable: false },
  ABORTED: { exit: EXIT.FAILED, retryable: false },
  BUSY: { exit: EXIT.BUSY, retryable: true },
  DAEMON_UNREACHABLE: { exit: EXIT.FAILED, retryable: true },
  DAEMON_RUNNING: { exit: EXIT.FAILED, retryable: false },
  SOCKET_DIR_UNSAFE: { exit: EXIT.FAILED, retryable: false },
  CONFIG_MISMATCH: { exit: EXIT.USAGE, retryable: false },
  // Status reports to the DatabaseBackup (never an operation's outcome: the exit codes are unused).
  REPORT_DENIED: { exit: EXIT.FAILED, retryable: false },
  REPORT_NOT_FOUND: { exit: EXIT.FAILED, retryable: false },
  REPORT_REJECTED: { exit: EXIT.FAILED, retryable: false },
  REPORT_UNAVAILABLE: { exit: EXIT.FAILED, retryable: true },
  REPORT_FAILED: { exit: EXIT.FAILED, retryable: false },
  INTERNAL: { exit: EXIT.FAILED, retryable: false },
} as const satisfies Record<string, { exit: ExitCode; retryable: boolean }>;

export type ErrorCode = keyof typeof table;

export type ErrorOptions = CodedErrorOptions;

export class BackupError extends CodedError<ErrorCode, ExitCode> {
  constructor(code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super('BackupError', table[code], code, message, opts);
  }
}

export function isBackupError(err: unknown, code?: ErrorCode): err is BackupError {
  return err instanceof BackupError && (code === undefined || err.code === code);
}

/** Wraps anything thrown into a BackupError, keeping typed errors as they are. */
export function toBackupError(err: unknown, fallback: ErrorCode = 'INTERNAL'): BackupError {
  if (err instanceof BackupError) return err;
  if (isAbortError(err)) return new BackupError('ABORTED', 'operation aborted', { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new BackupError(fallback, message, { cause: err });
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}
