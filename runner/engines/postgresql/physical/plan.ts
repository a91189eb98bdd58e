/**
 * Physical base backups, the pure part: the pg_basebackup command, and what its output says of itself
 * (the WAL range it needs, read from its -v lines and from the backup_label that opens its tar).
 *
 * Invariants:
 * - One tar on stdout (`-D - -Ft`), the WAL the backup needs inside it (`-X fetch`): a base backup restores
 *   and starts on its own, with no WAL archive.
 * - Connection settings travel in libpq's environment (plan.ts libpqEnv), never in argv.
 */
import type { PostgresqlConnection } from '../../../../api/index.js';
import { type CommandPlan, type PgTools, libpqEnv, toolPaths } from '../plan.js';

/**
 * The tar pg_basebackup writes: backup_label is its first member (basebackup.c sends it before the data
 * directory), so every such tar starts with that name in its first header.
 */
export const BASEBACKUP_FORMAT = { format: 'pg_basebackup-tar', extension: 'tar', compressed: false, magic: ['backup_label\0'], holds: 'data-directory' } as const;

/** The label pg_basebackup writes into backup_label (and the server shows in pg_stat_progress_basebackup). */
export const BACKUP_LABEL = 'db-backup-runner base backup';

export interface BasebackupPlanOptions {
  password?: string;
  tools?: PgTools;
  base?: NodeJS.ProcessEnv;
}

/** pg_basebackup writing one uncompressed tar of the whole server, its WAL included, to stdout. */
export function pgBasebackupPlan(conn: PostgresqlConnection, opts: BasebackupPlanOptions = {}): CommandPlan {
  const args = ['-D', '-', '-Ft', '-X', 'fetch', '-v', '-w', `--checkpoint=${conn.checkpoint ?? 'fast'}`, '-l', BACKUP_LABEL];
  return { command: (opts.tools ?? toolPaths(conn.binDir)).pgBasebackup, args, env: libpqEnv(conn, { password: opts.password, base: opts.base }) };
}

/** Where a base backup's WAL starts and ends, as pg_basebackup -v reports it. */
export interface WalPoints {
  startLsn: string;
  timeline: string;
  stopLsn: string;
}

const LSN = '[0-9A-F]{1,8}/[0-9A-F]{1,8}';

/** Pure: the start and end points pg_basebackup -v printed, or undefined when it printed neither (a failed run). */
export function parseWalPoints(stderr: string): WalPoints | undefined {
  const start = new RegExp(`write-ahead log start point: (${LSN}) on timeline (\\d+)`).exec(stderr);
  const stop = new RegExp(`write-ahead log end point: (${LSN})`).exec(stderr);
  if (!start || !stop) return undefined;
  return { startLsn: start[1]!, timeline: start[2]!, stopLsn: stop[1]! };
}

/** What backup_label says of the backup (PostgreSQL's own record, read before anything is restored). */
export interface BackupLabel {
  startLsn: string;
  /** The WAL segment the backup starts in, e.g. 000000010000000000000002. */
  startWalFile: string;
  checkpointLsn: string;
  timeline: string;
  label: string;
}

/** Bytes of a tar's start enough to hold its first header and a backup_label. */
export const LABEL_HEAD_BYTES = 4096;

/** Pure: backup_label as the first member of a tar (`head`: the tar's first bytes), or why it is not one. */
export function readBackupLabel(head: Buffer): BackupLabel | { problem: string } {
  if (head.length < 512) return { problem: `the tar is ${head.length} bytes long: shorter than one header` };
  const name = head.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
  if (name !== 'backup_label') return { problem: `its first member is "${name.slice(0, 100)}", not backup_label` };
  const size = Number.parseInt(head.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || 'x', 8);
  if (!Number.isInteger(size) || size <= 0 || size > head.length - 512) return { problem: `its backup_label is ${Number.isNaN(size) ? 'of no readable size' : `${size} bytes long`}` };
  const text = head.subarray(512, 512 + size).toString('utf8');
  const field = (re: RegExp): string | undefined => re.exec(text)?.[1];
  const startLsn = field(new RegExp(`^START WAL LOCATION: (${LSN}) \\(file [0-9A-F]{24}\\)$`, 'm'));
  const startWalFile = field(/^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$/m);
  const checkpointLsn = field(new RegExp(`^CHECKPOINT LOCATION: (${LSN})$`, 'm'));
  const timeline = field(/^START TIMELINE: (\d+)$/m);
  const label = field(/^LABEL: (.*)$/m);
  if (!startLsn || !startWalFile || !checkpointLsn || !timeline || label === undefined) return { problem: 'its backup_label lacks the START WAL LOCATION, CHECKPOINT LOCATION, START TIMELINE or LABEL line' };
  return { startLsn, startWalFile, checkpointLsn, timeline, label };
}
