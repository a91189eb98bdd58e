/** The etcd tool's pure parts (tools/etcd/parse.ts): etcdctl and gateway messages, batching, error codes, bbolt lookups. */
import { describe, expect, it } from 'vitest';
import { ETCD_SNAPSHOT_MAGIC, definition } from '../../tools/etcd/definition.js';
import {
  b64,
  batches,
  boltFind,
  boltMeta,
  COUNT_ALL,
  deleteTxn,
  endpointOf,
  errorCode,
  etcdctlError,
  etcdctlVersion,
  fnv1a64,
  grantedTtl,
  int64,
  keyAfter,
  leaseIds,
  putSize,
  putTxn,
  rangePage,
  rangeRequest,
  serverVersion,
  snapshotStatus,
  unb64,
  type KeyValue,
  type ReadAt,
} from '../../tools/etcd/parse.js';

describe('base64 and int64 of the gateway', () => {
  it.each([
    ['text', 'a', 'YQ=='],
    ['UTF-8 text', 'ü', 'w7w='],
    ['bytes with NUL and 0xff', Buffer.from([0, 255, 0]), 'AP8A'],
    ['empty', '', ''],
  ] as const)('b64 of %s', (_what, input, expected) => {
    expect(b64(input)).toBe(expected);
    expect(unb64(expected)).toEqual(typeof input === 'string' ? Buffer.from(input) : input);
  });

  it.each([[undefined], [null], ['']])('unb64(%j) is empty (proto3 leaves empty bytes out)', (input) => {
    expect(unb64(input)).toEqual(Buffer.alloc(0));
  });

  it.each([['not base64!'], [12], [{}]])('unb64(%j) throws', (input) => {
    expect(() => unb64(input)).toThrow(/not base64/);
  });

  it.each([
    [undefined, '0'],
    ['0', '0'],
    ['7587876391386021386', '7587876391386021386'],
    ['-1', '-1'],
    ['007', '7'],
    [42, '42'],
  ] as const)('int64(%j) is %s', (input, expected) => {
    expect(int64(input)).toBe(expected);
  });

  it.each([[1.5], ['1e3'], ['12345678901234567890'], [2 ** 60], [true]])('int64(%j) throws', (input) => {
    expect(() => int64(input)).toThrow(/not an int64/);
  });
});

describe('etcdctl and server outputs', () => {
  it.each([
    ['etcdctl version: 3.4.23\nAPI version: 3.4\n', '3.4.23'],
    ['etcd Version: 3.4.23\nGit SHA: Not provided\n', '3.4.23'],
    ['etcdctl version: 3.5.9-rc.1\n', '3.5.9-rc.1'],
    ['bash: etcdctl: command not found', undefined],
  ])('etcdctlVersion(%j) is %s', (text, expected) => {
    expect(etcdctlVersion(text)).toBe(expected);
  });

  it.each([
    ['{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}', '3.4.23'],
    ['{"etcdcluster":"3.4.0"}', undefined],
    ['{"etcdserver":"3.4 with spaces"}', undefined],
    ['404 page not found', undefined],
  ])('serverVersion(%j) is %s', (text, expected) => {
    expect(serverVersion(text)).toBe(expected);
  });

  it.each([
    ['{"hash":2144514599,"revision":2,"totalKey":5,"totalSize":20480}\n', { hash: '2144514599', revision: '2', totalKey: 5, totalSize: 20480 }],
    ['{"level":"info","msg":"x"}\n{"hash":1,"revision":9007199254740993,"totalKey":0,"totalSize":1}', { hash: '1', revision: '9007199254740993', totalKey: 0, totalSize: 1 }],
    ['{"hash":1,"revision":2}', undefined],
    ['Error: snapshot file has no hash', undefined],
  ])('snapshotStatus(%j)', (text, expected) => {
    expect(snapshotStatus(text)).toEqual(expected);
  });

  it.each([
    ['{"level":"info","msg":"restoring snapshot"}\nError: expected sha256 [1 2], got [3 4]\n', 'expected sha256 [1 2], got [3 4]'],
    ['{"level":"warn","msg":"retrying"}\nError: etcdserver: user name is empty', 'etcdserver: user name is empty'],
    ['no Error prefix here\n{"level":"warn"}', 'no Error prefix here'],
    ['', ''],
  ])('etcdctlError(%j) is %j', (text, expected) => {
    expect(etcdctlError(text)).toBe(expected);
  });

  it.each([
    ['127.0.0.1', 2379, false, 'http://127.0.0.1:2379'],
    ['etcd.kube-system.svc', 2379, true, 'https://etcd.kube-system.svc:2379'],
    ['::1', 2379, false, 'http://[::1]:2379'],
    ['[::1]', 2379, true, 'https://[::1]:2379'],
  ] as const)('endpointOf(%s, %d, tls %s) is %s', (host, port, tls, expected) => {
    expect(endpointOf(host, port, tls)).toBe(expected);
  });

  it.each([
    ['etcdserver: authentication failed, invalid user ID or password', 'DB_AUTH_FAILED'],
    ['etcdserver: user name is empty', 'DB_AUTH_FAILED'],
    ['etcdserver: permission denied', 'DB_AUTH_FAILED'],
    ['rpc error: code = Unknown desc = auth: user name is empty', 'DB_AUTH_FAILED'],
    ['connect ECONNREFUSED 127.0.0.1:2379', 'DB_UNREACHABLE'],
    ['context deadline exceeded', 'DB_UNREACHABLE'],
    ['could not connect within 10s', 'DB_UNREACHABLE'],
    ['self-signed certificate in certificate chain', 'DB_UNREACHABLE'],
    ['etcdserver: request is too large', 'FAILED'],
    ['etcdserver: too many operations in txn request', 'FAILED'],
  ])('errorCode(%j) is %s', (message, expected) => {
    expect(errorCode(message)).toBe(expected);
  });
});

describe('gateway messages', () => {
  it('rangePage reads keys, values and leases as bytes and strings, empty values and the header revision', () => {
    const page = rangePage({
      header: { revision: '26' },
      kvs: [
        { key: 'AP8=', create_revision: '4', version: '1' },
        { key: 'YQ==', value: 'AAEA', lease: '7587876391386021386' },
      ],
      more: true,
      count: '1009',
    });
    expect(page).toEqual({
      revision: '26',
      kvs: [
        { key: Buffer.from([0, 255]), value: Buffer.alloc(0), lease: '0' },
        { key: Buffer.from('a'), value: Buffer.from([0, 1, 0]), lease: '7587876391386021386' },
      ],
      more: true,
      count: 1009,
    });
  });

  it.each([
    ['an empty keyspace (proto3 leaves kvs and count out)', { header: { revision: '1' } }, { revision: '1', kvs: [], more: false, count: 0 }],
    ['a count-only answer', { header: { revision: '5' }, count: '3' }, { revision: '5', kvs: [], more: false, count: 3 }],
  ])('rangePage of %s', (_what, body, expected) => {
    expect(rangePage(body)).toEqual(expected);
  });

  it('rangePage refuses what is not an object', () => {
    expect(() => rangePage(null)).toThrow(/not a JSON object/);
  });

  it('keyAfter appends a NUL: the next key in byte order', () => {
    expect(keyAfter(Buffer.from('a'))).toEqual(Buffer.from([0x61, 0]));
    expect(Buffer.compare(keyAfter(Buffer.from('a')), Buffer.from('a'))).toBe(1);
    expect(Buffer.compare(keyAfter(Buffer.from('a')), Buffer.from('a\x01'))).toBe(-1);
  });

  it.each([
    ['the first page', Buffer.from([0]), 50, '0', { key: 'AA==', range_end: 'AA==', limit: '50' }],
    ['a later page at a fixed revision', Buffer.from('b\0'), 128, '26', { key: 'YgA=', range_end: 'AA==', limit: '128', revision: '26' }],
  ])('rangeRequest of %s', (_what, from, limit, revision, expected) => {
    expect(rangeRequest(from, limit, revision)).toEqual(expected);
  });

  it('COUNT_ALL counts the whole keyspace', () => {
    expect(COUNT_ALL).toEqual({ key: 'AA==', range_end: 'AA==', count_only: true });
  });

  const kvs: KeyValue[] = [
    { key: Buffer.from('a'), value: Buffer.from('1'), lease: '0' },
    { key: Buffer.from([0, 1]), value: Buffer.alloc(0), lease: '111' },
  ];

  it('putTxn without force creates keys only (create revision 0) and attaches the new lease', () => {
    expect(putTxn(kvs, new Map([['111', '999']]), false)).toEqual({
      compare: [
        { key: 'YQ==', target: 'CREATE', result: 'EQUAL', create_revision: '0' },
        { key: 'AAE=', target: 'CREATE', result: 'EQUAL', create_revision: '0' },
      ],
      success: [{ request_put: { key: 'YQ==', value: 'MQ==' } }, { request_put: { key: 'AAE=', value: '', lease: '999' } }],
    });
  });

  it('putTxn with force replaces keys: no comparison', () => {
    expect(putTxn(kvs, new Map([['111', '999']]), true)).toEqual({
      success: [{ request_put: { key: 'YQ==', value: 'MQ==' } }, { request_put: { key: 'AAE=', value: '', lease: '999' } }],
    });
  });

  it('deleteTxn deletes exactly the keys given', () => {
    expect(deleteTxn([Buffer.from('a'), Buffer.from([0])])).toEqual({ success: [{ request_delete_range: { key: 'YQ==' } }, { request_delete_range: { key: 'AA==' } }] });
  });

  it.each([
    ['a live lease', { ID: '1', TTL: '3599', grantedTTL: '3600' }, 3600],
    ['a lease gone (TTL -1)', { ID: '1', TTL: '-1' }, undefined],
    ['no granted TTL', { ID: '1', TTL: '5' }, undefined],
  ])('grantedTtl of %s', (_what, body, expected) => {
    expect(grantedTtl(body)).toBe(expected);
  });

  it.each([
    [{ leases: [{ ID: '4111120433364912396' }, { ID: '7' }] }, ['4111120433364912396', '7']],
    [{ header: {} }, []],
  ])('leaseIds(%j)', (body, expected) => {
    expect(leaseIds(body)).toEqual(expected);
  });
});

describe('batches', () => {
  const one = (): number => 1;
  it.each([
    ['none', [], 3, 10, []],
    ['by count', [1, 2, 3, 4, 5], 2, 100, [[1, 2], [3, 4], [5]]],
    ['by bytes', [4, 4, 4], 10, 8, [[4, 4], [4]]],
    ['an item larger than the byte limit alone', [1, 20, 1], 10, 8, [[1], [20], [1]]],
    ['exactly at both limits', [5, 5, 5, 5], 2, 10, [[5, 5], [5, 5]]],
  ])('%s', (_what, items, maxCount, maxBytes, expected) => {
    expect(batches(items, (n) => n, maxCount, maxBytes)).toEqual(expected);
  });

  it('keeps the order of the items', () => {
    expect(batches(['c', 'a', 'b'], one, 2, 100)).toEqual([['c', 'a'], ['b']]);
  });

  it('putSize counts base64 and the JSON around it', () => {
    expect(putSize({ key: Buffer.alloc(3), value: Buffer.alloc(300), lease: '0' })).toBe(404 + 96);
  });
});

describe('the definition', () => {
  it('declares the 24 bytes every snapshot starts with: meta page 0, the bolt magic, version 2', () => {
    const magic = Buffer.from(ETCD_SNAPSHOT_MAGIC, 'hex');
    expect(magic.length).toBe(24);
    expect(magic.readBigUInt64LE(0)).toBe(0n); // page id 0
    expect(magic.readUInt16LE(8)).toBe(0x04); // meta page
    expect(magic.readUInt32LE(16)).toBe(0xed0cdaed);
    expect(magic.readUInt32LE(20)).toBe(2);
    expect(definition.formats[0]!.magicHex).toEqual([ETCD_SNAPSHOT_MAGIC]);
  });
});

/* A small bbolt file, built here page by page: meta pages 0 and 1, a root leaf with an inline bucket ("auth")
 * and a bucket of its own pages ("key", a branch over two leaves). */
const PAGE = 4096;

function header(id: number, flags: number, count: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeBigUInt64LE(BigInt(id), 0);
  b.writeUInt16LE(flags, 8);
  b.writeUInt16LE(count, 10);
  return b;
}

function leaf(id: number, entries: { key: string; value: Buffer; bucket?: boolean }[], size?: number): Buffer {
  const data = entries.map((e) => Buffer.concat([Buffer.from(e.key, 'latin1'), e.value]));
  const elementsEnd = 16 + entries.length * 16;
  const p = header(id, 0x02, entries.length, size ?? elementsEnd + data.reduce((n, d) => n + d.length, 0));
  let at = elementsEnd;
  entries.forEach((e, i) => {
    const el = 16 + i * 16;
    p.writeUInt32LE(e.bucket ? 1 : 0, el);
    p.writeUInt32LE(at - el, el + 4);
    p.writeUInt32LE(Buffer.byteLength(e.key, 'latin1'), el + 8);
    p.writeUInt32LE(e.value.length, el + 12);
    data[i]!.copy(p, at);
    at += data[i]!.length;
  });
  return p;
}

function branch(id: number, entries: { key: string; page: number }[]): Buffer {
  const p = header(id, 0x01, entries.length, PAGE);
  let at = 16 + entries.length * 16;
  entries.forEach((e, i) => {
    const el = 16 + i * 16;
    p.writeUInt32LE(at - el, el);
    p.writeUInt32LE(e.key.length, el + 4);
    p.writeBigUInt64LE(BigInt(e.page), el + 8);
    p.write(e.key, at, 'latin1');
    at += e.key.length;
  });
  return p;
}

function meta(id: number, root: number, txid: number, damaged = false): Buffer {
  const p = header(id, 0x04, 0, PAGE);
  p.writeUInt32LE(0xed0cdaed, 16);
  p.writeUInt32LE(2, 20);
  p.writeUInt32LE(PAGE, 24);
  p.writeBigUInt64LE(BigInt(root), 32);
  p.writeBigUInt64LE(BigInt(txid), 64);
  p.writeBigUInt64LE(fnv1a64(p.subarray(16, 72)) + (damaged ? 1n : 0n), 72);
  return p;
}

function bucket(root: number, inline?: Buffer): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(root), 0);
  return inline ? Buffer.concat([b, inline]) : b;
}

function boltFile(opts: { secondMeta?: 'newer' | 'damaged' } = {}): Buffer {
  const auth = leaf(0, [
    { key: 'authEnabled', value: Buffer.from([1]) },
    { key: 'authRevision', value: Buffer.alloc(8, 4) },
  ]);
  const rootV1 = leaf(2, [
    { key: 'auth', value: bucket(0, auth), bucket: true },
    { key: 'key', value: bucket(3), bucket: true },
  ], PAGE);
  const rootV2 = leaf(6, [{ key: 'auth', value: bucket(0, leaf(0, [{ key: 'authEnabled', value: Buffer.from([0]) }])), bucket: true }], PAGE);
  const pages = [
    meta(0, 2, 10),
    opts.secondMeta === 'newer' ? meta(1, 6, 11) : meta(1, 6, 11, opts.secondMeta === 'damaged' || opts.secondMeta === undefined),
    rootV1,
    branch(3, [
      { key: 'a', page: 4 },
      { key: 'm', page: 5 },
    ]),
    leaf(4, [
      { key: 'a', value: Buffer.from('1') },
      { key: 'b', value: Buffer.from('2') },
    ], PAGE),
    leaf(5, [
      { key: 'm', value: Buffer.from('3') },
      { key: 'z', value: Buffer.from('4') },
    ], PAGE),
    rootV2,
  ];
  return Buffer.concat(pages);
}

const reader = (file: Buffer): ReadAt => (offset, length) => file.subarray(offset, offset + length);

describe('bbolt lookups', () => {
  it.each([
    ['', 'cbf29ce484222325'],
    ['a', 'af63dc4c8601ec8c'],
    ['foobar', '85944171f73967e8'],
  ])('fnv1a64(%j) is %s', (text, hex) => {
    expect(fnv1a64(Buffer.from(text)).toString(16).padStart(16, '0')).toBe(hex);
  });

  it('takes the valid meta page with the higher transaction id', () => {
    expect(boltMeta(reader(boltFile()))).toEqual({ pageSize: PAGE, root: 2, txid: 10n });
    expect(boltMeta(reader(boltFile({ secondMeta: 'newer' })))).toEqual({ pageSize: PAGE, root: 6, txid: 11n });
  });

  it('finds a key of an inline bucket, and where its value is in the file', () => {
    const file = boltFile();
    const found = boltFind(reader(file), Buffer.from('auth'), Buffer.from('authEnabled'));
    expect(found?.value).toEqual(Buffer.from([1]));
    expect(file[found!.at]).toBe(1);
    expect(boltFind(reader(file), Buffer.from('auth'), Buffer.from('authRevision'))?.value).toEqual(Buffer.alloc(8, 4));
  });

  it.each([
    ['a', '1'],
    ['b', '2'],
    ['m', '3'],
    ['z', '4'],
  ])('finds %s in a bucket of its own pages, through a branch page', (key, value) => {
    const file = boltFile();
    const found = boltFind(reader(file), Buffer.from('key'), Buffer.from(key));
    expect(found?.value.toString()).toBe(value);
    expect(file.subarray(found!.at, found!.at + 1).toString()).toBe(value);
  });

  it.each([
    ['a key that is not there', 'key', 'c'],
    ['a key before the first', 'key', '0'],
    ['a bucket that is not there', 'lease', 'a'],
  ])('finds nothing for %s', (_what, b, key) => {
    expect(boltFind(reader(boltFile()), Buffer.from(b), Buffer.from(key))).toBeUndefined();
  });

  it('reads the tree of the current meta page (a newer one switches authentication off)', () => {
    expect(boltFind(reader(boltFile({ secondMeta: 'newer' })), Buffer.from('auth'), Buffer.from('authEnabled'))?.value).toEqual(Buffer.from([0]));
  });

  it.each([
    ['an RDB file', Buffer.from('REDIS0011 and more bytes than a header holds, surely enough for eighty of them ........')],
    ['a short file', Buffer.from([0, 0, 0])],
    ['zeros', Buffer.alloc(2 * PAGE)],
  ])('refuses %s: not a bolt file', (_what, file) => {
    expect(() => boltFind(reader(file), Buffer.from('auth'), Buffer.from('authEnabled'))).toThrow(/not a bolt file/);
  });
});
