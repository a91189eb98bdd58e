/**
 * `restore --start`: the restored data directory recovered here, by a PostgreSQL server this process starts
 * on it, watches and stops. The server runs with no network (a Unix socket in a private directory only), no
 * WAL archiving of its own and its log on stderr in English, so its progress is read from the log: each WAL
 * file restored, where recovery stopped (the first commit after the target, left out), the last transaction
 * it replayed (the instant actually reached), the new timeline, and the promotion. It is then shut down
 * cleanly and the recovery settings the restore appended are removed: what is left is a promoted cluster,
 * stopped, which the database's own server starts without the runner.
 *
 * Invariants:
 * - Nothing is done before the server of the backup's major version is found (`findServer`, before any byte
 *   of the backup is read).
 * - The server never runs as root, and never listens on a TCP port.
 * - A recovery that ends short of a target inside the archive's window (no commit after the target was ever
 *   archived: the server stops with "recovery ended before configured recovery target was reached") is run
 *   again to the archive's end, which is then the state at the target, and the report says so.
 */
import { setMaxListeners } from 'node:events';
import { constants } from 'node:fs';
import { access, chown, mkdtemp, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { BackupError, isBackupError, toBackupError } from '../../../errors.js';
import type { Logger } from '../../../logger.js';
import { run } from '../../../util/process.js';
import type { Owner, RecoveryOutcome, WalFeed } from '../../types.js';
import { DEBIAN_ROOT, readToolVersion } from '../tools.js';
import { openExactly, ownedDirectory } from './extract.js';
import { PREFETCHED, RECOVERY_MARK, recoverySettings, type RecoveryPlan } from './recovery.js';

/**
 * Pure: the server's command line. Its own configuration files in `socketDir` (the data directory's
 * postgresql.conf is not read: what it names, a library, a locale, a certificate, another data directory, need
 * not exist here; pg_hba rejects every connection), only a socket there, no archiving or commands of the
 * directory's own, no preloaded libraries, no hot standby, fsync on, its log plain on stderr in English and UTC.
 * The command line wins over postgresql.auto.conf too.
 */
export function postgresArgs(dir: string, socketDir: string): string[] {
  const settings = [
    `config_file=${join(socketDir, 'postgresql.conf')}`,
    `hba_file=${join(socketDir, 'pg_hba.conf')}`,
    `ident_file=${join(socketDir, 'pg_ident.conf')}`,
    `data_directory=${dir}`,
    'listen_addresses=',
    `unix_socket_directories=${socketDir}`,
    'port=5432',
    // The restore's writes reach the disk through the server's own flush of the directory at its start.
    'fsync=on',
    'archive_mode=off',
    'archive_command=',
    'archive_cleanup_command=',
    'recovery_end_command=',
    'shared_preload_libraries=',
    'hot_standby=off',
    'ssl=off',
    'logging_collector=off',
    'log_destination=stderr',
    'log_line_prefix=',
    'log_error_verbosity=default',
    'log_min_messages=warning',
    'lc_messages=C',
    'log_timezone=UTC',
    'timezone=UTC',
  ];
  return settings.flatMap((s) => ['-c', s]);
}

/** The configuration files the server runs with (postgresArgs), written into its private directory. */
export const SERVER_FILES: Readonly<Record<string, string>> = {
  'postgresql.conf': '# restore --start: the data directory\'s own postgresql.conf is not read (postgresql.auto.conf is)\n',
  'pg_hba.conf': '# restore --start: nobody connects\nlocal all all reject\n',
  'pg_ident.conf': '',
};

/** What the server's log says, one line at a time. */
export type RecoveryEvent =
  | { kind: 'restored'; file: string }
  | { kind: 'stopping'; at: string; xid: string }
  | { kind: 'last-transaction'; at: string }
  | { kind: 'timeline'; timeline: number }
  | { kind: 'consistent' }
  | { kind: 'ready' }
  | { kind: 'target-not-reached' }
  | { kind: 'fatal'; message: string };

/** Pure: a timestamp as PostgreSQL logs it (`2026-12-04 20:42:31.185243+00`) in RFC 3339 (`2026-12-04T20:42:31.185243Z`). */
export function fromPgTimestamp(text: string): string | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d{1,6})?)([+-]\d\d)(?::?(\d\d))?$/.exec(text.trim());
  if (!m) return undefined;
  const offset = m[3] === '+00' && (m[4] ?? '00') === '00' ? 'Z' : `${m[3]}:${m[4] ?? '00'}`;
  return `${m[1]}T${m[2]}${offset}`;
}

/** Pure: the event a log line (log_line_prefix empty, lc_messages C) reports, if any. */
export function parseRecoveryLine(raw: string): RecoveryEvent | undefined {
  // A SQLSTATE after the level (log_error_verbosity = verbose) is read past.
  const line = raw.replace(/^([A-Z]+:\s+)[0-9A-Z]{5}: /, '$1');
  let m = /^LOG:\s+restored log file "([0-9A-F]{24}|[0-9A-F]{8}\.history)" from archive/.exec(line);
  if (m) return { kind: 'restored', file: m[1]! };
  m = /^LOG:\s+recovery stopping (?:before|after) commit of transaction (\d+), time (.+)$/.exec(line);
  if (m) {
    const at = fromPgTimestamp(m[2]!);
    return at ? { kind: 'stopping', at, xid: m[1]! } : undefined;
  }
  m = /^LOG:\s+last completed transaction was at log time (.+)$/.exec(line);
  if (m) {
    const at = fromPgTimestamp(m[1]!);
    return at ? { kind: 'last-transaction', at } : undefined;
  }
  m = /^LOG:\s+selected new timeline ID: (\d+)/.exec(line);
  if (m) return { kind: 'timeline', timeline: Number(m[1]) };
  if (/^LOG:\s+consistent recovery state reached/.test(line)) return { kind: 'consistent' };
  if (/^LOG:\s+database system is ready to accept connections/.test(line)) return { kind: 'ready' };
  if (/^FATAL:\s+recovery ended before configured recovery target was reached/.test(line)) return { kind: 'target-not-reached' };
  m = /^(?:FATAL|PANIC):\s+(.*)$/.exec(line);
  if (m) return { kind: 'fatal', message: m[1]! };
  return undefined;
}

/** Pure: postgresql.auto.conf without the block `recoverySettings` appended (from its mark to its last line); unchanged when there is none. */
export function withoutRecoverySettings(text: string): string {
  const lines = text.split('\n');
  // The last block: the one this restore appended (the backup may hold one of an earlier restore before it).
  const start = lines.findLastIndex((l) => l.startsWith(RECOVERY_MARK));
  if (start < 0) return text;
  const end = lines.findIndex((l, i) => i > start && l.startsWith('recovery_target_action'));
  if (end < 0) return text;
  const before = lines.slice(0, start);
  // The blank line recoverySettings writes before its mark goes with it.
  if (before.length > 0 && before[before.length - 1] === '') before.pop();
  return [...before, ...lines.slice(end + 1)].join('\n');
}

export interface ServerBinary {
  path: string;
  version: string;
}

/**
 * The `postgres` server of the backup's major version: in engine.postgresql.binDir when set, else Debian's
 * install of that major version, else on PATH. Refused (TOOL_MISSING, TOOL_INCOMPATIBLE) before anything
 * is read: a server of another major version cannot start the directory.
 */
export async function findServer(serverVersion: unknown, binDir: string | undefined, env: NodeJS.ProcessEnv): Promise<ServerBinary> {
  const backupVersion = typeof serverVersion === 'string' ? serverVersion : '';
  const major = Number(backupVersion.split('.')[0]);
  if (!Number.isInteger(major) || major <= 0) throw new BackupError('MANIFEST_INVALID', `restore --start: the backup's manifest names no server version ("${backupVersion}"); nothing was changed`);
  const debian = join(DEBIAN_ROOT, String(major), 'bin', 'postgres');
  const path = binDir ? join(binDir, 'postgres') : (await access(debian).then(() => true, () => false)) ? debian : 'postgres';
  let found;
  try {
    found = await readToolVersion(path, env);
  } catch (err) {
    if (!isBackupError(err, 'TOOL_MISSING')) throw err;
    throw new BackupError(
      'TOOL_MISSING',
      `restore --start needs the PostgreSQL ${major} server (${path} was not found): install it (Debian: apt-get install postgresql-${major}), set engine.postgresql.binDir to its bin directory, or leave out --start and start the database's own server on the directory; nothing was changed`,
      { cause: err, details: { command: path } },
    );
  }
  if (found.major !== major) {
    throw new BackupError(
      'TOOL_INCOMPATIBLE',
      `restore --start: ${path} is PostgreSQL ${found.version}, the backup is of PostgreSQL ${backupVersion}: a server starts only a data directory of its own major version. Install the PostgreSQL ${major} server or set engine.postgresql.binDir; nothing was changed`,
      { details: { command: path, serverVersion: found.version, backupVersion } },
    );
  }
  return { path, version: found.version };
}

interface StartOptions {
  dir: string;
  server: ServerBinary;
  owner?: Owner;
  /** The recovery the restore asked for: rewritten without a target when the archive ends before it. */
  plan?: RecoveryPlan;
  /** The last segment of the archive's unbroken run: a recovery that fetched it and found no commit after the target reached the archive's end. */
  archiveEnd?: string;
  /** WAL fetched ahead of the server into wal-fetch's prefetch directory (startFeed): the server starts once it is primed. */
  feed?: StartedFeed;
  env: NodeJS.ProcessEnv;
  log: Logger;
  signal?: AbortSignal;
  onProgress?: (e: { segments: number; last?: string }) => void;
}

interface RunFacts {
  segments: number;
  lastFile?: string;
  /** The last segment (not a history file) restored. */
  lastSegment?: string;
  /** The server exited with status 0 after it was told to stop. */
  stoppedCleanly: boolean;
  stoppedBefore?: string;
  lastTransaction?: string;
  timeline?: number;
  ready: boolean;
  targetNotReached: boolean;
  fatal?: string;
}

/** Who the server runs as: this process, or run as root the directory's owner (PostgreSQL refuses root). */
async function serverUser(dir: string, owner: Owner | undefined): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const st = await stat(dir);
  const who: Owner = owner ?? { uid: st.uid, gid: st.gid };
  if (who.uid === 0) {
    throw new BackupError('USAGE', `restore --start: ${dir} belongs to root and PostgreSQL never runs as root: give --owner UID[:GID] (the database's user) or run the restore as that user`);
  }
  return who;
}

/** A recovery that logs nothing for this long (no WAL file restored, nothing else) is stopped and fails. */
const QUIET_LIMIT_MS = 10 * 60_000;

/** Starts the server once and follows its log until it is ready (promoted) or exits; a ready server is shut down (fast) before returning. */
async function runServerOnce(o: StartOptions, user: Owner | undefined, socketDir: string): Promise<RunFacts> {
  o.signal?.throwIfAborted();
  const facts: RunFacts = { segments: 0, ready: false, targetNotReached: false, stoppedCleanly: false };
  let pending = '';
  const lines: string[] = [];
  const control: { stop?: () => void } = {};
  let quiet: NodeJS.Timeout | undefined;
  const watch = (): void => {
    clearTimeout(quiet);
    quiet = setTimeout(() => {
      facts.fatal ??= `the server logged nothing for ${QUIET_LIMIT_MS / 60_000} minutes while it recovered (no WAL file restored): stopped`;
      control.stop?.();
    }, QUIET_LIMIT_MS);
  };
  const onLine = (line: string): void => {
    watch();
    o.log.debug({ line }, 'server log');
    lines.push(line);
    if (lines.length > 40) lines.shift();
    const e = parseRecoveryLine(line);
    if (!e) return;
    if (e.kind === 'restored') {
      if (!e.file.endsWith('.history')) {
        facts.segments++;
        facts.lastSegment = e.file;
      }
      facts.lastFile = e.file;
      o.onProgress?.({ segments: facts.segments, last: e.file });
    } else if (e.kind === 'stopping') facts.stoppedBefore = e.at;
    else if (e.kind === 'last-transaction') facts.lastTransaction = e.at;
    else if (e.kind === 'timeline') facts.timeline = e.timeline;
    else if (e.kind === 'target-not-reached') facts.targetNotReached = true;
    else if (e.kind === 'fatal') facts.fatal ??= e.message;
    else if (e.kind === 'ready') {
      facts.ready = true;
      control.stop?.();
    }
  };
  const decoder = new StringDecoder('utf8');
  const proc = run(o.server.path, postgresArgs(o.dir, socketDir), {
    env: serverEnv(o.env),
    stdin: 'ignore',
    stdout: 'ignore',
    cwd: o.dir,
    ...(user ? { user } : {}),
    onStderr: (chunk) => {
      pending += decoder.write(chunk);
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const l of parts) onLine(l);
    },
  });
  // SIGINT is PostgreSQL's fast shutdown: a clean stop, whether it recovers or has promoted.
  control.stop = () => proc.child.kill('SIGINT');
  const onAbort = (): void => control.stop?.();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  watch();
  try {
    await proc.exited.then(
      () => (facts.stoppedCleanly = true),
      (err: unknown) => {
        // Exit codes say little here: what the log said decides.
        if (!facts.ready && !facts.fatal && !facts.targetNotReached) facts.fatal = isBackupError(err) ? err.message : String(err);
      },
    );
  } finally {
    clearTimeout(quiet);
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (pending) onLine(pending);
  if (o.signal?.aborted && !facts.ready) {
    throw new BackupError('ABORTED', `restore --start was stopped while the server recovered (${facts.segments} WAL segments replayed); the server was shut down`, {
      details: { dataDirectory: { state: 'recovering' } },
    });
  }
  const tail = lines.filter((l) => !l.startsWith('{')).slice(-15);
  if ((!facts.ready && !facts.targetNotReached) || (facts.ready && !facts.stoppedCleanly)) {
    const what = facts.ready ? 'did not shut down cleanly after it promoted' : 'stopped before it promoted';
    throw new BackupError('RECOVERY_FAILED', `the server started on ${o.dir} ${what}: ${facts.fatal ?? 'no reason logged'}. Its last log lines:\n${tail.join('\n')}`, {
      details: { dataDirectory: { state: 'recovering' }, log: tail },
    });
  }
  return facts;
}

/** The server's environment: the runner's (restore_command runs wal-fetch, which reads the storage's credentials), without PostgreSQL's connection variables. */
function serverEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('PG')));
}

/** Appended recovery settings rewritten to the archive's end (no target), in a new file renamed into place. */
async function rewriteSettings(dir: string, plan: RecoveryPlan, owner: Owner | undefined): Promise<void> {
  await replaceAutoConf(dir, (text) => withoutRecoverySettings(text) + recoverySettings({ ...plan, targetTime: undefined }), owner);
}

async function replaceAutoConf(dir: string, change: (text: string) => string, owner: Owner | undefined): Promise<void> {
  const path = join(dir, 'postgresql.auto.conf');
  const fh = await openExactly(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  let text: string;
  try {
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  const next = change(text);
  if (next === text) return;
  const tmp = `${path}.backup-runner.tmp`;
  await unlink(tmp).catch(() => undefined);
  const out = await openExactly(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await out.writeFile(next);
    if (owner) await out.chown(owner.uid, owner.gid);
    await out.sync();
  } finally {
    await out.close();
  }
  await rename(tmp, path);
}

/**
 * A recovery that ended short of its target: when it fetched the archive's last segment, every commit the archive
 * holds is before the target, so the recovery is run again to the archive's end (which is then the state at the
 * target, checked: no transaction after it). Short of the archive's last segment, WAL could not be fetched: failed.
 */
async function toTheArchiveEnd(o: StartOptions, user: Owner | undefined, socketDir: string, first: RunFacts): Promise<RunFacts> {
  const target = o.plan?.targetTime;
  if (!target || !o.archiveEnd || first.lastSegment === undefined || first.lastSegment < o.archiveEnd) {
    throw new BackupError(
      'RECOVERY_FAILED',
      `the server started on ${o.dir} ended recovery before its target, after WAL ${first.lastSegment ?? '(none)'}${o.archiveEnd ? ` while the archive reaches ${o.archiveEnd}` : ''}: the rest could not be fetched (see wal-fetch's messages in the server log)`,
      { details: { dataDirectory: { state: 'recovering' } } },
    );
  }
  o.log.info({ target: target.toISOString(), lastSegment: first.lastSegment }, 'the archive holds no commit after the target: recovering to its end');
  await rewriteSettings(o.dir, o.plan!, user);
  const facts = await runServerOnce(o, user, socketDir);
  if (!facts.ready) throw new BackupError('RECOVERY_FAILED', `the server started again on ${o.dir} to recover to the archive's end did not promote: ${facts.fatal ?? 'no reason logged'}`, { details: { dataDirectory: { state: 'recovering' } } });
  const last = facts.lastTransaction ?? first.lastTransaction;
  if (last && Date.parse(last) > target.getTime()) {
    throw new BackupError('RECOVERY_FAILED', `recovering to the archive's end replayed a transaction committed at ${last}, after the target ${target.toISOString()}: ${o.dir} does not hold the state asked for; restore again`, {
      details: { dataDirectory: { state: 'past the target' } },
    });
  }
  return { ...facts, segments: first.segments + facts.segments, ...(last ? { lastTransaction: last } : {}) };
}

/** The server's private directory: its configuration files (SERVER_FILES) and socket, the server's user's. */
async function serverDir(user: Owner | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'backup-runner-recover-'));
  for (const [name, text] of Object.entries(SERVER_FILES)) await writeFile(join(dir, name), text);
  if (user) for (const f of ['', ...Object.keys(SERVER_FILES)]) await chown(join(dir, f), user.uid, user.gid);
  return dir;
}

/** How long the server's start waits for the feed's first segment at most. */
const PRIME_LIMIT_MS = 60_000;

/** WAL being fed into a restored directory's prefetch directory (restore --start). */
export interface StartedFeed {
  /** Resolves (never rejects) once the server may start. */
  primed: Promise<void>;
  /** Stops the feed and removes what it fetched: it is of this run only (a server started on the directory later, by a rerun or the database's own image, fetches anew). */
  stop(): Promise<void>;
}

/**
 * Starts feeding WAL into `dir`'s prefetch directory, owned by the server's user: as soon as the directory is laid
 * in, so that the first segments wait for the server while the directory is checked. Undefined when the server
 * could not run on it (recoverHere then says why).
 */
export async function startFeed(
  dir: string,
  owner: Owner | undefined,
  feed: (dir: string, owner: Owner | undefined, signal: AbortSignal) => WalFeed,
  log: Logger,
  signal?: AbortSignal,
): Promise<StartedFeed | undefined> {
  const user = await serverUser(dir, owner).catch(() => undefined);
  if (process.getuid?.() === 0 && !user) return undefined;
  const prefetch = join(dir, PREFETCHED);
  // Made anew: whatever lies there (a link, files of an earlier run) goes, and nothing is followed.
  await rm(prefetch, { recursive: true, force: true });
  await ownedDirectory(prefetch, user);
  const feeding = new AbortController();
  // Every fetch in flight (a few at once, each a download and a decompressor) listens to it.
  setMaxListeners(64, feeding.signal);
  const onAbort = (): void => feeding.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const started = feed(prefetch, user, feeding.signal);
  const done = started.done.catch((err: unknown) => {
    if (!feeding.signal.aborted) log.warn({ err: toBackupError(err, 'RESTORE_FAILED') }, 'the WAL feed stopped: the server fetches the rest with wal-fetch');
    return 0;
  });
  // A listing that never answers does not hold the server back for ever: it starts, and fetches for itself.
  const primed = Promise.race([started.primed.catch(() => undefined), delay(PRIME_LIMIT_MS, undefined, { ref: false })]);
  return {
    primed,
    stop: async () => {
      feeding.abort();
      signal?.removeEventListener('abort', onAbort);
      await done;
      await started.closed.catch(() => undefined);
      await rm(prefetch, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the server on the restored directory, follows the recovery to its promotion, stops the server
 * cleanly and removes the recovery settings: the directory then holds a promoted cluster, shut down.
 */
export async function recoverHere(o: StartOptions): Promise<RecoveryOutcome> {
  const user = await serverUser(o.dir, o.owner);
  const socketDir = await serverDir(user);
  try {
    // The server starts once the first segments wait for it (and the list of held files is in place).
    if (o.plan) await o.feed?.primed;
    o.log.info({ dataDir: o.dir, server: o.server.path, version: o.server.version }, 'starting the server on the restored directory to recover it');
    let facts = await runServerOnce(o, user, socketDir);
    const toArchiveEnd = facts.targetNotReached;
    if (toArchiveEnd) facts = await toTheArchiveEnd(o, user, socketDir, facts);
    await replaceAutoConf(o.dir, withoutRecoverySettings, user);
    const promoted = o.plan !== undefined;
    return {
      promoted,
      segments: facts.segments,
      ...(facts.lastTransaction ? { lastTransactionAt: facts.lastTransaction } : {}),
      ...(facts.stoppedBefore && !toArchiveEnd ? { firstExcludedAt: facts.stoppedBefore } : {}),
      ...(facts.timeline !== undefined ? { timeline: facts.timeline } : {}),
      ...(toArchiveEnd ? { archiveEndedBeforeTarget: true } : {}),
      server: o.server.version,
    };
  } finally {
    await rm(socketDir, { recursive: true, force: true });
  }
}
