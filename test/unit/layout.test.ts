import { describe, expect, it } from 'vitest';
import { isBackupId, newBackupId } from '../../runner/backup-id.js';
import { databasePrefix, manifestKey, objectKey, parseKey } from '../../runner/storage/layout.js';

describe('object layout', () => {
  it.each([
    [{ prefix: '', namespace: 'shop', name: 'orders' }, 'shop/orders/20261121T101500Z-3fa1/manifest.json'],
    [{ prefix: 'backups', namespace: 'shop', name: 'orders' }, 'backups/shop/orders/20261121T101500Z-3fa1/manifest.json'],
    [{ prefix: '/team/a/', namespace: 'shop', name: 'orders' }, 'team/a/shop/orders/20261121T101500Z-3fa1/manifest.json'],
  ])('%j', (scope, key) => {
    expect(manifestKey(scope, '20261121T101500Z-3fa1')).toBe(key);
    expect(parseKey(scope, key)).toEqual({ backupId: '20261121T101500Z-3fa1', file: 'manifest.json' });
  });

  it('parseKey ignores keys of other databases and malformed ones', () => {
    const scope = { prefix: '', namespace: 'shop', name: 'orders' };
    expect(databasePrefix(scope)).toBe('shop/orders/');
    expect(parseKey(scope, 'shop/orders2/x/manifest.json')).toBeNull();
    expect(parseKey(scope, 'shop/orders/loose-file')).toBeNull();
    expect(parseKey(scope, objectKey(scope, 'id', 'data.dump.zst'))).toEqual({ backupId: 'id', file: 'data.dump.zst' });
  });
});

describe('backup ids', () => {
  it('are UTC to the second plus a random suffix, and sort by time', () => {
    const a = newBackupId(new Date('2026-11-21T10:15:00.123Z'), () => Buffer.from([0x3f, 0xa1]));
    expect(a).toBe('20261121T101500Z-3fa1');
    expect(isBackupId(a)).toBe(true);
    const b = newBackupId(new Date('2026-11-21T10:15:01Z'));
    expect([b, a].sort()).toEqual([a, b]);
    expect(isBackupId('2026-11-21')).toBe(false);
  });
});
