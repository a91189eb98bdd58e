import type { V1Deployment } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { DatabaseBackup } from '../../api/crds/index.js';
import { classStatus, controllerStatus, desiredConditions, statusUpToDate } from '../../controller/status.js';

const NOW = new Date('2026-11-21T10:00:00.123Z');
const backup = (status?: DatabaseBackup['status']): DatabaseBackup =>
  ({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackup', metadata: { name: 'orders', namespace: 'shop', generation: 3 }, spec: {}, status }) as unknown as DatabaseBackup;
const deployment = (status: V1Deployment['status']): V1Deployment => ({ metadata: { name: 'orders-runner' }, status });

describe('desiredConditions', () => {
  it.each([
    ['no Deployment yet', undefined, undefined, ['False', 'True', 'False'], 'RunnerNotCreated'],
    ['available', undefined, deployment({ availableReplicas: 1 }), ['True', 'True', 'True'], 'Ready'],
    ['not available yet', undefined, deployment({ availableReplicas: 0 }), ['False', 'True', 'False'], 'RunnerUnavailable'],
    [
      'rollout stuck',
      undefined,
      deployment({ conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet has timed out progressing.' }] }),
      ['False', 'True', 'False'],
      'RolloutFailed',
    ],
    ['a problem wins over an available runner', { reason: 'SecretNotFound', message: 'secret "x" not found' }, deployment({ availableReplicas: 1 }), ['False', 'False', 'True'], 'SecretNotFound'],
  ])('%s', (_name, problem, dep, statuses, readyReason) => {
    const c = desiredConditions({ ...(problem ? { problem } : {}), ...(dep ? { deployment: dep } : {}), now: NOW });
    expect(c.map((x) => x.type)).toEqual(['Ready', 'ConfigValid', 'RunnerAvailable']);
    expect(c.map((x) => x.status)).toEqual(statuses);
    expect(c[0]!.reason).toBe(readyReason);
  });
});

describe('controllerStatus / statusUpToDate', () => {
  it('stamps generation and second-precision times; keeps a transition time while the status holds', () => {
    const first = controllerStatus(backup(), { now: NOW });
    expect(first.observedGeneration).toBe(3);
    expect(first.conditions.every((c) => c.lastTransitionTime === '2026-11-21T10:00:00Z' && c.observedGeneration === 3)).toBe(true);
    const later = controllerStatus(backup(first), { now: new Date('2026-11-21T11:00:00Z') });
    expect(later.conditions.map((c) => c.lastTransitionTime)).toEqual(first.conditions.map((c) => c.lastTransitionTime));
    expect(statusUpToDate(backup(first), later)).toBe(true);
    const changed = controllerStatus(backup(first), { deployment: deployment({ availableReplicas: 1 }), now: new Date('2026-11-21T11:00:00Z') });
    expect(statusUpToDate(backup(first), changed)).toBe(false);
    expect(changed.conditions.find((c) => c.type === 'Ready')!.lastTransitionTime).toBe('2026-11-21T11:00:00Z');
    expect(changed.conditions.find((c) => c.type === 'ConfigValid')!.lastTransitionTime).toBe('2026-11-21T10:00:00Z');
  });

  it('a new generation is not up to date', () => {
    const s = controllerStatus(backup(), { now: NOW });
    expect(statusUpToDate(backup({ ...s, observedGeneration: 2 }), s)).toBe(false);
  });
});

describe('classStatus', () => {
  it.each([
    [undefined, 3, 'True', 'Valid', '3 locations, every referenced Secret key present'],
    [undefined, 1, 'True', 'Valid', '1 location, every referenced Secret key present'],
    [{ reason: 'SecretNotFound', message: 'secret "minio" not found' }, 2, 'False', 'SecretNotFound', 'secret "minio" not found'],
  ])('%j', (problem, n, status, reason, message) => {
    expect(classStatus({ metadata: { generation: 1 } }, problem, n, NOW).conditions).toEqual([
      { type: 'Ready', status, reason, message, lastTransitionTime: '2026-11-21T10:00:00Z', observedGeneration: 1 },
    ]);
  });
});
