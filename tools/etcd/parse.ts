/**
 * Pure: what the etcd tool reads and writes besides the network: etcdctl's
 * outputs, the JSON gRPC gateway's messages (keys and values base64, int64
 * numbers as decimal strings), batching of writes, the classification of
 * etcd's error messages, and a read-only look into a bbolt file (the format of
 * an etcd snapshot and data directory), enough to find one key of one bucket.
 */

/** Bytes (or text, as UTF-8) as the gateway's base64. */
export function b64(bytes: Buffer | string): string {
  return (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes).toString('base64');
}

/** The gateway's base64 as bytes; an absent field (proto3 omits empty bytes) is empty. */
export function unb64(text: unknown): Buffer {
  if (text === undefined || text === null || text === '') return Buffer.alloc(0);
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error(`not base64: ${JSON.stringify(text).slice(0, 80)}`);
  return Buffer.from(text, 'base64');
}

/**
 * An int64 of a gateway message as a decimal string (the gateway writes int64 as strings; an absent field
 * is 0). Strings, not numbers: lease IDs use all 63 bits.
 */
export function int64(value: unknown): string {
  if (value === undefined || value === null) return '0';
  const s = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof s !== 'string' || !/^-?\d{1,19}$/.test(s)) throw new Error(`not an int64: ${JSON.stringify(value).slice(0, 80)}`);
  return s.replace(/^(-?)0+(?=\d)/, '$1');
}

/** `etcdctl version: 3.4.23` (etcdctl version) or `etcd Version: 3.4.23` (etcd --version) -> `3.4.23` */
export function etcdctlVersion(text: string): string | undefined {
  return /^etcd(?:ctl)? version: (\d+\.\d+\.\d+[0-9A-Za-z.+-]*)/im.exec(text)?.[1];
}

/** The server version of the gateway's `GET /version` (`{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}`). */
export function serverVersion(text: string): string | undefined {
  try {
    const v = (JSON.parse(text) as { etcdserver?: unknown }).etcdserver;
    return typeof v === 'string' && /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/.test(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface SnapshotStatus {
  /** The snapshot's hash (etcd's crc32 of its buckets), as etcdctl prints it. */
  hash: string;
  revision: string;
  totalKey: number;
  totalSize: number;
}

/**
 * `etcdctl snapshot status -w json`: `{"hash":2144514599,"revision":2,"totalKey":5,"totalSize":20480}`.
 * Read from the text so the numbers stay exact whatever their size.
 */
export function snapshotStatus(text: string): SnapshotStatus | undefined {
  const line = text.split('\n').find((l) => /^\{"hash":/.test(l.trim()));
  if (!line) return undefined;
  const field = (name: string): string | undefined => new RegExp(`"${name}":(\\d+)`).exec(line)?.[1];
  const [hash, revision, totalKey, totalSize] = [field('hash'), field('revision'), field('totalKey'), field('totalSize')];
  if (hash === undefined || revision === undefined || totalKey === undefined || totalSize === undefined) return undefined;
  return { hash, revision, totalKey: Number(totalKey), totalSize: Number(totalSize) };
}

/** One key as the gateway's range answer carries it. */
export interface KeyValue {
  key: Buffer;
  value: Buffer;
  /** The lease the key is attached to, '0' for none. */
  lease: string;
}

export interface RangePage {
  /** The revision the answer was read at. */
  revision: string;
  kvs: KeyValue[];
  /** More keys follow the last one (the answer was cut at its limit). */
  more: boolean;
  /** Keys in the whole range (not only this page). */
  count: number;
}

/** A `POST /v3/kv/range` answer. */
export function rangePage(body: unknown): RangePage {
  const b = body as { header?: { revision?: unknown }; kvs?: { key?: unknown; value?: unknown; lease?: unknown }[]; more?: unknown; count?: unknown };
  if (typeof b !== 'object' || b === null) throw new Error('the range answer is not a JSON object');
  return {
    revision: int64(b.header?.revision),
    kvs: (b.kvs ?? []).map((kv) => ({ key: unb64(kv.key), value: unb64(kv.value), lease: int64(kv.lease) })),
    more: b.more === true,
    count: Number(int64(b.count)),
  };
}

/** The first key after `key` in etcd's byte order: `key` + NUL. */
export function keyAfter(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

/** Every key from `from` on: the range request of one page at `revision` (0: the newest). */
export function rangeRequest(from: Buffer, limit: number, revision = '0', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { key: b64(from), range_end: b64(Buffer.from([0])), limit: String(limit), ...(revision !== '0' ? { revision } : {}), ...extra };
}

/** The whole keyspace, counted only: its answer's `count` says whether a target holds any key. */
export const COUNT_ALL = { key: b64(Buffer.from([0])), range_end: b64(Buffer.from([0])), count_only: true } as const;

/**
 * One transaction writing `kvs` (with the target's lease of each key's original lease, when it has one). Without
 * `force` each key must be absent (create revision 0): a key that appeared in the target meanwhile fails the
 * whole transaction, which then writes nothing.
 */
export function putTxn(kvs: readonly KeyValue[], leases: ReadonlyMap<string, string>, force: boolean): Record<string, unknown> {
  const lease = (kv: KeyValue): string | undefined => (kv.lease === '0' ? undefined : leases.get(kv.lease));
  return {
    ...(force ? {} : { compare: kvs.map((kv) => ({ key: b64(kv.key), target: 'CREATE', result: 'EQUAL', create_revision: '0' })) }),
    success: kvs.map((kv) => {
      const l = lease(kv);
      return { request_put: { key: b64(kv.key), value: b64(kv.value), ...(l ? { lease: l } : {}) } };
    }),
  };
}

/** One transaction deleting exactly `keys`. */
export function deleteTxn(keys: readonly Buffer[]): Record<string, unknown> {
  return { success: keys.map((k) => ({ request_delete_range: { key: b64(k) } })) };
}

/**
 * `items` in order, cut into batches of at most `maxCount` items and (when more than one item) at most
 * `maxBytes` bytes as `size` counts them: an item larger than `maxBytes` travels alone.
 */
export function batches<T>(items: readonly T[], size: (item: T) => number, maxCount: number, maxBytes: number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = size(item);
    if (current.length > 0 && (current.length >= maxCount || bytes + n > maxBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += n;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** The bytes a put of `kv` adds to a transaction request, roughly (base64 and JSON included). */
export function putSize(kv: KeyValue): number {
  return Math.ceil(((kv.key.length + kv.value.length) * 4) / 3) + 96;
}

/** A lease's TTL as granted, of a `POST /v3/lease/timetolive` answer; undefined when the lease is gone (TTL -1). */
export function grantedTtl(body: unknown): number | undefined {
  const b = body as { TTL?: unknown; grantedTTL?: unknown };
  if (int64(b.TTL) === '-1') return undefined;
  const granted = Number(int64(b.grantedTTL));
  return granted > 0 ? granted : undefined;
}

/** The lease IDs of a `POST /v3/lease/leases` answer. */
export function leaseIds(body: unknown): string[] {
  return ((body as { leases?: { ID?: unknown }[] }).leases ?? []).map((l) => int64(l.ID));
}

/** The contract's error code for an etcd (or etcdctl, or connection) error message. */
export function errorCode(message: string): 'DB_AUTH_FAILED' | 'DB_UNREACHABLE' | 'FAILED' {
  if (/authentication failed|user name is empty|invalid auth token|permission denied|auth: |Unauthenticated|PermissionDenied/i.test(message)) return 'DB_AUTH_FAILED';
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|context deadline exceeded|connection refused|no such host|certificate|self.signed|SSL|TLS|socket hang up|could not connect/i.test(message)) return 'DB_UNREACHABLE';
  return 'FAILED';
}

/* ---------------------------------------------------------------------------------------------------------
 * bbolt, read only. A bbolt file is pages of `pageSize` bytes: two meta pages (0 and 1, the valid one with the
 * higher transaction id is current), then branch and leaf pages of a B+tree of buckets. Every page starts with
 * a 16-byte header: id u64, flags u16, count u16, overflow u32 (pages that follow as part of this one). All
 * integers are little-endian.
 * --------------------------------------------------------------------------------------------------------- */

/** The bolt magic, 0xED0CDAED, as it is stored (little-endian) at offset 16 of each meta page. */
export const BOLT_MAGIC = 0xed0cdaed;

const BRANCH = 0x01;
const LEAF = 0x02;
const META = 0x04;
const BUCKET_LEAF = 0x01;
const PAGE_HEADER = 16;
const ELEMENT = 16;

/** Reads `length` bytes at `offset` of the file (fewer at its end). */
export type ReadAt = (offset: number, length: number) => Buffer;

/** FNV-1a, 64 bits: the checksum of a bolt meta page. */
export function fnv1a64(bytes: Buffer): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h;
}

interface Meta {
  pageSize: number;
  root: number;
  txid: bigint;
}

/** The meta page at `offset`, if it is one: magic, version 2 and checksum right. */
function metaAt(read: ReadAt, offset: number): Meta | undefined {
  const p = read(offset, 80);
  if (p.length < 80 || (p.readUInt16LE(8) & META) === 0 || p.readUInt32LE(16) !== BOLT_MAGIC || p.readUInt32LE(20) !== 2) return undefined;
  if (fnv1a64(p.subarray(16, 72)) !== p.readBigUInt64LE(72)) return undefined;
  return { pageSize: p.readUInt32LE(24), root: Number(p.readBigUInt64LE(32)), txid: p.readBigUInt64LE(64) };
}

/** The current meta page of a bolt file; undefined when it is none. */
export function boltMeta(read: ReadAt): Meta | undefined {
  const first = metaAt(read, 0);
  const head = read(0, 28);
  const pageSize = first?.pageSize ?? (head.length >= 28 ? head.readUInt32LE(24) : 0);
  if (pageSize < 512 || pageSize > 1 << 20 || (pageSize & (pageSize - 1)) !== 0) return first;
  const second = metaAt(read, pageSize);
  if (!first) return second;
  return second && second.txid > first.txid ? second : first;
}

/** A page held in memory, and where its first byte is in the file. */
interface Page {
  bytes: Buffer;
  at: number;
}

const MAX_OVERFLOW_PAGES = 4096;

function pageOf(read: ReadAt, id: number, pageSize: number): Page {
  const at = id * pageSize;
  const head = read(at, PAGE_HEADER);
  if (head.length < PAGE_HEADER) throw new Error(`bolt page ${id} is past the end of the file`);
  const overflow = head.readUInt32LE(12);
  // The pages this reader visits (the root, the auth bucket) are small: a huge overflow is a damaged or crafted file.
  if (overflow > MAX_OVERFLOW_PAGES) throw new Error(`bolt page ${id} claims ${overflow} overflow pages: not a page this reader needs`);
  return { bytes: read(at, (overflow + 1) * pageSize), at };
}

function keyOf(p: Page, i: number, leaf: boolean): { key: Buffer; start: number } {
  const e = PAGE_HEADER + i * ELEMENT;
  const pos = p.bytes.readUInt32LE(e + (leaf ? 4 : 0));
  const ksize = p.bytes.readUInt32LE(e + (leaf ? 8 : 4));
  const start = e + pos;
  return { key: p.bytes.subarray(start, start + ksize), start };
}

/** The element `key` names in the tree under page `page`: its flags, its value and where that value is in the file. */
function lookup(read: ReadAt, page: Page, pageSize: number, key: Buffer, depth = 0): { flags: number; value: Buffer; at: number } | undefined {
  if (depth > 64) throw new Error('bolt tree deeper than 64 levels: not a bolt file');
  const flags = page.bytes.readUInt16LE(8);
  const count = page.bytes.readUInt16LE(10);
  if (flags & BRANCH) {
    // The last element whose key is <= key holds it.
    let child: number | undefined;
    for (let i = 0; i < count; i++) {
      if (Buffer.compare(keyOf(page, i, false).key, key) > 0) break;
      child = Number(page.bytes.readBigUInt64LE(PAGE_HEADER + i * ELEMENT + 8));
    }
    return child === undefined ? undefined : lookup(read, pageOf(read, child, pageSize), pageSize, key, depth + 1);
  }
  if (!(flags & LEAF)) throw new Error(`bolt page at ${page.at} is neither a branch nor a leaf`);
  for (let i = 0; i < count; i++) {
    const { key: k, start } = keyOf(page, i, true);
    if (!k.equals(key)) continue;
    const e = PAGE_HEADER + i * ELEMENT;
    const vsize = page.bytes.readUInt32LE(e + 12);
    const vstart = start + k.length;
    return { flags: page.bytes.readUInt32LE(e), value: page.bytes.subarray(vstart, vstart + vsize), at: page.at + vstart };
  }
  return undefined;
}

/**
 * Where the value of `key` in the top-level bucket `bucket` is in a bolt file, and the value; undefined when
 * the bucket or the key is missing. Throws when the file is not a bolt file.
 */
export function boltFind(read: ReadAt, bucket: Buffer, key: Buffer): { at: number; value: Buffer } | undefined {
  const meta = boltMeta(read);
  if (!meta) throw new Error('not a bolt file (no valid meta page)');
  const b = lookup(read, pageOf(read, meta.root, meta.pageSize), meta.pageSize, bucket);
  if (!b || !(b.flags & BUCKET_LEAF) || b.value.length < 16) return undefined;
  const root = Number(b.value.readBigUInt64LE(0));
  // Root 0: an inline bucket, its one leaf page right after the 16-byte bucket header.
  const page: Page = root === 0 ? { bytes: b.value.subarray(16), at: b.at + 16 } : pageOf(read, root, meta.pageSize);
  const found = lookup(read, page, meta.pageSize, key);
  return found && !(found.flags & BUCKET_LEAF) ? { at: found.at, value: found.value } : undefined;
}

/** The base URL of a server: https when any TLS file is given; an IPv6 address in brackets. */
export function endpointOf(host: string, port: number, tls: boolean): string {
  return `${tls ? 'https' : 'http'}://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}

/** The `Error: ...` line etcdctl ends a failure with (its other stderr lines are JSON log records), else the last line. */
export function etcdctlError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const said = lines.filter((l) => l.startsWith('Error:')).pop() ?? lines.filter((l) => !l.startsWith('{')).pop() ?? lines.pop() ?? '';
  return said.replace(/^Error:\s*/, '').slice(0, 1000);
}
