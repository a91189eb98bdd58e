/**
 * `backup-runner wal-fetch WALFILE DEST`: PostgreSQL's restore_command during a point-in-time recovery. Finds
 * the WAL file in the archive (locations in config order), checks it (the sha256 its name carries, after
 * decryption and decompression), and writes it to DEST (a temp file renamed into place). A segment that only
 * a partial holds is given as the partial: pg_receivewal writes segments at their full size, zero-padded,
 * so PostgreSQL reads it to its last whole record.
 *
 * Exit status (what PostgreSQL reads): 0 fetched; 1 not in the archive (or refused, said on stderr, which the
 * server logs): recovery then ends there, and short of its target it fails rather than promoting.
 */
import { createHash } from 'node:crypto';
import { chown, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { AgeDecrypt } from '../crypto/age.js';
import { keysFor } from '../crypto/location.js';
import { BackupError, toBackupError } from '../errors.js';
import type { ManifestObject } from '../manifest.js';
import { decompress, storedAlgorithm } from '../pipeline/compression.js';
import type { Location, Runtime } from '../runtime.js';
import { type WalFile, parseWalFile, walPrefix } from '../storage/layout.js';
import { PREFETCH_DIR } from './wal-prefetch.js';
import { HISTORY_NAME, SEGMENT_NAME, isSegmentSize, parseSegmentName, segmentName } from '../engines/postgresql/physical/wal-names.js';
import { mapLimit } from '../util/async.js';

/** A name PostgreSQL may ask for: a segment or a timeline history file. */
const wanted = (name: string): boolean => SEGMENT_NAME.test(name) || HISTORY_NAME.test(name);

/** The largest WAL object read (a segment is at most 1 GiB). */
const MAX_WAL_BYTES = (1 << 30) + (1 << 20);

export interface WalFetchResult {
  wal: string;
  location: string;
  key: string;
  partial: boolean;
  bytes: number;
}

interface Candidate {
  loc: Location;
  key: string;
  file: WalFile;
  modifiedAt?: Date;
}

/** What one location holds for `wal`: its complete objects, and its partials (newest first). */
async function candidates(loc: Location, wal: string, signal?: AbortSignal): Promise<{ complete: Candidate[]; partials: Candidate[] }> {
  const prefix = walPrefix(loc.scope);
  const complete: Candidate[] = [];
  const partials: Candidate[] = [];
  for await (const o of loc.storage.list(`${prefix}${wal}-`, { ...(signal ? { signal } : {}) })) {
    const file = parseWalFile(o.key.slice(prefix.length));
    if (!file || file.wal !== wal || o.size > MAX_WAL_BYTES) continue;
    (file.partial ? partials : complete).push({ loc, key: o.key, file, ...(o.modifiedAt ? { modifiedAt: o.modifiedAt } : {}) });
  }
  partials.sort((a, b) => (b.modifiedAt?.getTime() ?? 0) - (a.modifiedAt?.getTime() ?? 0));
  return { complete, partials };
}

/** The plain bytes of a WAL object, checked against the digest in its name. */
async function readWal(c: Candidate, signal?: AbortSignal): Promise<Buffer> {
  const what = `${c.loc.name}: ${c.key}`;
  const body = await c.loc.storage.get(c.key, { ...(signal ? { signal } : {}) });
  let stream: Readable = body;
  if (c.file.encrypted) {
    if (!c.loc.crypto) throw new BackupError('NO_MATCHING_IDENTITY', `${what} is encrypted and the location has no encryption configured`);
    const keys = await keysFor(c.loc.crypto, [], { encryption: c.loc.crypto.encryption } as ManifestObject);
    if (keys.identities.length === 0 && (keys.passphrases ?? []).length === 0) throw new BackupError('NO_MATCHING_IDENTITY', `${what} is encrypted: set the location's encryption.age.identities to fetch WAL from it`);
    const dec = new AgeDecrypt(keys, what);
    pipeline(body, dec).catch((err: unknown) => dec.destroy(toBackupError(err, 'STORAGE_FAILED')));
    stream = dec;
  }
  const stage = decompress(stream, storedAlgorithm(c.file.compression === '.zst' ? 'zstd' : c.file.compression === '.gz' ? 'gzip' : 'none', what), signal);
  const [plain] = await Promise.all([buffer(stage.output), stage.done]);
  const sha = createHash('sha256').update(plain).digest('hex');
  if (sha !== c.file.sha256) throw new BackupError('INTEGRITY', `${what}: its bytes have sha256 ${sha}, its name says ${c.file.sha256}: not used`);
  return plain;
}

/**
 * Pure: the database system identifier a WAL segment's first page names (its long page header: xlp_sysid after
 * the 24-byte standard header), or undefined for anything shorter (a history file has none).
 */
export function segmentSystem(plain: Uint8Array): bigint | undefined {
  if (plain.length < 32) return undefined;
  return Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).readBigUInt64LE(24);
}

/**
 * The system identifier of the data directory `pgWal` (its pg_wal/ or a folder in it) belongs to: the first field
 * of global/pg_control. Undefined when it cannot be read (then no object is refused for its system).
 */
export async function dataDirectorySystem(pgWal: string): Promise<bigint | undefined> {
  const dataDir = basename(pgWal) === 'pg_wal' ? dirname(pgWal) : dirname(dirname(pgWal));
  const fh = await open(join(dataDir, 'global', 'pg_control'), 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const buf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    return bytesRead === 8 ? buf.readBigUInt64LE(0) : undefined;
  } finally {
    await fh.close();
  }
}

/** Pure: whether a WAL file's bytes are of the wanted database system (a history file, or either unknown: always). */
export function ofSystem(wal: string, plain: Uint8Array, wanted: bigint | undefined): boolean {
  if (!SEGMENT_NAME.test(wal)) return true;
  const found = segmentSystem(plain);
  return wanted === undefined || found === undefined || found === wanted;
}

/**
 * Fetches `wal` into `dest`. A location holding two different complete objects for it is not believed (an
 * alarm: the next location is tried), unless exactly one of them is of the data directory's own database
 * system (a server initialised anew under the same archive writes the same names); a segment of another
 * system is never written. A complete object is preferred to a partial in any location.
 */
export async function walFetch(rt: Runtime, wal: string, dest: string, signal?: AbortSignal): Promise<WalFetchResult> {
  const system = await dataDirectorySystem(dirname(dest));
  const r = await fetchOne(rt, wal, dest, system, signal);
  if (!r.partial && SEGMENT_NAME.test(wal) && isSegmentSize(r.bytes)) await prefetch(rt, wal, r.bytes, join(dirname(dest), PREFETCH_DIR), system, signal);
  return r;
}

/** Segments fetched ahead of PostgreSQL's asking, checked, for wal-fetch's fast path. */
const PREFETCH_COUNT = 8;

/**
 * Fetches the complete segments after `wal` (as many as PREFETCH_COUNT, up to the first one no location holds
 * whole) into `dir`, each checked like any fetch: the next calls are served from there without loading the
 * runner (wal-prefetch.ts). A partial is never fetched ahead (the archive may finish it).
 */
async function prefetch(rt: Runtime, wal: string, segmentSize: number, dir: string, system: bigint | undefined, signal?: AbortSignal): Promise<void> {
  const seg = parseSegmentName(wal, segmentSize)!;
  const names = Array.from({ length: PREFETCH_COUNT }, (_, i) => segmentName(seg.tli, seg.segno + BigInt(i + 1), segmentSize));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const have = new Set(await readdir(dir));
  await mapLimit(names, 4, async (name) => {
    if (have.has(name)) return;
    const found = await completeObject(rt, name, system, signal).catch((err: unknown) => void rt.logger.debug({ wal: name, err: toBackupError(err, 'STORAGE_FAILED') }, 'not fetched ahead'));
    if (found) await writeBytes(found.plain, join(dir, name));
  });
}

/**
 * What one location's complete objects for `wal` give: the checked bytes of the one object of the wanted system
 * (`system`; with it unknown, of the only object), or why none (`problem`), or nothing held.
 */
async function fromLocation(loc: Location, wal: string, system: bigint | undefined, complete: Candidate[], signal?: AbortSignal): Promise<{ c: Candidate; plain: Buffer } | { problem: string } | undefined> {
  const distinct = [...new Map(complete.map((c) => [c.file.sha256, c])).values()];
  if (distinct.length === 0) return undefined;
  if (distinct.length > 1 && system === undefined) return { problem: `${loc.name} holds ${distinct.length} different objects for ${wal}: not believed` };
  const mine: { c: Candidate; plain: Buffer }[] = [];
  for (const c of distinct) {
    const plain = await readWal(c, signal);
    if (ofSystem(wal, plain, system)) mine.push({ c, plain });
  }
  if (mine.length === 1) return mine[0]!;
  if (mine.length === 0) return { problem: `${loc.name} holds ${wal} only of another database system than the data directory's (${system})` };
  return { problem: `${loc.name} holds ${mine.length} different objects for ${wal} of the same database system: not believed` };
}

/** The checked bytes of the one complete object of the wanted system some location holds for a segment, or undefined. */
async function completeObject(rt: Runtime, name: string, system: bigint | undefined, signal?: AbortSignal): Promise<{ c: Candidate; plain: Buffer } | undefined> {
  for (const loc of rt.locations) {
    const found = await candidates(loc, name, signal).catch(() => undefined);
    const r = found ? await fromLocation(loc, name, system, found.complete, signal).catch(() => undefined) : undefined;
    if (r && 'plain' in r) return r;
  }
  return undefined;
}

/** How many segments a feed keeps waiting in its directory at most (16 MiB each at the default size). */
const FEED_AHEAD = 16;

/**
 * Feeds a recovery the restore runs itself (restore --start): the complete segments from `fromWal` on, in
 * order, each checked, written into `dir` (wal-fetch's prefetch directory, which its fast path serves), at most
 * FEED_AHEAD waiting there at once, so the server replays without waiting for the archive. It ends at the first
 * segment no location holds whole (the server's own wal-fetch takes it from there: a partial, another timeline)
 * or when `signal` aborts; a segment it could not fetch is left to wal-fetch. Returns how many it fed.
 */
export async function feedWal(rt: Runtime, from: { wal: string; segmentSize: number }, dir: string, opts: { owner?: { uid: number; gid: number }; signal: AbortSignal }): Promise<number> {
  const seg = parseSegmentName(from.wal, from.segmentSize);
  if (!seg) return 0;
  const { signal } = opts;
  let next = seg.segno;
  let fed = 0;
  while (!signal.aborted) {
    const waiting = (await readdir(dir).catch(() => [] as string[])).filter((f) => SEGMENT_NAME.test(f)).length;
    if (waiting >= FEED_AHEAD) {
      await delay(50, undefined, { signal }).catch(() => undefined);
      continue;
    }
    const names = Array.from({ length: Math.min(4, FEED_AHEAD - waiting) }, (_, i) => segmentName(seg.tli, next + BigInt(i), from.segmentSize));
    const system = await dataDirectorySystem(dir);
    const done = await mapLimit(names, 4, async (name) => {
      const found = await completeObject(rt, name, system, signal);
      if (!found) return false;
      const dest = join(dir, name);
      await writeBytes(found.plain, dest);
      if (opts.owner) await chown(dest, opts.owner.uid, opts.owner.gid);
      return true;
    }).catch((err: unknown) => {
      if (!signal.aborted) rt.logger.debug({ err: toBackupError(err, 'STORAGE_FAILED') }, 'WAL not fed ahead: wal-fetch fetches it');
      return [false];
    });
    const run = done.indexOf(false);
    fed += run < 0 ? done.length : run;
    if (run >= 0) return fed;
    next += BigInt(done.length);
  }
  return fed;
}

async function fetchOne(rt: Runtime, wal: string, dest: string, system: bigint | undefined, signal?: AbortSignal): Promise<WalFetchResult> {
  if (!wanted(wal)) throw new BackupError('USAGE', `wal-fetch: "${wal}" is not a WAL segment or history file name`);
  const problems: string[] = [];
  const partials: Candidate[] = [];
  for (const loc of rt.locations) {
    try {
      const found = await candidates(loc, wal, signal);
      partials.push(...found.partials);
      const r = await fromLocation(loc, wal, system, found.complete, signal);
      if (r && 'problem' in r) problems.push(r.problem);
      else if (r) return await written(r, dest);
    } catch (err) {
      problems.push(`${loc.name}: ${toBackupError(err, 'STORAGE_FAILED').message}`);
    }
  }
  for (const p of partials) {
    try {
      const plain = await readWal(p, signal);
      if (!ofSystem(wal, plain, system)) {
        problems.push(`${p.loc.name}: ${p.key} is of another database system than the data directory's (${system})`);
        continue;
      }
      return await written({ c: p, plain }, dest);
    } catch (err) {
      problems.push(`${p.loc.name}: ${toBackupError(err, 'STORAGE_FAILED').message}`);
    }
  }
  throw new BackupError('BACKUP_NOT_FOUND', `${wal} is in no location${problems.length > 0 ? ` that could be used (${problems.join('; ')})` : ''}`, { details: { wal, problems } });
}

async function written(r: { c: Candidate; plain: Buffer }, dest: string): Promise<WalFetchResult> {
  await writeBytes(r.plain, dest);
  return { wal: r.c.file.wal, location: r.c.loc.name, key: r.c.key, partial: r.c.file.partial, bytes: r.plain.length };
}

/** Writes checked bytes to `dest` through a temp file beside it, flushed, renamed into place. */
async function writeBytes(plain: Buffer, dest: string): Promise<void> {
  const tmp = join(dirname(dest), `.${basename(dest)}.${process.pid}.fetching`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(plain);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, dest).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
}

