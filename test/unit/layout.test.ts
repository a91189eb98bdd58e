import { describe, expect, it } from 'vitest';
import { isBackupId, newBackupId } from '../../runner/backup-id.js';
import { DUMP_FORMAT } from '../../runner/engines/postgresql/index.js';
import { planCompression } from '../../runner/pipeline/compression.js';
import { KNOWN_FILES, classifyKey, dataFileName, databasePrefix, manifestKey, objectKey, parseKey } from '../../runner/storage/layout.js';

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
    expect(parseKey(scope, objectKey(scope, '20261121T101500Z-3fa1', 'data.dump.zst'))).toEqual({ backupId: '20261121T101500Z-3fa1', file: 'data.dump.zst' });
  });

  const id = '20261121T101500Z-3fa1';
  it.each([
    ['outside the database prefix', 'shop/orders2/x/manifest.json', { kind: 'outside' }],
    ['loose file under the prefix', 'shop/orders/README', { kind: 'foreign', nestedManifest: false }],
    ['first segment not a backup id', 'shop/orders/x/20261121T101500Z-3fa1/manifest.json', { kind: 'foreign', nestedManifest: true }],
    ['lower-case id', 'shop/orders/20261121t101500z-3fa1/manifest.json', { kind: 'foreign', nestedManifest: false }],
    ['nested below a backup directory', `shop/orders/${id}/ns/name/${id}/manifest.json`, { kind: 'foreign', group: id, nestedManifest: true }],
    ['unknown file name', `shop/orders/${id}/data.toc`, { kind: 'foreign', group: id, nestedManifest: false }],
    ['manifest', `shop/orders/${id}/manifest.json`, { kind: 'backup', backupId: id, file: 'manifest.json' }],
    ['data, zstd', `shop/orders/${id}/data.dump.zst`, { kind: 'backup', backupId: id, file: 'data.dump.zst' }],
    ['data, gzip', `shop/orders/${id}/data.dump.gz`, { kind: 'backup', backupId: id, file: 'data.dump.gz' }],
    ['data, uncompressed', `shop/orders/${id}/data.dump`, { kind: 'backup', backupId: id, file: 'data.dump' }],
  ])('classifyKey: %s', (_what, key, want) => {
    expect(classifyKey({ prefix: '', namespace: 'shop', name: 'orders' }, key)).toMatchObject(want);
  });

  it('knows every data file name the engines and compression algorithms produce', () => {
    for (const ext of [DUMP_FORMAT.extension]) {
      for (const algorithm of ['zstd', 'gzip', 'none'] as const) {
        const name = dataFileName(ext, planCompression({ algorithm }, true).suffix);
        expect(KNOWN_FILES.has(name), name).toBe(true);
      }
    }
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
