/**
 * A directory as a storage location (a mounted PVC, a local disk, NFS).
 *
 * Invariants:
 * - A key `a/b/c` is the file `<root>/a/b/c`; keys never escape the root
 *   (see keys.ts).
 * - `put` writes `<dir>/.tmp-<random>` next to the target, fsyncs it, then
 *   renames it into place: readers see the old object or the whole new one,
 *   never a part. On any failure or abort the temp file is removed before the
 *   promise rejects. Temp files are never listed.
 * - `delete` removes directories left empty up to the root, so retention
 *   leaves no husks; `put` recreates them (and retries when a concurrent
 *   delete removed the directory it was about to write into).
 * - Only regular files are objects: directories, symlinks and sockets are
 *   skipped by `list` and are "not found" for `get` and `stat`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { addAbortSignal, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PutBody } from './body.js';
import { storageError, throwIfAborted, type CallContext } from './errors.js';
import { errnoOf, fsError } from './filesystem-errors.js';
import { TEMP_PREFIX, checkKey, checkPrefix, compareKeys } from './keys.js';
import type { CallOptions, GetOptions, ObjectInfo, PutResult, Storage } from './types.js';

export interface FilesystemStorageOptions {
  /** Shown in logs and errors; defaults to `file://<root>`. */
  description?: string;
}

export class FilesystemStorage implements Storage {
  readonly description: string;
  private readonly root: string;

  constructor(root: string, opts: FilesystemStorageOptions = {}) {
    this.root = resolve(root);
    this.description = opts.description ?? `file://${this.root}`;
  }

  private ctx(op: CallContext['op'], key?: string): CallContext {
    return { location: this.description, op, key };
  }

  private pathOf(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Readable | Buffer, opts: CallOptions = {}): Promise<PutResult> {
    const ctx = this.ctx('put', key);
    const source = Buffer.isBuffer(body) ? undefined : new PutBody(body, opts.signal, ctx);
    let temp: { fh: FileHandle | undefined; path: string | undefined } = { fh: undefined, path: undefined };
    try {
      checkKey(key, ctx);
      throwIfAborted(opts.signal, ctx);
      const target = this.pathOf(key);
      temp = await openTemp(dirname(target));
      const fh = temp.fh!;
      if (source) {
        // The write stream owns the handle: it fsyncs (flush) and closes it at the end, or closes it when destroyed.
        temp.fh = undefined;
        await pipeline(source.stream, fh.createWriteStream({ flush: true, highWaterMark: 256 * 1024 }));
      } else {
        await fh.writeFile(body as Buffer);
        await fh.sync();
        temp.fh = undefined;
        await fh.close();
      }
      // A Buffer put has no stream to destroy: the signal is checked before the commit.
      if (!source) throwIfAborted(opts.signal, ctx);
      await rename(temp.path!, target);
      temp.path = undefined;
      await syncDir(dirname(target));
      source?.release();
      return { size: source ? source.bytes : (body as Buffer).length };
    } catch (err) {
      await temp.fh?.close().catch(() => undefined);
      if (temp.path !== undefined) await rm(temp.path, { force: true }).catch(() => undefined);
      throw source ? source.failure(err, (e) => fsError(e, ctx)) : fsError(err, ctx);
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    const ctx = this.ctx('get', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    let fh: FileHandle | undefined;
    try {
      // Never through a symbolic link: a key names a file the runner (or a server-side backup) wrote here.
      fh = await open(this.pathOf(key), constants.O_RDONLY | constants.O_NOFOLLOW);
      if (!(await fh.stat()).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    } catch (err) {
      await fh?.close().catch(() => undefined);
      throw fsError(err, ctx);
    }
    // The stream owns the handle from here and closes it when it ends or is destroyed.
    const stream = fh.createReadStream({ start: opts.range?.start, end: opts.range?.end, highWaterMark: 256 * 1024 });
    return opts.signal ? addAbortSignal(opts.signal, stream) : stream;
  }

  async *list(prefix: string, opts: CallOptions = {}): AsyncIterable<ObjectInfo> {
    const ctx = this.ctx('list');
    checkPrefix(prefix, ctx);
    const slash = prefix.lastIndexOf('/');
    yield* this.walk(prefix.slice(0, slash + 1), prefix.slice(slash + 1), ctx, opts.signal);
  }

  /**
   * Depth-first walk of `<root>/<dirKey>` whose entries start with
   * `namePrefix`. Siblings are visited in the order of their key (a directory
   * sorts as `name/`), so keys come out in ascending byte order.
   */
  private async *walk(dirKey: string, namePrefix: string, ctx: CallContext, signal?: AbortSignal): AsyncGenerator<ObjectInfo> {
    throwIfAborted(signal, ctx);
    let entries;
    try {
      entries = await readdir(join(this.root, dirKey), { withFileTypes: true });
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return;
      throw fsError(err, ctx);
    }
    const items = entries
      .filter((e) => (e.isFile() || e.isDirectory()) && e.name.startsWith(namePrefix) && !e.name.startsWith(TEMP_PREFIX))
      .map((e) => ({ name: e.name, dir: e.isDirectory(), order: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => compareKeys(a.order, b.order));
    for (const item of items) {
      const key = dirKey + item.name;
      if (item.dir) {
        yield* this.walk(`${key}/`, '', ctx, signal);
        continue;
      }
      try {
        const st = await stat(join(this.root, dirKey, item.name));
        yield { key, size: st.size, modifiedAt: st.mtime };
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw fsError(err, ctx); // deleted while listing: skip
      }
    }
  }

  /** Removes temp files of interrupted puts (a crash between write and rename) under `prefix`. */
  async sweepIncomplete(prefix: string, olderThan: Date, opts: CallOptions = {}): Promise<number> {
    const ctx = this.ctx('list');
    checkPrefix(prefix, ctx);
    const base = join(this.root, prefix.slice(0, prefix.lastIndexOf('/') + 1));
    let entries;
    try {
      entries = await readdir(base, { recursive: true, withFileTypes: true });
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return 0;
      throw fsError(err, ctx);
    }
    let removed = 0;
    for (const e of entries) {
      throwIfAborted(opts.signal, ctx);
      if (!e.isFile() || !e.name.startsWith(TEMP_PREFIX)) continue;
      const path = join(e.parentPath, e.name);
      const st = await stat(path).catch(() => undefined);
      if (!st || st.mtime >= olderThan) continue;
      await unlink(path).catch(() => undefined);
      removed++;
      for (let dir = dirname(path); dir.length > this.root.length && dir.startsWith(this.root); dir = dirname(dir)) {
        if (!(await rmdir(dir).then(() => true, () => false))) break;
      }
    }
    return removed;
  }

  async stat(key: string, opts: CallOptions = {}): Promise<ObjectInfo> {
    const ctx = this.ctx('stat', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    try {
      const st = await stat(this.pathOf(key));
      if (!st.isFile()) throw storageError('STORAGE_NOT_FOUND', ctx, `object ${key} not found`);
      return { key, size: st.size, modifiedAt: st.mtime };
    } catch (err) {
      throw fsError(err, ctx);
    }
  }

  async delete(key: string, opts: CallOptions = {}): Promise<void> {
    const ctx = this.ctx('delete', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return;
      throw fsError(err, ctx);
    }
    // Prune directories left empty, stopping at the first one that is not (or at the root).
    for (let dir = dirname(path); dir.length > this.root.length && dir.startsWith(this.root); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
    }
  }

  /** Creates the root when missing and proves a file can be written there. */
  async preflight(opts: CallOptions = {}): Promise<void> {
    const ctx = this.ctx('preflight');
    throwIfAborted(opts.signal, ctx);
    let temp: { fh: FileHandle | undefined; path: string | undefined } = { fh: undefined, path: undefined };
    try {
      temp = await openTemp(this.root);
      await temp.fh!.writeFile('preflight\n');
      await temp.fh!.sync();
    } catch (err) {
      throw fsError(err, ctx);
    } finally {
      await temp.fh?.close().catch(() => undefined);
      if (temp.path !== undefined) await rm(temp.path, { force: true }).catch(() => undefined);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Creates `dir` and a new temp file in it. Retries when a concurrent delete
 * pruned the directory between the mkdir and the open.
 */
async function openTemp(dir: string): Promise<{ fh: FileHandle; path: string }> {
  for (let attempt = 1; ; attempt++) {
    await ensureDir(dir);
    const path = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      return { fh: await open(path, 'wx', 0o600), path };
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT' || attempt >= 3) throw err;
    }
  }
}

/**
 * `mkdir -p`. Node's recursive mkdir reports ENOENT for some failures below
 * an existing directory (EROFS, for one); the missing part is then created
 * step by step so the error says what really went wrong.
 */
async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const parent = dirname(dir);
    if (errnoOf(err) !== 'ENOENT' || parent === dir) throw err;
    await ensureDir(parent);
    await mkdir(dir).catch((e: unknown) => {
      if (errnoOf(e) !== 'EEXIST') throw e;
    });
  }
}

/** Makes a rename durable. Some filesystems cannot fsync a directory; the rename is done either way. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // best effort
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
