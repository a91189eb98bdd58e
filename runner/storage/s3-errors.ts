/**
 * Maps AWS SDK v3 errors to STORAGE_* errors. The SDK reports S3 error codes
 * as `name` (NoSuchKey, AccessDenied…) and the HTTP status in
 * `$metadata.httpStatusCode`; HEAD requests carry no body, so a missing
 * object or bucket there is only a bare 404 named NotFound.
 */
import { BackupError, isAbortError } from '../errors.js';
import { abortedError, asStorageError, describeCall, isNetworkError, messageOf, storageError, tlsTrustError, type CallContext } from './errors.js';

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

const DENIED = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidSecurity',
  'CredentialsProviderError',
]);

const TRANSIENT = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'OperationAborted',
]);

function facts(err: unknown): { name: string; status: number | undefined } {
  const e = (err ?? {}) as SdkError;
  return { name: e.name ?? e.Code ?? '', status: e.$metadata?.httpStatusCode };
}

function isDenied(name: string, status: number | undefined): boolean {
  return DENIED.has(name) || status === 401 || status === 403;
}

function isTransient(err: unknown, name: string, status: number | undefined): boolean {
  return TRANSIENT.has(name) || status === 429 || (status !== undefined && status >= 500) || isNetworkError(err);
}

/**
 * `bucket` names the bucket in messages. A bare 404 means "no such object"
 * for get/stat and "no such bucket" for the bucket-level calls.
 */
export function s3Error(err: unknown, ctx: CallContext, bucket: string): BackupError {
  if (err instanceof BackupError) return err;
  if (isAbortError(err)) return abortedError(ctx, err);
  const { name, status } = facts(err);
  const call = describeCall(ctx);
  if (name === 'NoSuchBucket' || (status === 404 && (ctx.op === 'preflight' || ctx.op === 'list'))) {
    return storageError('STORAGE_BUCKET_MISSING', ctx, `bucket "${bucket}" does not exist`, err);
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return storageError('STORAGE_NOT_FOUND', ctx, `object ${ctx.key ?? ''} not found`, err);
  }
  if (isDenied(name, status)) {
    const hint =
      name === 'CredentialsProviderError'
        ? 'no credentials found (set accessKeyId/secretAccessKey or give the pod an IAM role)'
        : `access denied (${name && name !== 'Unknown' ? name : `HTTP ${status}`})`;
    return storageError('STORAGE_DENIED', ctx, `${call} on bucket "${bucket}": ${hint}: ${messageOf(err)}`, err);
  }
  if (isTransient(err, name, status)) {
    const what = status !== undefined ? `HTTP ${status} ${name}` : name || 'network error';
    return storageError('STORAGE_UNAVAILABLE', ctx, `${call} failed, the server may be unavailable (${what}): ${messageOf(err)}`, err);
  }
  return tlsTrustError(err, ctx) ?? asStorageError(err, ctx);
}
