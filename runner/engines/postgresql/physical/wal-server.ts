/**
 * What the WAL archiver asks of the PostgreSQL server: its timeline, position and segment size
 * (IDENTIFY_SYSTEM over a replication connection), the archive's replication slot (created, read, advanced
 * with SQL), and pg_receivewal streaming into a directory.
 *
 * The slot is the archive's own: pg_receivewal streams without it (its flush reports would move the slot as
 * soon as WAL reaches the runner's disk); the archiver advances it once a segment is stored in every location,
 * so the server keeps exactly the WAL the archive does not hold yet.
 */
import { BackupError } from '../../../errors.js';
import type { Logger } from '../../../logger.js';
import { capture, run } from '../../../util/process.js';
import { classifyFailure, type FailureContext } from '../classify.js';
import { type CommandPlan, FIELD_SEP, type PgTools, libpqEnv } from '../plan.js';
import type { PostgresqlConnection } from '../../../../api/index.js';
import { formatLsn, isSegmentSize, parseLsn } from './wal-names.js';

export interface SlotInfo {
  restartLsn?: bigint;
  /** reserved, extended, unreserved or lost (pg_replication_slots.wal_status). */
  walStatus: string;
  active: boolean;
  /** The process of the WAL sender streaming from it, while `active`. */
  activePid?: number;
  /** The server's current WAL position (undefined on a standby): with restartLsn, the WAL the slot holds on the server. */
  currentLsn?: bigint;
  /** Bytes the server may still write before the slot is invalidated (pg_replication_slots.safe_wal_size); null: no limit (max_slot_wal_keep_size = -1). */
  safeWalSize?: number | null;
}

export interface ServerPosition {
  timeline: number;
  /** The server's current WAL write position. */
  position: bigint;
  systemId: string;
}

/** The server-side operations the archiver needs (this file's PgWalServer; a test may stand in). */
export interface WalServer {
  identify(signal?: AbortSignal): Promise<ServerPosition>;
  segmentSize(signal?: AbortSignal): Promise<number>;
  slot(name: string, signal?: AbortSignal): Promise<SlotInfo | undefined>;
  createSlot(name: string, signal?: AbortSignal): Promise<void>;
  dropSlot(name: string, signal?: AbortSignal): Promise<void>;
  advance(name: string, lsn: bigint, signal?: AbortSignal): Promise<void>;
  /** Streams into `dir` until the signal aborts (resolves) or pg_receivewal fails (rejects). */
  receive(dir: string, signal: AbortSignal, onLine?: (line: string) => void): Promise<void>;
}

export interface PgWalServerDeps {
  conn: Readonly<PostgresqlConnection>;
  tools: () => PgTools;
  password: () => Promise<string | undefined>;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Runs SQL on the configured database with psql variables (the engine's own query). */
  query: (sql: string, vars: Record<string, string>, signal?: AbortSignal) => Promise<string>;
}

const SLOT_SQL = `SELECT restart_lsn, wal_status, active, CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END, coalesce(safe_wal_size::text, 'unlimited'), active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = :'slot' AND slot_type = 'physical';\n`;
const CREATE_SLOT_SQL = `SELECT 1 FROM pg_catalog.pg_create_physical_replication_slot(:'slot', true);\n`;
const DROP_SLOT_SQL = `SELECT pg_catalog.pg_drop_replication_slot(:'slot');\n`;
const ADVANCE_SQL = `SELECT 1 FROM pg_catalog.pg_replication_slot_advance(:'slot', :'lsn'::pg_catalog.pg_lsn);\n`;
const SEGMENT_SIZE_SQL = `SELECT setting FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size';\n`;

export class PgWalServer implements WalServer {
  constructor(private readonly d: PgWalServerDeps) {}

  private async plan(command: string, args: string[]): Promise<{ plan: CommandPlan; fail: FailureContext }> {
    const password = await this.d.password();
    const plan = { command, args, env: libpqEnv(this.d.conn, { password, base: this.d.env }) };
    return { plan, fail: { tool: command.split('/').pop()!, host: this.d.conn.host, port: this.d.conn.port, user: this.d.conn.user, database: this.d.conn.database, password, fallback: 'DB_QUERY_FAILED' } };
  }

  async identify(signal?: AbortSignal): Promise<ServerPosition> {
    const { plan, fail } = await this.plan(this.d.tools().psql, ['-X', '-A', '-t', '-w', '-F', FIELD_SEP, '-d', 'replication=true', '-c', 'IDENTIFY_SYSTEM']);
    const out = await capture(plan.command, plan.args, { env: plan.env, ...(signal ? { signal } : {}), classify: (code, stderr) => classifyFailure(stderr, code, fail) });
    const [systemId, timeline, position] = out.trim().split(FIELD_SEP);
    const lsn = parseLsn(position ?? '');
    if (!systemId || !/^\d+$/.test(timeline ?? '') || lsn === undefined) throw new BackupError('DB_QUERY_FAILED', `unexpected IDENTIFY_SYSTEM answer: ${JSON.stringify(out.slice(0, 200))}`);
    return { systemId, timeline: Number(timeline), position: lsn };
  }

  async segmentSize(signal?: AbortSignal): Promise<number> {
    const size = Number((await this.d.query(SEGMENT_SIZE_SQL, {}, signal)).trim());
    if (!isSegmentSize(size)) throw new BackupError('DB_QUERY_FAILED', `the server reports a WAL segment size of "${size}" bytes`);
    return size;
  }

  async slot(name: string, signal?: AbortSignal): Promise<SlotInfo | undefined> {
    const out = (await this.d.query(SLOT_SQL, { slot: name }, signal)).trim();
    if (out === '') return undefined;
    const [restart, walStatus, active, current, safe, pid] = out.split(FIELD_SEP);
    const restartLsn = parseLsn(restart ?? '');
    const currentLsn = parseLsn(current ?? '');
    const safeWalSize = safe === 'unlimited' ? null : /^-?\d+$/.test(safe ?? '') ? Number(safe) : undefined;
    return {
      ...(restartLsn !== undefined ? { restartLsn } : {}),
      walStatus: walStatus || 'lost',
      active: active === 't',
      ...(/^\d+$/.test(pid ?? '') ? { activePid: Number(pid) } : {}),
      ...(currentLsn !== undefined ? { currentLsn } : {}),
      ...(safeWalSize !== undefined ? { safeWalSize } : {}),
    };
  }

  async createSlot(name: string, signal?: AbortSignal): Promise<void> {
    await this.d.query(CREATE_SLOT_SQL, { slot: name }, signal);
  }

  async dropSlot(name: string, signal?: AbortSignal): Promise<void> {
    await this.d.query(DROP_SLOT_SQL, { slot: name }, signal);
  }

  async advance(name: string, lsn: bigint, signal?: AbortSignal): Promise<void> {
    await this.d.query(ADVANCE_SQL, { slot: name, lsn: formatLsn(lsn) }, signal);
  }

  async receive(dir: string, signal: AbortSignal, onLine?: (line: string) => void): Promise<void> {
    // --no-loop: a lost connection ends the run (the supervisor restarts it with backoff, resuming from the spool).
    const { plan, fail } = await this.plan(this.d.tools().pgReceivewal, ['-D', dir, '--no-loop', '--no-sync', '-w', '-v', '-s', '5']);
    let buffered = '';
    const p = run(plan.command, plan.args, {
      env: plan.env,
      signal,
      stdin: 'ignore',
      stdout: 'ignore',
      onStderr: (c) => {
        buffered += c.toString('utf8');
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const l of lines) onLine?.(l);
      },
      classify: (code, stderr) => classifyFailure(stderr, code, { ...fail, fallback: 'DUMP_FAILED' }),
    });
    try {
      await p.exited;
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
    if (!signal.aborted) throw new BackupError('DUMP_FAILED', 'pg_receivewal ended (the server closed the replication connection)');
  }
}
