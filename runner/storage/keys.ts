/**
 * Key rules shared by every backend, so a key that works on one location
 * works on all of them:
 * - segments are separated by `/`; no leading `/`, no empty, `.` or `..`
 *   segment (a key never escapes the backend's root directory or bucket);
 * - no NUL or control characters;
 * - no segment starts with TEMP_PREFIX: that name is reserved for in-flight
 *   uploads, which `list` never shows.
 * A list prefix follows the same rules, except that it may be empty or end
 * with `/`.
 */
import { storageError, type CallContext } from './errors.js';

/** Name prefix of in-flight uploads (filesystem temp files); never a key segment. */
export const TEMP_PREFIX = '.tmp-';

const MAX_KEY_BYTES = 1024;

function problem(key: string, allowTrailingSlash: boolean): string | undefined {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'contains a control character';
  if (key.startsWith('/')) return 'starts with /';
  const segments = key.split('/');
  if (allowTrailingSlash && segments.length > 1 && segments[segments.length - 1] === '') segments.pop();
  for (const s of segments) {
    if (s === '') return 'has an empty path segment';
    if (s === '.' || s === '..') return `has a "${s}" path segment`;
    if (s.startsWith(TEMP_PREFIX)) return `has a segment starting with the reserved "${TEMP_PREFIX}"`;
  }
  return undefined;
}

/** Throws STORAGE_FAILED (not retryable) when `key` breaks the key rules. */
export function checkKey(key: string, ctx: CallContext): void {
  const why = key === '' ? 'is empty' : problem(key, false);
  if (why !== undefined) throw storageError('STORAGE_FAILED', ctx, `invalid key ${JSON.stringify(key)}: ${why}`);
}

/** Throws STORAGE_FAILED when a list prefix breaks the key rules (an empty prefix lists everything). */
export function checkPrefix(prefix: string, ctx: CallContext): void {
  if (prefix === '') return;
  const why = problem(prefix, true);
  if (why !== undefined) throw storageError('STORAGE_FAILED', ctx, `invalid prefix ${JSON.stringify(prefix)}: ${why}`);
}

/** Orders keys by their UTF-8 bytes, as S3 and GCS list them. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
