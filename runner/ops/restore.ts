import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { REJECTED_MANIFEST_CODES } from '../catalog.js';
import { BackupError, toBackupError } from '../errors.js';
import { describeTargetOutcome } from '../engines/outcome.js';
import type { DataDirectoryOptions, DataDirectoryReport, Owner, RestoreReport, RestoreTargetOutcome, ServerPlace, StreamSpec, WalFeed } from '../engines/types.js';
import { formatNamed } from '../engines/registry.js';
import { decompress, storedAlgorithm } from '../pipeline/compression.js';
import { DigestStream } from '../pipeline/digest.js';
import { MAX_CLOCK_SKEW_MS, isServerObject, type Manifest, type ManifestObject, type ManifestStream } from '../manifest.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { keyIn } from '../storage/layout.js';
import { everyInterval, linkedAbort } from '../util/async.js';
import { type BackupCopy, type ListedBackup, type Listing, listBackups } from './list.js';
import { type Selector, selectBackup } from './select.js';
import { type ArchiveReach, archiveContents, reachFrom } from './wal-window.js';
import { feedWal } from './wal-fetch.js';
import { checkTree, serverReach, sourceObjects } from './server-backup.js';
import { type ObjectCheck, checkObject, objectKeys, readPlain } from './verify.js';

export interface RestoreRequest {
  selector: Selector;
  /** Defaults to the configured database. */
  targetDatabase?: string;
  force: boolean;
  /**
   * Restore the newest readable backup (--latest, --to-time) even when a
   * location could not be listed or a manifest read. Without it such a
   * restore is refused with LISTING_INCOMPLETE: the backup asked for may
   * be in the unreadable location.
   */
  allowIncompleteListing?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Identities (key text) that may decrypt an encrypted copy, beside the locations' own identity files. */
  identities?: readonly string[];
  /** A backup of several streams: restore only these databases (default: every one). */
  databases?: readonly string[];
  /** A backup of several streams: leave its globals (roles) out. */
  skipGlobals?: boolean;
  /** PostgreSQL: restore without the dump's ownership (into a server that lacks its roles). */
  noOwner?: boolean;
  /** A physical base backup: the data directory it is laid into (this process's filesystem). */
  dataDir?: string;
  /** With dataDir, run as root: who owns what is written (default: the directory's owner). */
  owner?: Owner;
  /** With dataDir: start a server on it, follow its recovery to the promotion and stop it cleanly (restore --start). */
  start?: boolean;
  /** With dataDir: the shell command (before `%f %p`) PostgreSQL runs to fetch WAL during a point-in-time recovery. */
  walFetchCommand?: string;
}

/** What happened to one stream of a backup of several. */
export interface StreamOutcome {
  stream: string;
  kind: 'database' | 'globals';
  /** The database it was restored into (database streams). */
  database?: string;
  /** `outside configuration`: a database the runner's configuration no longer names, left out unless asked for by --database. */
  status: 'restored' | 'failed' | 'not attempted' | 'outside configuration';
  /** Roles left as they were, statements the server refused (globals). */
  conflicts?: string[];
  error?: BackupError;
}

/** A location (or one of its manifests) that could not be read while choosing the backup. */
export interface Unreadable {
  location: string;
  key?: string;
  code: string;
  message: string;
}

export interface RestoreResult {
  backup: ListedBackup;
  database: string;
  /** The location the data was read from. */
  location: string;
  /** Locations tried first whose copy failed verification. */
  skipped: ObjectCheck[];
  /** Locations that could not be read while choosing (only with allowIncompleteListing). */
  unreadable: Unreadable[];
  /** A backup of several streams: each stream chosen, in restore order. */
  streams?: StreamOutcome[];
  /** What a restore that succeeded still has to say (e.g. a database it kept aside). */
  conflicts?: string[];
  /** A physical base backup laid into a data directory. */
  dataDirectory?: DataDirectoryReport;
  /** How far the WAL archive reaches past that base backup (the recovery replays up to the target within it). */
  walArchive?: ArchiveReach;
}

function describeSelector(sel: Selector): string {
  return sel.kind === 'latest' ? 'restore --latest' : sel.kind === 'id' ? `restore --backup ${sel.id}` : `restore --to-time ${sel.at.toISOString()}`;
}

function describeUnreadable(u: readonly Unreadable[]): string {
  return u.map((p) => `${p.location}${p.key ? ` (${p.key})` : ''}: ${p.code}: ${p.message}`).join('; ');
}

/**
 * Pure: the choice a listing allows. With every location read, the
 * selector's pick (or its not-found error). With a location or manifest
 * unreadable, a pick by id that was found stands; anything else is refused
 * with LISTING_INCOMPLETE (exit 3) naming the unreadable locations and the
 * backup that would be chosen, unless `allowIncomplete` (latest and time
 * only: an id that was not found may be in the unreadable location).
 */
export function chooseBackup(listing: Listing, sel: Selector, allowIncomplete: boolean): { backup: ListedBackup; unreadable: Unreadable[] } {
  // A manifest that was read but is not this database's (misplaced, unsigned, signed by another key) hides no backup of it.
  const unreadable: Unreadable[] = listing.problems
    .filter((p) => !REJECTED_MANIFEST_CODES.has(p.error.code))
    .map((p) => ({ location: p.location, ...(p.key ? { key: p.key } : {}), code: p.error.code, message: p.error.message }));
  let backup: ListedBackup | undefined;
  let notFound: BackupError | undefined;
  const wanted = sel.kind === 'id' ? sel.id : undefined;
  const future = wanted === undefined ? undefined : listing.future.find((f) => f.id === wanted);
  if (future && !listing.backups.some((x) => x.id === wanted)) {
    throw new BackupError(
      'MANIFEST_FUTURE',
      `restore --backup ${future.id} refused: its manifest is dated in the future (${future.field} ${future.at}, more than ${MAX_CLOCK_SKEW_MS / 60_000} min ahead of this clock, in ${future.locations.join(', ')}); a backup cannot have been taken then, so it is not trusted. Check the clocks, or remove the object if nobody wrote it`,
      { details: { backupId: future.id, field: future.field, at: future.at, locations: future.locations } },
    );
  }
  try {
    backup = selectBackup(listing.backups, sel);
  } catch (err) {
    if (!(err instanceof BackupError) || unreadable.length === 0) throw err;
    notFound = err;
  }
  if (unreadable.length === 0 || (backup && sel.kind === 'id')) return { backup: backup!, unreadable: [] };
  const locations = [...new Set(unreadable.map((u) => u.location))];
  const what = `${describeSelector(sel)} refused: ${locations.join(', ')} could not be read (${describeUnreadable(unreadable)})`;
  const details = { unreadable, ...(backup ? { newestReadable: { id: backup.id, consistentAt: backup.manifest.consistentAt, locations: backup.locations } } : {}) };
  if (!backup) {
    throw new BackupError('LISTING_INCOMPLETE', `${what}; ${notFound!.message} in the locations that could be read, but it may be in ${locations.join(', ')}. Make them readable and retry.`, {
      details,
    });
  }
  if (allowIncomplete) return { backup, unreadable };
  throw new BackupError(
    'LISTING_INCOMPLETE',
    `${what}, so the backup asked for may be there and nothing was restored. The ${sel.kind === 'time' ? `newest readable backup consistent at or before ${sel.at.toISOString()}` : 'newest readable backup'} is ${backup.id} ` +
      `(consistent at ${backup.manifest.consistentAt}, in ${backup.locations.join(', ')}). Re-run with --allow-incomplete-listing to restore that one, or make ${locations.join(', ')} readable and retry.`,
    { details },
  );
}

/**
 * The first copy (config order) that verifies against its own manifest, contents included (an encrypted
 * copy needs a key: one without is skipped, saying so); nothing touches the database before this.
 */
async function findVerifiedCopy(
  rt: Runtime,
  backup: ListedBackup,
  req: RestoreRequest,
  wanted: (o: ManifestObject) => boolean = () => true,
): Promise<{ loc: Location; copy: BackupCopy; skipped: ObjectCheck[] }> {
  const skipped: ObjectCheck[] = [];
  next: for (const copy of backup.copies) {
    const loc = rt.locations.find((l) => l.name === copy.location)!;
    for (const object of copy.manifest.objects.filter(wanted)) {
      const check = await checkObject(loc, copy, object, { ...req, requireContents: true, ...(rt.engine.formats ? { formats: rt.engine.formats } : {}) });
      if (check.status === 'ok') continue;
      rt.logger.warn({ location: copy.location, backupId: backup.id, status: check.status, err: check.error }, 'copy failed verification; trying the next location');
      skipped.push(check);
      continue next;
    }
    return { loc, copy, skipped };
  }
  const code = skipped.length > 0 && skipped.every((s) => s.error?.code === 'NO_MATCHING_IDENTITY') ? 'NO_MATCHING_IDENTITY' : 'INTEGRITY';
  throw new BackupError(code, `no location holds a copy of backup ${backup.id} that could be read and verified: ${skipped.map((s) => `${s.location} ${s.status}${s.error ? ` (${s.error.message})` : ''}`).join('; ')}`, {
    details: { backupId: backup.id, checks: skipped.map((s) => ({ location: s.location, status: s.status, ...(s.error ? { code: s.error.code } : {}) })) },
  });
}

/** Whether a backup is a physical base backup (its format restores a data directory, not a database). */
function isPhysical(rt: Runtime, b: ListedBackup): boolean {
  return formatNamed(b.manifest.engine.format, rt.engine.formats ?? [])?.holds === 'data-directory';
}

const NOT_FOUND_CODES = new Set(['BACKUP_NOT_FOUND', 'NO_BACKUPS', 'NO_BACKUP_BEFORE_TIME']);

/**
 * The backup a restore takes, of the kind it restores: a physical base backup with --data-dir, a dump
 * without. --backup ID names one of either kind (refused, saying how, when it is the other kind); --latest
 * and --to-time choose among the backups of the asked kind, and say so when only the other kind exists.
 */
function chooseOfKind(rt: Runtime, listing: Listing, req: RestoreRequest): { backup: ListedBackup; unreadable: Unreadable[] } {
  const physical = req.dataDir !== undefined;
  const how = (b: ListedBackup): string =>
    isPhysical(rt, b) ? `backup ${b.id} is a physical base backup of the whole server: restore it into a data directory with --data-dir DIR` : `backup ${b.id} is a dump (${b.manifest.engine.format}): --data-dir restores physical base backups only; restore it without --data-dir`;
  if (req.selector.kind === 'id') {
    const chosen = chooseBackup(listing, req.selector, req.allowIncompleteListing ?? false);
    if (isPhysical(rt, chosen.backup) !== physical) throw new BackupError('USAGE', `${how(chosen.backup)}; nothing was changed`, { details: { backupId: chosen.backup.id } });
    return chosen;
  }
  try {
    return chooseBackup({ ...listing, backups: listing.backups.filter((b) => isPhysical(rt, b) === physical) }, req.selector, req.allowIncompleteListing ?? false);
  } catch (err) {
    const other = listing.backups.find((b) => isPhysical(rt, b) !== physical);
    if (!(err instanceof BackupError) || !NOT_FOUND_CODES.has(err.code) || !other) throw err;
    throw new BackupError(err.code, `${err.message} (no ${physical ? 'physical base backup' : 'dump'} qualifies); ${how(other)}`, { cause: err, details: err.details });
  }
}

/**
 * A physical base backup, laid into a data directory: the engine checks the directory (empty, the same restore
 * resumed, or --force), lays the tar in and has PostgreSQL check the result against its own manifest. A
 * directory that holds something (--force, a resume) is changed only after a copy was verified end to end. A
 * missing or empty one has nothing to lose: the first copy is streamed into it at once, checked on the way
 * (size and sha256 at the end, each tar member as it comes), which saves reading the backup twice; a copy that
 * fails there is named, what it left is removed, and the next copy, verified first, is laid in.
 */
async function restoreDataDir(rt: Runtime, req: RestoreRequest, dataDir: string, backup: ListedBackup, unreadable: Unreadable[]): Promise<RestoreResult> {
  const restore = rt.engine.restoreDataDirectory?.bind(rt.engine);
  if (!restore) throw new BackupError('USAGE', `the ${rt.engine.name} engine has no physical backups: --data-dir does not apply`);
  // After a copy streamed at once failed, what it left in the (formerly empty) directory is removed before the next.
  let discard = false;
  const baseOptions = (m: Manifest, signal?: AbortSignal): DataDirectoryOptions => ({
    dataDir,
    force: req.force,
    ...(discard ? { discard: true } : {}),
    ...(req.owner ? { owner: req.owner } : {}),
    ...(req.start ? { start: true } : {}),
    backup: { id: m.id, consistentAt: m.consistentAt, engine: { ...m.engine } },
    ...(signal ? { signal } : {}),
  });
  const { recovery, reach, notes } = await recoveryFor(rt, req, backup);
  const options = (m: Manifest, signal?: AbortSignal): DataDirectoryOptions => ({ ...baseOptions(m, signal), ...(recovery ? { recovery } : {}) });
  const checked = await rt.engine.checkDataDirectory?.(options(backup.manifest, req.signal));
  const layIn = (loc: Location, copy: BackupCopy): Promise<DataDirectoryReport> =>
    streamObject(rt, loc, copy, copy.manifest.objects[0]!, req, (input, signal) => restore(input, options(copy.manifest, signal)), withDirectoryState).catch((err: unknown) => {
      const e = toBackupError(err, 'RESTORE_FAILED');
      throw new BackupError(e.code, e.message, { cause: e, details: { ...e.details, backupId: backup.id, location: loc.name }, retryable: e.retryable });
    });
  const first = checked?.fresh ? await streamedAtOnce(rt, backup, req, layIn) : undefined;
  if (first && 'failed' in first) discard = true;
  const { loc, report, skipped } = first && 'report' in first ? first : await verifiedThenLaidIn(rt, backup, req, layIn, first?.failed);
  rt.logger.child({ op: 'restore' }).info({ backupId: backup.id, dataDir, location: loc.name, files: report.files, bytes: report.bytes, resumed: report.resumed }, 'restore finished');
  const dataDirectory = notes.length > 0 ? { ...report, notes: [...report.notes, ...notes] } : report;
  return { backup, database: rt.engine.database, location: loc.name, skipped, unreadable, dataDirectory, ...(recovery && reach ? { walArchive: reach } : {}) };
}

type LaidIn = { loc: Location; report: DataDirectoryReport; skipped: ObjectCheck[] };

/** The first copy laid into a fresh directory without reading it first; `failed` when it failed (the directory then holds what it left, removed before the next copy). */
async function streamedAtOnce(rt: Runtime, backup: ListedBackup, req: RestoreRequest, layIn: (loc: Location, copy: BackupCopy) => Promise<DataDirectoryReport>): Promise<LaidIn | { failed: BackupError }> {
  const copy = backup.copies[0]!;
  const loc = rt.locations.find((l) => l.name === copy.location)!;
  try {
    return { loc, report: await layIn(loc, copy), skipped: [] };
  } catch (err) {
    const e = toBackupError(err, 'RESTORE_FAILED');
    const state = (e.details.dataDirectory as { state?: string } | undefined)?.state;
    // A copy that could not be read, did not match its digests or held a tar refused is worth another (what it left
    // is removed first); a complete directory failing verification or recovery, a refused directory, a stop are not.
    if (req.signal?.aborted || state === 'unverified' || state === 'recovering' || state === 'past the target' || NO_FALLBACK_CODES.has(e.code)) throw e;
    rt.logger.child({ op: 'restore' }).warn({ backupId: backup.id, location: loc.name, err: e }, 'the copy streamed into the empty directory failed; removing what it left and laying in a copy verified first');
    return { failed: e };
  }
}

/** What a copy streamed at once fails with that another copy would fail with too: the restore ends there. */
const NO_FALLBACK_CODES = new Set(['ABORTED', 'USAGE', 'TARGET_NOT_EMPTY', 'TARGET_NO_SPACE', 'TOOL_MISSING', 'TOOL_INCOMPATIBLE', 'RECOVERY_FAILED']);

/** The usual order: a copy verified end to end first, then laid in (after a copy streamed at once failed, `earlier`: over what it left, removed first). */
async function verifiedThenLaidIn(rt: Runtime, backup: ListedBackup, req: RestoreRequest, layIn: (loc: Location, copy: BackupCopy) => Promise<DataDirectoryReport>, earlier?: BackupError): Promise<LaidIn> {
  let found: Awaited<ReturnType<typeof findVerifiedCopy>>;
  try {
    found = await findVerifiedCopy(rt, backup, req);
  } catch (err) {
    const note = (earlier?.details.dataDirectory as { note?: string } | undefined)?.note;
    if (!earlier || !(err instanceof BackupError)) throw err;
    throw new BackupError(err.code, `${err.message}${note ? `; ${note}` : ''}`, { cause: err, details: { ...err.details, ...(earlier.details.dataDirectory ? { dataDirectory: earlier.details.dataDirectory } : {}) } });
  }
  // The copy that failed while streaming is named even when its verification now passes (a download cut short).
  const failedFirst: ObjectCheck[] =
    earlier && !found.skipped.some((s) => s.location === backup.copies[0]!.location)
      ? [{ backupId: backup.id, location: backup.copies[0]!.location, object: backup.copies[0]!.manifest.objects[0]!.name, status: earlier.code === 'INTEGRITY' ? 'corrupt' : 'error', error: earlier }]
      : [];
  return { loc: found.loc, report: await layIn(found.loc, found.copy), skipped: [...failedFirst, ...found.skipped] };
}

/**
 * Whether a data-directory restore recovers past its base backup, from the WAL archive: --to-time to that
 * instant, refused (OUTSIDE_RECOVERY_WINDOW, before anything changes) when the archive does not reach it;
 * --latest to the archive's end; --backup ID to the base backup's own end. Without WAL after the base backup
 * the restore reaches its end, and says so.
 */
async function recoveryFor(rt: Runtime, req: RestoreRequest, backup: ListedBackup): Promise<{ recovery?: DataDirectoryOptions['recovery']; reach?: ArchiveReach; notes: string[] }> {
  const sel = req.selector;
  if (sel.kind === 'id') return { notes: [] };
  const reach = reachFrom(backup.manifest.engine.position, await archiveContents(rt, req.signal));
  const end = `restored to the end of backup ${backup.id} (consistent at ${backup.manifest.consistentAt})`;
  if (!reach) return { notes: [`the WAL archive holds nothing from the end of backup ${backup.id} on: ${end}`] };
  if (sel.kind === 'time' && sel.at > reach.until) {
    throw new BackupError(
      'OUTSIDE_RECOVERY_WINDOW',
      `restore --to-time ${sel.at.toISOString()} refused: the WAL archive reaches only to ${reach.until.toISOString()} (segment ${reach.lastWal}${reach.partial ? ', the part of it stored then' : ''}${reach.gapAt ? `; segment ${reach.gapAt} is in no location: a gap` : ''}); nothing was changed`,
      { details: { backupId: backup.id, until: reach.until.toISOString(), lastWal: reach.lastWal, ...(reach.gapAt ? { gapAt: reach.gapAt } : {}) } },
    );
  }
  if (!req.walFetchCommand) return { reach, notes: [`no command to fetch WAL was given: ${end}`] };
  const position = backup.manifest.engine.position;
  const from = { wal: String(position?.startWalFile ?? ''), segmentSize: Number(position?.walSegmentSize ?? 16 * 1024 * 1024) };
  const feed = (dir: string, owner: Owner | undefined, signal: AbortSignal): WalFeed => feedWal(rt, from, dir, { ...(owner ? { owner } : {}), signal });
  return { reach, recovery: { fetchCommand: req.walFetchCommand, lastWal: reach.lastWal, feed, ...(sel.kind === 'time' ? { targetTime: sel.at } : {}) }, notes: [] };
}

/** The first failure of a data-directory restore, saying what the directory holds (the engine's record of it) when it does not already. */
function withDirectoryState(primary: BackupError, engineResult: PromiseSettledResult<unknown>): BackupError {
  const engineError = engineResult.status === 'rejected' && engineResult.reason instanceof BackupError ? engineResult.reason : undefined;
  // The engine stopping the stream (a refused directory or tar member) makes the download fail after it: the engine's error is the cause,
  // unless the download itself found the copy changed (INTEGRITY), which the engine only saw as a stream that broke off.
  if (engineError && engineError.code !== 'ABORTED' && primary.code !== 'INTEGRITY') return engineError;
  const state = engineError?.details.dataDirectory as { note?: string } | undefined;
  if (primary.details.dataDirectory !== undefined || !state?.note) return primary;
  return new BackupError(primary.code, `${primary.message}; ${state.note}`, { cause: primary, details: { ...primary.details, dataDirectory: state }, retryable: primary.retryable });
}

/**
 * Restores a backup. Order of safety: choose the backup, refuse a target
 * holding data unless forced, verify a copy end to end (size and sha256)
 * before anything is written, then stream it into the engine's restore,
 * hashing again on the way so a copy changed since verification fails the
 * restore instead of completing it.
 */
export async function runRestore(rt: Runtime, req: RestoreRequest): Promise<RestoreResult> {
  const log = rt.logger.child({ op: 'restore' });
  const listing = await listBackups(rt, req);
  for (const p of listing.problems) log.warn({ location: p.location, err: p.error }, 'location could not be read while choosing the backup');
  const { backup, unreadable } = chooseOfKind(rt, listing, req);
  const database = req.targetDatabase ?? rt.engine.database;
  if (unreadable.length > 0) log.warn({ backupId: backup.id, unreadable: unreadable.map((u) => u.location) }, 'restoring the newest readable backup although locations could not be read (--allow-incomplete-listing)');
  log.info({ backupId: backup.id, consistentAt: backup.manifest.consistentAt, database }, 'restore selected backup');

  if (req.dataDir !== undefined) return restoreDataDir(rt, req, req.dataDir, backup, unreadable);
  if (backup.manifest.objects.some((o) => o.stream)) return restoreStreams(rt, req, backup, unreadable);
  if (backup.manifest.objects.some(isServerObject)) return restoreServerSide(rt, req, backup, unreadable);
  await refuseTarget(rt, database, req);
  const { loc, copy, skipped } = await findVerifiedCopy(rt, backup, req);
  await restoreObject(rt, loc, copy, copy.manifest.objects[0]!, { database, req });
  log.info({ backupId: backup.id, database, location: loc.name }, 'restore finished');
  return { backup, database, location: loc.name, skipped, unreadable };
}

/**
 * Streams one verified object into the engine: downloaded, checked against the stored digest, decrypted and
 * checked against the plain digest, decompressed. A copy changed since it was verified fails the restore
 * instead of completing it; any stage failing stops the others, so the engine never commits a partial stream.
 */
async function restoreObject(rt: Runtime, loc: Location, copy: BackupCopy, object: ManifestObject, at: { database: string; req: RestoreRequest }): Promise<RestoreReport | void> {
  const { database, req } = at;
  const into = (input: Readable, signal: AbortSignal): Promise<RestoreReport | void> =>
    rt.engine.restore(input, {
      database,
      force: req.force,
      signal,
      ...(object.stream ? { stream: streamSpecOf(object.stream) } : {}),
      ...(req.noOwner ? { noOwner: true } : {}),
      format: object.stream?.format ?? copy.manifest.engine.format,
      backup: { id: copy.manifest.id, consistentAt: copy.manifest.consistentAt, engine: { ...copy.manifest.engine } },
    });
  return streamObject(rt, loc, copy, object, req, into, (primary, engineResult) => restoreFailure(primary, engineResult, database, copy.manifest.id, loc.name));
}

/**
 * Streams one verified object into `into` (the engine's restore): downloaded, checked against the stored digest,
 * decrypted and checked against the plain digest, decompressed. Any stage failing stops the others; `fail` turns
 * the first failure (with the engine's own result) into the restore's error.
 */
async function streamObject<T>(
  rt: Runtime,
  loc: Location,
  copy: BackupCopy,
  object: ManifestObject,
  req: RestoreRequest,
  into: (input: Readable, signal: AbortSignal) => Promise<T>,
  fail: (primary: BackupError, engineResult: PromiseSettledResult<unknown>) => BackupError = (primary) => primary,
): Promise<T> {
  const key = keyIn(copy.dir, object.name);
  const abort = linkedAbort(req.signal);
  let stored: DigestStream | undefined;
  const ticker = everyInterval(1000, () => req.onProgress?.({ phase: 'restore', bytesIn: stored?.bytes ?? 0, total: object.size, location: loc.name }));
  try {
    const keys = await objectKeys(loc, copy, object, req.identities);
    const download = await readPlain(loc, copy, object, keys, { signal: abort.signal, onStored: (d) => (stored = d) });
    const plain = decompress(download.output, storedAlgorithm(object.compression.algorithm, `${loc.name}: ${key}`), abort.signal);
    const restored = into(plain.output, abort.signal);
    const stages = [download.done, plain.done, restored].map((p) =>
      p.catch((err: unknown) => {
        abort.abort(err);
        throw err;
      }),
    );
    const results = await Promise.allSettled(stages);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof BackupError && r.reason.code === 'ABORTED'));
    const first = failed ?? results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (first) throw fail(toBackupError(first.reason, 'RESTORE_FAILED'), results[2]!);
    return (results[2] as PromiseFulfilledResult<T>).value;
  } finally {
    ticker.stop();
    abort.dispose();
  }
}

/** The backup with only the copies that hold every one of `objects`' streams (each location's manifest is its own). */
function holdingAll(backup: ListedBackup, objects: readonly ManifestObject[]): ListedBackup {
  const has = (c: BackupCopy): boolean => objects.every((o) => c.manifest.objects.some((x) => x.stream?.kind === o.stream!.kind && x.stream?.name === o.stream!.name));
  const copies = backup.copies.filter(has);
  if (copies.length === 0) throw new BackupError('INTEGRITY', `no location holds every chosen stream of backup ${backup.id}`, { details: { backupId: backup.id } });
  return { ...backup, copies };
}

/** The one target of a restore, refused when it holds data and --force is not given (it is read either way). */
async function refuseTarget(rt: Runtime, database: string, req: RestoreRequest): Promise<void> {
  const target = await rt.engine.inspectTarget(database, req);
  if (target.hasData && !req.force) {
    throw new BackupError('TARGET_NOT_EMPTY', `database "${database}" already holds data; nothing was changed. Re-run with --force to replace its objects, or restore into another database with --target-database`, {
      details: { database },
    });
  }
}

/** Every target that holds data, refused together before anything is written (without --force). */
async function refuseHolding(rt: Runtime, targets: readonly string[], req: RestoreRequest): Promise<void> {
  const holding: string[] = [];
  for (const t of targets) if ((await rt.engine.inspectTarget(t, req)).hasData) holding.push(t);
  if (holding.length === 0) return;
  throw new BackupError('TARGET_NOT_EMPTY', `${holding.map((d) => `database "${d}"`).join(', ')} already ${holding.length === 1 ? 'holds' : 'hold'} data; nothing was changed. Re-run with --force to replace their objects, choose databases with --database, or restore one under another name with --target-database`, {
    details: { databases: holding },
  });
}

/** An encrypted copy's manifest keeps no database settings or comment (backup.ts): said, not silently skipped. */
function unkeptProperties(loc: Location, o: ManifestObject, database: string): string[] {
  return o.encryption.scheme !== 'none' && o.stream?.kind === 'database' ? [`database "${database}": its settings and comment are not kept by an encrypted copy (${loc.name}): not restored`] : [];
}

/**
 * The streams a restore takes: the globals unless skipped, and the databases named with --database, or without
 * it the ones the runner is configured for now (a backup taken under a wider configuration holds others, which
 * are `outside` and restored only when named). Throws BACKUP_NOT_FOUND for a name the backup does not hold, and
 * when it holds none of the configured databases.
 */
function chooseStreams(all: ManifestObject[], req: RestoreRequest, configured: 'all' | readonly string[] | undefined, backupId: string, configuredGlobals = true) {
  const databases = all.filter((o) => o.stream!.kind === 'database').map((o) => o.stream!.name);
  const unknown = (req.databases ?? []).filter((d) => !databases.includes(d));
  if (unknown.length > 0) {
    throw new BackupError('BACKUP_NOT_FOUND', `backup ${backupId} holds no database ${unknown.map((d) => `"${d}"`).join(', ')} (it holds ${databases.join(', ')})`, { details: { backupId, unknown, databases } });
  }
  const inScope = (name: string): boolean => configured === undefined || configured === 'all' || configured.includes(name);
  // The server's roles come back only where the configuration backs them up too (a whole server, globals on).
  const chosen = (o: ManifestObject): boolean =>
    o.stream !== undefined && (o.stream.kind === 'globals' ? !req.skipGlobals && configuredGlobals : req.databases === undefined ? inScope(o.stream.name) : req.databases.includes(o.stream.name));
  const objects = all.filter(chosen);
  const outside = all.filter((o) => (o.stream!.kind === 'globals' ? !req.skipGlobals && !configuredGlobals : req.databases === undefined && !inScope(o.stream!.name)));
  if (outside.some((o) => o.stream!.kind === 'database') && objects.every((o) => o.stream!.kind === 'globals')) {
    throw new BackupError('BACKUP_NOT_FOUND', `backup ${backupId} holds no database of this configuration (engine.postgresql.databases); it holds ${databases.join(', ')}: name one with --database to restore it; nothing was changed`, {
      details: { backupId, databases },
    });
  }
  return { databases, chosen, objects, outside };
}

/**
 * A backup of several streams (a whole server): the globals first (unless skipped), then each database
 * chosen, each into its own name (or --target-database for one). Every target is checked and every chosen
 * object verified before anything is written; the first stream that fails stops the rest, and the result
 * says what each stream's database is now.
 */
async function restoreStreams(rt: Runtime, req: RestoreRequest, backup: ListedBackup, unreadable: Unreadable[]): Promise<RestoreResult> {
  const log = rt.logger.child({ op: 'restore' });
  const all = backup.manifest.objects.filter((o) => o.stream);
  const { databases, chosen, objects, outside } = chooseStreams(all, req, rt.engine.configuredDatabases?.(), backup.id, rt.engine.configuredGlobals?.());
  if (outside.length > 0) log.warn({ backupId: backup.id, databases: outside.map((o) => o.stream!.name) }, 'databases of the backup outside the configuration are left out (name them with --database to restore them)');
  const dbObjects = objects.filter((o) => o.stream!.kind === 'database');
  if (req.targetDatabase !== undefined && dbObjects.length !== 1) {
    throw new BackupError('USAGE', `--target-database needs exactly one database of backup ${backup.id} (--database NAME); it holds ${databases.join(', ')}`);
  }
  const targetOf = (o: ManifestObject): string => req.targetDatabase ?? o.stream!.name;
  if (!req.force) await refuseHolding(rt, dbObjects.map(targetOf), req);
  const { loc, copy, skipped } = await findVerifiedCopy(rt, holdingAll(backup, objects), req, chosen);
  const outcomes: StreamOutcome[] = objects.map((o) => ({ stream: o.stream!.name, kind: o.stream!.kind, ...(o.stream!.kind === 'database' ? { database: targetOf(o) } : {}), status: 'not attempted' }));
  const byName = (o: ManifestObject): ManifestObject => copy.manifest.objects.find((c) => c.stream?.kind === o.stream!.kind && c.stream?.name === o.stream!.name)!;
  for (const [i, o] of objects.entries()) {
    try {
      const report = await restoreObject(rt, loc, copy, byName(o), { database: o.stream!.kind === 'database' ? targetOf(o) : rt.engine.database, req });
      const conflicts = [...(report?.conflicts ?? []), ...unkeptProperties(loc, byName(o), targetOf(o))];
      outcomes[i] = { ...outcomes[i]!, status: 'restored', ...(conflicts.length > 0 ? { conflicts } : {}) };
      log.info({ backupId: backup.id, stream: o.stream!.name, ...(report ? { conflicts: report.conflicts.length } : {}) }, 'stream restored');
    } catch (err) {
      const error = toBackupError(err, 'RESTORE_FAILED');
      outcomes[i] = { ...outcomes[i]!, status: 'failed', error };
      const done = outcomes.filter((x) => x.status === 'restored').map((x) => x.stream);
      const left = outcomes.filter((x) => x.status === 'not attempted').map((x) => x.stream);
      throw new BackupError(error.code, `restoring ${o.stream!.kind === 'globals' ? 'the globals' : `database "${targetOf(o)}"`} of backup ${backup.id} failed: ${error.message}. Restored before it: ${done.join(', ') || 'nothing'}; not attempted: ${left.join(', ') || 'nothing'}`, {
        cause: error,
        details: { ...error.details, backupId: backup.id, location: loc.name, streams: outcomes.map((x) => ({ stream: x.stream, kind: x.kind, status: x.status, ...(x.database ? { database: x.database } : {}) })) },
      });
    }
  }
  log.info({ backupId: backup.id, location: loc.name, streams: outcomes.length }, 'restore finished');
  const left: StreamOutcome[] = outside.map((o) => ({ stream: o.stream!.name, kind: o.stream!.kind, ...(o.stream!.kind === 'database' ? { database: o.stream!.name } : {}), status: 'outside configuration' }));
  return { backup, database: dbObjects.length === 1 ? targetOf(dbObjects[0]!) : rt.engine.database, location: loc.name, skipped, unreadable, streams: [...outcomes, ...left] };
}

/** The keys below a copy's `server/` folder that its manifest does not name (in a filesystem copy, also a link or a hidden file a listing skips). */
async function unnamedObjects(loc: Location, copy: BackupCopy, place: ServerPlace): Promise<string[]> {
  if (place.destination.path) await checkTree(dirname(place.destination.path));
  const named = new Set(copy.manifest.objects.map((o) => keyIn(copy.dir, o.name)));
  const extra: string[] = [];
  for await (const o of loc.storage.list(keyIn(copy.dir, 'server/'))) if (!named.has(o.key)) extra.push(o.key.slice(copy.dir.length));
  return extra;
}

/** The copies of a server-side backup its database server can read, with how; and why the others cannot. */
async function serverCopies(rt: Runtime, backup: ListedBackup): Promise<{ reachable: { copy: BackupCopy; place: ServerPlace }[]; refused: string[] }> {
  const reachable: { copy: BackupCopy; place: ServerPlace }[] = [];
  const refused: string[] = [];
  for (const copy of backup.copies) {
    const loc = rt.locations.find((l) => l.name === copy.location)!;
    const reach = await serverReach(rt, loc, copy.dir);
    if (!('place' in reach)) {
      refused.push(reach.refused);
      continue;
    }
    // The server reads the directory, not the manifest: a copy holding anything its manifest does not name is not handed over.
    const extra = await unnamedObjects(loc, copy, reach.place).catch((err: unknown) => [`(its directory could not be read: ${toBackupError(err, 'STORAGE_FAILED').message})`]);
    if (extra.length > 0) refused.push(`${copy.location} holds ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ` and ${extra.length - 3} more` : ''} beside what its manifest names: not handed to the database server`);
    else reachable.push({ copy, place: reach.place });
  }
  return { reachable, refused };
}

/**
 * A backup its database server wrote (format 4): the target checked, then a copy the server can read verified
 * end to end (every object's size and sha256) just before the server is told to restore it from there.
 */
async function restoreServerSide(rt: Runtime, req: RestoreRequest, backup: ListedBackup, unreadable: Unreadable[]): Promise<RestoreResult> {
  const database = req.targetDatabase ?? rt.engine.database;
  const engine = rt.engine.serverSide;
  if (!engine) {
    throw new BackupError('FORMAT_MISMATCH', `backup ${backup.id} was written by its database server (${backup.manifest.engine.name}, format ${backup.manifest.engine.format}); the ${rt.engine.name} engine restores dumps only; nothing was changed`);
  }
  if (!req.force) await refuseTarget(rt, database, req);
  const { reachable, refused } = await serverCopies(rt, backup);
  if (reachable.length === 0) {
    throw new BackupError(
      'CONFIG_INVALID',
      `no copy of backup ${backup.id} can be handed to the database server (${refused.join('; ')}); nothing was changed. A copy in a location the server may read can be made with backup-runner mirror --to <location>`,
      { details: { backupId: backup.id } },
    );
  }
  const { loc, copy, skipped } = await findVerifiedCopy(rt, { ...backup, copies: reachable.map((r) => r.copy) }, req);
  const place = reachable.find((r) => r.copy === copy)!.place;
  const m = copy.manifest;
  let report: RestoreReport | void;
  try {
    report = await engine.restore(place, sourceObjects(m), { database, force: req.force, format: m.engine.format, backup: { id: m.id, consistentAt: m.consistentAt, engine: { ...m.engine } }, ...(req.signal ? { signal: req.signal } : {}) });
  } catch (err) {
    throw restoreFailure(toBackupError(err, 'RESTORE_FAILED'), { status: 'rejected', reason: err }, database, backup.id, loc.name);
  }
  rt.logger.child({ op: 'restore' }).info({ backupId: backup.id, database, location: loc.name }, 'restore finished');
  return { backup, database, location: loc.name, skipped, unreadable, ...(report && report.conflicts.length > 0 ? { conflicts: report.conflicts } : {}) };
}

/**
 * The error of a restore that failed while streaming: the primary cause
 * (the first stage that failed by itself: the download, the decompressor,
 * or pg_restore's own message) with the target's state as the engine
 * reported it (`details.target`), in the message and the details.
 */
function restoreFailure(primary: BackupError, engineResult: PromiseSettledResult<unknown>, database: string, backupId: string, location: string): BackupError {
  const engineError = engineResult.status === 'rejected' && engineResult.reason instanceof BackupError ? engineResult.reason : undefined;
  const target = (engineError?.details.target ?? primary.details.target) as RestoreTargetOutcome | undefined;
  const state: RestoreTargetOutcome = target ?? { database, state: 'unchanged' };
  const message = primary.details.target ? primary.message : `${primary.message}; ${describeTargetOutcome(state)}`;
  return new BackupError(primary.code, message, {
    cause: primary,
    details: { ...primary.details, backupId, location, target: state },
    retryable: primary.retryable,
  });
}

/** What the engine is told of the stream it restores: the manifest's record, without what only the pipeline reads. */
function streamSpecOf(s: ManifestStream): StreamSpec {
  return { name: s.name, kind: s.kind, ...(s.owner ? { owner: s.owner } : {}), ...(s.properties ? { properties: s.properties } : {}) };
}
