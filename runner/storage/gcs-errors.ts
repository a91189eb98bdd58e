/**
 * Maps @google-cloud/storage errors to STORAGE_* errors. API failures carry
 * the HTTP status as a numeric `code` (ApiError); transport failures carry a
 * Node error code string (ECONNREFUSED…) from gaxios.
 */
import { BackupError, isAbortError } from '../errors.js';
import { abortedError, asStorageError, describeCall, isNetworkError, messageOf, storageError, tlsTrustError, type CallContext } from './errors.js';

interface GcsError {
  code?: unknown;
  status?: unknown;
  response?: { status?: unknown };
}

function statusOf(err: unknown): number | undefined {
  const e = (err ?? {}) as GcsError;
  for (const v of [e.code, e.status, e.response?.status]) if (typeof v === 'number') return v;
  return undefined;
}

export function gcsError(err: unknown, ctx: CallContext, bucket: string): BackupError {
  if (err instanceof BackupError) return err;
  if (isAbortError(err)) return abortedError(ctx, err);
  const status = statusOf(err);
  const message = messageOf(err);
  const call = describeCall(ctx);
  if (status === 404 && (ctx.op === 'list' || ctx.op === 'preflight' || /bucket does not exist/i.test(message))) {
    return storageError('STORAGE_BUCKET_MISSING', ctx, `bucket "${bucket}" does not exist`, err);
  }
  if (status === 404) return storageError('STORAGE_NOT_FOUND', ctx, `object ${ctx.key ?? ''} not found`, err);
  if (status === 401 || status === 403) {
    return storageError('STORAGE_DENIED', ctx, `${call} on bucket "${bucket}": access denied (HTTP ${status}): ${message}`, err);
  }
  if (status === 408 || status === 429 || (status !== undefined && status >= 500) || isNetworkError(err)) {
    const what = status !== undefined ? `HTTP ${status}` : 'network error';
    return storageError('STORAGE_UNAVAILABLE', ctx, `${call} failed, the server may be unavailable (${what}): ${message}`, err);
  }
  if (/could not load the default credentials|unable to detect a project id/i.test(message)) {
    return storageError('STORAGE_DENIED', ctx, `${call}: no credentials found (set keyFile or give the pod a workload identity): ${message}`, err);
  }
  return tlsTrustError(err, ctx) ?? asStorageError(err, ctx);
}
