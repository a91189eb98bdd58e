/**
 * The settings that turn a restored base backup into a point-in-time recovery: appended to the data
 * directory's postgresql.auto.conf (the last setting of a name wins, so the server's own earlier ones give
 * way), with recovery.signal beside it. The server, once started, fetches WAL with restore_command (the
 * runner's wal-fetch), replays it up to the target and promotes.
 */
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Owner } from '../../types.js';
import { openExactly } from './extract.js';

export interface RecoveryPlan {
  /** The shell command, before PostgreSQL's `%f %p`, that fetches one WAL file (the runner's wal-fetch with its config). */
  fetchCommand: string;
  /** Recover to this instant (recovery_target_time); undefined: to the end of the archive. */
  targetTime?: Date;
  backupId: string;
}

/** The first line of the block recoverySettings appends (restore --start removes the block once the server has promoted). */
export const RECOVERY_MARK = '# Point-in-time recovery of backup ';

/** wal-fetch's prefetch directory (ops/wal-prefetch.ts PREFETCH_DIR), relative to the data directory restore_command runs in. */
export const PREFETCHED = 'pg_wal/.backup-runner-prefetch';

/**
 * In PREFETCHED, written by the feed of restore --start (ops/wal-fetch.ts feedWal): files given again by copy (every
 * history file, the last segments fed: PostgreSQL asks for some more than once).
 */
export const FED_AGAIN = '.again';

/**
 * In PREFETCHED, written by the feed of restore --start: the names of every WAL file the archive holds, one per line,
 * listed again every few seconds. A name not in it is not in the archive: restore_command says so at once instead
 * of starting the runner (PostgreSQL asks for several files that do not exist). A list older than a minute (the
 * feed stopped, or was killed) is not believed, and neither is none: every name is then fetched.
 */
export const HELD_LIST = '.held';

/** Pure: `s` as a shell word. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Pure: `s` as a postgresql.conf string value. */
function confString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Pure: an instant as recovery_target_time reads it (`2026-12-04 20:42:31.185+00`: the setting refuses ISO 8601's T and Z). */
export function pgTimestamp(at: Date): string {
  return at.toISOString().replace('T', ' ').replace('Z', '+00');
}

/** Pure: the lines appended to postgresql.auto.conf. */
export function recoverySettings(plan: RecoveryPlan): string {
  const lines = [
    '',
    `${RECOVERY_MARK}${plan.backupId}, written by backup-runner restore. Remove these lines once the server has promoted.`,
    // A file wal-fetch (or restore --start) fetched ahead, checked, is moved into place by the shell before the runner loads.
    // With --start, the feed's files are given again by copy, and a name its list of held files lacks fails at once.
    `restore_command = ${confString(
      `mv -f ${PREFETCHED}/%f %p 2>/dev/null || cp ${PREFETCHED}/${FED_AGAIN}/%f %p 2>/dev/null || { { test -z "$(find ${PREFETCHED}/${HELD_LIST} -mmin -1 2>/dev/null)" || grep -qxF %f ${PREFETCHED}/${HELD_LIST}; } && ${plan.fetchCommand} %f %p; }`,
    )}`,
    `recovery_target_timeline = 'latest'`,
    // One target only: any other one a setting of the server's names is cleared (PostgreSQL refuses two).
    `recovery_target = ''`,
    `recovery_target_lsn = ''`,
    `recovery_target_name = ''`,
    `recovery_target_xid = ''`,
    `recovery_target_time = ${plan.targetTime ? confString(pgTimestamp(plan.targetTime)) : "''"}`,
    `recovery_target_inclusive = on`,
    `recovery_target_action = 'promote'`,
    '',
  ];
  return lines.join('\n');
}

/** Appends the recovery settings and creates recovery.signal (neither through a link). */
export async function writeRecovery(dir: string, plan: RecoveryPlan, owner?: Owner): Promise<void> {
  const conf = await openExactly(join(dir, 'postgresql.auto.conf'), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
  try {
    await conf.writeFile(recoverySettings(plan));
    if (owner) await conf.chown(owner.uid, owner.gid);
    await conf.sync();
  } finally {
    await conf.close();
  }
  const signal = await openExactly(join(dir, 'recovery.signal'), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    if (owner) await signal.chown(owner.uid, owner.gid);
    await signal.sync();
  } finally {
    await signal.close();
  }
}
