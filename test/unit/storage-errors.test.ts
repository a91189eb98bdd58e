/** Error classification of each backend, for failures the test servers cannot produce (throttling, 5xx, quota). */
import { describe, expect, it } from 'vitest';
import { BackupError, type ErrorCode } from '../../runner/errors.js';
import type { CallContext } from '../../runner/storage/errors.js';
import { fsError } from '../../runner/storage/filesystem-errors.js';
import { gcsError } from '../../runner/storage/gcs-errors.js';
import { s3Error } from '../../runner/storage/s3-errors.js';

const ctx = (op: CallContext['op'], location = 's3://b/p'): CallContext => ({ location, op, key: 'p/k' });

function sdk(name: string, status?: number): Error {
  return Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status } });
}

describe('s3Error', () => {
  it.each<[string, Error, CallContext['op'], ErrorCode, boolean]>([
    ['NoSuchKey', sdk('NoSuchKey', 404), 'get', 'STORAGE_NOT_FOUND', false],
    ['bare 404 on HEAD object', sdk('NotFound', 404), 'stat', 'STORAGE_NOT_FOUND', false],
    ['bare 404 on HEAD bucket', sdk('NotFound', 404), 'preflight', 'STORAGE_BUCKET_MISSING', false],
    ['NoSuchBucket', sdk('NoSuchBucket', 404), 'put', 'STORAGE_BUCKET_MISSING', false],
    ['AccessDenied', sdk('AccessDenied', 403), 'put', 'STORAGE_DENIED', false],
    ['SignatureDoesNotMatch', sdk('SignatureDoesNotMatch', 403), 'list', 'STORAGE_DENIED', false],
    ['ExpiredToken', sdk('ExpiredToken', 400), 'get', 'STORAGE_DENIED', false],
    ['no credentials', sdk('CredentialsProviderError'), 'put', 'STORAGE_DENIED', false],
    ['SlowDown', sdk('SlowDown', 503), 'put', 'STORAGE_UNAVAILABLE', true],
    ['InternalError', sdk('InternalError', 500), 'list', 'STORAGE_UNAVAILABLE', true],
    ['429', sdk('TooManyRequests', 429), 'get', 'STORAGE_UNAVAILABLE', true],
    ['connection refused', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'put', 'STORAGE_UNAVAILABLE', true],
    ['timeout', sdk('TimeoutError'), 'get', 'STORAGE_UNAVAILABLE', true],
    ['abort', Object.assign(new Error('aborted'), { name: 'AbortError' }), 'put', 'ABORTED', false],
    ['anything else', sdk('InvalidRange', 416), 'get', 'STORAGE_FAILED', false],
  ])('%s -> %s', (_what, err, op, code, retryable) => {
    const mapped = s3Error(err, ctx(op), 'b');
    expect(mapped.code).toBe(code);
    expect(mapped.retryable).toBe(retryable);
    expect(mapped.message.startsWith('s3://b/p: ')).toBe(true);
    expect(mapped.cause).toBe(err);
  });

  it('names the bucket when it is missing, and keeps typed errors', () => {
    expect(s3Error(sdk('NoSuchBucket', 404), ctx('put'), 'b').message).toBe('s3://b/p: bucket "b" does not exist');
    const typed = new BackupError('DUMP_FAILED', 'pg_dump exited 1');
    expect(s3Error(typed, ctx('put'), 'b')).toBe(typed);
  });
});

describe('gcsError', () => {
  const api = (code: number, message = 'msg'): Error => Object.assign(new Error(message), { code });
  it.each<[string, Error, CallContext['op'], ErrorCode, boolean]>([
    ['404 object', api(404, 'No such object: b/p/k'), 'get', 'STORAGE_NOT_FOUND', false],
    ['404 bucket (list)', api(404), 'list', 'STORAGE_BUCKET_MISSING', false],
    ['404 bucket (upload)', api(404, 'The specified bucket does not exist.'), 'put', 'STORAGE_BUCKET_MISSING', false],
    ['401', api(401), 'put', 'STORAGE_DENIED', false],
    ['403', api(403), 'list', 'STORAGE_DENIED', false],
    ['429', api(429), 'put', 'STORAGE_UNAVAILABLE', true],
    ['503', api(503), 'get', 'STORAGE_UNAVAILABLE', true],
    ['gaxios status', Object.assign(new Error('x'), { status: 502 }), 'put', 'STORAGE_UNAVAILABLE', true],
    ['reset', Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' }), 'put', 'STORAGE_UNAVAILABLE', true],
    ['no default credentials', new Error('Could not load the default credentials.'), 'put', 'STORAGE_DENIED', false],
    ['other', api(400, 'bad'), 'put', 'STORAGE_FAILED', false],
  ])('%s -> %s', (_what, err, op, code, retryable) => {
    const mapped = gcsError(err, ctx(op, 'gs://b/p'), 'b');
    expect(mapped.code).toBe(code);
    expect(mapped.retryable).toBe(retryable);
    expect(mapped.message.startsWith('gs://b/p: ')).toBe(true);
  });
});

describe('fsError', () => {
  const errno = (code: string): Error => Object.assign(new Error(`${code}: failed`), { code });
  it.each<[string, CallContext['op'], ErrorCode, boolean]>([
    ['ENOSPC', 'put', 'STORAGE_NO_SPACE', false],
    ['EDQUOT', 'put', 'STORAGE_NO_SPACE', false],
    ['EACCES', 'put', 'STORAGE_DENIED', false],
    ['EPERM', 'delete', 'STORAGE_DENIED', false],
    ['EROFS', 'preflight', 'STORAGE_DENIED', false],
    ['ENOENT', 'get', 'STORAGE_NOT_FOUND', false],
    ['ENOTDIR', 'stat', 'STORAGE_NOT_FOUND', false],
    ['ENOENT', 'put', 'STORAGE_FAILED', false],
    ['ESTALE', 'get', 'STORAGE_UNAVAILABLE', true],
    ['EMFILE', 'put', 'STORAGE_UNAVAILABLE', true],
    ['EIO', 'put', 'STORAGE_FAILED', false],
  ])('%s during %s -> %s', (code, op, expected, retryable) => {
    const mapped = fsError(errno(code), ctx(op, 'file:///mnt'));
    expect(mapped.code).toBe(expected);
    expect(mapped.retryable).toBe(retryable);
    expect(mapped.message.startsWith('file:///mnt: ')).toBe(true);
  });

  it('says the disk is full', () => {
    expect(fsError(errno('ENOSPC'), ctx('put', 'file:///mnt')).message).toBe('file:///mnt: the disk is full (no space left on device) during put p/k');
  });
});
