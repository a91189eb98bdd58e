import { describe, expect, it } from 'vitest';
import { isBackupError } from '../../runner/errors.js';
import { isNetworkError, type CallContext } from '../../runner/storage/errors.js';
import { checkKey, checkPrefix, compareKeys } from '../../runner/storage/keys.js';

const ctx: CallContext = { location: 's3://bucket/prefix', op: 'put' };

function problem(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!isBackupError(err, 'STORAGE_FAILED')) throw err;
    return err.message;
  }
}

describe('checkKey', () => {
  it.each([
    'a',
    'prefix/ns/db/20261121T101500Z-3fa1/data.dump.zst',
    'prefix/ns/db/20261121T101500Z-3fa1/manifest.json',
    'a/.hidden',
    'a/..b',
    'ünïcode/key',
  ])('accepts %j', (key) => {
    expect(problem(() => checkKey(key, ctx))).toBeUndefined();
  });

  it.each([
    ['', 'is empty'],
    ['..', '".." path segment'],
    ['a/../../etc/passwd', '".." path segment'],
    ['./a', '"." path segment'],
    ['/abs', 'starts with /'],
    ['a//b', 'empty path segment'],
    ['a/', 'empty path segment'],
    ['a/.tmp-123', 'reserved'],
    ['a\nb', 'control character'],
    ['x'.repeat(1025), 'longer than 1024 bytes'],
  ])('refuses %j (%s) and names the location', (key, why) => {
    const message = problem(() => checkKey(key, ctx));
    expect(message).toContain(why);
    expect(message).toMatch(/^s3:\/\/bucket\/prefix: invalid key/);
  });
});

describe('checkPrefix', () => {
  it('accepts empty, partial and slash-terminated prefixes', () => {
    for (const p of ['', 'a', 'a/', 'a/b', 'a/b/']) expect(problem(() => checkPrefix(p, ctx))).toBeUndefined();
  });
  it('refuses escaping prefixes', () => {
    for (const p of ['../', '/a', 'a//', 'a/../']) expect(problem(() => checkPrefix(p, ctx))).toBeDefined();
  });
});

describe('compareKeys', () => {
  it('orders by UTF-8 bytes, as S3 lists', () => {
    const keys = ['a/b', 'a-c', 'a0', 'a', '\u{1F600}', '\uFFFD'];
    expect([...keys].sort(compareKeys)).toEqual(['a', 'a-c', 'a/b', 'a0', '\uFFFD', '\u{1F600}']);
  });
});

describe('isNetworkError', () => {
  it('finds socket errors in the cause chain', () => {
    const sock = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    expect(isNetworkError(sock)).toBe(true);
    expect(isNetworkError(new Error('wrapped', { cause: sock }))).toBe(true);
    expect(isNetworkError(Object.assign(new Error('t'), { name: 'TimeoutError' }))).toBe(true);
    expect(isNetworkError(new Error('socket hang up'))).toBe(true);
    expect(isNetworkError(new Error('Access Denied'))).toBe(false);
  });
});
