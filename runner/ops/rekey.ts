/**
 * `backup-runner rekey`: after the recipients of an encrypted location
 * changed, re-wraps the file key of the objects it already stores for the
 * new recipients. Only each object's age header changes (the payload is
 * encrypted with the file key, which stays); on S3 the payload is copied by
 * the server, elsewhere it is streamed through once.
 *
 * Invariants:
 * - The manifest always names a whole object: the re-wrapped object is
 *   written beside the old one (the other of `.age` and `.rekeyed.age`),
 *   read back and checked (its header's MAC against the file key, every
 *   payload chunk authenticated, the plain sha256 equal to the manifest's),
 *   then the manifest is replaced (one atomic put), then the old object is
 *   deleted. Interrupted anywhere, the manifest names either the old object
 *   or the new one, both whole; what an interruption leaves beside it (an
 *   object the manifest does not name) is removed by the next rekey.
 * - Reading the old header needs an identity of the old recipients (the
 *   location's identities or --identity); the new recipients need none.
 * - A rewritten manifest is signed with `signing.key`; where manifests must
 *   be signed and there is no key, nothing is changed.
 * - Plain objects are left as they are (mirror copies them encrypted into
 *   an encrypted location); a passphrase location cannot tell a changed
 *   passphrase from the recorded fingerprint, so its objects count as current.
 */
import { text } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { sameRecipients } from '../crypto/location.js';
import { AgeDecrypt, encodeHeader, headerEnd, MAX_HEADER_BYTES, unwrap } from '../crypto/age.js';
import { BackupError, toBackupError } from '../errors.js';
import { type ManifestObject, parseManifest, serializeManifest } from '../manifest.js';
import { discard } from '../pipeline/counter.js';
import { DigestStream } from '../pipeline/digest.js';
import type { Location, Runtime } from '../runtime.js';
import { MANIFEST_FILE, isDataFileName, keyIn, rekeyedFileName } from '../storage/layout.js';
import { spliceObject } from '../storage/splice.js';
import { type BackupCopy, listBackups } from './list.js';
import { objectKeys } from './verify.js';
import { putManifest, rewrittenManifest } from './write-manifest.js';

export interface RekeyRequest {
  /** Only this location (it must encrypt); every encrypted location when unset. */
  location?: string;
  /** Only this backup. */
  id?: string;
  dryRun: boolean;
  /** Identities (key text) that read the old headers, beside the locations' identity files. */
  identities?: readonly string[];
  signal?: AbortSignal;
}

export interface RekeyEntry {
  backupId: string;
  location: string;
  object: string;
  /** current: already for the location's recipients; planned: a dry run would re-wrap it. */
  status: 'rekeyed' | 'current' | 'planned' | 'failed';
  /** The recipients' fingerprints before and after. */
  from?: readonly string[];
  to?: readonly string[];
  /** The object's new name (rekeyed). */
  newName?: string;
  /** Whether the server copied the payload (rekeyed). */
  serverSide?: boolean;
  error?: BackupError;
}

export interface RekeyResult {
  dryRun: boolean;
  objects: RekeyEntry[];
  /** Objects an interrupted rekey left beside a manifest that does not name them, removed (dry run: found). */
  leftovers: string[];
}


/** The header of a stored age object: its first bytes, through the MAC line. */
async function readHeader(loc: Location, key: string, signal?: AbortSignal): Promise<Buffer> {
  const stream = await loc.storage.get(key, { range: { start: 0, end: MAX_HEADER_BYTES - 1 }, ...(signal ? { signal } : {}) });
  let buf = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    buf = Buffer.concat([buf, chunk]);
    const end = headerEnd(buf);
    if (end >= 0) {
      (stream).destroy();
      return buf.subarray(0, end);
    }
  }
  throw new BackupError('INTEGRITY', `${loc.name}: ${key}: not an age file (no header end in its first ${MAX_HEADER_BYTES} bytes)`, { details: { location: loc.name, key } });
}

/** Reads a written object back: every chunk authenticated with `fileKey`, the plain bytes equal to the manifest's. Returns its size and sha256. */
async function checkWritten(loc: Location, key: string, object: ManifestObject, fileKey: Uint8Array, signal?: AbortSignal): Promise<{ size: number; sha256: string }> {
  const what = `${loc.name}: ${key}`;
  const stored = new DigestStream();
  const plain = new DigestStream({ size: object.plain.size, sha256: object.plain.sha256, what: `${what} (decrypted)` });
  await pipeline(await loc.storage.get(key, signal ? { signal } : {}), stored, new AgeDecrypt({ identities: [], fileKey }, what), plain, discard(), ...(signal ? [{ signal }] : []));
  return { size: stored.bytes, sha256: stored.sha256 };
}

/** Re-wraps one object for the location's recipients; returns its new manifest entry. The old object is left for the caller. */
async function rekeyObject(rt: Runtime, loc: Location, copy: BackupCopy, object: ManifestObject, req: RekeyRequest): Promise<{ object: ManifestObject; serverSide: boolean }> {
  const oldKey = keyIn(copy.dir, object.name);
  const what = `${loc.name}: ${oldKey}`;
  const keys = await objectKeys(loc, copy, object, req.identities);
  const header = await readHeader(loc, oldKey, req.signal);
  const fileKey = await unwrap(header, keys ?? { identities: [] }, what);
  const newHeader = await encodeHeader(fileKey, loc.crypto!.to);
  const name = rekeyedFileName(object.name);
  const newKey = keyIn(copy.dir, name);
  try {
    const put = await spliceObject(loc.storage, newKey, newHeader, { key: oldKey, offset: header.length, size: object.size }, req.signal ? { signal: req.signal } : {});
    const written = await checkWritten(loc, newKey, object, fileKey, req.signal);
    if (written.size !== put.size) throw new BackupError('INTEGRITY', `${loc.name}: ${newKey}: reads back ${written.size} bytes, ${put.size} were written`);
    rt.logger.debug({ location: loc.name, key: newKey, serverSide: put.serverSide }, 're-wrapped object written and checked');
    return { object: { ...object, name, ...written, encryption: loc.crypto!.encryption }, serverSide: put.serverSide };
  } catch (err) {
    await loc.storage.delete(newKey).catch(() => undefined);
    throw err;
  }
}

/** Whether a manifest's text names one of `names` (text that cannot be read as one: assume it does). */
function namesAny(manifestText: string, names: ReadonlySet<string>): boolean {
  try {
    const m = JSON.parse(manifestText) as { objects?: { name?: unknown }[] };
    return !Array.isArray(m.objects) || m.objects.some((o) => typeof o.name !== 'string' || names.has(o.name));
  } catch {
    return true;
  }
}

/**
 * Re-wraps every object of one copy that is not for the location's recipients; the manifest is replaced once
 * they are all written and checked. Returns the copy as its manifest now says.
 */
async function rekeyCopy(rt: Runtime, loc: Location, copy: BackupCopy, req: RekeyRequest, out: RekeyEntry[]): Promise<BackupCopy> {
  const want = loc.crypto!.encryption.scheme === 'age' ? loc.crypto!.encryption.recipients : [];
  const stale = copy.manifest.objects.filter((o) => o.encryption.scheme === 'age' && !sameRecipients(o.encryption.recipients, want));
  const base = (o: ManifestObject) => ({ backupId: copy.manifest.id, location: loc.name, object: o.name, ...(o.encryption.scheme === 'age' ? { from: o.encryption.recipients } : {}), to: want });
  for (const o of copy.manifest.objects) if (!stale.includes(o) && o.encryption.scheme === 'age') out.push({ ...base(o), status: 'current' });
  if (stale.length === 0) return copy;
  if (req.dryRun) {
    for (const o of stale) out.push({ ...base(o), status: 'planned', newName: rekeyedFileName(o.name) });
    return copy;
  }
  const done: { old: ManifestObject; object: ManifestObject; serverSide: boolean }[] = [];
  const fail = async (err: unknown, undo: boolean): Promise<BackupCopy> => {
    const error = toBackupError(err, 'STORAGE_FAILED');
    if (error.code === 'ABORTED' || req.signal?.aborted) throw error;
    if (undo) for (const d of done) await loc.storage.delete(keyIn(copy.dir, d.object.name)).catch(() => undefined);
    rt.logger.error({ location: loc.name, backupId: copy.manifest.id, err: error }, undo ? 'rekey failed; the backup is as it was' : 'rekey failed; the manifest may name the new objects, so both are kept');
    for (const o of stale) out.push({ ...base(o), status: 'failed', error });
    return copy;
  };
  let manifest;
  try {
    // Refused before anything is written when the new manifest could not be signed.
    rewrittenManifest(rt, copy.manifest, copy.manifest.objects, `re-wrapping it for ${loc.name}'s recipients`);
    for (const o of stale) done.push({ old: o, ...(await rekeyObject(rt, loc, copy, o, req)) });
    const objects = copy.manifest.objects.map((o) => done.find((d) => d.old === o)?.object ?? o);
    manifest = rewrittenManifest(rt, copy.manifest, objects, `re-wrapping it for ${loc.name}'s recipients`);
  } catch (err) {
    return fail(err, true);
  }
  const manifestKey = keyIn(copy.dir, MANIFEST_FILE);
  const put = await putManifest(loc, manifestKey, serializeManifest(manifest), req.signal);
  if (!put.ok) {
    // The new objects are removed only when the manifest there certainly does not name them.
    const names = new Set(done.map((d) => d.object.name));
    return fail(put.error, put.now === 'absent' || (typeof put.now === 'object' && !namesAny(put.now.other, names)));
  }
  rt.manifestCache?.get(loc.name)?.set(manifestKey, manifest);
  for (const d of done) {
    out.push({ ...base(d.old), status: 'rekeyed', newName: d.object.name, serverSide: d.serverSide });
    await loc.storage.delete(keyIn(copy.dir, d.old.name)).catch((e: unknown) => rt.logger.warn({ location: loc.name, key: keyIn(copy.dir, d.old.name), err: e }, 'old object not removed; the next rekey removes it'));
  }
  return { ...copy, manifest };
}

/**
 * Data objects in a copy's directory that its manifest does not name (what an interrupted rekey left);
 * removed unless a dry run. The manifest is read again first, and nothing is removed unless every object it
 * names is there: a rekey running elsewhere at the same time, or a manifest this run could not read, leaves
 * the directory alone.
 */
async function removeLeftovers(loc: Location, copy: BackupCopy, dryRun: boolean, signal?: AbortSignal): Promise<string[]> {
  const opts = signal ? { signal } : {};
  const manifestKey = keyIn(copy.dir, MANIFEST_FILE);
  const manifest = parseManifest(await text(await loc.storage.get(manifestKey, opts)), `${loc.name}: ${manifestKey}`);
  const named = new Set(manifest.objects.map((o) => keyIn(copy.dir, o.name)));
  const present = new Set<string>();
  const found: string[] = [];
  for await (const o of loc.storage.list(copy.dir, opts)) {
    const file = o.key.slice(copy.dir.length);
    if (file.includes('/') || !isDataFileName(file)) continue;
    present.add(o.key);
    if (!named.has(o.key)) found.push(o.key);
  }
  if (found.length === 0 || [...named].some((k) => !present.has(k))) return [];
  if (!dryRun) for (const key of found) await loc.storage.delete(key, opts);
  return found;
}

export async function runRekey(rt: Runtime, req: RekeyRequest): Promise<RekeyResult> {
  const encrypted = rt.locations.filter((l) => l.crypto);
  if (req.location !== undefined) {
    const loc = rt.locations.find((l) => l.name === req.location);
    if (!loc) throw new BackupError('USAGE', `--location ${req.location}: no such location (the config has ${rt.locations.map((l) => l.name).join(', ')})`);
    if (!loc.crypto) throw new BackupError('USAGE', `--location ${req.location}: the location does not encrypt (no encryption.age), so there is nothing to re-wrap`);
  }
  const targets = encrypted.filter((l) => req.location === undefined || l.name === req.location);
  if (targets.length === 0) throw new BackupError('USAGE', 'no location encrypts (encryption.age), so there is nothing to re-wrap');
  const listing = await listBackups(rt, req.signal ? { signal: req.signal } : {});
  const backups = req.id === undefined ? listing.backups : listing.backups.filter((b) => b.id === req.id);
  if (req.id !== undefined && backups.length === 0) throw new BackupError('BACKUP_NOT_FOUND', `backup ${req.id} is not in any location`);
  const result: RekeyResult = { dryRun: req.dryRun, objects: [], leftovers: [] };
  for (const b of backups) {
    for (const copy of b.copies) {
      const loc = targets.find((l) => l.name === copy.location);
      if (!loc) continue;
      const now = await rekeyCopy(rt, loc, copy, req, result.objects);
      try {
        result.leftovers.push(...(await removeLeftovers(loc, now, req.dryRun, req.signal)));
      } catch (err) {
        const error = toBackupError(err, 'STORAGE_FAILED');
        if (error.code === 'ABORTED') throw error;
        rt.logger.warn({ location: loc.name, backupId: b.id, err: error }, 'could not look for objects an interrupted rekey left; the next rekey looks again');
      }
    }
  }
  return result;
}
