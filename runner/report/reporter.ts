/**
 * Sends the runner's status to its DatabaseBackup in the background.
 *
 * Invariants:
 * - update() never waits and never throws: reporting cannot break or delay
 *   an operation.
 * - At most one request is in flight. Facts that arrive meanwhile replace
 *   each other; only the latest is sent once the request ends, except that a
 *   backup seen Running is reported Running once before its outcome (one
 *   that finished while a request was in flight would otherwise never show).
 * - A patch equal to the last one accepted is not sent again.
 * - A failure is logged (with the API server's HTTP status and message),
 *   counted through onError, and retried after a backoff that starts at
 *   backoffMs and doubles up to maxBackoffMs; a success resets it. Facts that
 *   arrive during the backoff wait for it.
 * - The sink is connected on the first send (so its client library loads in
 *   the background), and the stored status is read once to settle a
 *   lastBackup a previous runner left Running; when reading is denied, the
 *   runner reports without it.
 */
import type { DatabaseBackupStatus } from '../../api/crds/database-backup.js';
import { realClock, type Clock } from '../daemon/clock.js';
import { toBackupError, type BackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { buildStatusPatch, type LastBackupStatus, type ReportFacts, type RunnerStatusPatch } from './status.js';

/** Where the status goes: the DatabaseBackup's status subresource. Errors are BackupErrors with REPORT_* codes. */
export interface StatusSink {
  /** The status as stored; undefined when the object has none yet. */
  read(signal: AbortSignal): Promise<DatabaseBackupStatus | undefined>;
  /** Merge-patches `status` with exactly these fields. */
  patch(status: RunnerStatusPatch, signal: AbortSignal): Promise<void>;
}

export interface ReporterOptions {
  connect: () => Promise<StatusSink>;
  logger: Logger;
  onError?: (err: BackupError) => void;
  clock?: Clock;
  /** First retry delay after a failure (default 1 s). */
  backoffMs?: number;
  /** Longest retry delay (default 5 min). */
  maxBackoffMs?: number;
}

export class StatusReporter {
  private readonly log: Logger;
  private readonly clock: Clock;
  private sink: StatusSink | undefined;
  /** lastBackup as stored when first read; null once read and empty. */
  private observed: LastBackupStatus | null | undefined;
  private facts: ReportFacts | undefined;
  /** The facts changed since they were last sent. */
  private dirty = false;
  private sent: string | undefined;
  /** Facts of a backup running, replaced by its outcome before they were sent: sent first. */
  private heldRunning: ReportFacts | undefined;
  /** The id of the last backup reported Running. */
  private sentRunning: string | undefined;
  private inFlight: Promise<void> | undefined;
  private retry: unknown;
  private failures = 0;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(private readonly opts: ReporterOptions) {
    this.log = opts.logger.child({ module: 'status-report' });
    this.clock = opts.clock ?? realClock;
  }

  /** Takes the latest facts; they are sent when no request is in flight and no backoff is pending. */
  update(facts: ReportFacts): void {
    if (this.closed) return;
    const pending = this.dirty ? this.facts : undefined;
    if (pending?.running && !facts.running && this.sentRunning !== pending.running.id) this.heldRunning = pending;
    this.facts = facts;
    this.dirty = true;
    if (!this.inFlight && this.retry === undefined) this.kick();
  }

  /** Waits up to `timeoutMs` for the latest facts to be sent (one last try, whatever the backoff), then stops. */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    if (this.retry !== undefined) {
      this.clock.clearTimer(this.retry);
      this.retry = undefined;
    }
    this.closed = true;
    if (!this.inFlight && this.dirty) this.kick();
    let timer: unknown;
    const timedOut = new Promise<void>((resolve) => (timer = this.clock.setTimer(resolve, timeoutMs)));
    await Promise.race([this.inFlight, timedOut]);
    this.clock.clearTimer(timer);
    this.abort.abort(new Error('status reporting stopped'));
  }

  private kick(): void {
    this.inFlight = this.drain().finally(() => (this.inFlight = undefined));
  }

  /** Sends until the latest facts are sent, or a request fails (then arms the retry). */
  private async drain(): Promise<void> {
    try {
      while ((this.heldRunning || this.dirty) && this.facts) {
        const held = this.heldRunning;
        const facts = held ?? this.facts;
        if (!held) this.dirty = false;
        const sink = await this.connect();
        const patch = buildStatusPatch(facts, this.observed ?? undefined);
        const body = JSON.stringify(patch);
        if (body !== this.sent) {
          await sink.patch(patch, this.abort.signal);
          this.sent = body;
          if (this.failures > 0) this.log.info({ failures: this.failures }, 'status reported again after failures');
          this.failures = 0;
        }
        if (facts.running) this.sentRunning = facts.running.id;
        if (held) this.heldRunning = undefined;
      }
    } catch (err) {
      this.dirty = true;
      this.failed(toBackupError(err, 'REPORT_FAILED'));
    }
  }

  private async connect(): Promise<StatusSink> {
    this.sink ??= await this.opts.connect();
    if (this.observed === undefined) this.observed = await this.readLastBackup(this.sink);
    return this.sink;
  }

  /** The stored lastBackup. A Role without `get` only costs settling a stale Running: the patch is still tried. */
  private async readLastBackup(sink: StatusSink): Promise<LastBackupStatus | null> {
    try {
      return (await sink.read(this.abort.signal))?.lastBackup ?? null;
    } catch (err) {
      const e = toBackupError(err, 'REPORT_FAILED');
      if (e.code !== 'REPORT_DENIED') throw e;
      this.opts.onError?.(e);
      this.log.warn({ err: e, httpStatus: e.details.httpStatus }, 'cannot read the DatabaseBackup status; reporting without it (a backup left Running by a stopped runner stays so)');
      return null;
    }
  }

  private failed(err: BackupError): void {
    this.failures++;
    this.opts.onError?.(err);
    const base = this.opts.backoffMs ?? 1000;
    const delay = Math.min(this.opts.maxBackoffMs ?? 300_000, base * 2 ** Math.min(this.failures - 1, 30));
    const httpStatus = err.details.httpStatus;
    if (this.closed) {
      this.log.warn({ err, httpStatus }, 'could not report the status to the DatabaseBackup; giving up (shutting down)');
      return;
    }
    this.log.warn({ err, httpStatus, retryInMs: delay, failures: this.failures }, 'could not report the status to the DatabaseBackup; retrying');
    this.retry = this.clock.setTimer(() => {
      this.retry = undefined;
      if (!this.inFlight) this.kick();
    }, delay);
  }
}
