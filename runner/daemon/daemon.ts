import { parseDuration } from '../../api/index.js';
import { REJECTED_MANIFEST_CODES } from '../catalog.js';
import { toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { BackupResult } from '../ops/backup.js';
import { listBackups, type Listing } from '../ops/list.js';
import { planMirror } from '../ops/mirror.js';
import { internalFields, isReadOnly, type Operation, type Outcome, perform, type PerformOptions } from '../ops/perform.js';
import { StatusReporter } from '../report/reporter.js';
import { buildStatusPatch, storedIn, type ReportFacts } from '../report/status.js';
import type { Runtime } from '../runtime.js';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createWalStore } from '../ops/wal-store.js';
import { archiveWithoutBase, timelineWithoutBase } from '../ops/wal-window.js';
import { formatNamed } from '../engines/registry.js';
import type { HousekeepingReport } from '../engines/types.js';
import { Supervisor } from './supervisor.js';
import { realClock, type Clock } from './clock.js';
import { configDigest } from '../config/load.js';
import { startControlServer } from './control-server.js';
import { startHealthServer } from './health-server.js';
import { type MirrorFacts, RunnerMetrics, type RetentionFacts } from './metrics.js';
import type { OperationRequest, StreamLine } from './protocol.js';
import { OperationQueue } from './queue.js';
import { Scheduler, type Trigger } from './scheduler.js';
import { longestGap } from './schedule.js';

export interface DaemonOptions {
  clock?: Clock;
  random?: () => number;
  /** Runs after each backup that stored something (retention and the orphan sweep); what it removed is counted in the metrics. */
  afterBackup?: (rt: Runtime, result: BackupResult, signal: AbortSignal) => Promise<RetentionFacts | undefined>;
  /** The file the config was loaded from, named when a command given another config is refused. */
  configPath?: string;
  /** Where services keep files in flight (default: a directory of this DatabaseBackup's under the temp directory). */
  spool?: string;
  /** The waits before each new run of a housekeeping task that asked for a retry (default HOUSEKEEPING_RETRY_MS). */
  housekeepingRetryMs?: readonly number[];
}

/** A housekeeping task asking for a retry runs again after these waits (about 20 minutes in all), then at the next start. */
const HOUSEKEEPING_RETRY_MS = [15_000, 30_000, 60_000, 120_000, 300_000, 600_000];

interface LocationState {
  backupsStored: number;
  lastSuccessAt?: string;
  /** Unset when the location could not be listed (not known). */
  backupsBehind?: number;
  behindSince?: string;
}

/** How long stop() waits for the last status report. */
const REPORT_FLUSH_MS = 3000;

/** What a request on the wire asks for, as an operation: the runner's own fields set as for a command, times parsed. */
export function operationFromRequest(req: OperationRequest): Operation {
  // The runner's own fields last: a request cannot set them (the schema refuses them too).
  const op = { ...req, ...internalFields(req.kind) } as Operation;
  if (op.kind === 'restore' && req.kind === 'restore' && req.selector.kind === 'time') return { ...op, selector: { kind: 'time', at: new Date(req.selector.at) } };
  return op;
}

/**
 * `backup-runner serve`: the long-running process in each database's
 * namespace. It runs backups on the schedule and on command, one operation
 * at a time, and reports through the control socket, metrics and status.
 */
export class Daemon {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly queue: OperationQueue;
  readonly metrics: RunnerMetrics;
  private scheduler: Scheduler | undefined;
  private servers: { close(): Promise<unknown> }[] = [];
  private readonly startedAt: Date;
  private ready = false;
  private lastBackup: BackupResult | undefined;
  private lastBackupStart: Date | undefined;
  private readonly locations = new Map<string, LocationState>();
  private listing: Listing | undefined;
  /** The backup running now, once its id is chosen. */
  private running: { id: string; startedAt: Date } | undefined;
  /** Writes the DatabaseBackup's status when the config has `report`. */
  private readonly reporter: StatusReporter | undefined;
  /** The engine's long-running services (WAL archiving), when its configuration has any. */
  private supervisor: Supervisor | undefined;
  /** WAL gaps the archiver reported so far (each new one takes a base backup). */
  private gapsSeen = 0;
  /** The archive's first segment a base backup was taken for (archiveWithoutBase). */
  private archiveBacked: string | undefined;
  /** The newest timeline a base backup was taken for because none of it was listed (once each). */
  private timelineBacked = 0;
  /** The engine's one-shot start-up tasks: what each did (status `housekeeping`), and the run, stopped with the daemon. */
  private housekept: { name: string; outcome: string; at: string; facts: Record<string, unknown>; attempt?: number }[] = [];
  private housekeeping: Promise<unknown> | undefined;
  private readonly housekeepingStop = new AbortController();
  metricsPort = 0;

  constructor(
    private readonly rt: Runtime,
    private readonly opts: DaemonOptions = {},
  ) {
    this.clock = opts.clock ?? realClock;
    rt.manifestCache ??= new Map();
    this.log = rt.logger.child({ component: 'daemon' });
    this.queue = new OperationQueue(() => this.clock.now());
    this.metrics = new RunnerMetrics({ namespace: rt.config.namespace, name: rt.config.name }, rt.foreign);
    const schedule = rt.config.schedule;
    const interval = schedule?.interval === undefined ? undefined : parseDuration(schedule.interval);
    this.startedAt = this.clock.now();
    this.metrics.initLocations(rt.locations.map((l) => l.name), {
      ...(interval === undefined ? {} : { intervalSeconds: interval / 1000 }),
      ...(schedule ? { maxGapSeconds: longestGap(schedule, this.startedAt) / 1000 } : {}),
    });
    const target = rt.config.report?.databaseBackup;
    if (target) {
      this.reporter = new StatusReporter({
        // The Kubernetes client takes seconds to load: only with `report`, and in the background.
        connect: async () => (await import('../report/kube.js')).kubeStatusSink(target),
        logger: this.log.child({ databaseBackup: `${target.namespace}/${target.name}` }),
        onError: (err) => this.metrics.statusReportFailed(err.code),
        clock: this.clock,
      });
    }
  }

  async start(): Promise<void> {
    const d = this.rt.config.daemon;
    const health = await startHealthServer(d.metricsHost, d.metricsPort, this.metrics, { ready: () => (this.ready ? { ready: true } : { ready: false, reason: 'starting' }) }, this.log);
    this.servers.push(health.app);
    this.metricsPort = health.port;
    await this.refreshLocations();
    const served = { digest: configDigest(this.rt.config), ...(this.opts.configPath ? { path: this.opts.configPath } : {}) };
    this.servers.push(await startControlServer(d.socket, { operate: (req, send, signal) => this.operate(req, send, signal), status: () => this.status() }, this.log, served));
    const schedule = this.rt.config.schedule;
    if (schedule) {
      this.scheduler = new Scheduler({
        schedule,
        clock: this.clock,
        random: this.opts.random ?? Math.random,
        logger: this.log,
        lastRun: () => Promise.resolve(this.lastBackupStart),
        onDue: (t) => this.scheduled(t),
        onSkipped: (t) => this.log.warn({ slot: t.slot.toISOString() }, 'scheduled backup skipped: the previous one is still running'),
      });
      await this.scheduler.start();
    }
    this.startServices();
    this.startHousekeeping();
    this.publish();
    this.ready = true;
    this.log.info({ socket: d.socket, metricsPort: this.metricsPort, nextRunAt: this.scheduler?.nextRunAt()?.toISOString() }, 'daemon ready');
    this.healIfBehind('start');
  }

  /**
   * Queues a healing pass when a location lacks backups it missed (newer than the oldest it holds, held
   * by another location): they are copied from a healthy location (runner/ops/mirror.ts). Never waits;
   * one pass at a time.
   */
  private healIfBehind(reason: string): void {
    const listing = this.listing;
    if (!listing || this.queue.has('mirror')) return;
    const behind = this.rt.locations.filter((l) => l.heal !== false && planMirror(listing, this.rt.locations, l, { scope: 'missed' }).planned.length > 0).map((l) => l.name);
    if (behind.length === 0) return;
    this.log.info({ locations: behind, reason }, 'locations missed backups; copying them from the others');
    this.queue
      .submit('mirror', 'heal', (signal) =>
        // A waiting backup goes first: the pass stops between copies, and the pass after that backup goes on.
        this.run({ kind: 'mirror', scope: 'missed', dryRun: false }, signal, () => undefined, { yieldIf: () => this.queue.pending().some((p) => p.kind === 'backup') }),
      )
      .catch((err: unknown) => this.log.warn({ err: toBackupError(err) }, 'healing could not run; the next backup tries again'));
  }

  /** Starts the engine's services (WAL archiving), supervised: restarted with backoff when they fail. */
  private startServices(): void {
    const specs =
      this.rt.engine.services?.({
        walStore: createWalStore(this.rt, this.log.child({ component: 'wal-store' })),
        spool: this.opts.spool ?? join(tmpdir(), `backup-runner-spool-${createHash('sha256').update(`${this.rt.config.namespace}/${this.rt.config.name}`).digest('hex').slice(0, 16)}`),
        logger: this.log,
        owner: { namespace: this.rt.config.namespace, name: this.rt.config.name },
      }) ?? [];
    if (specs.length === 0) return;
    this.supervisor = new Supervisor(specs, this.log, () => {
      const statuses = this.supervisor?.statuses() ?? [];
      this.metrics.setServices(statuses);
      this.publish();
      const facts = statuses.find((st) => st.name === 'wal-archiver')?.facts;
      const gaps = facts?.gaps;
      if (Array.isArray(gaps) && gaps.length > this.gapsSeen) {
        this.gapsSeen = gaps.length;
        this.backupNow('a gap in the WAL archive: taking a base backup now, so point-in-time recovery reaches past it', 'wal-gap');
      }
      const bases = this.listing ? this.baseBackups(this.listing) : undefined;
      const timeline = bases ? timelineWithoutBase(facts?.timeline, bases) : undefined;
      if (timeline !== undefined && timeline > this.timelineBacked) {
        this.timelineBacked = timeline;
        this.backupNow(`the server streams timeline ${timeline} (it was promoted) and no base backup of it exists: taking one now, so point-in-time recovery reaches the new timeline`, 'wal-timeline');
      }
      // A new timeline's archive also begins empty: the check above says why first (one base backup either way).
      const began = bases ? archiveWithoutBase(facts?.archiveBegan, bases) : undefined;
      if (began !== undefined && began !== this.archiveBacked) {
        this.archiveBacked = began;
        this.backupNow(`the WAL archive begins at ${began} and no base backup reaches it (archiving was just turned on, or a location added): taking one now, so point-in-time recovery has a window`, 'wal-start');
      }
    });
    this.supervisor.start();
  }

  /**
   * Runs the engine's one-shot housekeeping (e.g. dropping what an earlier configuration left on the database
   * server) once, in the background: never awaited by start, never queued, so it neither delays nor blocks an
   * operation; what it did is shown in `status` and counted in the metrics, and its failure is only logged.
   */
  private startHousekeeping(): void {
    const tasks = this.rt.engine.housekeeping?.({ logger: this.log, owner: { namespace: this.rt.config.namespace, name: this.rt.config.name } }) ?? [];
    const signal = this.housekeepingStop.signal;
    const waits = this.opts.housekeepingRetryMs ?? HOUSEKEEPING_RETRY_MS;
    this.housekeeping = Promise.all(
      tasks.map(async (task) => {
        for (let attempt = 0; !signal.aborted; attempt++) {
          const report: HousekeepingReport = await task.run(signal).catch((err: unknown) => {
            const e = toBackupError(err);
            this.log.warn({ task: task.name, err: e }, 'a housekeeping task failed; the daemon goes on without it');
            return { outcome: 'failed', facts: { error: { code: e.code, message: e.message } } };
          });
          // The latest run of a task is what status shows.
          this.housekept = [...this.housekept.filter((h) => h.name !== task.name), { name: task.name, outcome: report.outcome, at: this.clock.now().toISOString(), facts: report.facts ?? {}, ...(attempt > 0 ? { attempt: attempt + 1 } : {}) }];
          this.metrics.housekeepingDone(task.name, report.outcome);
          const wait = waits[attempt];
          if (!report.retry || wait === undefined) return;
          await delay(wait, undefined, { signal, ref: false }).catch(() => undefined);
        }
      }),
    );
  }

  /** The listed backups that are base backups (their format restores a data directory), with their WAL position. */
  private baseBackups(listing: Listing): { position?: Record<string, string> }[] {
    return listing.backups
      .filter((b) => formatNamed(b.manifest.engine.format, this.rt.engine.formats ?? [])?.holds === 'data-directory')
      .map((b) => ({ ...(b.manifest.engine.position ? { position: b.manifest.engine.position } : {}) }));
  }

  /**
   * A base backup at once (unless one runs or waits already) because the archive needs one: after a gap (no
   * recovery crosses it) or on a new timeline (no window reaches it before a base backup of it).
   */
  private backupNow(why: string, label: string): void {
    if (this.queue.has('backup')) return;
    this.log.warn(why);
    this.queue
      .submit('backup', label, (signal) => this.run({ kind: 'backup', trigger: 'schedule' }, signal, () => undefined))
      .catch((err: unknown) => this.log.error({ err, reason: label }, 'the base backup the WAL archive needed could not run'));
  }

  /** Stops scheduling and the services, lets a running operation finish within the grace period (else aborts it), closes the servers. */
  async stop(): Promise<void> {
    this.ready = false;
    this.scheduler?.stop();
    const grace = parseDuration(this.rt.config.daemon.shutdownGracePeriod) ?? 25_000;
    this.housekeepingStop.abort(new Error('the daemon is stopping'));
    await Promise.all([this.queue.close(grace), this.supervisor?.stop(grace), this.housekeeping && Promise.race([this.housekeeping, delay(grace, undefined, { ref: false })])]);
    await this.reporter?.close(REPORT_FLUSH_MS);
    await Promise.allSettled(this.servers.map((s) => s.close()));
    this.log.info('daemon stopped');
  }

  /** Reads what every location holds: counts, last success, and the newest backup's start (for catch-up). */
  private async refreshLocations(): Promise<void> {
    const listing = await listBackups(this.rt);
    this.listing = listing;
    const unlisted = new Set(listing.problems.filter((p) => p.key === undefined).map((p) => p.location));
    for (const loc of this.rt.locations) {
      const { backupsBehind, behindSince, ...stored } = storedIn(listing, loc.name);
      this.locations.set(loc.name, unlisted.has(loc.name) ? stored : { ...stored, backupsBehind, ...(behindSince ? { behindSince } : {}) });
      // What an unlisted location lacks is not known.
      this.metrics.setStored(loc.name, stored.backupsStored, stored.lastSuccessAt ? new Date(stored.lastSuccessAt) : undefined, unlisted.has(loc.name) ? undefined : backupsBehind);
    }
    for (const p of listing.problems) {
      const what = p.key === undefined ? 'location could not be listed' : REJECTED_MANIFEST_CODES.has(p.error.code) ? 'manifest does not belong to this database; ignored' : 'manifest could not be read';
      this.log.warn({ location: p.location, ...(p.key ? { key: p.key } : {}), err: p.error }, what);
    }
    const newestStart = listing.backups.map((b) => Date.parse(b.manifest.startedAt)).sort((a, b) => a - b).at(-1);
    if (newestStart !== undefined && (!this.lastBackupStart || newestStart > this.lastBackupStart.getTime())) this.lastBackupStart = new Date(newestStart);
  }

  private async scheduled(t: Trigger): Promise<void> {
    if (this.queue.has('backup')) {
      this.log.warn({ slot: t.slot.toISOString() }, 'scheduled backup skipped: a backup is already running or waiting');
      this.publish();
      return;
    }
    await this.queue
      .submit('backup', t.reason, (signal) => this.run({ kind: 'backup', trigger: 'schedule' }, signal, () => undefined))
      .catch((err: unknown) => this.log.error({ err }, 'scheduled backup could not run'));
    this.publish();
  }

  /** Shows the current state in the next-run metric and, with `report`, in the DatabaseBackup's status (never waits). */
  private publish(): void {
    const nextRunAt = this.scheduler?.nextRunAt();
    this.metrics.setNextRun(nextRunAt);
    const archiver = this.supervisor?.statuses().find((s) => s.name === 'wal-archiver');
    const facts: ReportFacts = {
      startedAt: this.startedAt,
      locations: this.rt.locations.map((l) => l.name),
      ...(this.running ? { running: this.running } : {}),
      ...(this.lastBackup ? { finished: this.lastBackup } : {}),
      ...(this.listing ? { listing: this.listing } : {}),
      ...(nextRunAt ? { nextRunAt } : {}),
      ...(archiver ? { recovery: archiver } : {}),
    };
    this.metrics.setLocationStates(buildStatusPatch(facts).locations);
    this.reporter?.update(facts);
  }

  async operate(req: OperationRequest, send: (line: StreamLine) => void, _signal: AbortSignal): Promise<void> {
    const op = operationFromRequest(req);
    // Read-only answers never wait behind a running operation.
    if (isReadOnly(op)) {
      send({ event: 'result', ...(await perform(this.rt, op)) });
      return;
    }
    const outcome = await this.queue.submit(op.kind, 'command', (signal) => this.run(op, signal, send), (e) => send(e));
    send({ event: 'result', ...outcome });
  }

  private async run(op: Operation, signal: AbortSignal, send: (line: StreamLine) => void, extra: Pick<PerformOptions, 'yieldIf'> = {}): Promise<Outcome> {
    this.metrics.operationStarted(op.kind);
    const log = this.log.child({ operation: op.kind });
    try {
      const onStarted = (backup: { id: string; startedAt: Date }): void => {
        this.running = backup;
        this.publish();
      };
      const outcome = await perform(this.rt, op, { signal, onProgress: (p) => send({ event: 'progress', ...p }), onStarted, ...extra });
      if (op.kind === 'backup') await this.backupFinished(outcome, signal);
      if (op.kind === 'retention') this.metrics.retentionFinished(outcome.json as RetentionFacts);
      if (op.kind === 'mirror' && !op.dryRun) await this.mirrorFinished(outcome);
      this.metrics.operationFinished(op.kind, outcome.exitCode === 0 ? 'succeeded' : 'failed', outcome.exitCode === 0 ? undefined : `EXIT_${outcome.exitCode}`);
      return outcome;
    } catch (err) {
      const e = toBackupError(err);
      log.error({ err: e }, 'operation failed');
      this.metrics.operationFinished(op.kind, 'failed', e.code);
      throw e;
    } finally {
      if (this.running) {
        this.running = undefined;
        this.publish();
      }
    }
  }

  private async backupFinished(outcome: Outcome, signal: AbortSignal): Promise<void> {
    const result = outcome.json as BackupResult & { startedAt: string; finishedAt: string };
    const typed: BackupResult = { ...result, startedAt: new Date(result.startedAt), finishedAt: new Date(result.finishedAt) };
    this.lastBackup = typed;
    this.lastBackupStart = typed.startedAt;
    this.running = undefined;
    this.metrics.backupFinished(typed);
    this.publish();
    if (typed.status !== 'Failed' && this.opts.afterBackup) {
      const retained = await this.opts.afterBackup(this.rt, typed, signal).catch((err: unknown): RetentionFacts => {
        this.log.error({ err }, 'retention after the backup failed; nothing more was removed');
        const error = toBackupError(err);
        return { dryRun: false, locations: typed.locations.filter((l) => l.status === 'Succeeded').map((l) => ({ location: l.location, failed: [], error })) };
      });
      if (retained) this.metrics.retentionFinished(retained);
    }
    await this.refreshLocations().catch((err: unknown) => this.log.warn({ err }, 'could not refresh location state'));
    this.publish();
    this.healIfBehind('after backup');
  }

  private async mirrorFinished(outcome: Outcome): Promise<void> {
    this.metrics.mirrorFinished(outcome.json as MirrorFacts);
    await this.refreshLocations().catch((err: unknown) => this.log.warn({ err }, 'could not refresh location state'));
    this.publish();
  }

  status(): Record<string, unknown> {
    const s = this.rt.config.schedule;
    const last = this.lastBackup;
    return {
      namespace: this.rt.config.namespace,
      name: this.rt.config.name,
      version: this.rt.runnerVersion,
      startedAt: this.startedAt.toISOString(),
      running: this.queue.current() ?? null,
      waiting: this.queue.pending(),
      schedule: s ? { ...(s.cron ? { cron: s.cron } : { interval: s.interval }), timeZone: s.timeZone, suspended: s.suspend, nextRunAt: this.scheduler?.nextRunAt()?.toISOString() ?? null } : null,
      lastBackup: last
        ? { id: last.id, status: last.status, startedAt: last.startedAt.toISOString(), finishedAt: last.finishedAt.toISOString(), locations: last.locations.map((l) => ({ location: l.location, status: l.status, ...(l.error ? { error: l.error } : {}) })) }
        : null,
      locations: [...this.locations.entries()].map(([name, st]) => ({ name, ...st })),
      services: this.supervisor?.statuses() ?? [],
      housekeeping: this.housekept.map((h) => ({ ...h, facts: { ...h.facts } })),
    };
  }
}
