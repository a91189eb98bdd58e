/**
 * The archive slot a configuration no longer uses: a physical replication slot that no archiver advances makes
 * the server keep every WAL file from the slot's restart point on, until its disk is full. It is left behind
 * when WAL archiving is turned off (`wal.archive: false`, or `mode: logical` again) and when the DatabaseBackup
 * is deleted. The daemon drops it at start (a housekeeping task: `slotHousekeeping`, tried again for a while
 * while the slot is in use or the server unreachable); the operator drops
 * it with `backup-runner wal-slot drop` (`dropArchiveSlot`).
 *
 * Invariants:
 * - The only slot ever looked at or dropped is the one the caller names, and every caller names
 *   archiveSlotName(namespace, name) of its own configuration: never a name from the config, the server or
 *   anywhere else, so a tenant cannot make the runner drop another's slot.
 * - A slot a WAL sender streams from (`active`) is never dropped (SLOT_ACTIVE).
 * - The housekeeping task never throws: a server it cannot reach, or a role that may not drop slots, is a
 *   warning with the statement that drops the slot by hand; backups go on either way.
 */
import type { PostgresqlConnection } from '../../../../api/index.js';
import { BackupError, toBackupError } from '../../../errors.js';
import type { Logger } from '../../../logger.js';
import type { HousekeepingReport, HousekeepingTask } from '../../types.js';
import type { SlotInfo, WalServer } from './wal-server.js';

/** What became of the slot: the first two are what `dropArchiveSlot` returns; the others, why it is still there. */
export type SlotOutcome = 'dropped' | 'absent' | 'active' | 'denied' | 'unreachable' | 'failed';

export interface SlotDropResult {
  slot: string;
  outcome: 'dropped' | 'absent';
  /** The WAL the slot held on the server when it was dropped (bytes), when known. */
  retainedBytes?: number;
}

/** Pure: whether this configuration's WAL archiver streams through `slot` (then the slot is the archive's position, never dropped). */
export function archivesThrough(conn: Pick<PostgresqlConnection, 'mode' | 'wal'>, slot: string): boolean {
  return conn.mode === 'physical' && conn.wal?.archive !== false && (conn.wal?.slot ?? slot) === slot;
}

/** Pure: what is done with the slot as the server shows it: dropped when nothing streams from it. */
export function slotAction(slot: SlotInfo | undefined): 'drop' | 'absent' | 'active' {
  if (!slot) return 'absent';
  return slot.active ? 'active' : 'drop';
}

/** Pure: why a read or drop of the slot failed, as an outcome (the error's code, never its words). */
export function failureOutcome(err: BackupError): 'active' | 'denied' | 'unreachable' | 'failed' {
  if (err.code === 'SLOT_ACTIVE') return 'active';
  if (err.code === 'DB_AUTH_FAILED') return 'denied';
  if (err.code === 'DB_UNREACHABLE' || err.code === 'DB_NOT_FOUND') return 'unreachable';
  return 'failed';
}

/** Pure: the WAL the slot holds on the server (bytes), when the server says. */
export function retainedBytes(slot: SlotInfo): number | undefined {
  return slot.currentLsn !== undefined && slot.restartLsn !== undefined && slot.currentLsn >= slot.restartLsn ? Number(slot.currentLsn - slot.restartLsn) : undefined;
}

/** Pure: the statement that drops the slot by hand (as a superuser, or a role with REPLICATION). The name is [a-z0-9_] only. */
export function handDropSql(slot: string): string {
  return `SELECT pg_drop_replication_slot('${slot}');`;
}

function activeError(slot: string, info: SlotInfo | undefined): BackupError {
  const who = info?.activePid !== undefined ? ` (the WAL sender of process ${info.activePid})` : '';
  return new BackupError('SLOT_ACTIVE', `replication slot "${slot}" is in use: something streams from it${who}; not dropped. Stop what streams from it (or end its WAL sender: SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '${slot}'), then drop it`, {
    details: { slot, ...(info?.activePid !== undefined ? { activePid: info.activePid } : {}) },
  });
}

/**
 * Drops `slot` when it exists and nothing streams from it; SLOT_ACTIVE when something does. A drop the server
 * refuses is read again: a slot someone else dropped meanwhile is `absent`, one that became active is
 * SLOT_ACTIVE; otherwise the server's error (DB_AUTH_FAILED for a role that may not use replication slots).
 */
export async function dropArchiveSlot(server: Pick<WalServer, 'slot' | 'dropSlot'>, slot: string, signal?: AbortSignal): Promise<SlotDropResult> {
  const info = await server.slot(slot, signal);
  const action = slotAction(info);
  if (action === 'absent') return { slot, outcome: 'absent' };
  if (action === 'active') throw activeError(slot, info);
  const held = retainedBytes(info!);
  try {
    await server.dropSlot(slot, signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    const now = await server.slot(slot, signal).catch(() => info);
    if (!now) return { slot, outcome: 'absent' };
    if (now.active) throw activeError(slot, now);
    throw err;
  }
  return { slot, outcome: 'dropped', ...(held !== undefined ? { retainedBytes: held } : {}) };
}

/** What to do about a slot that could not be dropped, said in the warning. */
function fixFor(outcome: SlotOutcome, slot: string, user: string): string {
  const byHand = `drop it by hand on the server as a superuser or a role with REPLICATION: ${handDropSql(slot)}`;
  if (outcome === 'denied') return `user "${user}" may not drop replication slots: give it the REPLICATION attribute (ALTER ROLE "${user}" WITH REPLICATION) and restart the runner, or ${byHand}`;
  if (outcome === 'active') return `it is left while something streams from it (the runner tries again for a while: during a rolling update the previous pod stops streaming); once that stops, drop it with "backup-runner wal-slot drop", or ${byHand}`;
  if (outcome === 'unreachable') return `the runner tries again for a while, and at its next start; or ${byHand}`;
  return `the runner tries again at its next start; or ${byHand}`;
}

/**
 * The daemon's start-up task for a configuration that does not archive WAL through `slot` (archiveSlotName):
 * drops the slot an earlier configuration left, when nothing streams from it. Never throws.
 */
export function slotHousekeeping(server: Pick<WalServer, 'slot' | 'dropSlot'>, slot: string, user: string, log: Logger): HousekeepingTask {
  return {
    name: 'wal-slot',
    async run(signal): Promise<HousekeepingReport> {
      try {
        const r = await dropArchiveSlot(server, slot, signal);
        if (r.outcome === 'dropped') {
          log.info({ slot, ...(r.retainedBytes !== undefined ? { retainedBytes: r.retainedBytes } : {}) }, 'dropped the WAL archive slot this configuration no longer uses (WAL archiving is off): the server no longer keeps WAL for it');
        } else {
          log.debug({ slot }, 'no WAL archive slot left on the server');
        }
        return { outcome: r.outcome, facts: { slot, ...(r.retainedBytes !== undefined ? { retainedBytes: r.retainedBytes } : {}) } };
      } catch (err) {
        const e = toBackupError(err, 'DB_QUERY_FAILED');
        if (signal.aborted) return { outcome: 'failed', facts: { slot, error: { code: 'ABORTED', message: 'the daemon stopped first' } } };
        const outcome = failureOutcome(e);
        log.warn({ slot, outcome, err: e }, `the WAL archive slot this configuration no longer uses is still on the server, keeping WAL there until it is dropped: ${fixFor(outcome, slot, user)}`);
        // A slot still in use (the previous pod stops streaming during a rolling update) or a server not up yet: tried again.
        return { outcome, facts: { slot, error: { code: e.code, message: e.message } }, ...(outcome === 'active' || outcome === 'unreachable' ? { retry: true } : {}) };
      }
    },
  };
}
