import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupError, toBackupError } from '../errors.js';
import { MAX_CLOCK_SKEW_MS, type ManifestObject } from '../manifest.js';
import { FORMAT_HEAD_BYTES, formatMismatch } from '../engines/registry.js';
import { decompress, storedAlgorithm } from '../pipeline/compression.js';
import { DigestStream } from '../pipeline/digest.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { MANIFEST_FILE, keyIn } from '../storage/layout.js';
import { everyInterval, linkedAbort } from '../util/async.js';
import { type BackupCopy, type ListedBackup, listBackups } from './list.js';
import { selectBackup } from './select.js';

export interface ObjectCheck {
  backupId: string;
  location: string;
  object: string;
  status: 'ok' | 'corrupt' | 'missing' | 'error';
  error?: BackupError;
}

export interface VerifyResult {
  checks: ObjectCheck[];
  ok: boolean;
}

/** Compressed bytes read to check a stored object's format: enough for the first zstd block (128 KiB at most) or gzip's first output. */
export const FORMAT_PROBE_BYTES = 256 * 1024;

/** The first `n` bytes of `stream` (fewer when it ends or fails sooner). */
async function readHead(stream: Readable, n: number): Promise<{ head: Buffer; error?: unknown }> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= n) break;
    }
    return { head: Buffer.concat(chunks).subarray(0, n) };
  } catch (error) {
    return { head: Buffer.concat(chunks).subarray(0, n), error };
  }
}

/** A copy as the checks need it: its manifest and the directory its objects lie in. */
export type CopyRef = Pick<BackupCopy, 'dir' | 'manifest'>;

/** Refuses an object this runner cannot read back (an encryption scheme it does not know). */
export function checkReadable(loc: Location, copy: CopyRef, object: ManifestObject): void {
  if (object.encryption.scheme !== 'none') {
    throw new BackupError('MANIFEST_UNSUPPORTED', `${loc.name}: ${keyIn(copy.dir, object.name)}: encryption "${object.encryption.scheme}" is not one this runner reads; upgrade the runner to use this backup`, {
      details: { location: loc.name, key: keyIn(copy.dir, object.name) },
    });
  }
}

/**
 * Checks that a stored object is what its manifest's format says: the start
 * of its decompressed stream carries the format's header (the engine's
 * registry knows each header, see engines/registry.ts). Throws
 * FORMAT_MISMATCH, or the storage error. Reads only the first
 * FORMAT_PROBE_BYTES of the object; the engine is not involved.
 */
export async function checkFormat(loc: Location, copy: CopyRef, object: ManifestObject, opts: { signal?: AbortSignal } = {}): Promise<void> {
  const key = keyIn(copy.dir, object.name);
  const abort = linkedAbort(opts.signal);
  try {
    const algorithm = storedAlgorithm(object.compression.algorithm, `${loc.name}: ${key}`);
    const body = await loc.storage.get(key, { signal: abort.signal, ...(object.size > 0 ? { range: { start: 0, end: Math.min(object.size, FORMAT_PROBE_BYTES) - 1 } } : {}) });
    const plain = decompress(body, algorithm, abort.signal);
    const { head, error } = await readHead(plain.output, FORMAT_HEAD_BYTES);
    abort.abort(new BackupError('ABORTED', 'format probe done'));
    body.destroy();
    const why = formatMismatch(copy.manifest.engine.format, head);
    if (why) {
      throw new BackupError('FORMAT_MISMATCH', `${loc.name}: ${key}: not what the manifest says: ${why}`, {
        details: { location: loc.name, key, format: copy.manifest.engine.format },
        ...(error ? { cause: error } : {}),
      });
    }
  } finally {
    abort.dispose();
  }
}

/** Downloads one object and checks its size and sha256 against its copy's manifest, then its format. Never throws. */
export async function checkObject(loc: Location, copy: CopyRef, object: ManifestObject, opts: { signal?: AbortSignal; onProgress?: ProgressListener } = {}): Promise<ObjectCheck> {
  const base = { backupId: copy.manifest.id, location: loc.name, object: object.name };
  const key = keyIn(copy.dir, object.name);
  const digest = new DigestStream({ size: object.size, sha256: object.sha256, what: `${loc.name}: ${key}` });
  const ticker = everyInterval(1000, () => opts.onProgress?.({ phase: 'verify', bytesIn: digest.bytes, total: object.size, location: loc.name }));
  try {
    checkReadable(loc, copy, object);
    const body = await loc.storage.get(key, { signal: opts.signal });
    await pipeline(body, digest, new Writable({ write: (_c, _e, cb) => cb() }), { signal: opts.signal });
    await checkFormat(loc, copy, object, opts);
    return { ...base, status: 'ok' };
  } catch (err) {
    const error = toBackupError(err, 'STORAGE_FAILED');
    const status = error.code === 'INTEGRITY' || error.code === 'FORMAT_MISMATCH' ? 'corrupt' : error.code === 'STORAGE_NOT_FOUND' ? 'missing' : 'error';
    return { ...base, status, error };
  } finally {
    ticker.stop();
  }
}

/** Checks every object of every copy, each against its own location's manifest. */
export async function verifyBackup(rt: Runtime, backup: ListedBackup, opts: { signal?: AbortSignal; onProgress?: ProgressListener } = {}): Promise<ObjectCheck[]> {
  const checks: ObjectCheck[] = [];
  for (const copy of backup.copies) {
    const loc = rt.locations.find((l) => l.name === copy.location)!;
    for (const obj of copy.manifest.objects) checks.push(await checkObject(loc, copy, obj, opts));
  }
  return checks;
}

/** Verifies one backup (by id) or every backup, in every location that holds it. */
export async function verify(rt: Runtime, opts: { id?: string; signal?: AbortSignal; onProgress?: ProgressListener } = {}): Promise<VerifyResult> {
  const listing = await listBackups(rt, opts);
  const flagged = listing.future.filter((f) => !opts.id || f.id === opts.id);
  // A future-dated backup asked for by id is reported as such, not as missing.
  const targets = !opts.id ? listing.backups : flagged.length > 0 ? [] : [selectBackup(listing.backups, { kind: 'id', id: opts.id })];
  const checks: ObjectCheck[] = [];
  for (const b of targets) {
    rt.logger.info({ backupId: b.id, locations: b.locations }, 'verifying');
    checks.push(...(await verifyBackup(rt, b, opts)));
  }
  for (const f of flagged) {
    const error = new BackupError('MANIFEST_FUTURE', `manifest of backup ${f.id} is dated in the future (${f.field} ${f.at}, more than ${MAX_CLOCK_SKEW_MS / 60_000} min ahead of this clock); never restored by --latest or --to-time, not counted`, {
      details: { backupId: f.id, field: f.field, at: f.at },
    });
    for (const location of f.locations) checks.push({ backupId: f.id, location, object: MANIFEST_FILE, status: 'error', error });
  }
  for (const p of listing.problems) {
    checks.push({ backupId: '-', location: p.location, object: p.key ?? '-', status: 'error', error: p.error });
  }
  return { checks, ok: checks.every((c) => c.status === 'ok') };
}
