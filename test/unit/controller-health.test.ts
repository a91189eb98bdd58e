import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  cachesLiveness,
  firstFailing,
  isoSeconds,
  leaderLiveness,
  leaderStallMs,
  logTransitions,
  LIVE,
  type CacheHealth,
  type Liveness,
} from '../../controller/health.js';
import { failureText } from '../../controller/kube.js';
import { startLeaderElection, type LeaseApi } from '../../controller/leader.js';
import { validateSettings } from '../../controller/settings.js';

const NOW = new Date('2026-11-21T10:10:00.000Z');
const ago = (s: number): Date => new Date(NOW.getTime() - s * 1000);
const up = (resource: string): CacheHealth => ({ resource, failures: 0 });
const failing = (resource: string, sinceSecondsAgo: number, lastError?: string): CacheHealth => ({
  resource,
  failures: 3,
  failingSince: ago(sinceSecondsAgo),
  ...(lastError ? { lastError } : {}),
});

describe('cachesLiveness (timeout 300 s)', () => {
  const cases: { name: string; caches: CacheHealth[]; want: Liveness }[] = [
    { name: 'no caches (a standby, or before the leader starts)', caches: [], want: LIVE },
    { name: 'every watch up', caches: [up('databasebackups'), up('secrets')], want: LIVE },
    { name: 'a failure shorter than the timeout: a hiccup, still live', caches: [up('databasebackups'), failing('secrets', 299, 'connect ECONNREFUSED')], want: LIVE },
    { name: 'failing exactly the timeout: still live', caches: [failing('secrets', 300, 'x')], want: LIVE },
    {
      name: 'failing longer than the timeout: named, with the last error',
      caches: [up('databasebackups'), failing('secrets', 301, 'connect ECONNREFUSED 127.0.0.1:6443')],
      want: { ok: false, reason: 'watch secrets failing since 2026-11-21T10:04:59Z: connect ECONNREFUSED 127.0.0.1:6443' },
    },
    {
      name: 'several failing: the one failing longest is named',
      caches: [failing('deployments', 400, 'b'), failing('databasebackups', 600, 'HTTP 403: forbidden'), failing('roles', 10, 'c')],
      want: { ok: false, reason: 'watch databasebackups failing since 2026-11-21T10:00:00Z: HTTP 403: forbidden' },
    },
    { name: 'no error text recorded', caches: [failing('services', 900)], want: { ok: false, reason: 'watch services failing since 2026-11-21T09:55:00Z' } },
  ];
  it.each(cases)('$name', ({ caches, want }) => {
    expect(cachesLiveness(caches, NOW, 300_000)).toEqual(want);
  });
});

describe('leader loop liveness', () => {
  it.each([
    { timings: { leaseDurationMs: 15_000, retryPeriodMs: 2_000 }, allowanceMs: 300_000, want: 315_000 },
    { timings: { leaseDurationMs: 15_000, retryPeriodMs: 10_000 }, allowanceMs: 300_000, want: 330_000 },
    { timings: { leaseDurationMs: 3_000, retryPeriodMs: 500 }, allowanceMs: 2_000, want: 5_000 },
  ])('stall threshold max(leaseDuration, 3 x retryPeriod) + allowance: $want ms', ({ timings, allowanceMs, want }) => {
    expect(leaderStallMs(timings, allowanceMs)).toBe(want);
  });

  it.each([
    { name: 'an attempt just completed', lastSecondsAgo: 0, want: LIVE },
    { name: 'idle up to the threshold', lastSecondsAgo: 315, want: LIVE },
    { name: 'idle past the threshold', lastSecondsAgo: 316, want: { ok: false, reason: 'leader election loop has not run for 316 s' } },
    { name: 'rounded to whole seconds', lastSecondsAgo: 400.4, want: { ok: false, reason: 'leader election loop has not run for 400 s' } },
  ])('$name', ({ lastSecondsAgo, want }) => {
    expect(leaderLiveness(ago(lastSecondsAgo), NOW, 315_000)).toEqual(want);
  });
});

describe('firstFailing', () => {
  it('returns the first failing check and does not evaluate the later ones', () => {
    const later = vi.fn((): Liveness => ({ ok: false, reason: 'later' }));
    expect(firstFailing([() => LIVE, () => ({ ok: false, reason: 'leader' }), later])).toEqual({ ok: false, reason: 'leader' });
    expect(later).not.toHaveBeenCalled();
    expect(firstFailing([() => LIVE, () => LIVE])).toEqual(LIVE);
    expect(firstFailing([])).toEqual(LIVE);
  });
});

describe('logTransitions', () => {
  it('warns once when liveness turns false (with the reason) and says once when it is back', () => {
    const lines: { level: number; msg: string; reason?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as { level: number; msg: string }) });
    let current: Liveness = LIVE;
    const check = logTransitions(() => current, logger);
    check();
    current = { ok: false, reason: 'watch secrets failing since 2026-11-21T10:00:00Z: boom' };
    expect(check()).toEqual(current);
    check();
    check();
    current = LIVE;
    check();
    check();
    expect(lines.map((l) => [l.level, l.reason ?? l.msg])).toEqual([
      [40, 'watch secrets failing since 2026-11-21T10:00:00Z: boom'],
      [30, 'liveness: healthy again'],
    ]);
  });
});

describe('failure text of a list or watch', () => {
  it.each([
    { name: 'an API error: its Status message', err: new ApiException(403, 'x', '{"kind":"Status","message":"secrets is forbidden"}', {}), want: 'HTTP 403: secrets is forbidden' },
    { name: 'an API error without a Status', err: new ApiException(500, 'x', 'oops', {}), want: 'HTTP 500' },
    { name: 'a watch refused (client-node sets statusCode)', err: Object.assign(new Error('Forbidden'), { statusCode: 403 }), want: 'HTTP 403: Forbidden' },
    { name: 'no answer', err: new Error('request to https://127.0.0.1:6443/api failed, reason: connect ECONNREFUSED 127.0.0.1:6443'), want: 'request to https://127.0.0.1:6443/api failed, reason: connect ECONNREFUSED 127.0.0.1:6443' },
    { name: 'not an Error', err: 'boom', want: 'boom' },
  ])('$name', ({ err, want }) => {
    expect(failureText(err)).toBe(want);
  });

  it('formats times in whole seconds', () => {
    expect(isoSeconds(new Date('2026-11-21T10:00:00.789Z'))).toBe('2026-11-21T10:00:00Z');
  });
});

describe('settings: liveness.watchFailureTimeout', () => {
  it('defaults to 5m and takes a duration', () => {
    const d = validateSettings({});
    expect(d.ok && d.value.liveness).toEqual({ watchFailureTimeout: '5m' });
    const s = validateSettings({ liveness: { watchFailureTimeout: '90s' } });
    expect(s.ok && s.value.liveness.watchFailureTimeout).toBe('90s');
    expect(validateSettings({ liveness: { watchFailureTimeout: '5 minutes' } }).ok).toBe(false);
    expect(validateSettings({ liveness: { watchFailureTimout: '5m' } }).ok).toBe(false);
  });
});

describe('leader election: lastAttemptAt', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A Lease API that answers at once, or never with `hang`. */
  function api(opts: { hang: boolean }): LeaseApi {
    let stored: V1Lease | undefined;
    const answer = <T>(fn: () => T): Promise<T> => (opts.hang ? new Promise<T>(() => undefined) : Promise.resolve().then(fn));
    return {
      readNamespacedLease: () =>
        answer(() => {
          if (!stored) throw new ApiException(404, 'not found', '{}', {});
          return structuredClone(stored);
        }),
      createNamespacedLease: (p: { body: V1Lease }) => answer(() => (stored = { ...p.body, metadata: { ...p.body.metadata, resourceVersion: '1' } })),
      replaceNamespacedLease: (p: { body: V1Lease }) => answer(() => (stored = { ...p.body, metadata: { ...p.body.metadata, resourceVersion: String(Number(p.body.metadata?.resourceVersion) + 1) } })),
    };
  }

  const start = (coordinationApi: LeaseApi) =>
    startLeaderElection({
      coordinationApi,
      namespace: 'ops',
      name: 'ctl',
      identity: 'a',
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 500,
      logger: pino({ level: 'silent' }),
      onStartedLeading: () => undefined,
      onStoppedLeading: () => undefined,
    });

  it('moves with every completed attempt, and stays at the start while an attempt never ends', async () => {
    vi.useFakeTimers({ now: NOW, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const ticking = start(api({ hang: false }));
    expect(ticking.lastAttemptAt()).toEqual(NOW);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(ticking.isLeader()).toBe(true);
    expect(NOW.getTime() + 10_000 - ticking.lastAttemptAt().getTime()).toBeLessThanOrEqual(500);
    await ticking.stop({ release: false });

    const wedged = start(api({ hang: true }));
    const started = wedged.lastAttemptAt();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(wedged.lastAttemptAt()).toEqual(started);
    expect(leaderLiveness(wedged.lastAttemptAt(), new Date(), leaderStallMs({ leaseDurationMs: 3_000, retryPeriodMs: 500 }, 2_000))).toEqual({
      ok: false,
      reason: 'leader election loop has not run for 60 s',
    });
    // stop() waits up to renewDeadline for the attempt in flight.
    const stopped = wedged.stop({ release: false });
    await vi.advanceTimersByTimeAsync(2_000);
    await stopped;
  });
});
