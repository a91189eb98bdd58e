/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's
 * semantics: a candidate takes the lease when it is absent, released (no
 * holder), expired (renewTime + leaseDurationSeconds < now) or already its
 * own; the leader renews every retry period and stops leading when no renewal
 * has succeeded for renewDeadline (or when it sees another holder). Every
 * write carries the resourceVersion it read, so two writers never both win.
 *
 * Invariants:
 * - The decision is pure (`decideLease`); the loop only reads, writes and times.
 * - One attempt at a time: the next starts a retry period after the last ends.
 * - Leadership lost is final for this elector (as in controller-runtime, the
 *   process is expected to exit); `stop()` is idempotent and releases a lease
 *   this elector holds, after onStoppedLeading has returned.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ControllerError, fromKubeError, kubeStatus } from './errors.js';

export type LeaseApi = Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;

export interface LeaderTimings {
  /** How long a lease stays valid after its renewTime (written to the Lease in whole seconds). Default 15 s. */
  leaseDurationMs: number;
  /** How long the leader keeps leading without a successful renewal. Default 10 s. */
  renewDeadlineMs: number;
  /** Time between two attempts (acquire or renew). Default 2 s. */
  retryPeriodMs: number;
}

export const DEFAULT_LEADER_TIMINGS: LeaderTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** As client-go: a candidate waits retryPeriod * (1 + random * JITTER) between attempts. */
const JITTER = 0.2;

export type StoppedReason = 'lost' | 'stopped';

export type LeaderElectionOptions = ({ coordinationApi: LeaseApi } | { kubeConfig: KubeConfig }) &
  Partial<LeaderTimings> & {
    namespace: string;
    name: string;
    /** Unique per process (e.g. pod name + random suffix): two processes with one identity would both lead. */
    identity: string;
    logger: Logger;
    /** The time written to and compared with the Lease; the loop's own waits are setTimeout's. */
    clock?: { now(): Date };
    /** Called once on becoming leader; `signal` aborts when leadership ends. A rejection is logged. */
    onStartedLeading(signal: AbortSignal): void | Promise<void>;
    /** Called once when leading ends: 'lost' (renewal failed; exit the process) or 'stopped' (stop() was called). */
    onStoppedLeading(reason: StoppedReason): void | Promise<void>;
  };

export interface LeaderElection {
  isLeader(): boolean;
  /**
   * When the loop last completed an attempt (acquire or renew, won, lost or failed); before the first, when
   * it started. Wall-clock time: a running loop moves it at least every retry period plus the attempt's
   * own duration, so an old value means a wedged loop (e.g. a request that never ends).
   */
  lastAttemptAt(): Date;
  /** Stops the loop; with release (default true) clears holderIdentity so another instance takes over at once. */
  stop(opts?: { release?: boolean }): Promise<void>;
}

export type LeaderAction =
  | { kind: 'create'; spec: V1LeaseSpec }
  | { kind: 'acquire'; spec: V1LeaseSpec; previousHolder: string }
  | { kind: 'renew'; spec: V1LeaseSpec }
  | { kind: 'wait'; holder: string; expiresAt: Date };

/** MicroTime as the API server stores it: RFC 3339 with microseconds, e.g. 2026-11-21T10:00:00.000000Z. */
export function microTime(at: Date): V1MicroTime {
  return new V1MicroTime(at.getTime());
}

/** The client types MicroTime as a Date but hands back the server's string: accept both. */
function millis(t: unknown): number | undefined {
  if (t instanceof Date) return t.getTime();
  if (typeof t !== 'string') return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

export function leaseDurationSeconds(t: Pick<LeaderTimings, 'leaseDurationMs'>): number {
  return Math.ceil(t.leaseDurationMs / 1000);
}

/** What a candidate or leader `identity` does with the lease it read (undefined: none exists) at `now`. */
export function decideLease(lease: V1Lease | undefined, now: Date, identity: string, timings: Pick<LeaderTimings, 'leaseDurationMs'>): LeaderAction {
  const durationSeconds = leaseDurationSeconds(timings);
  const fresh: V1LeaseSpec = { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now) };
  const spec = lease?.spec;
  if (!lease) return { kind: 'create', spec: { ...fresh, leaseTransitions: 0 } };
  const holder = spec?.holderIdentity ?? '';
  if (holder === identity) {
    const acquired = millis(spec?.acquireTime);
    return { kind: 'renew', spec: { ...spec, ...fresh, acquireTime: acquired === undefined ? fresh.acquireTime : new V1MicroTime(acquired) } };
  }
  const renewed = millis(spec?.renewTime);
  // A lease that never says its duration is held for ours.
  const expiresAt = renewed === undefined ? 0 : renewed + (spec?.leaseDurationSeconds ?? durationSeconds) * 1000;
  if (holder !== '' && expiresAt >= now.getTime()) return { kind: 'wait', holder, expiresAt: new Date(expiresAt) };
  return { kind: 'acquire', spec: { ...spec, ...fresh, leaseTransitions: (spec?.leaseTransitions ?? 0) + 1 }, previousHolder: holder };
}

/** The spec that hands the lease back: no holder (candidates take it at once), duration and transitions kept. */
export function releasedSpec(lease: V1Lease, now: Date): V1LeaseSpec {
  return { ...lease.spec, holderIdentity: '', renewTime: microTime(now) };
}

export function validateTimings(t: LeaderTimings): void {
  const problems: string[] = [];
  if (!(t.retryPeriodMs > 0)) problems.push('retryPeriod must be positive');
  if (!(t.renewDeadlineMs > t.retryPeriodMs * (1 + JITTER))) problems.push(`renewDeadline must exceed retryPeriod x ${1 + JITTER}`);
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) problems.push('leaseDuration must exceed renewDeadline');
  if (problems.length > 0) {
    throw new ControllerError('CONFIG_INVALID', `leader election: ${problems.join('; ')}`, { details: { ...t } });
  }
}

export function startLeaderElection(opts: LeaderElectionOptions): LeaderElection {
  const timings: LeaderTimings = {
    leaseDurationMs: opts.leaseDurationMs ?? DEFAULT_LEADER_TIMINGS.leaseDurationMs,
    renewDeadlineMs: opts.renewDeadlineMs ?? DEFAULT_LEADER_TIMINGS.renewDeadlineMs,
    retryPeriodMs: opts.retryPeriodMs ?? DEFAULT_LEADER_TIMINGS.retryPeriodMs,
  };
  validateTimings(timings);
  if (!opts.identity) throw new ControllerError('CONFIG_INVALID', 'leader election: identity must not be empty');
  const api: LeaseApi = 'coordinationApi' in opts ? opts.coordinationApi : opts.kubeConfig.makeApiClient(CoordinationV1Api);
  const elector = new Elector(api, opts, timings);
  elector.schedule(0);
  return { isLeader: () => elector.state === 'leading', lastAttemptAt: () => elector.lastAttemptAt, stop: (o) => elector.stop(o?.release ?? true) };
}

class Elector {
  state: 'candidate' | 'leading' | 'stopped' = 'candidate';
  /** See LeaderElection.lastAttemptAt. */
  lastAttemptAt = new Date();
  /** The newest version of the lease this elector has read or written. */
  private lease: V1Lease | undefined;
  private observedHolder: string | undefined;
  private tick: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  private leading: AbortController | undefined;
  private stopping: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly ref: { namespace: string; name: string };
  private readonly now: () => Date;

  constructor(
    private readonly api: LeaseApi,
    private readonly opts: LeaderElectionOptions,
    private readonly timings: LeaderTimings,
  ) {
    this.ref = { namespace: opts.namespace, name: opts.name };
    this.log = opts.logger.child({ subsystem: 'leader-election', lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    const clock = opts.clock ?? { now: () => new Date() };
    this.now = () => clock.now();
  }

  schedule(ms: number): void {
    this.tick = setTimeout(() => {
      this.attempt = this.tryOnce().finally(() => {
        this.attempt = undefined;
        this.lastAttemptAt = new Date();
        if (this.state === 'stopped') return;
        const wait = this.timings.retryPeriodMs;
        this.schedule(this.state === 'leading' ? wait : wait * (1 + Math.random() * JITTER));
      });
    }, ms);
    this.tick.unref();
  }

  private async tryOnce(): Promise<void> {
    try {
      const held = await this.acquireOrRenew();
      if (this.state === 'stopped') return;
      if (held) this.renewed();
    } catch (err) {
      if (this.state === 'stopped') return;
      const e = fromKubeError(err, `lease ${this.ref.namespace}/${this.ref.name}`);
      this.log.warn({ err: e, code: e.code }, this.state === 'leading' ? 'renewing the lease failed' : 'acquiring the lease failed');
    }
  }

  /** True when this elector holds the lease now. */
  private async acquireOrRenew(): Promise<boolean> {
    // Fast path, as client-go: the leader writes over the version it wrote last; any failure re-reads.
    if (this.state === 'leading' && this.lease) {
      const action = decideLease(this.lease, this.now(), this.opts.identity, this.timings);
      if (action.kind === 'renew' && (await this.write(this.lease, action.spec))) return true;
    }
    const current = await this.read();
    if (this.state === 'stopped') return false;
    this.observe(current);
    const action = decideLease(current, this.now(), this.opts.identity, this.timings);
    if (action.kind === 'wait') {
      if (this.state === 'leading') this.lose(`the lease is held by ${action.holder}`);
      return false;
    }
    if (action.kind === 'acquire') this.log.info({ previousHolder: action.previousHolder || undefined }, 'taking over the lease');
    return action.kind === 'create' ? this.create(action.spec) : this.write(current!, action.spec);
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return (this.lease = await this.api.readNamespacedLease(this.ref));
    } catch (err) {
      if (kubeStatus(err) === 404) return (this.lease = undefined);
      throw err;
    }
  }

  /** Creates the lease; false when another candidate created it first. */
  private async create(spec: V1LeaseSpec): Promise<boolean> {
    try {
      const body: V1Lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { ...this.ref }, spec };
      this.lease = await this.api.createNamespacedLease({ namespace: this.ref.namespace, body });
      return true;
    } catch (err) {
      if (kubeStatus(err) === 409) return false;
      throw err;
    }
  }

  /** Replaces `base` (its resourceVersion guards the write) with `spec`; false on a conflict. */
  private async write(base: V1Lease, spec: V1LeaseSpec): Promise<boolean> {
    try {
      this.lease = await this.api.replaceNamespacedLease({ ...this.ref, body: { ...base, spec } });
      return true;
    } catch (err) {
      if (kubeStatus(err) !== 409) throw err;
      this.log.debug('the lease changed since it was read');
      return false;
    }
  }

  private observe(lease: V1Lease | undefined): void {
    const holder = lease?.spec?.holderIdentity ?? '';
    if (holder === this.observedHolder) return;
    this.observedHolder = holder;
    if (holder && holder !== this.opts.identity) this.log.info({ leader: holder }, 'another instance leads');
  }

  private renewed(): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.lose(`no renewal succeeded for ${this.timings.renewDeadlineMs} ms`), this.timings.renewDeadlineMs);
    this.deadline.unref();
    if (this.state === 'leading') return;
    this.state = 'leading';
    this.observedHolder = this.opts.identity;
    this.leading = new AbortController();
    this.log.info({ leaseTransitions: this.lease?.spec?.leaseTransitions }, 'became leader');
    void this.callback(() => this.opts.onStartedLeading(this.leading!.signal), 'onStartedLeading');
  }

  private lose(reason: string): void {
    if (this.state !== 'leading') return;
    this.halt();
    const err = new ControllerError('LEADERSHIP_LOST', `leadership lost: ${reason}`);
    this.log.error({ err, code: err.code }, 'stopped leading');
    void this.callback(() => this.opts.onStoppedLeading('lost'), 'onStoppedLeading');
  }

  /** Ends the loop and the leader's work; returns whether it was leading. */
  private halt(): boolean {
    const wasLeading = this.state === 'leading';
    this.state = 'stopped';
    clearTimeout(this.tick);
    clearTimeout(this.deadline);
    this.leading?.abort();
    return wasLeading;
  }

  private callback(fn: () => void | Promise<void>, name: string): Promise<void> {
    return Promise.resolve()
      .then(fn)
      .catch((err: unknown) => this.log.error({ err }, `${name} failed`));
  }

  stop(release: boolean): Promise<void> {
    this.stopping ??= this.shutdown(release);
    return this.stopping;
  }

  private async shutdown(release: boolean): Promise<void> {
    const wasLeading = this.halt();
    // An attempt in flight may still win the lease: wait (at most renewDeadline) so the release sees it.
    await Promise.race([this.attempt, new Promise((r) => setTimeout(r, this.timings.renewDeadlineMs).unref())]);
    if (wasLeading) {
      this.log.info('stopping: leader work ends');
      await this.callback(() => this.opts.onStoppedLeading('stopped'), 'onStoppedLeading');
    }
    if (release && this.lease?.spec?.holderIdentity === this.opts.identity) await this.release(this.lease);
  }

  private async release(lease: V1Lease): Promise<void> {
    try {
      let released = await this.write(lease, releasedSpec(lease, this.now()));
      if (!released) {
        // Someone wrote since: release only what is still ours.
        const current = await this.read();
        if (current?.spec?.holderIdentity !== this.opts.identity) return;
        released = await this.write(current, releasedSpec(current, this.now()));
      }
      if (released) this.log.info('released the lease');
      else this.log.warn('the lease changed while releasing it; it expires after leaseDuration');
    } catch (err) {
      const e = fromKubeError(err, `release lease ${this.ref.namespace}/${this.ref.name}`);
      this.log.warn({ err: e, code: e.code }, 'releasing the lease failed; it expires after leaseDuration');
    }
  }
}
