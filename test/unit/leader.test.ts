import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isControllerError } from '../../controller/errors.js';
import { createControllerLogger } from '../../controller/main.js';
import {
  decideLease,
  microTime,
  releasedSpec,
  startLeaderElection,
  validateTimings,
  type LeaderElection,
  type LeaseApi,
  type StoppedReason,
} from '../../controller/leader.js';

const NOW = new Date('2026-11-21T10:00:00.000Z');
const T = { leaseDurationMs: 15_000 };
const at = (secondsFromNow: number): string => new Date(NOW.getTime() + secondsFromNow * 1000).toISOString().replace('Z', '123Z');

/** A lease as the API server returns it: times are strings with microseconds. */
function lease(spec: V1Lease['spec']): V1Lease {
  return { metadata: { name: 'ctl', namespace: 'ops', resourceVersion: '7' }, spec };
}

describe('decideLease', () => {
  const now = '2026-11-21T10:00:00.000000Z';
  const cases: { name: string; lease: V1Lease | undefined; kind: string; transitions?: number; acquireTime?: string; holder?: string }[] = [
    { name: 'absent: create with 0 transitions', lease: undefined, kind: 'create', transitions: 0, acquireTime: now },
    { name: 'ours: renew, acquireTime and transitions kept', lease: lease({ holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: at(-60) as never, renewTime: at(-2) as never, leaseTransitions: 3 }), kind: 'renew', transitions: 3, acquireTime: '2026-11-21T09:59:00.000000Z' },
    { name: 'ours even when expired: renew', lease: lease({ holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: at(-100) as never, leaseTransitions: 1 }), kind: 'renew', transitions: 1 },
    { name: 'held by b, fresh: wait', lease: lease({ holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: at(-14) as never, leaseTransitions: 2 }), kind: 'wait', holder: 'b' },
    { name: 'held by b, exactly at expiry: wait', lease: lease({ holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: new Date(NOW.getTime() - 15_000).toISOString() as never }), kind: 'wait', holder: 'b' },
    { name: 'held by b, expired: acquire, transitions + 1', lease: lease({ holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: at(-16) as never, leaseTransitions: 2 }), kind: 'acquire', transitions: 3, acquireTime: now },
    { name: "b's own duration counts, not ours", lease: lease({ holderIdentity: 'b', leaseDurationSeconds: 60, renewTime: at(-30) as never }), kind: 'wait', holder: 'b' },
    { name: 'released (no holder): acquire at once', lease: lease({ holderIdentity: '', leaseDurationSeconds: 15, renewTime: at(-1) as never, leaseTransitions: 4 }), kind: 'acquire', transitions: 5 },
    { name: 'empty spec: acquire', lease: lease(undefined), kind: 'acquire', transitions: 1 },
    { name: 'holder without renewTime: acquire', lease: lease({ holderIdentity: 'b', leaseDurationSeconds: 15 }), kind: 'acquire', transitions: 1 },
    { name: 'Date values (not strings) are read too', lease: lease({ holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: microTime(new Date(NOW.getTime() - 1000)) }), kind: 'wait', holder: 'b' },
  ];

  it.each(cases)('$name', (c) => {
    const action = decideLease(c.lease, NOW, 'a', T);
    expect(action.kind).toBe(c.kind);
    if (action.kind === 'wait') {
      expect(action.holder).toBe(c.holder);
      return;
    }
    expect(action.spec.holderIdentity).toBe('a');
    expect(action.spec.leaseDurationSeconds).toBe(15);
    expect(action.spec.renewTime?.toISOString()).toBe(now);
    expect(action.spec.leaseTransitions).toBe(c.transitions);
    if (c.acquireTime) expect(action.spec.acquireTime?.toISOString()).toBe(c.acquireTime);
  });

  it('says when the lease of another holder expires', () => {
    const action = decideLease(lease({ holderIdentity: 'b', leaseDurationSeconds: 15, renewTime: '2026-11-21T09:59:50.000000Z' as never }), NOW, 'a', T);
    expect(action).toEqual({ kind: 'wait', holder: 'b', expiresAt: new Date('2026-11-21T10:00:05.000Z') });
  });

  it('writes whole seconds of leaseDuration, rounded up', () => {
    expect(decideLease(undefined, NOW, 'a', { leaseDurationMs: 2500 })).toMatchObject({ kind: 'create', spec: { leaseDurationSeconds: 3 } });
  });

  it('keeps fields it does not own (strategy, preferredHolder)', () => {
    const action = decideLease(lease({ holderIdentity: 'a', renewTime: at(-1) as never, strategy: 'OldestEmulationVersion', preferredHolder: 'c' }), NOW, 'a', T);
    expect(action.kind === 'renew' && action.spec).toMatchObject({ strategy: 'OldestEmulationVersion', preferredHolder: 'c' });
  });
});

describe('microTime and release', () => {
  it('formats RFC 3339 with microseconds, as the API server stores MicroTime', () => {
    expect(JSON.stringify({ t: microTime(new Date('2026-11-21T10:00:00.042Z')) })).toBe('{"t":"2026-11-21T10:00:00.042000Z"}');
  });

  it('release clears the holder and keeps duration and transitions', () => {
    const spec = releasedSpec(lease({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 4, renewTime: at(-1) as never }), NOW);
    expect(spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 15, leaseTransitions: 4 });
    expect(spec.renewTime?.toISOString()).toBe('2026-11-21T10:00:00.000000Z');
  });
});

describe('validateTimings', () => {
  it.each([
    [{ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }, undefined],
    [{ leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 }, undefined],
    [{ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }, 'leaseDuration must exceed renewDeadline'],
    [{ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }, 'renewDeadline must exceed retryPeriod x 1.2'],
    [{ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 0 }, 'retryPeriod must be positive'],
  ])('%j', (t, problem) => {
    if (problem === undefined) return expect(() => validateTimings(t)).not.toThrow();
    let err: unknown;
    try {
      validateTimings(t);
    } catch (e) {
      err = e;
    }
    expect(isControllerError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toContain(problem);
  });
});

/** An in-memory Lease store with the API server's optimistic concurrency (resourceVersion) and error codes. */
class FakeLeaseApi implements LeaseApi {
  stored: V1Lease | undefined;
  private version = 0;
  /** While set, every call fails as if the API server were unreachable. */
  down = false;
  writes = 0;

  private check(): void {
    if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6443');
  }
  private save(body: V1Lease): V1Lease {
    // Through JSON, as on the wire: MicroTime values become strings.
    this.stored = JSON.parse(JSON.stringify({ ...body, metadata: { ...body.metadata, resourceVersion: String(++this.version) } })) as V1Lease;
    this.writes++;
    return structuredClone(this.stored);
  }
  readNamespacedLease(): Promise<V1Lease> {
    this.check();
    if (!this.stored) return Promise.reject(new ApiException(404, 'not found', '{"message":"leases \\"ctl\\" not found"}', {}));
    return Promise.resolve(structuredClone(this.stored));
  }
  createNamespacedLease(p: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (this.stored) return Promise.reject(new ApiException(409, 'exists', {}, {}));
    return Promise.resolve(this.save(p.body));
  }
  replaceNamespacedLease(p: { body: V1Lease }): Promise<V1Lease> {
    this.check();
    if (p.body.metadata?.resourceVersion !== this.stored?.metadata?.resourceVersion) return Promise.reject(new ApiException(409, 'conflict', {}, {}));
    return Promise.resolve(this.save(p.body));
  }
  /** Another client writes the lease (e.g. kubectl), bumping resourceVersion. */
  touch(spec: Partial<NonNullable<V1Lease['spec']>>): void {
    this.save({ ...this.stored!, spec: { ...this.stored!.spec, ...spec } });
  }
}

describe('startLeaderElection (fake timers, in-memory API)', () => {
  const timings = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };
  let api: FakeLeaseApi;
  let electors: LeaderElection[];
  let events: string[];

  function elect(identity: string): LeaderElection {
    const e = startLeaderElection({
      coordinationApi: api,
      namespace: 'ops',
      name: 'ctl',
      identity,
      ...timings,
      logger: pino({ level: 'silent' }),
      onStartedLeading: (signal) => {
        events.push(`${identity} started`);
        signal.addEventListener('abort', () => events.push(`${identity} signal aborted`));
      },
      onStoppedLeading: (reason: StoppedReason) => {
        events.push(`${identity} stopped: ${reason} (holder ${api.stored?.spec?.holderIdentity})`);
      },
    });
    electors.push(e);
    return e;
  }

  beforeEach(() => {
    vi.useFakeTimers({ now: NOW, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    api = new FakeLeaseApi();
    electors = [];
    events = [];
  });

  afterEach(async () => {
    for (const e of electors) await e.stop({ release: false });
    vi.useRealTimers();
  });

  it("log lines of the leader election on the controller's logger carry each key once", async () => {
    const lines: string[] = [];
    const e = startLeaderElection({
      coordinationApi: api,
      namespace: 'ops',
      name: 'ctl',
      identity: 'a',
      ...timings,
      logger: createControllerLogger('info', { write: (line: string) => void lines.push(line) }),
      onStartedLeading: () => undefined,
      onStoppedLeading: () => undefined,
    });
    electors.push(e);
    await vi.advanceTimersByTimeAsync(10);
    expect(e.isLeader()).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const keys = topLevelKeys(line);
      expect(keys.filter((k, i) => keys.indexOf(k) !== i), line).toEqual([]);
      expect(JSON.parse(line)).toMatchObject({ component: 'controller', subsystem: 'leader-election', lease: 'ops/ctl' });
    }
  });

  it('creates the lease, leads and renews every retry period', async () => {
    const a = elect('a');
    await vi.advanceTimersByTimeAsync(10);
    expect(a.isLeader()).toBe(true);
    expect(events).toEqual(['a started']);
    expect(api.stored?.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 3, leaseTransitions: 0, renewTime: '2026-11-21T10:00:00.000000Z' });
    const writes = api.writes;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(api.writes - writes).toBe(10);
    expect(api.stored?.spec?.renewTime).toBe('2026-11-21T10:00:05.000000Z');
  });

  it('two candidates: exactly one leads; release hands over within a retry period', async () => {
    const a = elect('a');
    await vi.advanceTimersByTimeAsync(10);
    const b = elect('b');
    await vi.advanceTimersByTimeAsync(3_000);
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);

    await a.stop();
    // onStoppedLeading runs before the release: the old leader's work has ended when b can take over.
    expect(events).toEqual(['a started', 'a signal aborted', 'a stopped: stopped (holder a)']);
    expect(api.stored?.spec?.holderIdentity).toBe('');
    await vi.advanceTimersByTimeAsync(timings.retryPeriodMs * 1.2);
    expect(b.isLeader()).toBe(true);
    expect(api.stored?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('a leader that cannot renew stops leading after renewDeadline; another takes over after the lease expires', async () => {
    const a = elect('a');
    await vi.advanceTimersByTimeAsync(10);
    api.down = true;
    await vi.advanceTimersByTimeAsync(timings.renewDeadlineMs - 100);
    expect(a.isLeader()).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    expect(a.isLeader()).toBe(false);
    expect(events).toEqual(['a started', 'a signal aborted', 'a stopped: lost (holder a)']);

    api.down = false;
    const b = elect('b');
    await vi.advanceTimersByTimeAsync(100);
    expect(b.isLeader()).toBe(false);
    await vi.advanceTimersByTimeAsync(timings.leaseDurationMs);
    expect(b.isLeader()).toBe(true);
    expect(api.stored?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('a conflicting write re-reads and renews', async () => {
    const a = elect('a');
    await vi.advanceTimersByTimeAsync(10);
    api.touch({ leaseDurationSeconds: 3 });
    const rv = api.stored?.metadata?.resourceVersion;
    await vi.advanceTimersByTimeAsync(timings.retryPeriodMs);
    expect(a.isLeader()).toBe(true);
    expect(Number(api.stored?.metadata?.resourceVersion)).toBeGreaterThan(Number(rv));
    expect(api.stored?.spec?.holderIdentity).toBe('a');
  });

  it('a leader that sees another holder stops leading at once', async () => {
    const a = elect('a');
    await vi.advanceTimersByTimeAsync(10);
    api.touch({ holderIdentity: 'intruder', renewTime: new Date().toISOString() as never });
    await vi.advanceTimersByTimeAsync(timings.retryPeriodMs);
    expect(a.isLeader()).toBe(false);
    expect(events.at(-1)).toBe('a stopped: lost (holder intruder)');
    // Not ours any more: stop() leaves it alone.
    await a.stop();
    expect(api.stored?.spec?.holderIdentity).toBe('intruder');
  });

  it('stop without release leaves the lease to expire', async () => {
    const a = elect('a');
    await vi.advanceTimersByTimeAsync(10);
    await a.stop({ release: false });
    expect(api.stored?.spec?.holderIdentity).toBe('a');
    const writes = api.writes;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(api.writes).toBe(writes);
  });

  it('rejects invalid options before starting', () => {
    expect(() => elect('')).toThrow(/identity must not be empty/);
    expect(() => startLeaderElection({ coordinationApi: api, namespace: 'ops', name: 'ctl', identity: 'a', leaseDurationMs: 1_000, logger: pino({ level: 'silent' }), onStartedLeading: () => undefined, onStoppedLeading: () => undefined })).toThrow(/leaseDuration must exceed renewDeadline/);
  });
});

/** The keys of a JSON object's top level, in order and with repeats (JSON.parse keeps only the last of a repeated key). */
function topLevelKeys(json: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (depth === 1 && /^\s*:/.test(json.slice(j + 1))) keys.push(JSON.parse(json.slice(i, j + 1)) as string);
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}
