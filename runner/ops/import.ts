/**
 * `backup-runner import`: restores a dump made elsewhere (a file in the pod,
 * or an object under this DatabaseBackup's own directory of a location),
 * and with --keep first stores it as a backup of this DatabaseBackup, so it
 * lists, verifies and is kept by retention like the others.
 *
 * Invariants:
 * - Nothing touches the database before the input is recognised: its
 *   compression (gzip, zstd or none) and its format (a dump format of this
 *   runner's engine, by its header). Anything else is FORMAT_MISMATCH, saying
 *   what it is when it is a dump of another engine.
 * - An object of a location is read only under this DatabaseBackup's own
 *   directory there (`<prefix>/<namespace>/<name>/`): the key is relative to
 *   it and may not climb out of it.
 * - With --keep the stored backup is restored, not the input a second time:
 *   what was restored is exactly what is kept (verified against its manifest
 *   on the way). Its manifest says `origin: { kind: imported, source }`; its
 *   consistentAt is when it was stored (the dump's own instant is unknown,
 *   and never later than that).
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { BackupError, toBackupError } from '../errors.js';
import { detectFormat, ENGINES, FORMAT_HEAD_BYTES } from '../engines/registry.js';
import type { DumpHandle } from '../engines/types.js';
import { type Algorithm, decompress } from '../pipeline/compression.js';
import { peek } from '../pipeline/peek.js';
import type { ProgressListener, Runtime } from '../runtime.js';
import { databasePrefix, keyIn } from '../storage/layout.js';
import { linkedAbort } from '../util/async.js';
import { type BackupResult, runBackup } from './backup.js';
import { runRestore } from './restore.js';

export type ImportSource = { kind: 'file'; path: string } | { kind: 'location'; location: string; key: string };

export interface ImportRequest {
  source: ImportSource;
  targetDatabase?: string;
  force: boolean;
  /** Store it as a backup of this DatabaseBackup first, then restore that backup. */
  keep: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

export interface ImportResult {
  source: string;
  compression: Algorithm;
  format: string;
  /** The dump's own server version, when its header names one. */
  sourceServerVersion?: string;
  database: string;
  /** With --keep: the backup it was stored as. */
  kept?: { id: string; status: BackupResult['status']; locations: string[] };
}

/** Pure: the compression of a stream starting with `head`. */
export function sniffCompression(head: Buffer): Algorithm {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** Pure: the server version a dump's header names (mariadb-dump and mysqldump write one). */
export function dumpServerVersion(head: Buffer): string | undefined {
  return /^-- Server version\s+(\S+)/m.exec(head.toString('latin1'))?.[1];
}

/**
 * Pure: the key of `path` inside this DatabaseBackup's directory of a location, or why it is refused.
 * `path` is relative (`imports/orders.dump.gz`); `.`/`..` segments, empty segments and a leading `/` are refused.
 */
export function importKey(dir: string, path: string): string {
  const segments = path.split('/');
  if (path === '' || path.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..') || /[\0\\]/.test(path)) {
    throw new BackupError('USAGE', `import --from LOCATION:PATH: "${path}" must be a relative path inside this DatabaseBackup's directory (${dir}), without empty, . or .. segments`);
  }
  return keyIn(dir, path);
}

/** Describes the source for messages and the manifest's origin. */
function describe(source: ImportSource): string {
  return source.kind === 'file' ? source.path : `${source.location}:${source.key}`;
}

async function openSource(rt: Runtime, source: ImportSource, signal: AbortSignal): Promise<Readable> {
  if (source.kind === 'file') {
    const s = createReadStream(source.path);
    await new Promise<void>((resolve, reject) => {
      s.once('open', () => resolve());
      s.once('error', (err) => reject(new BackupError('USAGE', `import: cannot read ${source.path}: ${err.message}`, { cause: err })));
    });
    return s;
  }
  const loc = rt.locations.find((l) => l.name === source.location);
  if (!loc) throw new BackupError('USAGE', `import --from: no location "${source.location}" (${rt.locations.map((l) => l.name).join(', ')})`);
  return loc.storage.get(importKey(databasePrefix(loc.scope), source.key), { signal });
}

interface Opened {
  handle: DumpHandle;
  compression: Algorithm;
  sourceServerVersion?: string;
}

/**
 * Opens the input and recognises it: decompressed as its first bytes say, and of a format of this runner's
 * engine. Throws FORMAT_MISMATCH (naming what it found) before anything reads further.
 */
async function openRecognised(rt: Runtime, source: ImportSource, signal: AbortSignal): Promise<Opened> {
  const raw = await peek(await openSource(rt, source, signal), 4);
  const compression = sniffCompression(raw.head);
  const plain = decompress(raw.stream, compression, signal);
  const { head, stream } = await peek(plain.output, Math.max(FORMAT_HEAD_BYTES, 64 * 1024));
  const found = detectFormat(head, rt.engine);
  const mine = (rt.engine.formats ?? ENGINES.find((e) => e.type === rt.engine.name)?.formats ?? []).map((f) => f.format);
  if (!found || found.engine !== rt.engine.name) {
    stream.destroy();
    const what = found
      ? `a ${found.format.format} dump, which the ${found.engine} engine restores`
      : `not a dump this runner knows (it starts with ${JSON.stringify(head.subarray(0, 16).toString('latin1'))}${compression === 'none' ? '' : ` after ${compression}`})`;
    throw new BackupError('FORMAT_MISMATCH', `import ${describe(source)}: it is ${what}; this runner's engine (${rt.engine.name}) restores ${mine.join(', ')}. Nothing was changed.`, {
      details: { source: describe(source), compression, ...(found ? { format: found.format.format, engine: found.engine } : {}) },
    });
  }
  const refused = found.format.refuse?.find((r) => r.pattern.test(head.toString('utf8')));
  if (refused) {
    stream.destroy();
    throw new BackupError('FORMAT_MISMATCH', `import ${describe(source)}: it is ${refused.why}. Nothing was changed.`, { details: { source: describe(source), format: found.format.format } });
  }
  const now = new Date();
  const done = plain.done;
  const handle: DumpHandle = { ...found.format, stream, consistentAt: done.then(() => now), done };
  const sourceServerVersion = dumpServerVersion(head);
  return { handle, compression, ...(sourceServerVersion ? { sourceServerVersion } : {}) };
}

export async function runImport(rt: Runtime, req: ImportRequest): Promise<ImportResult> {
  const log = rt.logger.child({ op: 'import' });
  const source = describe(req.source);
  if (rt.engine.serverSide) throw new BackupError('USAGE', `import ${source}: the ${rt.engine.name} engine's database server reads its backups from a location itself; it imports no dump file`);
  const abort = linkedAbort(req.signal);
  try {
    const opened = await openRecognised(rt, req.source, abort.signal);
    const database = req.targetDatabase ?? rt.engine.database;
    const base = { source, compression: opened.compression, format: opened.handle.format, ...(opened.sourceServerVersion ? { sourceServerVersion: opened.sourceServerVersion } : {}), database };
    log.info({ ...base }, 'import recognised');
    if (opened.handle.holds === 'globals' && req.keep) {
      opened.handle.stream?.destroy();
      throw new BackupError('USAGE', `import ${source}: it holds a server's globals (roles), which are kept only as part of a whole-server backup; import it without --keep`);
    }
    // The target is checked before anything is stored, so a refused import keeps nothing either.
    if (opened.handle.holds !== 'globals' && !req.force && (await rt.engine.inspectTarget(database, { signal: abort.signal })).hasData) {
      opened.handle.stream?.destroy();
      throw new BackupError('TARGET_NOT_EMPTY', `database "${database}" already holds data; nothing was imported or kept. Re-run with --force to replace its objects, or import into another database with --target-database`, { details: { database } });
    }
    if (!req.keep) {
      await restoreDirect(rt, opened.handle, database, req, abort.signal);
      log.info({ source, database }, 'import restored');
      return base;
    }
    const stored = await runBackup(rt, {
      trigger: 'manual',
      signal: abort.signal,
      ...(req.onProgress ? { onProgress: req.onProgress } : {}),
      source: {
        start: () => Promise.resolve(opened.handle),
        serverVersion: opened.sourceServerVersion ?? 'unknown',
        toolVersion: 'import',
        origin: { kind: 'imported', source },
      },
    });
    if (stored.status === 'Failed') throw stored.error ?? new BackupError('ALL_LOCATIONS_FAILED', 'the import could not be stored in any location');
    const kept = { id: stored.id, status: stored.status, locations: stored.locations.filter((l) => l.status === 'Succeeded').map((l) => l.location) };
    log.info({ source, backupId: stored.id, locations: kept.locations }, 'import stored as a backup; restoring it');
    try {
      await runRestore(rt, { selector: { kind: 'id', id: stored.id }, ...(req.targetDatabase ? { targetDatabase: req.targetDatabase } : {}), force: req.force, signal: abort.signal, ...(req.onProgress ? { onProgress: req.onProgress } : {}) });
    } catch (err) {
      const e = toBackupError(err, 'RESTORE_FAILED');
      throw new BackupError(e.code, `${e.message}. The dump was kept as backup ${stored.id} (${kept.locations.join(', ')}): restore it with \`backup-runner restore --backup ${stored.id}\` (with --identity for an encrypted location), or let retention remove it`, {
        cause: e,
        details: { ...e.details, kept },
      });
    }
    return { ...base, kept };
  } finally {
    abort.dispose();
  }
}

/** Streams the recognised input into the engine; a failing input stops the engine before it can commit. */
async function restoreDirect(rt: Runtime, handle: DumpHandle, database: string, req: ImportRequest, signal: AbortSignal): Promise<void> {
  const restored = rt.engine.restore(handle.stream!, { database, force: req.force, signal, format: handle.format, ...(handle.holds === 'globals' ? { stream: { name: 'globals', kind: 'globals' as const } } : {}) });
  const results = await Promise.allSettled([handle.done, restored]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // The engine's error carries the target's state; an input error alone means the engine was stopped.
    const engineError = results[1].status === 'rejected' ? toBackupError(results[1].reason, 'RESTORE_FAILED') : undefined;
    throw engineError ?? toBackupError(failed.reason, 'RESTORE_FAILED');
  }
}
