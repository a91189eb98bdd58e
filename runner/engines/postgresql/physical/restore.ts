/**
 * Restores a base backup into a data directory: the directory checked (empty, a resumable restore of the
 * same backup, or emptied with --force), its free space checked against the backup's size, the tar laid in
 * (extract.ts), the result flushed and checked by pg_verifybackup against PostgreSQL's own manifest.
 *
 * Invariants:
 * - Nothing in the directory is removed unless `force`, and then only after every check passed.
 * - While a restore runs, RESTORE_STATE_FILE in the directory says which backup and how far: a restore of
 *   the same backup resumes there; the file is removed only once the directory is complete and verified.
 * - A failure says what the directory holds now, in the error's message and `details.dataDirectory`.
 */
import { constants, existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import type { Readable } from 'node:stream';
import { BackupError, isBackupError, toBackupError } from '../../../errors.js';
import type { Logger } from '../../../logger.js';
import { capture, minimalEnv } from '../../../util/process.js';
import { RESTORE_STATE_FILE, RESTORE_STATE_TMP } from './entries.js';
import type { DataDirectoryOptions, DataDirectoryReport, Owner, RecoveryOutcome } from '../../types.js';
import { extractTar, type Extracted } from './extract.js';
import { findServer, recoverHere, startFeed, type StartedFeed } from './recover.js';
import { writeRecovery } from './recovery.js';

export interface DataDirectoryTools {
  /** pg_verifybackup to check the result with (its pg_waldump beside it, when installed, checks the WAL too). */
  pgVerifybackup: string;
  /** engine.postgresql.binDir: where restore --start looks for the server first. */
  binDir?: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
}

interface RestoreState {
  backupId: string;
  entries: number;
  bytes: number;
}

/**
 * The record is rewritten once a second or every 32 MiB laid in, whichever comes first. It is not preceded by a
 * flush of the files: a resumed restore compares every member the record counts as done with what lies there,
 * byte for byte (extract.ts), so a member the machine lost before it reached the disk is written again. The
 * directory is flushed once, whole, before the record goes (then nothing compares it again).
 */
const STATE_EVERY_MS = 1000;
const STATE_EVERY_BYTES = 32 * 1024 * 1024;

async function readState(dir: string): Promise<RestoreState | undefined> {
  const text = await readFile(join(dir, RESTORE_STATE_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const s = JSON.parse(text) as Partial<RestoreState>;
    if (typeof s.backupId === 'string' && Number.isSafeInteger(s.entries) && Number.isSafeInteger(s.bytes)) return { backupId: s.backupId, entries: s.entries!, bytes: s.bytes! };
  } catch {
    // An unreadable record resumes nothing.
  }
  return undefined;
}

/** Writes the record beside itself (a new file, never through a link) and renames it in place. */
async function writeState(dir: string, state: RestoreState, owner?: Owner): Promise<void> {
  const tmp = join(dir, RESTORE_STATE_TMP);
  await unlink(tmp).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    if (owner) await fh.chown(owner.uid, owner.gid);
    await fh.writeFile(JSON.stringify(state));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, RESTORE_STATE_FILE));
}

/** syncfs(2) on the directory's filesystem, through coreutils (Node has no binding): what was written is on disk. */
async function syncFilesystem(dir: string): Promise<void> {
  await capture('sync', ['-f', dir], { env: minimalEnv(process.env) }).catch(() => undefined);
}

/** Bytes below `dir` (files only, links not followed). */
async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await lstat(join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

function stateNote(dir: string, backupId: string): string {
  return `${dir} holds part of backup ${backupId}: run restore --backup ${backupId} --data-dir ${dir} again to resume it, or restore another backup with --force`;
}

/** Removes what lies in `dir` that is not a member (nor the restore's record), deepest first; returns the paths removed. */
async function removeExtra(dir: string, members: ReadonlySet<string>): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      if (path === RESTORE_STATE_FILE || path === RESTORE_STATE_TMP) continue;
      if (!members.has(path)) {
        await rm(join(dir, path), { recursive: true, force: true });
        removed.push(path);
      } else if (e.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return removed;
}

/**
 * What the directory is now, and whether a restore may go on in it (refused: TARGET_NOT_EMPTY, TARGET_NO_SPACE,
 * USAGE). Changes nothing unless `create`: then a missing directory is made.
 */
async function prepare(opts: DataDirectoryOptions, create: boolean): Promise<{ resume?: RestoreState; replaced: boolean; owner?: Owner }> {
  const dir = opts.dataDir;
  if (!isAbsolute(dir)) throw new BackupError('USAGE', `--data-dir must be an absolute path, not "${dir}"`);
  const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!st) {
    const parent = await stat(dirname(dir)).catch(() => undefined);
    if (!parent?.isDirectory()) throw new BackupError('USAGE', `--data-dir ${dir}: its parent directory does not exist`);
    if (create) await mkdir(dir, { mode: 0o700 });
    return { replaced: false, owner: opts.owner ?? (await defaultOwner(dirname(dir))) };
  }
  if (!st.isDirectory()) throw new BackupError('USAGE', `--data-dir ${dir} is not a directory`);
  const owner = opts.owner ?? (await defaultOwner(dir));
  const present = await readdir(dir);
  if (present.length === 0) return { replaced: false, owner };
  const state = await readState(dir);
  // --force starts over, also where a restore of the same backup stopped.
  if (state?.backupId === opts.backup.id && !opts.force && !opts.discard) return { resume: state, replaced: false, owner };
  const what = state ? `part of backup ${state.backupId} (a restore that stopped)` : `${present.length} entr${present.length === 1 ? 'y' : 'ies'} (${present.slice(0, 3).join(', ')}${present.length > 3 ? ', ...' : ''})`;
  if (!opts.force && !opts.discard) {
    throw new BackupError('TARGET_NOT_EMPTY', `data directory ${dir} holds ${what}; nothing was changed. Restore into an empty directory, or re-run with --force to remove what it holds first`, {
      details: { dataDir: dir },
    });
  }
  await refuseRunningServer(dir);
  return { replaced: true, owner };
}

/** A postmaster.pid whose process is alive (in this process's view) means a server uses the directory. */
async function refuseRunningServer(dir: string): Promise<void> {
  const pidText = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number.parseInt(pidText?.split('\n')[0] ?? '', 10);
  // Our own pid in a file left by a server of another pid namespace (a pod's pid 1) is no server here.
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return;
  }
  throw new BackupError('TARGET_NOT_EMPTY', `data directory ${dir} is in use by a running PostgreSQL server (postmaster.pid names process ${pid}); nothing was changed. Stop the server first`, {
    details: { dataDir: dir, pid },
  });
}

/** When run as root: what is written belongs to the directory's owner (PostgreSQL refuses a data directory it does not own). */
async function defaultOwner(dir: string): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const st = await stat(dir);
  return { uid: st.uid, gid: st.gid };
}

const SPACE_MARGIN = 64 * 1024 * 1024;

/** Refuses (TARGET_NO_SPACE) when the directory's filesystem cannot take what is still to be written. */
async function checkSpace(dir: string, need: number, freed: number): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize + freed;
  // Blocks round files up and directories take room of their own: a margin on top.
  need = need > 0 ? Math.ceil(need * 1.02) + SPACE_MARGIN : 0;
  if (free >= need) return;
  const mib = (n: number): string => `${Math.ceil(n / 1048576)} MiB`;
  throw new BackupError('TARGET_NO_SPACE', `the filesystem of ${dir} has ${mib(free)} free${freed > 0 ? ' (counting what --force would remove)' : ''}, the base backup needs ${mib(need)}; nothing was changed`, {
    details: { dataDir: dir, free, need },
  });
}

/** pg_verifybackup on the finished directory; its WAL too when pg_waldump is installed beside it. */
async function verifyDirectory(dir: string, tools: DataDirectoryTools, signal?: AbortSignal): Promise<{ verified: DataDirectoryReport['verified']; note?: string }> {
  const waldump = join(dirname(tools.pgVerifybackup), 'pg_waldump');
  const parseWal = isAbsolute(tools.pgVerifybackup) && existsSync(waldump);
  try {
    await capture(tools.pgVerifybackup, ['-q', '-i', RESTORE_STATE_FILE, ...(parseWal ? [] : ['-n']), dir], { env: minimalEnv(tools.env), ...(signal ? { signal } : {}) });
  } catch (err) {
    if (isBackupError(err, 'TOOL_MISSING')) return { verified: 'skipped', note: `${tools.pgVerifybackup} is not installed: the data directory was checked by its sha256 only, not against PostgreSQL's backup_manifest` };
    const e = toBackupError(err, 'INTEGRITY');
    const stderr = (typeof e.details.stderr === 'string' ? e.details.stderr : e.message).trim().slice(0, 1000);
    throw new BackupError('INTEGRITY', `pg_verifybackup found the restored data directory does not match the backup's own manifest: ${stderr}`, { cause: e });
  }
  return { verified: 'pg_verifybackup', ...(parseWal ? {} : { note: 'its WAL was not parsed (pg_waldump is not installed beside pg_verifybackup)' }) };
}

/**
 * Whether the backup may be laid into `opts.dataDir` now: refuses (TARGET_NOT_EMPTY, TARGET_NO_SPACE, USAGE)
 * saying why, before any byte is read or anything changed (`create`: a missing directory is made).
 */
export async function checkDataDirectory(opts: DataDirectoryOptions, create = false): Promise<{ resume?: RestoreState; replaced: boolean; owner?: Owner }> {
  if (opts.owner && process.getuid?.() !== 0) throw new BackupError('USAGE', '--owner needs the restore to run as root; run it as the user the files should belong to instead');
  const dataBytes = Number(opts.backup.engine.position && (opts.backup.engine.position as Record<string, unknown>).dataBytes);
  const prepared = await prepare(opts, create);
  const existing = prepared.replaced ? await sizeOf(opts.dataDir) : 0;
  const statAt = (await lstat(opts.dataDir).catch(() => undefined)) ? opts.dataDir : dirname(opts.dataDir);
  if (Number.isSafeInteger(dataBytes) && dataBytes > 0) await checkSpace(statAt, dataBytes - (prepared.resume?.bytes ?? 0), existing);
  return prepared;
}

/** --force: removes what the directory holds (not the directory: it may be a volume's mount point), saying so when it fails half way. */
async function emptyDirectory(dir: string, backupId: string): Promise<void> {
  try {
    for (const e of await readdir(dir)) await rm(join(dir, e), { recursive: true, force: true });
  } catch (err) {
    const e = toBackupError(err, 'RESTORE_FAILED');
    throw new BackupError(e.code, `removing what ${dir} held (--force) failed half way: ${e.message}; part of what it held is gone, nothing of the backup was written`, {
      cause: e,
      details: { ...e.details, dataDirectory: { path: dir, state: 'emptied in part', backupId } },
    });
  }
}

/** Lays the tar in, recording progress; on failure, says what the directory holds (resumable, or refused). */
async function layIn(input: Readable, opts: DataDirectoryOptions, resume: RestoreState | undefined, owner: Owner | undefined, log: Logger): Promise<Extracted> {
  const dir = opts.dataDir;
  let state: RestoreState = { backupId: opts.backup.id, entries: resume?.entries ?? 0, bytes: resume?.bytes ?? 0 };
  try {
    await writeState(dir, state, owner);
    let last = Date.now();
    const extracted = await extractTar(input, {
      dir,
      skip: resume?.entries ?? 0,
      ...(owner ? { owner } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onProgress: async (p) => {
        if (p.entries <= state.entries || (Date.now() - last < STATE_EVERY_MS && p.bytes - state.bytes < STATE_EVERY_BYTES)) return;
        state = { ...state, ...p };
        last = Date.now();
        await writeState(dir, state, owner);
      },
    });
    await chmod(dir, 0o700);
    if (owner) await chown(dir, owner.uid, owner.gid);
    log.debug({ dataDir: dir }, 'laid in: flushing');
    // With --start the server flushes the whole directory as it starts (a base backup is never shut down cleanly:
    // PostgreSQL syncs its data directory before recovering; fsync=on is forced), and the record stays until it
    // promoted and shut down cleanly: one flush is enough.
    if (!opts.start) await syncFilesystem(dir);
    return extracted;
  } catch (err) {
    const e = toBackupError(err, 'RESTORE_FAILED');
    // A tar refused for what it holds (details.refused, extract.ts) fails the same way again: that directory is no
    // restore to resume. A stream that broke off (a copy failing its digest, a download cut) leaves a resumable part.
    const refused = e.details.refused === true;
    if (refused) await rm(join(dir, RESTORE_STATE_FILE), { force: true }).catch(() => undefined);
    const note = refused ? `${dir} holds part of backup ${opts.backup.id}, which cannot be restored as it is: do not start a server on it; restore another backup with --force` : stateNote(dir, opts.backup.id);
    throw new BackupError(e.code, `${e.message}; ${note}`, { cause: e, details: { ...e.details, dataDirectory: { path: dir, state: refused ? 'refused' : 'partial', backupId: opts.backup.id, note } } });
  }
}

/**
 * Lays the base backup `input` (an uncompressed tar) into `opts.dataDir`. On failure the error says what
 * the directory holds: unchanged, or part of this backup (resumable by running the same restore again).
 */
export async function restoreDataDirectory(input: Readable, opts: DataDirectoryOptions, tools: DataDirectoryTools): Promise<DataDirectoryReport> {
  const dir = opts.dataDir;
  let prepared: Awaited<ReturnType<typeof prepare>>;
  try {
    prepared = await checkDataDirectory(opts, true);
    if (prepared.replaced) await emptyDirectory(dir, opts.backup.id);
  } catch (err) {
    input.destroy();
    throw err;
  }
  const { resume, replaced, owner } = prepared;
  const notes: string[] = [];
  if (replaced && opts.force) {
    notes.push(`what ${dir} held before was removed (--force)`);
    tools.log.warn({ dataDir: dir }, 'removed the previous contents of the data directory (--force)');
  }
  const extracted = await layIn(input, opts, resume, owner, tools.log);
  tools.log.debug({ dataDir: dir, files: extracted.files, bytes: extracted.bytes }, 'laid in and flushed');
  const extra = resume ? await removeExtra(dir, extracted.members) : [];
  if (extra.length > 0) notes.push(`removed what the backup does not hold, left since the restore stopped: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` and ${extra.length - 5} more` : ''}`);
  // restore --start: WAL is fetched ahead while the directory is checked and the server found.
  const feed = opts.start && opts.recovery?.feed ? await startFeed(dir, owner, opts.recovery.feed, tools.log, opts.signal) : undefined;
  try {
    return await checkAndRecover(opts, tools, { extracted, resume, replaced, owner, notes, ...(feed ? { feed } : {}) });
  } finally {
    await feed?.stop();
  }
}

/** After the laying in: the directory checked, the recovery settings written, and with --start the recovery run. */
async function checkAndRecover(
  opts: DataDirectoryOptions,
  tools: DataDirectoryTools,
  r: { extracted: Extracted; resume: RestoreState | undefined; replaced: boolean; owner: Owner | undefined; notes: string[]; feed?: StartedFeed },
): Promise<DataDirectoryReport> {
  const { extracted, resume, replaced, owner, notes } = r;
  const dir = opts.dataDir;
  const check = await verifyDirectory(dir, tools, opts.signal).catch((err: unknown) => {
    const e = toBackupError(err, 'INTEGRITY');
    const note = `${dir} holds the restore, which failed this check: do not start a server on it`;
    throw new BackupError(e.code, `${e.message}; ${note}`, { cause: e, details: { ...e.details, dataDirectory: { path: dir, state: 'unverified', backupId: opts.backup.id, note } } });
  });
  tools.log.debug({ dataDir: dir, verified: check.verified }, 'checked');
  if (check.note) notes.push(check.note);
  if (opts.recovery) await writeRecovery(dir, { fetchCommand: opts.recovery.fetchCommand, backupId: opts.backup.id, ...(opts.recovery.targetTime ? { targetTime: opts.recovery.targetTime } : {}) }, owner);
  // With --start the record stays until the server has promoted: a restore stopped while it recovers is resumed (every file the recovery changed is laid in again).
  const recovered = opts.start ? await startHere(opts, tools, owner, r.feed) : undefined;
  await rm(join(dir, RESTORE_STATE_FILE), { force: true });
  if (resume) notes.push(`resumed a restore of the same backup that had stopped (${extracted.skipped} file${extracted.skipped === 1 ? '' : 's'} already there byte for byte kept)`);
  if (owner) notes.push(`owned by uid ${owner.uid}, gid ${owner.gid}`);
  return {
    dataDir: dir,
    files: extracted.files,
    bytes: extracted.bytes,
    resumed: resume !== undefined,
    replaced: replaced && !opts.discard,
    verified: check.verified,
    notes,
    ...(opts.recovery ? { recovery: opts.recovery.targetTime ? { targetTime: opts.recovery.targetTime.toISOString() } : {} } : {}),
    ...(recovered ? { recovered } : {}),
  };
}

/** restore --start: the server started on the complete, verified directory (recover.ts); a failure says what the directory holds. */
async function startHere(opts: DataDirectoryOptions, tools: DataDirectoryTools, owner: Owner | undefined, feed: StartedFeed | undefined): Promise<RecoveryOutcome> {
  const server = await findServer(opts.backup.engine.serverVersion, tools.binDir, tools.env);
  const plan = opts.recovery ? { fetchCommand: opts.recovery.fetchCommand, backupId: opts.backup.id, ...(opts.recovery.targetTime ? { targetTime: opts.recovery.targetTime } : {}) } : undefined;
  try {
    opts.signal?.throwIfAborted();
    const r = opts.recovery;
    return await recoverHere({
      dir: opts.dataDir,
      server,
      ...(owner ? { owner } : {}),
      ...(plan ? { plan } : {}),
      ...(r?.lastWal ? { archiveEnd: r.lastWal } : {}),
      ...(feed ? { feed } : {}),
      env: tools.env,
      log: tools.log,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    const e = toBackupError(err, 'RECOVERY_FAILED');
    const note = `${opts.dataDir} holds backup ${opts.backup.id} part way through its recovery: run the same restore again to start the recovery over (what is unchanged is kept), or start PostgreSQL on it where backup-runner can run as its restore_command to continue it`;
    throw new BackupError(e.code, `${e.message}; ${note}`, { cause: e, details: { ...e.details, dataDirectory: { path: opts.dataDir, state: 'recovering', backupId: opts.backup.id, note } } });
  }
}
