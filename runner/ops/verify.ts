import { type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type AgeIdentities, AgeDecrypt } from '../crypto/age.js';
import { keysFor } from '../crypto/location.js';
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import { isServerObject, MAX_CLOCK_SKEW_MS, type ManifestObject } from '../manifest.js';
import { FORMAT_HEAD_BYTES, formatMismatch, formatNamed } from '../engines/registry.js';
import type { DumpFormat } from '../engines/types.js';
import { decompress, storedAlgorithm } from '../pipeline/compression.js';
import { discard } from '../pipeline/counter.js';
import { DigestStream } from '../pipeline/digest.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { MANIFEST_FILE, dataFileExtension, keyIn, plainFileName } from '../storage/layout.js';
import { everyInterval, linkedAbort } from '../util/async.js';
import { type BackupCopy, type ListedBackup, listBackups } from './list.js';
import { selectBackup } from './select.js';

export interface ObjectCheck {
  backupId: string;
  location: string;
  object: string;
  status: 'ok' | 'corrupt' | 'missing' | 'error';
  /** For an encrypted object: whether its plain bytes were checked too (they need an identity). */
  contents?: string;
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

/** What reading may use beyond the location's own config: identities given to this command (key text). */
export interface ReadOptions {
  signal?: AbortSignal;
  identities?: readonly string[];
  /** Dump formats the configured engine declares at run time (an engine defined by a command), checked like the runner's own. */
  formats?: readonly DumpFormat[];
}

/**
 * The keys that read an encrypted object, or undefined for a plain one. An encrypted object without any
 * key to try is NO_MATCHING_IDENTITY, saying how to give one.
 */
export async function objectKeys(loc: Location, copy: CopyRef, object: ManifestObject, given: readonly string[] = []): Promise<AgeIdentities | undefined> {
  const key = keyIn(copy.dir, object.name);
  if (object.encryption.scheme === 'none') return undefined;
  if (object.encryption.scheme !== 'age') {
    throw new BackupError('MANIFEST_UNSUPPORTED', `${loc.name}: ${key}: encryption "${(object.encryption as { scheme: string }).scheme}" is not one this runner reads; upgrade the runner to use this backup`, {
      details: { location: loc.name, key },
    });
  }
  const keys = await keysFor(loc.crypto, given, object);
  if (keys.identities.length === 0 && (keys.passphrases ?? []).length === 0) {
    throw new BackupError(
      'NO_MATCHING_IDENTITY',
      `${loc.name}: ${key} is encrypted (age, for ${object.encryption.recipients.join(', ')}) and no identity was given: pass --identity FILE (or - for standard input), or set the location's encryption.age.identities`,
      { details: { location: loc.name, key } },
    );
  }
  return keys;
}

/**
 * The plain bytes of a stored object (compressed, decrypted when it is encrypted): downloaded and, unless
 * `partial`, checked against the stored size and sha256 and, for an encrypted object, the plain size and
 * sha256 after decryption. `done` settles when the download and the checks are through; a failure also
 * fails `output`.
 */
export async function readPlain(
  loc: Location,
  copy: CopyRef,
  object: ManifestObject,
  keys: AgeIdentities | undefined,
  opts: { signal?: AbortSignal; partial?: boolean; onStored?: (d: DigestStream) => void },
): Promise<{ output: Readable; done: Promise<void> }> {
  const key = keyIn(copy.dir, object.name);
  const what = `${loc.name}: ${key}`;
  const body = await loc.storage.get(key, { signal: opts.signal });
  const stored = new DigestStream(opts.partial ? undefined : { size: object.size, sha256: object.sha256, what });
  opts.onStored?.(stored);
  const stages: Transform[] = [stored];
  if (keys) stages.push(new AgeDecrypt(keys, what), new DigestStream(opts.partial ? undefined : { size: object.plain.size, sha256: object.plain.sha256, what: `${what} (decrypted)` }));
  const output = stages[stages.length - 1]!;
  const done = pipeline(body, ...(stages as [Transform, ...Transform[]]), { signal: opts.signal });
  done.catch((err: unknown) => output.destroy(toBackupError(err, 'STORAGE_FAILED')));
  return { output, done };
}

/**
 * Checks that a stored object is what its manifest's format says: the start
 * of its decompressed (and decrypted) stream carries the format's header (the
 * engine's registry knows each header, see engines/registry.ts). Throws
 * FORMAT_MISMATCH, or the storage error. Reads only the start of the object;
 * the engine is not involved.
 */
export async function checkFormat(loc: Location, copy: CopyRef, object: ManifestObject, opts: { signal?: AbortSignal; keys?: AgeIdentities; formats?: readonly DumpFormat[] } = {}): Promise<void> {
  const key = keyIn(copy.dir, object.name);
  const format = object.stream?.format ?? copy.manifest.engine.format;
  // The name says what kind of dump it is too: a manifest that calls a .rdb object a SQLite file is not believed.
  const named = dataFileExtension(plainFileName(object.name));
  const declared = formatNamed(format, opts.formats ?? [])?.extension;
  if (declared !== undefined && named !== declared) {
    throw new BackupError('FORMAT_MISMATCH', `${loc.name}: ${key}: named as a .${named ?? '?'} dump, but its manifest says ${format}, whose dumps are .${declared}`, { details: { location: loc.name, key, format } });
  }
  const abort = linkedAbort(opts.signal);
  try {
    const algorithm = storedAlgorithm(object.compression.algorithm, `${loc.name}: ${key}`);
    const plain = await readPlain(loc, copy, object, opts.keys, { signal: abort.signal, partial: true });
    plain.done.catch(() => undefined); // stopped below once the head is read
    const unpacked = decompress(plain.output, algorithm, abort.signal);
    const { head, error } = await readHead(unpacked.output, FORMAT_HEAD_BYTES);
    abort.abort(new BackupError('ABORTED', 'format probe done'));
    const why = formatMismatch(format, head, opts.formats);
    if (why) {
      throw new BackupError('FORMAT_MISMATCH', `${loc.name}: ${key}: not what the manifest says: ${why}`, {
        details: { location: loc.name, key, format },
        ...(error ? { cause: error } : {}),
      });
    }
  } finally {
    abort.dispose();
  }
}

/**
 * Downloads one object and checks its size and sha256 against its copy's manifest, then its format. An
 * encrypted object is decrypted and its plain bytes checked too when a key is at hand; without one only
 * the stored bytes are checked, and the check says so (`contents: "not checked"`). Never throws.
 */
export async function checkObject(loc: Location, copy: CopyRef, object: ManifestObject, opts: ReadOptions & { onProgress?: ProgressListener; requireContents?: boolean } = {}): Promise<ObjectCheck> {
  const base = { backupId: copy.manifest.id, location: loc.name, object: object.name };
  let progress: DigestStream | undefined;
  const ticker = everyInterval(1000, () => opts.onProgress?.({ phase: 'verify', bytesIn: progress?.bytes ?? 0, total: object.size, location: loc.name }));
  try {
    storedAlgorithm(object.compression.algorithm, `${loc.name}: ${keyIn(copy.dir, object.name)}`);
    let keys: AgeIdentities | undefined;
    let noKey = false;
    try {
      keys = await objectKeys(loc, copy, object, opts.identities);
    } catch (err) {
      if (opts.requireContents || !isBackupError(err, 'NO_MATCHING_IDENTITY')) throw err;
      noKey = true; // the stored bytes can still be checked against the manifest
    }
    const plain = await readPlain(loc, copy, object, keys, { ...opts, onStored: (d) => (progress = d) });
    await pipeline(plain.output, discard(), { signal: opts.signal });
    await plain.done;
    if (noKey) return { ...base, status: 'ok', contents: 'not checked: encrypted and no identity given' };
    // What a database server wrote itself has its own layout: its size and sha256 are what can be checked.
    if (isServerObject(object)) return { ...base, status: 'ok' };
    await checkFormat(loc, copy, object, { ...opts, ...(keys ? { keys } : {}) });
    return { ...base, status: 'ok', ...(keys ? { contents: 'checked (decrypted)' } : {}) };
  } catch (err) {
    const error = toBackupError(err, 'STORAGE_FAILED');
    const status = error.code === 'INTEGRITY' || error.code === 'FORMAT_MISMATCH' ? 'corrupt' : error.code === 'STORAGE_NOT_FOUND' ? 'missing' : 'error';
    return { ...base, status, error };
  } finally {
    ticker.stop();
  }
}

/** Checks every object of every copy, each against its own location's manifest. */
export async function verifyBackup(rt: Runtime, backup: ListedBackup, opts: ReadOptions & { onProgress?: ProgressListener } = {}): Promise<ObjectCheck[]> {
  const checks: ObjectCheck[] = [];
  for (const copy of backup.copies) {
    const loc = rt.locations.find((l) => l.name === copy.location)!;
    for (const obj of copy.manifest.objects) checks.push(await checkObject(loc, copy, obj, { ...opts, ...(rt.engine.formats ? { formats: rt.engine.formats } : {}) }));
  }
  return checks;
}

/** Verifies one backup (by id) or every backup, in every location that holds it. */
export async function verify(rt: Runtime, opts: ReadOptions & { id?: string; onProgress?: ProgressListener } = {}): Promise<VerifyResult> {
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
