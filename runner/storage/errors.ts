/**
 * Error helpers shared by every storage backend. Each backend maps its own
 * failures (errno, S3 error names, HTTP statuses) to the STORAGE_* codes of
 * runner/errors.ts; these helpers keep the messages uniform: they always start
 * with the location's description so the user knows which location failed.
 */
import { BackupError, isAbortError, type ErrorCode } from '../errors.js';

/** What a failing call was doing, for messages and `details`. */
export interface CallContext {
  /** The storage description, e.g. `s3://bucket/prefix`. */
  location: string;
  op: 'put' | 'get' | 'list' | 'stat' | 'delete' | 'preflight';
  key?: string;
}

export function storageError(code: ErrorCode, ctx: CallContext, message: string, cause?: unknown, retryable?: boolean): BackupError {
  const details: Record<string, unknown> = { location: ctx.location, op: ctx.op };
  if (ctx.key !== undefined) details.key = ctx.key;
  return new BackupError(code, `${ctx.location}: ${message}`, { cause, details, retryable });
}

/** Error codes of Node sockets, DNS and timeouts that mean "the server could not be reached; try again". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const NETWORK_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'FetchError']);

/** True when `err` (or one of its causes) is a connection-level failure. */
export function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (NETWORK_NAMES.has(e.name)) return true;
    if (/socket hang up|other side closed|ECONNRESET|ECONNREFUSED/i.test(e.message)) return true;
  }
  return false;
}

export function describeCall(ctx: CallContext): string {
  return ctx.key === undefined ? ctx.op : `${ctx.op} ${ctx.key}`;
}

export function abortedError(ctx: CallContext, cause?: unknown): BackupError {
  return storageError('ABORTED', ctx, `${describeCall(ctx)} aborted`, cause);
}

export function throwIfAborted(signal: AbortSignal | undefined, ctx: CallContext): void {
  if (signal?.aborted) throw abortedError(ctx, signal.reason);
}

/** The error a put rejects with when its body stream failed: typed errors of the producer pass through. */
export function bodyError(err: unknown, ctx: CallContext): BackupError {
  if (err instanceof BackupError) return err;
  if (isAbortError(err)) return abortedError(ctx, err);
  const message = err instanceof Error ? err.message : String(err);
  return storageError('STORAGE_FAILED', ctx, `${describeCall(ctx)} failed: the source stream failed: ${message}`, err);
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Keeps typed errors; anything else becomes STORAGE_FAILED naming the call. */
export function asStorageError(err: unknown, ctx: CallContext): BackupError {
  if (err instanceof BackupError) return err;
  if (isAbortError(err)) return abortedError(ctx, err);
  return storageError('STORAGE_FAILED', ctx, `${describeCall(ctx)} failed: ${messageOf(err)}`, err);
}

const TLS_TRUST = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_UNTRUSTED|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/** STORAGE_FAILED with a hint when `err` (or a cause) is a TLS certificate the client does not trust; undefined otherwise. */
export function tlsTrustError(err: unknown, ctx: CallContext): BackupError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TLS_TRUST.test(code)) {
      const hint = 'set caFile to the CA that signed it (insecureSkipTLSVerify only for tests)';
      return storageError('STORAGE_FAILED', ctx, `${describeCall(ctx)} failed: the server's TLS certificate is not trusted (${code}): ${hint}`, err);
    }
  }
  return undefined;
}
