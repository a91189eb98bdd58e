import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { storedBytes } from '../manifest.js';
import type { BackupResult } from '../ops/backup.js';
import { type ForeignObjects, processForeignObjects } from '../storage/foreign.js';

/** What a retention run reports per location (structurally a RetentionResult, also in its JSON form). */
export interface RetentionFacts {
  dryRun: boolean;
  locations: readonly { location: string; plan?: { remove: readonly unknown[] }; failed: readonly string[]; error?: { code: string } }[];
}

/** What a mirror run reports per target location (structurally a MirrorResult, also in its JSON form). */
export interface MirrorFacts {
  dryRun: boolean;
  locations: readonly { location: string; copied: readonly { bytes: number }[]; failed: readonly { error: { code: string } }[]; error?: { code: string } }[];
}

/** The daemon's Prometheus metrics, on a registry of its own (nothing global, nothing at import time). */
export class RunnerMetrics {
  readonly registry = new Registry();
  private readonly lastSuccess: Gauge;
  private readonly lastAttempt: Gauge;
  private readonly duration: Histogram;
  private readonly bytes: Gauge;
  private readonly bytesTotal: Counter;
  private readonly stored: Gauge;
  private readonly behind: Gauge;
  private readonly nextRun: Gauge;
  private readonly failures: Counter;
  private readonly operations: Counter;
  private readonly running: Gauge;
  private readonly reportErrors: Counter;
  private readonly scheduleInterval: Gauge;
  private readonly scheduleMaxGap: Gauge;
  private readonly locationFailing: Gauge;
  private readonly failedInARow: Gauge;
  private readonly retentionRemoved: Counter;
  private readonly retentionFailing: Gauge;
  private readonly foreign: Gauge;
  private readonly copied: Counter;
  private readonly copiedBytes: Counter;
  private readonly serviceUp: Gauge;
  private readonly serviceRestarts: Gauge;
  private readonly housekeeping: Counter;
  private readonly walArchived: Gauge;
  private readonly walLastArchived: Gauge;
  private readonly walLastPartial: Gauge;
  private readonly walGaps: Gauge;
  private readonly walConflicts: Gauge;
  private readonly slotRetained: Gauge;
  private readonly slotSafe: Gauge;
  private readonly walReceiveLag: Gauge;
  private readonly walLocationStored: Gauge;

  constructor(labels: { namespace: string; name: string }, foreign: ForeignObjects = processForeignObjects) {
    this.registry.setDefaultLabels({ namespace: labels.namespace, databasebackup: labels.name });
    collectDefaultMetrics({ register: this.registry, prefix: 'backup_runner_process_' });
    const r = [this.registry];
    this.lastSuccess = new Gauge({ name: 'backup_runner_last_success_timestamp_seconds', help: 'Finish time of the last backup stored in the location', labelNames: ['location'], registers: r });
    this.lastAttempt = new Gauge({ name: 'backup_runner_last_backup_timestamp_seconds', help: 'Finish time of the last backup attempt, whatever its outcome', registers: r });
    this.duration = new Histogram({
      name: 'backup_runner_backup_duration_seconds',
      help: 'Duration of backups by outcome',
      labelNames: ['status'],
      buckets: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400],
      registers: r,
    });
    this.bytes = new Gauge({ name: 'backup_runner_last_backup_bytes', help: 'Stored (compressed) size of the last successful backup', registers: r });
    this.bytesTotal = new Counter({ name: 'backup_runner_stored_bytes_total', help: 'Bytes stored, summed over locations', labelNames: ['location'], registers: r });
    this.stored = new Gauge({ name: 'backup_runner_backups_stored', help: 'Complete backups (with a manifest) in the location', labelNames: ['location'], registers: r });
    this.behind = new Gauge({ name: 'backup_runner_location_backups_behind', help: 'Backups another location holds and this one lacks (it was down, or was added later)', labelNames: ['location'], registers: r });
    this.nextRun = new Gauge({ name: 'backup_runner_next_run_timestamp_seconds', help: 'When the next scheduled backup starts (0: none scheduled)', registers: r });
    this.failures = new Counter({ name: 'backup_runner_operation_failures_total', help: 'Failed operations (and failed locations of a backup) by reason code', labelNames: ['operation', 'location', 'reason'], registers: r });
    this.operations = new Counter({ name: 'backup_runner_operations_total', help: 'Finished operations by outcome', labelNames: ['operation', 'status'], registers: r });
    this.running = new Gauge({ name: 'backup_runner_operation_running', help: '1 while an operation of this kind runs', labelNames: ['operation'], registers: r });
    this.reportErrors = new Counter({ name: 'backup_runner_status_report_errors_total', help: 'Failed status reports to the DatabaseBackup by reason code', labelNames: ['reason'], registers: r });
    this.scheduleInterval = new Gauge({ name: 'backup_runner_schedule_interval_seconds', help: 'Interval of an interval schedule (0: a cron schedule or none)', registers: r });
    this.scheduleMaxGap = new Gauge({
      name: 'backup_runner_schedule_max_gap_seconds',
      help: 'Longest time between two scheduled backups, jitter included: the interval, or for a cron schedule the longest gap between its slots in the next year (0: no schedule)',
      registers: r,
    });
    this.locationFailing = new Gauge({ name: 'backup_runner_location_failing', help: '1 while the location is Failing in the status: the last backup failed there, or it could not be listed or read', labelNames: ['location'], registers: r });
    this.failedInARow = new Gauge({ name: 'backup_runner_consecutive_failed_backups', help: 'Backups in a row that stored nothing anywhere (Failed), since the last one that stored something or the start', registers: r });
    this.retentionRemoved = new Counter({ name: 'backup_runner_retention_removed_total', help: 'Backups removed from the location by retention', labelNames: ['location'], registers: r });
    this.retentionFailing = new Gauge({ name: 'backup_runner_retention_failing', help: '1 when the last retention in the location failed or could not remove a backup', labelNames: ['location'], registers: r });
    this.copied = new Counter({ name: 'backup_runner_location_backups_copied_total', help: 'Backups copied into the location from another one (healing, mirror)', labelNames: ['location'], registers: r });
    this.copiedBytes = new Counter({ name: 'backup_runner_location_copied_bytes_total', help: 'Bytes stored in the location by copies from another one (healing, mirror)', labelNames: ['location'], registers: r });
    this.serviceUp = new Gauge({ name: 'backup_runner_service_up', help: '1 while the daemon service runs, 0 while it waits to be restarted or is stopped', labelNames: ['service'], registers: r });
    this.serviceRestarts = new Gauge({ name: 'backup_runner_service_restarts', help: 'Times the service failed and was restarted since the daemon started', labelNames: ['service'], registers: r });
    this.housekeeping = new Counter({ name: 'backup_runner_housekeeping_total', help: 'One-shot start-up housekeeping tasks of the engine run, by task and outcome (e.g. task wal-slot, outcome dropped)', labelNames: ['task', 'outcome'], registers: r });
    this.walArchived = new Gauge({ name: 'backup_runner_wal_segments_archived', help: 'WAL segments stored in every location since the daemon started', registers: r });
    this.walLastArchived = new Gauge({ name: 'backup_runner_wal_last_archived_timestamp_seconds', help: 'When the last finished WAL segment was stored in every location (0: none yet)', registers: r });
    this.walLastPartial = new Gauge({ name: 'backup_runner_wal_last_partial_timestamp_seconds', help: 'When the segment being written was last stored as a partial (0: none yet): the recovery point', registers: r });
    this.walGaps = new Gauge({ name: 'backup_runner_wal_gaps', help: 'Stretches of WAL missing from the archive, found since the daemon started (recovery cannot cross them)', registers: r });
    this.walConflicts = new Gauge({ name: 'backup_runner_wal_conflicts', help: 'WAL files a location holds with other bytes than the server sent: never overwritten, an alarm', registers: r });
    this.slotRetained = new Gauge({ name: 'backup_runner_wal_slot_retained_bytes', help: 'WAL the archive slot holds on the server (its current position less the slot restart point): what the archive still lacks', registers: r });
    this.walReceiveLag = new Gauge({
      name: 'backup_runner_wal_receive_lag_bytes',
      help: 'WAL the server has written (its current position, read every 10 s) that is not stored in every location yet',
      registers: r,
    });
    this.walLocationStored = new Gauge({
      name: 'backup_runner_wal_location_last_stored_timestamp_seconds',
      help: 'When a WAL segment or the partial of the one being written was last stored in the location (0: not since the daemon started): a location that fails falls behind',
      labelNames: ['location'],
      registers: r,
    });
    this.slotSafe = new Gauge({ name: 'backup_runner_wal_slot_safe_bytes', help: 'WAL the server may still write before it invalidates the archive slot (-1: no limit, max_slot_wal_keep_size = -1)', registers: r });
    this.foreign = new Gauge({
      name: 'backup_runner_foreign_objects',
      help: 'Objects under the database prefix that this runner did not write (not of its key layout), seen since the start; never deleted',
      labelNames: ['location'],
      registers: r,
      collect() {
        for (const location of foreign.locations()) this.set({ location }, foreign.count(location));
      },
    });
  }

  /** Exports the per-location series from the start (0), so rate() and alerts see a zero rather than no series. */
  initLocations(locations: readonly string[], schedule?: { intervalSeconds?: number; maxGapSeconds?: number }): void {
    this.scheduleInterval.set(schedule?.intervalSeconds ?? 0);
    this.scheduleMaxGap.set(schedule?.maxGapSeconds ?? 0);
    for (const location of locations) {
      this.locationFailing.set({ location }, 0);
      this.retentionRemoved.inc({ location }, 0);
      this.retentionFailing.set({ location }, 0);
      this.foreign.set({ location }, 0);
      this.copied.inc({ location }, 0);
      this.copiedBytes.inc({ location }, 0);
    }
  }

  /** The locations' states as the status shows them. */
  setLocationStates(locations: readonly { name: string; state: string }[]): void {
    for (const l of locations) this.locationFailing.set({ location: l.name }, l.state === 'Failing' ? 1 : 0);
  }

  /** Counts what a retention run removed and whether it failed, per location; a dry run changes nothing. */
  retentionFinished(r: RetentionFacts): void {
    if (r.dryRun) return;
    for (const l of r.locations) {
      const removed = (l.plan?.remove.length ?? 0) - l.failed.length;
      if (removed > 0) this.retentionRemoved.inc({ location: l.location }, removed);
      this.retentionFailing.set({ location: l.location }, l.error || l.failed.length > 0 ? 1 : 0);
    }
  }

  /** Counts what a mirror or healing run copied into each location, and each backup it could not copy. */
  mirrorFinished(r: MirrorFacts): void {
    if (r.dryRun) return;
    for (const l of r.locations) {
      this.copied.inc({ location: l.location }, l.copied.length);
      this.copiedBytes.inc({ location: l.location }, l.copied.reduce((s, c) => s + c.bytes, 0));
      for (const f of l.failed) this.failures.inc({ operation: 'mirror', location: l.location, reason: f.error.code });
      if (l.error && l.failed.length === 0) this.failures.inc({ operation: 'mirror', location: l.location, reason: l.error.code });
    }
  }

  operationStarted(kind: string): void {
    this.running.set({ operation: kind }, 1);
  }

  operationFinished(kind: string, status: string, reason?: string): void {
    this.running.set({ operation: kind }, 0);
    this.operations.inc({ operation: kind, status });
    if (reason) this.failures.inc({ operation: kind, location: '', reason });
  }

  backupFinished(r: BackupResult): void {
    const finished = r.finishedAt.getTime() / 1000;
    this.lastAttempt.set(finished);
    this.duration.observe({ status: r.status }, (r.finishedAt.getTime() - r.startedAt.getTime()) / 1000);
    for (const l of r.locations) {
      if (l.status === 'Succeeded') {
        this.lastSuccess.set({ location: l.location }, finished);
        this.bytesTotal.inc({ location: l.location }, l.size ?? 0);
      } else {
        this.failures.inc({ operation: 'backup', location: l.location, reason: l.error?.code ?? 'UNKNOWN' });
      }
    }
    if (r.manifest && r.status !== 'Failed') this.bytes.set(storedBytes(r.manifest));
    if (r.status === 'Failed') this.failedInARow.inc();
    else this.failedInARow.set(0);
  }

  /** Seeds the gauges from what the locations hold, e.g. at start. */
  /** `behind` undefined: not known (the location could not be listed), so no sample. */
  setStored(location: string, count: number, lastSuccess?: Date, behind?: number): void {
    this.stored.set({ location }, count);
    if (behind === undefined) this.behind.remove({ location });
    else this.behind.set({ location }, behind);
    if (lastSuccess) this.lastSuccess.set({ location }, lastSuccess.getTime() / 1000);
  }

  statusReportFailed(reason: string): void {
    this.reportErrors.inc({ reason });
  }

  setNextRun(at: Date | undefined): void {
    this.nextRun.set(at ? at.getTime() / 1000 : 0);
  }

  /** A housekeeping task ended with this outcome. */
  housekeepingDone(task: string, outcome: string): void {
    this.housekeeping.inc({ task, outcome });
  }

  /** The daemon's services, and what the WAL archiver reports of itself. */
  setServices(services: readonly { name: string; state: string; restarts: number; facts: Record<string, unknown> }[]): void {
    const seconds = (v: unknown): number => (typeof v === 'string' ? Date.parse(v) / 1000 : 0);
    for (const s of services) {
      this.serviceUp.set({ service: s.name }, s.state === 'running' ? 1 : 0);
      this.serviceRestarts.set({ service: s.name }, s.restarts);
      if (s.name !== 'wal-archiver') continue;
      const f = s.facts;
      this.walArchived.set(typeof f.segmentsArchived === 'number' ? f.segmentsArchived : 0);
      this.walLastArchived.set(seconds(f.lastArchivedAt));
      this.walLastPartial.set(seconds(f.lastPartialAt));
      this.walGaps.set(Array.isArray(f.gaps) ? f.gaps.length : 0);
      this.walConflicts.set(Array.isArray(f.conflicts) ? f.conflicts.length : 0);
      if (typeof f.slotRetainedBytes === 'number') this.slotRetained.set(f.slotRetainedBytes);
      if (f.slotSafeBytes === null) this.slotSafe.set(-1);
      else if (typeof f.slotSafeBytes === 'number') this.slotSafe.set(f.slotSafeBytes);
      if (typeof f.receiveLagBytes === 'number') this.walReceiveLag.set(f.receiveLagBytes);
      this.setWalLocations(f.locations);
    }
  }

  /** Per location, when the WAL archiver last stored there (its `locations` facts). */
  private setWalLocations(locations: unknown): void {
    if (typeof locations !== 'object' || locations === null) return;
    for (const [location, l] of Object.entries(locations as Record<string, { lastStoredAt?: unknown }>)) {
      this.walLocationStored.set({ location }, typeof l?.lastStoredAt === 'string' ? Date.parse(l.lastStoredAt) / 1000 : 0);
    }
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
