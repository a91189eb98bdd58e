import { BackupError } from '../errors.js';
import { asStorageError, describeCall, storageError, type CallContext } from './errors.js';

/** errno codes after which the same call may succeed later (busy, overloaded or flaky network filesystems). */
const TRANSIENT = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'ETIMEDOUT', 'ESTALE', 'EINTR']);

/** Maps a Node fs error to a STORAGE_* error naming the location and the call. */
export function fsError(err: unknown, ctx: CallContext): BackupError {
  if (err instanceof BackupError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const call = describeCall(ctx);
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return storageError('STORAGE_NO_SPACE', ctx, `the disk is full (${code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on device'}) during ${call}`, err);
    case 'EACCES':
    case 'EPERM':
      return storageError('STORAGE_DENIED', ctx, `permission denied during ${call} (${code})`, err);
    case 'EROFS':
      return storageError('STORAGE_DENIED', ctx, `the filesystem is read-only (${call})`, err);
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EISDIR':
      if (ctx.op === 'get' || ctx.op === 'stat') return storageError('STORAGE_NOT_FOUND', ctx, `object ${ctx.key ?? ''} not found`, err);
      break;
  }
  if (code !== undefined && TRANSIENT.has(code)) {
    return storageError('STORAGE_UNAVAILABLE', ctx, `${call} failed, may succeed later (${code})`, err);
  }
  return asStorageError(err, ctx);
}

export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
