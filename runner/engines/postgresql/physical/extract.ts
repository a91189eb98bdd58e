/**
 * Lays a base backup's tar into a directory, member by member (entries.ts decides what may be written).
 *
 * Invariants:
 * - Every file and directory is opened without following a link, and the opened descriptor's real path
 *   (/proc/self/fd) must be the member's place below the directory's real path before a byte is written or a
 *   mode or owner set: a link swapped in while the restore runs stops it (INTEGRITY) instead of redirecting it.
 * - A resumed restore compares each member an earlier run finished with what lies there, byte for byte as
 *   the tar streams past, and rewrites from the first difference: nothing an earlier run (or anyone since)
 *   left is kept unless it is exactly the backup's.
 */
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, ftruncateSync, openSync, readSync, readlinkSync, writeSync } from 'node:fs';
import { type FileHandle, mkdir, open, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { BackupError, toBackupError } from '../../../errors.js';
import type { Owner } from '../../types.js';
import { directoryMode, fileMode, memberPath } from './entries.js';

/** How far an extraction got: members finished (in tar order) and their bytes. */
export interface ExtractProgress {
  entries: number;
  bytes: number;
}

export interface ExtractOptions {
  /** The directory (absolute, existing) the members are laid into. */
  dir: string;
  /** Members finished by an earlier run of the same restore: compared with what lies there, rewritten where it differs. */
  skip?: number;
  owner?: Owner;
  signal?: AbortSignal;
  /** Told after each finished member (the caller records it, throttled). */
  onProgress?: (p: ExtractProgress) => void | Promise<void>;
}

export interface Extracted extends ExtractProgress {
  files: number;
  /** Files an earlier run had written whole and right: kept. */
  skipped: number;
  /** Every member's path (relative, `/`-separated), for what the caller checks afterwards. */
  members: Set<string>;
}

const FILE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Pure: the refusal for an open that met a link or something else than the backup's member (ELOOP, ENOTDIR, ENXIO); undefined for any other error. */
function openRefusal(path: string, err: unknown): BackupError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ELOOP' && code !== 'ENOTDIR' && code !== 'ENXIO') return undefined;
  return new BackupError('INTEGRITY', `${path} is a link or not what the backup holds there: the restore stopped (something else writes this directory)`, { cause: err, details: { refused: true } });
}

/** Pure: the refusal for a descriptor whose real path (`actual`, from /proc/self/fd) is not `path`; undefined when it is. */
function resolvedRefusal(path: string, actual: string | undefined): BackupError | undefined {
  if (actual === path) return undefined;
  return new BackupError('INTEGRITY', `${path} resolved to ${actual ?? 'an unknown place'}: a link was put in its way while the restore ran; the restore stopped`, { details: { refused: true } });
}

/** Opens `path` without following a link and checks that the descriptor really is `path` (no link in a parent either). */
export async function openExactly(path: string, flags: number, mode?: number): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, flags, mode);
  } catch (err) {
    throw openRefusal(path, err) ?? err;
  }
  const refused = resolvedRefusal(path, await readlink(`/proc/self/fd/${fh.fd}`).catch(() => undefined));
  if (refused) {
    await fh.close();
    throw refused;
  }
  return fh;
}

/**
 * Makes the directory `path` (its parent must exist; nothing may lie at `path`) and gives it to `owner` through its
 * own descriptor, opened without following a link and checked (openExactly): a link swapped in is refused.
 */
export async function ownedDirectory(path: string, owner: Owner | undefined): Promise<void> {
  await mkdir(path, { mode: 0o700 });
  const fh = await openExactly(path, DIR_FLAGS);
  try {
    if (owner) await fh.chown(owner.uid, owner.gid);
  } finally {
    await fh.close();
  }
}

/** Creates each missing directory of `segments` below `root` (0700), each checked as it is opened. */
async function ensureDirs(root: string, segments: readonly string[], made: Set<string>, owner?: Owner): Promise<void> {
  let at = root;
  for (const s of segments) {
    at = join(at, s);
    if (made.has(at)) continue;
    const created = await mkdir(at, { mode: 0o700 }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
        return false;
      },
    );
    const fh = await openExactly(at, DIR_FLAGS);
    try {
      if (created && owner) await fh.chown(owner.uid, owner.gid);
    } finally {
      await fh.close();
    }
    made.add(at);
  }
}

/**
 * Opens `path` like openExactly, synchronously: the descriptor, checked. Laying in a base backup opens about
 * a thousand small files; each asynchronous call is a round trip through libuv's thread pool, which costs more
 * than the system call itself.
 */
function openExactlySync(path: string, flags: number, mode?: number): number {
  let fd: number;
  try {
    fd = openSync(path, flags, mode);
  } catch (err) {
    throw openRefusal(path, err) ?? err;
  }
  let actual: string | undefined;
  try {
    actual = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    actual = undefined;
  }
  const refused = resolvedRefusal(path, actual);
  if (refused) {
    closeSync(fd);
    throw refused;
  }
  return fd;
}

/**
 * Writes a member's bytes from offset 0 (`compare`: first reading what lies there, writing only from the first
 * difference); true when nothing differed. The system calls are synchronous (see openExactlySync): each writes
 * one chunk of the tar stream into the page cache.
 */
async function layFile(path: string, entry: AsyncIterable<Uint8Array>, size: number, mode: number, owner: Owner | undefined, compare: boolean): Promise<boolean> {
  const fd = openExactlySync(path, FILE_FLAGS, mode);
  try {
    // A FIFO or device put there would block or redirect the writes.
    if (!fstatSync(fd).isFile()) throw new BackupError('INTEGRITY', `${path} is not a regular file: something else put it in the directory while the restore ran; the restore stopped`, { details: { refused: true } });
    fchmodSync(fd, mode);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    let same = compare && fstatSync(fd).size === size;
    if (!compare) ftruncateSync(fd, 0);
    let offset = 0;
    const scratch = Buffer.alloc(same ? 1 << 20 : 0);
    for await (const chunk of entry) {
      if (same) {
        const want = Math.min(chunk.length, scratch.length);
        let n = 0;
        if (want === chunk.length) n = readSync(fd, scratch, 0, want, offset);
        if (n === chunk.length && scratch.subarray(0, n).equals(chunk)) {
          offset += chunk.length;
          continue;
        }
        same = false;
      }
      let written = 0;
      while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written, offset + written);
      offset += chunk.length;
    }
    if (offset !== size) throw new BackupError('INTEGRITY', `${path}: the tar held ${offset} bytes for a member of ${size}`);
    if (!same) ftruncateSync(fd, size);
    return same;
  } finally {
    closeSync(fd);
  }
}

/**
 * Extracts `input` (an uncompressed tar) into `opts.dir`. Throws INTEGRITY for a member that may not be
 * written (nothing of it is), for a name seen twice, and for a path changed under it; the caller says what the
 * directory holds then.
 */
export async function extractTar(input: Readable, opts: ExtractOptions): Promise<Extracted> {
  const root = await realpath(opts.dir);
  const ex = extract();
  const feeding = pipeline(input, ex as unknown as NodeJS.WritableStream).catch((err: unknown) => err);
  const made = new Set<string>([root]);
  const progress: Extracted = { entries: 0, bytes: 0, files: 0, skipped: 0, members: new Set() };
  try {
    for await (const entry of ex) {
      if (opts.signal?.aborted) throw toBackupError(opts.signal.reason, 'ABORTED');
      const h = entry.header;
      const where = memberPath({ name: h.name, type: h.type ?? null, size: h.size ?? 0, mode: h.mode ?? 0 });
      if ('problem' in where) throw new BackupError('INTEGRITY', `the base backup's tar is refused: ${where.problem}`, { details: { refused: true } });
      const rel = where.segments.join('/');
      if (progress.members.has(rel) && rel !== '') throw new BackupError('INTEGRITY', `the base backup's tar is refused: "${rel}" appears twice`, { details: { refused: true } });
      progress.members.add(rel);
      const path = join(root, ...where.segments);
      if (where.directory) {
        await ensureDirs(root, where.segments, made, opts.owner);
        const fh = await openExactly(path, DIR_FLAGS);
        await fh.chmod(directoryMode(h.mode)).finally(() => fh.close());
        entry.resume();
      } else {
        await ensureDirs(root, where.segments.slice(0, -1), made, opts.owner);
        const size = h.size ?? 0;
        const kept = await layFile(path, entry as AsyncIterable<Uint8Array>, size, fileMode(h.mode), opts.owner, progress.entries < (opts.skip ?? 0));
        if (kept) progress.skipped++;
        progress.files++;
        progress.bytes += size;
      }
      progress.entries++;
      await opts.onProgress?.({ entries: progress.entries, bytes: progress.bytes });
    }
  } catch (err) {
    ex.destroy();
    input.destroy();
    await feeding;
    throw err;
  }
  const fed = await feeding;
  if (fed !== undefined) throw toBackupError(fed, 'RESTORE_FAILED');
  if (progress.entries === 0) throw new BackupError('INTEGRITY', 'the base backup holds no member at all', { details: { refused: true } });
  return progress;
}
