import { describe, expect, it } from 'vitest';
import { isBackupId, newBackupId } from '../../runner/backup-id.js';
import { DUMP_FORMAT } from '../../runner/engines/postgresql/index.js';
import { planCompression } from '../../runner/pipeline/compression.js';
import { isKnownFile, backupPrefix, classifyKey, dataFileName, databasePrefix, manifestKey, objectKey, parseKey } from '../../runner/storage/layout.js';

describe('object layout', () => {
  it.each([
    [{ prefix: '', namespace: 'shop', name: 'orders' }, 'shop/orders/backups/20261121T101500Z-3fa1/manifest.json', 'shop/orders/20261121T101500Z-3fa1/manifest.json'],
    [{ prefix: 'backups', namespace: 'shop', name: 'orders' }, 'backups/shop/orders/backups/20261121T101500Z-3fa1/manifest.json', 'backups/shop/orders/20261121T101500Z-3fa1/manifest.json'],
    [{ prefix: '/team/a/', namespace: 'shop', name: 'orders' }, 'team/a/shop/orders/backups/20261121T101500Z-3fa1/manifest.json', 'team/a/shop/orders/20261121T101500Z-3fa1/manifest.json'],
  ])('%j: format 2 writes under backups/, format 1 is still read', (scope, v2, v1) => {
    const id = '20261121T101500Z-3fa1';
    expect(manifestKey(scope, id)).toBe(v2);
    expect(manifestKey(scope, id, 1)).toBe(v1);
    expect(parseKey(scope, v2)).toEqual({ backupId: id, dir: backupPrefix(scope, id), file: 'manifest.json' });
    expect(parseKey(scope, v1)).toEqual({ backupId: id, dir: backupPrefix(scope, id, 1), file: 'manifest.json' });
    expect(classifyKey(scope, v1)).toMatchObject({ kind: 'backup', layout: 1 });
    expect(classifyKey(scope, v2)).toMatchObject({ kind: 'backup', layout: 2 });
  });

  it('parseKey ignores keys of other databases and malformed ones', () => {
    const scope = { prefix: '', namespace: 'shop', name: 'orders' };
    expect(databasePrefix(scope)).toBe('shop/orders/');
    expect(parseKey(scope, 'shop/orders2/x/manifest.json')).toBeNull();
    expect(parseKey(scope, 'shop/orders/loose-file')).toBeNull();
    expect(parseKey(scope, objectKey(scope, '20261121T101500Z-3fa1', 'data.dump.zst'))).toEqual({ backupId: '20261121T101500Z-3fa1', dir: 'shop/orders/backups/20261121T101500Z-3fa1/', file: 'data.dump.zst' });
  });

  const id = '20261121T101500Z-3fa1';
  const v1 = `shop/orders/${id}/`;
  const v2 = `shop/orders/backups/${id}/`;
  it.each([
    ['outside the database prefix', 'shop/orders2/x/manifest.json', { kind: 'outside' }],
    ['loose file under the prefix', 'shop/orders/README', { kind: 'foreign', nestedManifest: false }],
    ['loose file in the kind folder', 'shop/orders/backups/README', { kind: 'foreign', nestedManifest: false }],
    ['a kind folder this runner does not know', 'shop/orders/wal/000000010000000000000001', { kind: 'foreign', nestedManifest: false }],
    ['first segment not a backup id', `shop/orders/x/${id}/manifest.json`, { kind: 'foreign', nestedManifest: true }],
    ['format 2: not a backup id', `shop/orders/backups/x/${id}/manifest.json`, { kind: 'foreign', nestedManifest: true }],
    ['lower-case id', 'shop/orders/20261121t101500z-3fa1/manifest.json', { kind: 'foreign', nestedManifest: false }],
    ['nested below a backup directory', `${v1}ns/name/${id}/manifest.json`, { kind: 'foreign', group: v1, nestedManifest: true }],
    ['format 2: nested below a backup directory', `${v2}ns/name/backups/${id}/manifest.json`, { kind: 'foreign', group: v2, nestedManifest: true }],
    ['unknown file name', `${v1}notes.txt`, { kind: 'foreign', group: v1, nestedManifest: false }],
    ['format 2: unknown file name', `${v2}data.TOC`, { kind: 'foreign', group: v2, nestedManifest: false }],
    ['manifest', `${v1}manifest.json`, { kind: 'backup', layout: 1, backupId: id, dir: v1, file: 'manifest.json' }],
    ['data, zstd', `${v1}data.dump.zst`, { kind: 'backup', backupId: id, file: 'data.dump.zst' }],
    ['data, gzip', `${v1}data.dump.gz`, { kind: 'backup', backupId: id, file: 'data.dump.gz' }],
    ['data, uncompressed', `${v1}data.dump`, { kind: 'backup', backupId: id, file: 'data.dump' }],
    ['format 2: manifest', `${v2}manifest.json`, { kind: 'backup', layout: 2, backupId: id, dir: v2, file: 'manifest.json' }],
    ['format 2: data, zstd, encrypted', `${v2}data.dump.zst.age`, { kind: 'backup', layout: 2, backupId: id, file: 'data.dump.zst.age' }],
    ['format 4: an object the database server wrote', `${v2}server/data/812.sst`, { kind: 'backup', layout: 2, backupId: id, dir: v2, file: 'server/data/812.sst' }],
    ['format 4: deep, with = + , @', `${v2}server/2026/12/04-1200.00/a=b+c,d@e`, { kind: 'backup', file: 'server/2026/12/04-1200.00/a=b+c,d@e' }],
    ['layout 1 has no server objects', `${v1}server/data/812.sst`, { kind: 'foreign', group: v1 }],
    ['server/: a hidden name', `${v2}server/data/.hidden`, { kind: 'foreign', group: v2 }],
    ['server/: a .. segment', `${v2}server/../x`, { kind: 'foreign', group: v2 }],
    ['server/: an empty segment', `${v2}server//x`, { kind: 'foreign', group: v2 }],
    ['server/: a nested manifest (another runner\'s prefix) is never the backup\'s', `${v2}server/ns/name/backups/${id}/manifest.json`, { kind: 'foreign', group: v2, nestedManifest: true }],
    ['server/: more than 16 levels', `${v2}server/${'a/'.repeat(16)}x`, { kind: 'foreign', group: v2 }],
    ['the server folder itself holds no files', `${v2}server`, { kind: 'foreign', group: v2 }],
  ])('classifyKey: %s', (_what, key, want) => {
    expect(classifyKey({ prefix: '', namespace: 'shop', name: 'orders' }, key)).toMatchObject(want);
  });

  it('knows every data file name the engines, compression algorithms and encryption schemes produce', () => {
    for (const ext of [DUMP_FORMAT.extension]) {
      for (const algorithm of ['zstd', 'gzip', 'none'] as const) {
        for (const enc of ['', '.age']) {
          const name = dataFileName(ext, planCompression({ algorithm }, true).suffix, enc);
          expect(isKnownFile(name), name).toBe(true);
        }
      }
    }
  });

  it.each([
    ['a tool format', 'data.rdb.zst.age', true],
    ['a stream of a tool format', 'data-002.snap.gz', true],
    ['rekeyed', 'data.rdb.zst.rekeyed.age', true],
    ['no extension', 'data.zst', false],
    ['an extension that is a suffix word', 'data.age', false],
    ['an extension that is a suffix word, compressed', 'data.gz.zst', false],
    ['the manifest word', 'data.json', false],
    ['upper case', 'data.RDB', false],
    ['a dot inside', 'data.tar.x', false],
    ['a path', 'data.rdb/../../x', false],
    ['stream 000', 'data-000.rdb', false],
    ['too long', `data.${'a'.repeat(17)}`, false],
  ])('isKnownFile: %s', (_what, name, known) => {
    expect(isKnownFile(name)).toBe(known);
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
