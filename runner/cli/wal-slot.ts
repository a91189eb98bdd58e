/**
 * `backup-runner wal-slot drop`: drops the DatabaseBackup's own WAL archive slot on the PostgreSQL server
 * (docs/postgresql-physical.md), e.g. once the DatabaseBackup is deleted: left there, the slot keeps WAL on
 * the server for ever. Always run here, never through the daemon. The slot is the one archiveSlotName gives
 * for the config's namespace and name, never another; one something streams from is refused (SLOT_ACTIVE), and
 * so is the slot while a daemon of this config archives through it (it would create it again at once).
 */
import type { RunnerConfig } from '../../api/index.js';
import { archiveSlotName } from '../engines/postgresql/physical/archiver.js';
import type { SlotDropResult } from '../engines/postgresql/physical/slot-cleanup.js';
import { PostgresqlEngine } from '../engines/postgresql/engine.js';
import { createEngine } from '../engines/registry.js';
import { BackupError, EXIT, type ExitCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { humanBytes, toJson } from '../render.js';
import type { OutputFormat } from './args.js';
import { daemonSocketExists, getJson } from './client.js';

export interface WalSlotIo {
  output: OutputFormat;
  env: NodeJS.ProcessEnv;
  out: (text: string) => void;
  logger: Logger;
  signal: AbortSignal;
}

/** Whether a daemon answers on `socket` (a socket file a dead daemon left does not count). */
async function daemonAnswers(socket: string): Promise<boolean> {
  if (!(await daemonSocketExists(socket))) return false;
  return getJson(socket).then(
    () => true,
    (err: unknown) => !(err instanceof BackupError && err.code === 'DAEMON_UNREACHABLE'),
  );
}

/** Pure: the text output of a drop. */
export function renderSlotDrop(r: SlotDropResult): string {
  if (r.outcome === 'absent') return `no replication slot "${r.slot}" on the server: nothing to drop`;
  return `dropped replication slot "${r.slot}"${r.retainedBytes !== undefined ? ` (it held ${humanBytes(r.retainedBytes)} of WAL on the server)` : ''}`;
}

/** Drops the configuration's archive slot; exit 0 when it is gone (or was never there). */
export async function walSlotDrop(config: Readonly<RunnerConfig>, io: WalSlotIo): Promise<ExitCode> {
  const engine = await createEngine(config.engine, { logger: io.logger.child({ engine: config.engine.type }), env: io.env });
  if (!(engine instanceof PostgresqlEngine)) throw new BackupError('USAGE', `wal-slot: the config's engine is ${config.engine.type}; only a PostgreSQL server has a WAL archive slot`);
  const owner = { namespace: config.namespace, name: config.name };
  if (engine.archivesThroughOwnSlot(owner) && (await daemonAnswers(config.daemon.socket))) {
    throw new BackupError(
      'DAEMON_RUNNING',
      `the daemon serving ${config.daemon.socket} archives WAL through replication slot "${archiveSlotName(owner)}" and would create it again: stop it first (or turn WAL archiving off, wal.archive: false: the daemon then drops the slot itself when it starts)`,
    );
  }
  const r = await engine.dropArchiveSlot(owner, io.signal);
  io.out(io.output === 'json' ? toJson(r) : renderSlotDrop(r));
  return EXIT.OK;
}
