/**
 * Copies backups between locations: `backup-runner mirror` fills a location
 * with every backup the others hold and it lacks (a newly added location, or
 * one restored from scratch), and healing (the daemon, after each backup and
 * at start) copies the backups a location missed while it was down.
 *
 * Invariants:
 * - Data first, manifest last: a backup exists in the target only once its
 *   manifest is written, after each object was stored and its size matched.
 *   `put` is atomic, so an interrupted copy leaves nothing visible, and the
 *   next run copies that backup again: idempotent, resumable backup by backup.
 * - Every byte read from a source is checked against the source's own
 *   manifest (stored size and sha256, and the plain size and sha256 after
 *   decryption) before the target's put completes: a corrupt copy is never
 *   propagated; the next source holding the backup is tried instead.
 * - A copy whose encryption the target shares is copied as stored, and its
 *   manifest (signature included) is kept as it is. Otherwise the target gets
 *   what its own config says: encrypted for its recipients (reading an
 *   encrypted source needs an identity), or plain.
 * - Any other manifest is signed with this runner's key. Where manifests must
 *   be signed (verification keys) and this runner has no signing key, such a
 *   copy is refused: it would not be believed.
 * - Nothing is overwritten that could not be read: a backup whose manifest in
 *   the target exists but could not be read is skipped and reported.
 * - Memory: one object streamed at a time, independent of its size.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isDeepStrictEqual } from 'node:util';
import { AgeEncrypt } from '../crypto/age.js';
import { passphraseOf, sameRecipients } from '../crypto/location.js';
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import { type Encryption, type Manifest, type ManifestObject, formatFor, serializeManifest, withoutProperties } from '../manifest.js';
import { DigestStream } from '../pipeline/digest.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { MANIFEST_FILE, backupPrefix, keyIn, plainFileName, storedFileName } from '../storage/layout.js';
import { everyInterval, linkedAbort } from '../util/async.js';
import { type BackupCopy, type ListedBackup, type Listing, listBackups } from './list.js';
import { objectKeys, readPlain } from './verify.js';
import { putManifest, rewrittenManifest } from './write-manifest.js';

/** How an object reaches the target: as stored, or through its encryption. */
export type CopyMode = 'as stored' | 'encrypt' | 'decrypt' | 're-encrypt';

/** Which backups a target should get: every one the others hold, or only those newer than its oldest (it missed them while down). */
export type MirrorScope = 'all' | 'missed';

export interface MirrorRequest {
  /** The location to fill; every location when unset. */
  to?: string;
  /** The only location to copy from; every other one when unset. */
  from?: string;
  scope: MirrorScope;
  dryRun: boolean;
  /** Identities (key text) that decrypt an encrypted source, beside its own identity files. */
  identities?: readonly string[];
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Asked before each backup is copied: true stops the pass there (healing gives way to a waiting backup). */
  yieldIf?: () => boolean;
}

export interface PlannedCopy {
  id: string;
  /** The locations holding the backup, best source first. */
  sources: { location: string; mode: CopyMode }[];
}

export interface CopiedBackup {
  id: string;
  from: string;
  mode: CopyMode;
  /** Bytes the target now holds of the backup. */
  bytes: number;
}

export interface TargetResult {
  location: string;
  /** Backups the target lacks and will get (a dry run: would get), newest first. */
  planned: { id: string; from: string; mode: CopyMode }[];
  copied: CopiedBackup[];
  failed: { id: string; error: BackupError }[];
  /** Backups left alone, and why (e.g. its manifest in the target cannot be read). */
  skipped: { id: string; reason: string }[];
  /** Why nothing was done for this target (it could not be listed, it failed). */
  error?: BackupError;
  /** The pass stopped early to let a waiting backup run (healing); the next pass copies the rest. */
  yielded?: boolean;
}

export interface MirrorResult {
  dryRun: boolean;
  scope: MirrorScope;
  locations: TargetResult[];
}

const MODE_COST: Record<CopyMode, number> = { 'as stored': 0, encrypt: 1, decrypt: 2, 're-encrypt': 2 };

const NO_ENCRYPTION: Encryption = { scheme: 'none' };

/** The encryption a location writes (what its manifests record of new objects). */
function encryptionOf(loc: Location): Encryption {
  return loc.crypto?.encryption ?? NO_ENCRYPTION;
}

/**
 * Pure: how `object` of `source` reaches `target`. As stored when the target encrypts for exactly the
 * recipients the object is encrypted for (for a passphrase: both locations use the same one), or neither
 * encrypts; otherwise through decryption and/or encryption.
 */
export function copyMode(object: ManifestObject, source: Location, target: Location): CopyMode {
  const want = encryptionOf(target);
  const has = object.encryption;
  if (has.scheme === 'none') return want.scheme === 'none' ? 'as stored' : 'encrypt';
  if (want.scheme === 'none') return 'decrypt';
  if (has.scheme !== 'age' || want.scheme !== 'age') return 're-encrypt';
  if (!sameRecipients(has.recipients, want.recipients)) return 're-encrypt';
  const passphrase = passphraseOf(source.crypto);
  if (has.recipients.includes('passphrase') && (passphrase === undefined || passphrase !== passphraseOf(target.crypto))) return 're-encrypt';
  return 'as stored';
}

/** The costliest mode among a copy's objects: what copying the whole backup takes. */
function backupMode(copy: BackupCopy, source: Location, target: Location): CopyMode {
  return copy.manifest.objects.map((o) => copyMode(o, source, target)).reduce((a, b) => (MODE_COST[b] > MODE_COST[a] ? b : a), 'as stored' as CopyMode);
}

/**
 * Pure: what `target` lacks of `listing` and where each backup can come from, newest first. `missed`:
 * only backups newer than the oldest the target holds (a location holding none gets nothing: filling it
 * is asked for with scope `all`). Backups whose manifest in the target could not be read are skipped.
 */
export function planMirror(listing: Listing, locations: readonly Location[], target: Location, opts: { from?: string; scope: MirrorScope }): { planned: PlannedCopy[]; skipped: { id: string; reason: string }[] } {
  const byName = new Map(locations.map((l) => [l.name, l]));
  const unreadable = new Map<string, BackupError>();
  for (const p of listing.problems) {
    if (p.location !== target.name || p.key === undefined) continue;
    const id = p.key.split('/').at(-2);
    if (id) unreadable.set(id, p.error);
  }
  const held = listing.backups.filter((b) => b.locations.includes(target.name));
  const oldest = held.map((b) => Date.parse(b.manifest.consistentAt)).sort((a, b) => a - b)[0];
  const planned: PlannedCopy[] = [];
  const skipped: { id: string; reason: string }[] = [];
  for (const b of [...listing.backups].reverse()) {
    if (b.locations.includes(target.name)) continue;
    if (opts.scope === 'missed' && (oldest === undefined || Date.parse(b.manifest.consistentAt) <= oldest)) continue;
    const sources = b.copies
      .filter((c) => c.location !== target.name && (opts.from === undefined || c.location === opts.from))
      .map((c) => ({ location: c.location, mode: backupMode(c, byName.get(c.location)!, target) }))
      .sort((x, y) => MODE_COST[x.mode] - MODE_COST[y.mode]);
    if (sources.length === 0) continue;
    const bad = unreadable.get(b.id);
    if (bad) {
      skipped.push({ id: b.id, reason: `its manifest in ${target.name} exists but could not be read (${bad.code}: ${bad.message}); fix or remove it, then mirror again` });
      continue;
    }
    planned.push({ id: b.id, sources });
  }
  return { planned, skipped };
}

/** Whether a copy keeps its manifest whole (signature included): the current format, objects as stored. */
function unchanged(source: Manifest, objects: readonly ManifestObject[]): boolean {
  return source.formatVersion === formatFor(source.objects) && isDeepStrictEqual(source.objects, objects);
}

/** A source-side failure: try the next location holding the backup. */
class SourceFailure extends Error {
  constructor(readonly error: BackupError) {
    super(error.message);
  }
}

interface CopyContext {
  rt: Runtime;
  target: Location;
  req: MirrorRequest;
  signal: AbortSignal;
}

/** Streams one object from `source` to the target, checked on the way; returns what the target's manifest says of it. */
async function copyObject(ctx: CopyContext, source: Location, copy: BackupCopy, object: ManifestObject, dir: string): Promise<ManifestObject> {
  const { target } = ctx;
  const mode = copyMode(object, source, target);
  const decrypting = mode === 'decrypt' || mode === 're-encrypt';
  let keys;
  try {
    keys = decrypting ? await objectKeys(source, copy, object, ctx.req.identities) : undefined;
  } catch (err) {
    throw new SourceFailure(toBackupError(err));
  }
  const abort = linkedAbort(ctx.signal);
  let read: DigestStream | undefined;
  const ticker = everyInterval(1000, () => ctx.req.onProgress?.({ phase: 'copy', bytesIn: read?.bytes ?? 0, total: object.size, location: target.name }));
  try {
    let plain: { output: Readable; done: Promise<void> };
    try {
      plain = await readPlain(source, copy, object, keys, { signal: abort.signal, onStored: (d) => (read = d) });
    } catch (err) {
      throw new SourceFailure(toBackupError(err, 'STORAGE_FAILED'));
    }
    const sourceDone = plain.done.then(
      () => undefined,
      (err: unknown) => toBackupError(err, 'STORAGE_FAILED'),
    );
    const stored = new DigestStream();
    const encrypting = mode === 'encrypt' || mode === 're-encrypt';
    const flow = encrypting ? pipeline(plain.output, new AgeEncrypt(target.crypto!.to), stored, { signal: abort.signal }) : pipeline(plain.output, stored, { signal: abort.signal });
    flow.catch((err: unknown) => stored.destroy(toBackupError(err, 'INTERNAL')));
    const name = mode === 'as stored' ? object.name : storedFileName(plainFileName(object.name), target.crypto !== undefined);
    let put;
    try {
      put = await target.storage.put(keyIn(dir, name), stored, { signal: abort.signal });
    } catch (err) {
      abort.abort(err);
      const fromSource = await sourceDone;
      if (fromSource && !isBackupError(fromSource, 'ABORTED')) throw new SourceFailure(fromSource);
      throw toBackupError(err, 'STORAGE_FAILED');
    }
    const fromSource = await sourceDone;
    if (fromSource) throw new SourceFailure(fromSource);
    if (put.size !== stored.bytes) throw new BackupError('INTEGRITY', `${target.name}: ${keyIn(dir, name)}: stored ${put.size} bytes, sent ${stored.bytes}`);
    const encryption = mode === 'as stored' ? object.encryption : encryptionOf(target);
    return { ...object, name, size: stored.bytes, sha256: stored.sha256, encryption };
  } finally {
    ticker.stop();
    abort.dispose();
  }
}

/** Copies one backup from `source`: its objects, then its manifest. Nothing of it stays visible when a step fails. */
async function copyBackup(ctx: CopyContext, source: Location, copy: BackupCopy): Promise<CopiedBackup> {
  const { rt, target } = ctx;
  const m = copy.manifest;
  const mode = backupMode(copy, source, target);
  const what = `copying it into ${target.name} ${mode === 'as stored' ? 'in format 2' : `(${mode})`}`;
  // Refused before any byte is copied when the new manifest could not be signed.
  if (mode !== 'as stored' || m.formatVersion !== formatFor(m.objects)) rewrittenManifest(rt, m, m.objects, what);
  const dir = backupPrefix(target.scope, m.id);
  const written: string[] = [];
  const undo = async (): Promise<void> => {
    for (const key of written) await target.storage.delete(key).catch((e: unknown) => rt.logger.warn({ location: target.name, key, err: e }, 'copied data left for the orphan sweeper'));
  };
  const objects: ManifestObject[] = [];
  try {
    for (const object of m.objects) {
      const o = await copyObject(ctx, source, copy, object, dir);
      written.push(keyIn(dir, o.name));
      // An encrypted location's manifest holds no database properties (a manifest is plain).
      objects.push(target.crypto ? withoutProperties(o) : o);
    }
  } catch (err) {
    await undo();
    throw err;
  }
  const manifest = unchanged(m, objects) ? m : rewrittenManifest(rt, m, objects, what);
  const put = await putManifest(target, keyIn(dir, MANIFEST_FILE), serializeManifest(manifest), ctx.signal);
  if (!put.ok) {
    // Undone only when no manifest is there: one that is (or may be) there names this data.
    if (put.now === 'absent') await undo();
    else rt.logger.warn({ location: target.name, backupId: m.id, err: put.error }, 'the manifest write failed but a manifest may be there; the copied data is kept');
    throw put.error;
  }
  return { id: m.id, from: source.name, mode, bytes: objects.reduce((s, o) => s + o.size, 0) };
}

async function mirrorTo(rt: Runtime, listing: Listing, target: Location, req: MirrorRequest, signal: AbortSignal): Promise<TargetResult> {
  const log = rt.logger.child({ op: 'mirror', location: target.name });
  const result: TargetResult = { location: target.name, planned: [], copied: [], failed: [], skipped: [] };
  const unlisted = listing.problems.find((p) => p.location === target.name && p.key === undefined);
  if (unlisted) {
    result.error = new BackupError(unlisted.error.code, `${target.name} could not be listed, so what it lacks is not known: ${unlisted.error.message}`, { cause: unlisted.error });
    return result;
  }
  const { planned, skipped } = planMirror(listing, rt.locations, target, req);
  result.skipped = skipped;
  result.planned = planned.map((p) => ({ id: p.id, from: p.sources[0]!.location, mode: p.sources[0]!.mode }));
  if (req.dryRun || planned.length === 0) return result;
  const ctx: CopyContext = { rt, target, req, signal };
  const backups = new Map(listing.backups.map((b) => [b.id, b]));
  for (const p of planned) {
    if (signal.aborted) throw new BackupError('ABORTED', 'mirror aborted', { cause: signal.reason });
    if (req.yieldIf?.()) {
      log.info({ left: planned.length - result.copied.length - result.failed.length }, 'stopping this pass: a backup is waiting; the next pass copies the rest');
      result.yielded = true;
      return result;
    }
    const backup = backups.get(p.id) as ListedBackup;
    const tried: { location: string; error: BackupError }[] = [];
    let done = false;
    for (const s of p.sources) {
      const copy = backup.copies.find((c) => c.location === s.location)!;
      const source = rt.locations.find((l) => l.name === s.location)!;
      try {
        const c = await copyBackup(ctx, source, copy);
        log.info({ backupId: p.id, from: c.from, mode: c.mode, bytes: c.bytes }, 'backup copied');
        result.copied.push(c);
        done = true;
        break;
      } catch (err) {
        if (!(err instanceof SourceFailure)) {
          const error = toBackupError(err, 'STORAGE_FAILED');
          if (error.code === 'ABORTED' || signal.aborted) throw error;
          // The target (or this runner's config) failed: the other backups would fail the same way.
          log.error({ backupId: p.id, err: error }, 'copying into this location failed; stopping here');
          result.failed.push({ id: p.id, error });
          result.error = error;
          return result;
        }
        log.warn({ backupId: p.id, from: s.location, err: err.error }, 'source copy could not be read; trying the next location holding it');
        if (isBackupError(err.error, 'ABORTED')) throw err.error;
        tried.push({ location: s.location, error: err.error });
      }
    }
    if (!done) {
      const why = tried.map((t) => `${t.location}: ${t.error.code}: ${t.error.message}`).join('; ');
      const code = tried.every((t) => t.error.code === 'NO_MATCHING_IDENTITY') ? 'NO_MATCHING_IDENTITY' : 'INTEGRITY';
      result.failed.push({ id: p.id, error: new BackupError(code, `backup ${p.id}: no location holding it could be read: ${why}`, { details: { backupId: p.id } }) });
    }
  }
  return result;
}

/** Copies what each target lacks (one target, or every location in turn); a dry run only plans. */
export async function runMirror(rt: Runtime, req: MirrorRequest): Promise<MirrorResult> {
  const names = rt.locations.map((l) => l.name);
  for (const [flag, name] of [['--to', req.to], ['--from', req.from]] as const) {
    if (name !== undefined && !names.includes(name)) throw new BackupError('USAGE', `${flag} ${name}: no such location (the config has ${names.join(', ')})`);
  }
  if (req.to !== undefined && req.to === req.from) throw new BackupError('USAGE', `--from and --to are both ${req.to}: a location cannot be filled from itself`);
  const abort = linkedAbort(req.signal);
  try {
    const listing = await listBackups(rt, { signal: abort.signal });
    // Healing (every location, missed backups) passes over locations that opted out; a named one is filled.
    const targets = rt.locations.filter((l) => (req.to === undefined ? l.name !== req.from && (req.scope === 'all' || l.heal !== false) : l.name === req.to));
    const locations: TargetResult[] = [];
    for (const t of targets) {
      const r = await mirrorTo(rt, listing, t, req, abort.signal);
      locations.push(r);
      if (r.yielded) break;
    }
    return { dryRun: req.dryRun, scope: req.scope, locations };
  } finally {
    abort.dispose();
  }
}
