import { describe, expect, it } from 'vitest';
import type { DatabaseBackup, DatabaseBackupStorageClass, StorageLocation } from '../../api/crds/index.js';
import { backupRoots, compareAge, findOverlaps, locationRoot, overlapMessage, overlapsRefusing, rootsOverlap, segmentsOf, type BackupRoots } from '../../controller/overlap.js';

const s3 = (prefix: string, bucket = 'shared', endpoint?: string): StorageLocation => ({ name: 'offsite', prefix, s3: { bucket, ...(endpoint ? { endpoint } : {}) } as StorageLocation['s3'] });
const gcs = (prefix: string, bucket = 'shared'): StorageLocation => ({ name: 'gcs', prefix, gcs: { bucket } });
const pvc = (prefix: string, claimName = 'backups', path = '/backups'): StorageLocation => ({ name: 'local', prefix, filesystem: { path, claimName } });

const cls = (name: string, ...locations: StorageLocation[]): DatabaseBackupStorageClass =>
  ({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackupStorageClass', metadata: { name }, spec: { locations } });

const dbb = (ns: string, name: string, created: string, spec: Partial<DatabaseBackup['spec']> = {}): DatabaseBackup =>
  ({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackup', metadata: { namespace: ns, name, creationTimestamp: created }, spec: { storageClassName: 'x', ...spec } }) as unknown as DatabaseBackup;

const T1 = '2026-11-01T10:00:00Z';
const T2 = '2026-11-02T10:00:00Z';

describe('segmentsOf', () => {
  it.each<[string[], string[]]>([
    [[''], []],
    [['/a//b/'], ['a', 'b']],
    [['a/./b', 'c'], ['a', 'b', 'c']],
    [['a/../b'], ['b']],
    [['..', 'x'], ['x']],
  ])('%j -> %j', (parts, want) => expect(segmentsOf(...parts)).toEqual(want));
});

describe('rootsOverlap: one root inside or equal to another, same store', () => {
  const root = (loc: StorageLocation, ns: string, name: string, runner?: DatabaseBackup['spec']['runner']) => locationRoot(loc, ns, name, runner)!;
  it.each<[string, StorageLocation, [string, string], StorageLocation, [string, string], boolean]>([
    // The reported case: prefix "" + shop/orders holds prefix "shop" + orders/x.
    ['prefix "" shop/orders vs prefix "shop" orders/x', s3(''), ['shop', 'orders'], s3('shop'), ['orders', 'x'], true],
    ['the same root through different prefixes', s3('a/shop'), ['orders', 'x'], s3('a'), ['shop', 'orders'], true],
    ['slashes do not hide it', s3('/shop/'), ['orders', 'x'], s3(''), ['shop', 'orders'], true],
    ['siblings do not overlap', s3(''), ['shop', 'orders'], s3(''), ['shop', 'billing'], false],
    ['a name that is a string prefix is not a path prefix', s3(''), ['shop', 'orders'], s3(''), ['shop', 'orders2'], false],
    ['other bucket', s3('', 'a'), ['shop', 'orders'], s3('shop', 'b'), ['orders', 'x'], false],
    ['other endpoint', s3('', 'shared', 'https://minio-a:9000'), ['shop', 'orders'], s3('shop', 'shared', 'https://minio-b:9000'), ['orders', 'x'], false],
    ['endpoint spelled with a trailing slash and upper case', s3('', 'shared', 'https://MINIO:9000/'), ['shop', 'orders'], s3('shop', 'shared', 'https://minio:9000'), ['orders', 'x'], true],
    ['s3 and gcs buckets of one name are different stores', s3(''), ['shop', 'orders'], gcs('shop'), ['orders', 'x'], false],
    ['gcs', gcs(''), ['shop', 'orders'], gcs('shop'), ['orders', 'x'], true],
    ['one PVC in one namespace', pvc('shop'), ['shop', 'a'], pvc(''), ['shop', 'shop'], true],
    ['one PVC, mounted at different paths: the path inside the volume counts', pvc('', 'backups', '/data'), ['shop', 'orders'], pvc('', 'backups', '/backups'), ['shop', 'orders'], true],
    ['PVCs of one name in two namespaces are two volumes', pvc('shop'), ['a', 'orders'], pvc(''), ['b', 'orders'], false],
  ])('%s -> %s', (_n, la, [nsa, na], lb, [nsb, nb], want) => {
    expect(rootsOverlap(root(la, nsa, na), root(lb, nsb, nb))).toBe(want);
    expect(rootsOverlap(root(lb, nsb, nb), root(la, nsa, na))).toBe(want);
  });

  it('a filesystem location on a PVC from spec.runner.extraVolumes: subPath and the path below the mount count', () => {
    const runner = {
      extraVolumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'shared' } }],
      extraVolumeMounts: [{ name: 'data', mountPath: '/mnt', subPath: 'team' }],
    } as unknown as DatabaseBackup['spec']['runner'];
    const viaRunner = locationRoot({ name: 'local', prefix: '', filesystem: { path: '/mnt/db' } }, 'shop', 'orders', runner)!;
    expect(viaRunner).toMatchObject({ store: 'pvc shop/shared', segments: ['team', 'db', 'shop', 'orders'] });
    const viaClass = locationRoot(pvc('team/db/shop/orders', 'shared'), 'shop', 'x', undefined)!;
    expect(rootsOverlap(viaRunner, viaClass)).toBe(true);
  });

  it('a filesystem location on an emptyDir or on no volume has no shared root', () => {
    const runner = { extraVolumes: [{ name: 'tmp2', emptyDir: {} }], extraVolumeMounts: [{ name: 'tmp2', mountPath: '/scratch' }] } as unknown as DatabaseBackup['spec']['runner'];
    expect(locationRoot({ name: 'l', prefix: '', filesystem: { path: '/scratch/b' } }, 'shop', 'orders', runner)).toBeUndefined();
    expect(locationRoot({ name: 'l', prefix: '', filesystem: { path: '/elsewhere' } }, 'shop', 'orders', runner)).toBeUndefined();
  });
});

describe('compareAge', () => {
  const at = (creationTimestamp: string, namespace: string, name: string) => ({ creationTimestamp, namespace, name });
  it.each<[string, ReturnType<typeof at>, ReturnType<typeof at>, number]>([
    ['earlier timestamp first', at(T1, 'z', 'z'), at(T2, 'a', 'a'), -1],
    ['same timestamp: namespace/name decides', at(T1, 'a', 'b'), at(T1, 'b', 'a'), -1],
    ['an unset timestamp counts as the newest', at('', 'a', 'a'), at(T2, 'z', 'z'), 1],
  ])('%s', (_n, a, b, sign) => {
    expect(Math.sign(compareAge(a, b))).toBe(sign);
    expect(Math.sign(compareAge(b, a))).toBe(-sign);
  });
});

describe('overlapsRefusing / findOverlaps: the later DatabaseBackup is refused, across storage classes', () => {
  const X = cls('x', s3(''));
  const Y = cls('y', s3('shop'), pvc(''));

  it('the reported case: X "" + shop/orders (earlier) vs Y "shop" + orders/x (later)', () => {
    const a = backupRoots(dbb('shop', 'orders', T1), X);
    const b = backupRoots(dbb('orders', 'x', T2), Y);
    expect(overlapsRefusing(a, [a, b])).toEqual([]);
    const refused = overlapsRefusing(b, [a, b]);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ earlier: { namespace: 'shop', name: 'orders' }, laterRoot: { location: 'offsite', display: 's3://shared/shop/orders/x/' }, earlierRoot: { display: 's3://shared/shop/orders/' } });
    const msg = overlapMessage(refused);
    expect(msg).toContain('s3://shared/shop/orders/x/');
    expect(msg).toContain('overlaps s3://shared/shop/orders/ of DatabaseBackup shop/orders (storage class "x"');
    expect(msg).toContain('storage class "y"');
  });

  it('the same pair the other way round in time: the inner one was first, so the outer one is refused', () => {
    const a = backupRoots(dbb('shop', 'orders', T2), X);
    const b = backupRoots(dbb('orders', 'x', T1), Y);
    expect(findOverlaps([a, b]).map((o) => `${o.later.namespace}/${o.later.name}`)).toEqual(['shop/orders']);
  });

  it('only the locations a DatabaseBackup picks count', () => {
    const a = backupRoots(dbb('shop', 'orders', T1), X);
    const b = backupRoots(dbb('orders', 'x', T2, { locations: ['local'] }), Y);
    expect(findOverlaps([a, b])).toEqual([]);
  });

  it('no overlap between distinct DatabaseBackups of one class with one prefix', () => {
    const all = [dbb('shop', 'orders', T1), dbb('shop', 'billing', T1), dbb('billing', 'orders', T2)].map((b) => backupRoots(b, X));
    expect(findOverlaps(all)).toEqual([]);
  });

  it('several earlier overlaps are all named, the earliest first', () => {
    const Z = cls('z', s3('shop/orders'));
    const a = backupRoots(dbb('shop', 'orders', T2), X); // shop/orders/
    const b = backupRoots(dbb('orders', 'x', T1), Y); // shop/orders/x/
    const c = backupRoots(dbb('x', 'y', '2026-11-03T10:00:00Z'), Z); // shop/orders/x/y/
    const refused = overlapsRefusing(c, [a, b, c]);
    expect(refused.map((o) => `${o.earlier.namespace}/${o.earlier.name}`)).toEqual(['orders/x', 'shop/orders']);
    expect(overlapMessage(refused)).toContain('and 1 more DatabaseBackup: shop/orders');
  });

  it('a DatabaseBackup never overlaps itself', () => {
    const two = cls('two', s3('a'), { ...s3('a'), name: 'again' });
    const a: BackupRoots = backupRoots(dbb('shop', 'orders', T1), two);
    expect(a.roots).toHaveLength(2);
    expect(findOverlaps([a])).toEqual([]);
  });
});
