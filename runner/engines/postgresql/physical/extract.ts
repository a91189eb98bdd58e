/**
 * Lays a base backup's tar into a directory, member by member (entries.ts decides what may be written),
 * each file written without following links, flushed to disk before it counts as done. A restore that
 * stopped resumes: the members it had finished are read past (a file already there at its size is kept).
 */
import { constants } from 'node:fs';
import { chmod, lchown, lstat, mkdir, open } from 'node:fs/promises';
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
  /** Members finished by an earlier run of the same restore: read past, not written again. */
  skip?: number;
  owner?: Owner;
  signal?: AbortSignal;
  /** Told after each finished member (the caller records it, throttled). */
  onProgress?: (p: ExtractProgress) => void | Promise<void>;
}

export interface Extracted extends ExtractProgress {
  files: number;
  /** Members read past because an earlier run had written them. */
  skipped: number;
}

const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

/** Creates each missing directory of `segments` below `dir` (0700), refusing one that exists as anything but a directory. */
async function ensureDirs(dir: string, segments: readonly string[], made: Set<string>, owner?: Owner): Promise<void> {
  let at = dir;
  for (const s of segments) {
    at = join(at, s);
    if (made.has(at)) continue;
    try {
      await mkdir(at, { mode: 0o700 });
      if (owner) await lchown(at, owner.uid, owner.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await lstat(at);
      if (!st.isDirectory()) throw new BackupError('INTEGRITY', `${at} exists and is not a directory: the base backup cannot be laid over it`);
    }
    made.add(at);
  }
}

async function writeFile(path: string, entry: AsyncIterable<Uint8Array>, mode: number, owner?: Owner): Promise<void> {
  const fh = await open(path, WRITE_FLAGS, mode);
  try {
    await fh.chmod(mode);
    if (owner) await fh.chown(owner.uid, owner.gid);
  } catch (err) {
    await fh.close();
    throw err;
  }
  await pipeline(entry, fh.createWriteStream());
}

/** Whether a member an earlier run finished is still there, whole. */
async function alreadyThere(path: string, size: number): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  return st !== undefined && st.isFile() && st.size === size;
}

/**
 * Extracts `input` (an uncompressed tar) into `opts.dir`. Throws INTEGRITY for a member that may not be
 * written (nothing of it is), and for a name seen twice; the caller says what the directory holds then.
 */
export async function extractTar(input: Readable, opts: ExtractOptions): Promise<Extracted> {
  const ex = extract();
  const feeding = pipeline(input, ex as unknown as NodeJS.WritableStream).catch((err: unknown) => err);
  const seen = new Set<string>();
  const made = new Set<string>([opts.dir]);
  const progress: Extracted = { entries: 0, bytes: 0, files: 0, skipped: 0 };
  try {
    for await (const entry of ex) {
      if (opts.signal?.aborted) throw toBackupError(opts.signal.reason, 'ABORTED');
      const h = entry.header;
      const where = memberPath({ name: h.name, type: h.type ?? null, size: h.size ?? 0, mode: h.mode ?? 0 });
      if ('problem' in where) throw new BackupError('INTEGRITY', `the base backup's tar is refused: ${where.problem}`);
      const rel = where.segments.join('/');
      if (seen.has(rel)) throw new BackupError('INTEGRITY', `the base backup's tar is refused: "${rel}" appears twice`);
      seen.add(rel);
      const path = join(opts.dir, ...where.segments);
      if (where.directory) {
        await ensureDirs(opts.dir, where.segments, made, opts.owner);
        await chmod(path, directoryMode(h.mode));
        entry.resume();
      } else {
        await ensureDirs(opts.dir, where.segments.slice(0, -1), made, opts.owner);
        const size = h.size ?? 0;
        if (progress.entries < (opts.skip ?? 0) && (await alreadyThere(path, size))) {
          entry.resume();
          progress.skipped++;
        } else {
          await writeFile(path, entry as AsyncIterable<Uint8Array>, fileMode(h.mode), opts.owner);
        }
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
  if (progress.entries === 0) throw new BackupError('INTEGRITY', 'the base backup holds no member at all');
  return progress;
}
