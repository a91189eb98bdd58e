/**
 * Leader election against a real kube-apiserver 1.20: two candidates race for
 * one Lease, a released lease is taken over within a retry period, and a
 * leader that vanishes without releasing is replaced once its lease expires.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLeaderElection, type LeaderElection, type StoppedReason } from '../../controller/leader.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';

const NAMESPACE = 'leader-test';
const LEASE = 'db-backup-controller';
const timings = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };

interface Candidate {
  identity: string;
  election: LeaderElection;
  stopped: StoppedReason[];
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('leader election on kube-apiserver 1.20', () => {
  let kube: KubeInstance | undefined;
  let kubeConfig: KubeConfig;
  const candidates: Candidate[] = [];

  function candidate(identity: string): Candidate {
    const c: Candidate = { identity, stopped: [], election: undefined as unknown as LeaderElection };
    c.election = startLeaderElection({
      kubeConfig,
      namespace: NAMESPACE,
      name: LEASE,
      identity,
      ...timings,
      logger: pino({ level: process.env.LOG_LEVEL ?? 'silent' }),
      onStartedLeading: () => undefined,
      onStoppedLeading: (reason) => void c.stopped.push(reason),
    });
    candidates.push(c);
    return c;
  }

  const leaders = () => candidates.filter((c) => c.election.isLeader()).map((c) => c.identity);
  const leaseSpec = async () =>
    (JSON.parse(await kube!.kubectlOk(['get', 'lease', LEASE, '-n', NAMESPACE, '-o', 'json'])) as { spec: Record<string, unknown> }).spec;

  beforeAll(async () => {
    kubeBinaries();
    kube = await startKube({ controllerManager: false });
    await kube.kubectlOk(['create', 'namespace', NAMESPACE]);
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kube.kubeconfigPath);
  });

  afterAll(async () => {
    for (const c of candidates) await c.election.stop({ release: false });
    await kube?.stop();
  });

  it('elects exactly one of two candidates, hands over on release, and replaces a vanished leader after the lease expires', async () => {
    const a = candidate('controller-a');
    const b = candidate('controller-b');
    const first = await waitFor('a leader', () => leaders()[0], 5_000);
    // Several retry periods: the other candidate keeps waiting, nobody else leads.
    await new Promise((r) => setTimeout(r, 4 * timings.retryPeriodMs));
    expect(leaders()).toEqual([first]);
    const spec1 = await leaseSpec();
    expect(spec1).toMatchObject({ holderIdentity: first, leaseDurationSeconds: 3, leaseTransitions: 0 });
    expect(spec1.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(spec1.acquireTime).toMatch(/\.\d{6}Z$/);

    // 1. The leader stops and releases: the other leads within about a retry period, before the lease would expire.
    const [leader, other] = first === a.identity ? [a, b] : [b, a];
    const released = performance.now();
    await leader.election.stop();
    expect(leader.stopped).toEqual(['stopped']);
    await waitFor(`${other.identity} to lead`, () => (other.election.isLeader() ? true : undefined), 3_000);
    const handover = performance.now() - released;
    // Without the release it would wait for the lease to expire (3 s); the margin absorbs a loaded machine.
    expect(handover).toBeLessThan(timings.leaseDurationMs);
    expect(await leaseSpec()).toMatchObject({ holderIdentity: other.identity, leaseTransitions: 1 });

    // 2. The new leader vanishes without releasing (its renew loop stops): a third candidate waits for the lease to expire.
    const c = candidate('controller-c');
    await new Promise((r) => setTimeout(r, 2 * timings.retryPeriodMs));
    expect(leaders()).toEqual([other.identity]);
    const renewedAt = Date.parse((await leaseSpec()).renewTime as string);
    await other.election.stop({ release: false });
    const killed = performance.now();
    await waitFor('controller-c to lead', () => (c.election.isLeader() ? true : undefined), timings.leaseDurationMs + 3_000);
    const takeover = performance.now() - killed;
    const spec3 = await leaseSpec();
    expect(spec3).toMatchObject({ holderIdentity: 'controller-c', leaseTransitions: 2 });
    // Not before the lease of the vanished leader expired, and within a retry period (plus jitter and latency) after.
    expect(Date.parse(spec3.acquireTime as string)).toBeGreaterThan(renewedAt + timings.leaseDurationMs);
    expect(takeover).toBeLessThan(timings.leaseDurationMs + timings.retryPeriodMs * 2 + 1_000);
    console.log(`handover after release: ${Math.round(handover)} ms; takeover after a vanished leader: ${Math.round(takeover)} ms`);
  });
});
