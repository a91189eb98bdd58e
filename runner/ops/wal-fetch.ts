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
import { constants } from 'node:fs';
import { chown, link, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { basename, dirname, join, resolve } from 'node:path';
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
import { FED_AGAIN, HELD_LIST } from '../engines/postgresql/physical/recovery.js';
import { openExactly, ownedDirectory } from '../engines/postgresql/physical/extract.js';
import type { WalFeed } from '../engines/types.js';
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

/** Segments fetched ahead of PostgreSQL's asking, checked, for wal-fetch's fast path: 8 of the default 16 MiB, fewer of a larger size (128 MiB in all, at least one). */
const PREFETCH_BYTES = 128 * 1024 * 1024;

/**
 * Fetches the complete segments after `wal` (PREFETCH_BYTES of them, up to the first one no location holds
 * whole) into `dir`, each checked like any fetch: the next calls are served from there without loading the
 * runner (wal-prefetch.ts). A partial is never fetched ahead (the archive may finish it).
 */
async function prefetch(rt: Runtime, wal: string, segmentSize: number, dir: string, system: bigint | undefined, signal?: AbortSignal): Promise<void> {
  const seg = parseSegmentName(wal, segmentSize)!;
  const count = Math.max(1, Math.floor(PREFETCH_BYTES / segmentSize));
  const names = Array.from({ length: count }, (_, i) => segmentName(seg.tli, seg.segno + BigInt(i + 1), segmentSize));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const have = new Set(await readdir(dir));
  await mapLimit(names, feedLimits(segmentSize).batch, async (name) => {
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

/** What a feed keeps waiting in its directory at most: 16 segments of the default 16 MiB, at least 2 of a larger size. */
const FEED_AHEAD_BYTES = 256 * 1024 * 1024;

/** What a feed holds in memory at once (segments fetched side by side): 4 of the default size, one of 64 MiB or more. */
const FEED_BATCH_BYTES = 64 * 1024 * 1024;

/** Pure: how many segments of `segmentSize` a feed keeps waiting, and fetches at once. */
export function feedLimits(segmentSize: number): { ahead: number; batch: number } {
  return { ahead: Math.max(2, Math.floor(FEED_AHEAD_BYTES / segmentSize)), batch: Math.max(1, Math.floor(FEED_BATCH_BYTES / segmentSize)) };
}

/** How many of the last segments fed are kept to be given again (PostgreSQL reads the last one again once it has replayed it). */
const FED_KEPT = 2;

/**
 * Every WAL object of every location, listed once: per name held (a partial too), its complete objects (the feed gives
 * nothing else); `whole` when every location could be listed.
 */
interface ArchiveIndex {
  byName: Map<string, Candidate[]>;
  whole: boolean;
}

async function indexArchive(rt: Runtime, signal: AbortSignal): Promise<ArchiveIndex> {
  const byName = new Map<string, Candidate[]>();
  let whole = true;
  for (const loc of rt.locations) {
    const prefix = walPrefix(loc.scope);
    try {
      for await (const o of loc.storage.list(prefix, { signal })) {
        const file = parseWalFile(o.key.slice(prefix.length));
        if (!file || o.size > MAX_WAL_BYTES) continue;
        const complete = byName.get(file.wal) ?? [];
        if (!file.partial) complete.push({ loc, key: o.key, file, ...(o.modifiedAt ? { modifiedAt: o.modifiedAt } : {}) });
        byName.set(file.wal, complete);
      }
    } catch (err) {
      whole = false;
      rt.logger.debug({ location: loc.name, err: toBackupError(err, 'STORAGE_FAILED') }, 'WAL archive not listed for the feed: wal-fetch fetches from it');
    }
  }
  return { byName, whole };
}

/**
 * The checked bytes of the complete object the archive gives for `name` (the first location, in config order, holding
 * exactly one of the data directory's system); undefined when none can be used. A partial is never fed: the archive
 * may finish it, and a location that could not be listed may hold it whole (wal-fetch asks the archive then).
 */
async function chosen(rt: Runtime, index: ArchiveIndex, name: string, system: bigint | undefined, signal: AbortSignal): Promise<{ c: Candidate; plain: Buffer } | undefined> {
  const complete = index.byName.get(name);
  if (!complete) return undefined;
  for (const loc of rt.locations) {
    const r = await fromLocation(loc, name, system, complete.filter((c) => c.loc === loc), signal).catch(() => undefined);
    if (r && 'plain' in r) return r;
  }
  return undefined;
}

/** How often the feed lists the archive again to rewrite HELD_LIST (restore_command believes a list younger than a minute only). */
const HELD_REFRESH_MS = 5000;

/** Writes HELD_LIST: the names `index` holds, when every location was listed (else the list is removed: nothing is sure). */
async function writeHeld(index: ArchiveIndex, dir: string, owner: { uid: number; gid: number } | undefined): Promise<void> {
  if (!index.whole) {
    await rm(join(dir, HELD_LIST), { force: true });
    return;
  }
  await writeBytes(Buffer.from(`${[...index.byName.keys()].sort().join('\n')}\n`), join(dir, HELD_LIST), { owner, flush: false });
}

/**
 * Feeds a recovery the restore runs itself (restore --start), into `dir` (wal-fetch's prefetch directory, which
 * restore_command moves files out of):
 * - the names the archive holds, in HELD_LIST, when every location was listed, rewritten every HELD_REFRESH_MS
 *   until the feed is stopped (restore_command says at once that a name not in a list younger than a minute is
 *   not in the archive; an older list, or none, is not believed);
 * - every history file, into FED_AGAIN (given by copy, as often as asked);
 * - the complete segments from `from.wal` on, in order, each checked, at most feedLimits' waiting at once, the last
 *   FED_KEPT also kept in FED_AGAIN; the run ends at the first segment no location holds whole (the partial of
 *   the segment the server was writing, another timeline: the server's wal-fetch takes it from the archive).
 * `primed` resolves once the list is written and the first segment waits (or the run ended).
 */
export function feedWal(rt: Runtime, from: { wal: string; segmentSize: number }, dir: string, opts: { owner?: { uid: number; gid: number }; signal: AbortSignal }): WalFeed {
  let prime = (): void => undefined;
  const primed = new Promise<void>((resolve) => (prime = resolve));
  const refreshers: Promise<void>[] = [];
  const done = runFeed(rt, from, dir, opts, () => prime(), (r) => refreshers.push(r)).finally(() => prime());
  const closed = done.then(
    () => Promise.all(refreshers).then(() => undefined),
    () => Promise.all(refreshers).then(() => undefined),
  );
  return { primed, done, closed };
}

async function runFeed(
  rt: Runtime,
  from: { wal: string; segmentSize: number },
  dir: string,
  opts: { owner?: { uid: number; gid: number }; signal: AbortSignal },
  primed: () => void,
  refreshing: (r: Promise<void>) => void,
): Promise<number> {
  const seg = parseSegmentName(from.wal, from.segmentSize);
  if (!seg) return 0;
  const { signal, owner } = opts;
  const again = join(dir, FED_AGAIN);
  await ownedDirectory(again, owner);
  const system = await dataDirectorySystem(dir);
  const index = await indexArchive(rt, signal);
  const names = [...index.byName.keys()].sort();
  for (const name of names.filter((n) => HISTORY_NAME.test(n))) {
    const got = await chosen(rt, index, name, system, signal);
    if (got) await writeBytes(got.plain, join(again, name), { owner, flush: false });
  }
  await writeHeld(index, dir, owner);
  refreshing(refreshHeld(rt, dir, owner, signal));
  try {
    return await feedSegments(rt, { seg, segmentSize: from.segmentSize, dir, again, system, index, owner, signal }, primed);
  } finally {
    primed();
  }
}

/** Lists the archive again every HELD_REFRESH_MS and rewrites HELD_LIST, until `signal` aborts. */
async function refreshHeld(rt: Runtime, dir: string, owner: { uid: number; gid: number } | undefined, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await delay(HELD_REFRESH_MS, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return;
    const index = await indexArchive(rt, signal).catch(() => undefined);
    if (index && !signal.aborted) await writeHeld(index, dir, owner).catch((err: unknown) => rt.logger.debug({ err: toBackupError(err, 'RESTORE_FAILED') }, 'the list of held WAL files could not be rewritten'));
  }
}

interface FeedRun {
  seg: { tli: number; segno: bigint };
  segmentSize: number;
  dir: string;
  again: string;
  system: bigint | undefined;
  index: ArchiveIndex;
  owner: { uid: number; gid: number } | undefined;
  signal: AbortSignal;
}

/** Whether the server restored `name` already: PostgreSQL keeps a file restored from the archive in pg_wal/ under its name. */
async function takenByServer(dir: string, name: string): Promise<boolean> {
  return lstat(join(dirname(dir), name)).then(
    () => true,
    () => false,
  );
}

/** The segments waiting in `dir` for the server; one it restored otherwise (through wal-fetch, which also fetches ahead into `dir`) is removed. */
async function waitingSegments(dir: string): Promise<number> {
  let waiting = 0;
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (!SEGMENT_NAME.test(n)) continue;
    if (await takenByServer(dir, n)) await rm(join(dir, n), { force: true });
    else waiting++;
  }
  return waiting;
}

async function feedSegments(rt: Runtime, f: FeedRun, primed: () => void): Promise<number> {
  const { seg, segmentSize, dir, again, system, index, owner, signal } = f;
  const { ahead, batch: batchSize } = feedLimits(segmentSize);
  let next = seg.segno;
  let fed = 0;
  const kept: string[] = [];
  while (!signal.aborted) {
    if (!index.byName.has(segmentName(seg.tli, next, segmentSize))) break;
    const waiting = await waitingSegments(dir);
    if (waiting >= ahead) {
      primed();
      await delay(20, undefined, { signal }).catch(() => undefined);
      continue;
    }
    const batch = Array.from({ length: Math.min(batchSize, ahead - waiting) }, (_, i) => segmentName(seg.tli, next + BigInt(i), segmentSize));
    // Fetched at once, written in order as each arrives.
    const got = batch.map((name) => chosen(rt, index, name, system, signal));
    for (const g of got) g.catch(() => undefined);
    for (const [i, name] of batch.entries()) {
      const r = await got[i]!.catch(() => undefined);
      if (!r || signal.aborted) return fed;
      // The server took it from wal-fetch already (it got ahead of the feed): a copy now would only wait there.
      if (await takenByServer(dir, name)) continue;
      await writeBytes(r.plain, join(dir, name), { owner, alsoAt: join(again, name), flush: false });
      kept.push(name);
      if (kept.length > FED_KEPT) await rm(join(again, kept.shift()!), { force: true });
      fed++;
      // The server starts on the first segment: the rest of the batch is already on its way.
      primed();
    }
    next += BigInt(batch.length);
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

/**
 * Writes checked bytes to `dest` through a temp file beside it, renamed into place: owned by `owner` before it
 * appears, also linked at `alsoAt` first, and flushed unless `flush` is false (a feed's files are of one
 * recovery, removed after it: nothing to keep across a crash).
 */
async function writeBytes(plain: Buffer, dest: string, o: { owner?: { uid: number; gid: number } | undefined; alsoAt?: string; flush?: boolean } = {}): Promise<void> {
  // Absolute: PostgreSQL gives DEST relative to the data directory, and openExactly compares real paths.
  const tmp = resolve(dirname(dest), `.${basename(dest)}.${process.pid}.fetching`);
  await rm(tmp, { force: true });
  // A new file, never through a link, in the directory it was meant for: the directory belongs to the server's user.
  const fh = await openExactly(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(plain);
    if (o.flush !== false) await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (o.alsoAt) {
      await rm(o.alsoAt, { force: true });
      await link(tmp, o.alsoAt);
    }
    // Owned by the server's user only once every link is made (a hard link to another's file may be refused).
    if (o.owner) await chown(tmp, o.owner.uid, o.owner.gid);
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
