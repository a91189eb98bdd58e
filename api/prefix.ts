/**
 * The rule for a location's `prefix` (runner config and storage class alike):
 * where in the bucket or directory a location's databases live. Prefixes of
 * different locations on one bucket are compared segment by segment, so each
 * has exactly one spelling:
 * - empty (the bucket's or directory's root), or segments joined by single `/`;
 * - no leading `/` (it is relative to the bucket or directory) and no
 *   trailing `/`;
 * - no empty, `.` or `..` segment, no segment starting with `.tmp-` (reserved
 *   for in-flight uploads);
 * - no control characters; at most MAX_PREFIX_BYTES bytes of UTF-8.
 */
export const MAX_PREFIX_BYTES = 512;

const RESERVED_SEGMENT_PREFIX = '.tmp-';

/** Pure: why `prefix` breaks the rule, or undefined when it is fine. */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix === '') return undefined;
  if (new TextEncoder().encode(prefix).length > MAX_PREFIX_BYTES) return `must be at most ${MAX_PREFIX_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(prefix)) return 'must not contain control characters';
  if (prefix.startsWith('/')) return 'must be relative: no leading "/" (write "db", not "/db")';
  if (prefix.endsWith('/')) return 'must not end with "/" (write "db", not "db/")';
  for (const segment of prefix.split('/')) {
    if (segment === '') return 'must not contain an empty segment ("//")';
    if (segment === '.' || segment === '..') return `must not contain a "${segment}" segment`;
    if (segment.startsWith(RESERVED_SEGMENT_PREFIX)) return `must not contain a segment starting with the reserved "${RESERVED_SEGMENT_PREFIX}"`;
  }
  return undefined;
}

/** The segments of a valid prefix (none for the empty prefix). */
export function prefixSegments(prefix: string): string[] {
  return prefix === '' ? [] : prefix.split('/');
}

/** The field error for `prefix` at `path`, if any. */
export function prefixErrors(path: string, prefix: string | undefined): { path: string; message: string }[] {
  if (typeof prefix !== 'string') return [];
  const why = prefixProblem(prefix);
  return why ? [{ path, message: why }] : [];
}
