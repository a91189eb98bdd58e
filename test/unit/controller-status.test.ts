import type { V1Deployment } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { DatabaseBackup } from '../../api/crds/index.js';
import {
  accessChanged,
  archivesWal,
  backupCondition,
  backupEvent,
  classStatus,
  controllerStatus,
  desiredConditions,
  fitMessage,
  MAX_CONDITION_MESSAGE,
  pitrChanged,
  pitrCondition,
  problemEvent,
  stableRefusal,
  statusUpToDate,
  storedProblem,
  type Problem,
} from '../../controller/status.js';

const NOW = new Date('2026-11-21T10:00:00.123Z');
const backup = (status?: DatabaseBackup['status']): DatabaseBackup =>
  ({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackup', metadata: { name: 'orders', namespace: 'shop', generation: 3 }, spec: {}, status }) as unknown as DatabaseBackup;
const deployment = (status: V1Deployment['status']): V1Deployment => ({ metadata: { name: 'orders-runner' }, status });

describe('desiredConditions', () => {
  it('a revoked runner: RunnerAvailable says so instead of "not created yet"', () => {
    const c = desiredConditions({ problem: { reason: 'NamespaceNotAllowed', message: 'namespace "a" is not allowed' }, revoked: true, now: NOW });
    expect(c.find((x) => x.type === 'RunnerAvailable')).toMatchObject({ status: 'False', reason: 'RunnerRevoked' });
    expect(c.find((x) => x.type === 'Ready')).toMatchObject({ status: 'False', reason: 'NamespaceNotAllowed' });
  });

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
    expect(c.map((x) => x.type)).toEqual(['Ready', 'ConfigValid', 'RunnerAvailable', 'LastBackupSucceeded']);
    expect(c.map((x) => x.status)).toEqual([...statuses, 'Unknown']);
    expect(c[0]!.reason).toBe(readyReason);
  });
});

type Last = NonNullable<NonNullable<DatabaseBackup['status']>['lastBackup']>;
const last = (status: Last['status'], extra: Partial<Last> = {}): Last => ({ id: '20261121T020000Z-ab12', status, startedAt: '2026-11-21T02:00:00Z', ...(status === 'Running' ? {} : { finishedAt: '2026-11-21T02:04:00Z' }), ...extra });
const stored = (status: 'True' | 'False' | 'Unknown', reason: string, message: string) => ({ type: 'LastBackupSucceeded', status, reason, message, lastTransitionTime: '2026-11-20T02:04:00Z' });

describe('backupCondition', () => {
  it.each<[string, Last | undefined, ReturnType<typeof stored> | undefined, string, string, string]>([
    ['nothing ran yet', undefined, undefined, 'Unknown', 'NoBackupYet', 'no backup has run yet'],
    ['the first backup runs', last('Running'), undefined, 'Unknown', 'FirstBackupRunning', 'backup 20261121T020000Z-ab12 is running since 2026-11-21T02:00:00Z'],
    ['succeeded', last('Succeeded'), undefined, 'True', 'Succeeded', 'backup 20261121T020000Z-ab12 finished at 2026-11-21T02:04:00Z and is stored in every location'],
    [
      'partially succeeded: which locations it missed',
      last('PartiallySucceeded', { message: 'not stored in s3 (STORAGE_DENIED: access denied)' }),
      undefined,
      'False',
      'PartiallySucceeded',
      'backup 20261121T020000Z-ab12 finished at 2026-11-21T02:04:00Z but not stored in s3 (STORAGE_DENIED: access denied)',
    ],
    [
      'failed: why',
      last('Failed', { message: 'DUMP_FAILED: pg_dump: password authentication failed' }),
      undefined,
      'False',
      'BackupFailed',
      'backup 20261121T020000Z-ab12 failed at 2026-11-21T02:04:00Z: DUMP_FAILED: pg_dump: password authentication failed',
    ],
    ['failed, from a runner that gives no reason', last('Failed'), undefined, 'False', 'BackupFailed', 'backup 20261121T020000Z-ab12 failed at 2026-11-21T02:04:00Z: see the runner log'],
    ['a new backup runs after a failure: still False, as before', last('Running'), stored('False', 'BackupFailed', 'backup x failed'), 'False', 'BackupFailed', 'backup x failed'],
    ['a new backup runs after a success: still True', last('Running'), stored('True', 'Succeeded', 'backup x finished'), 'True', 'Succeeded', 'backup x finished'],
  ])('%s', (_name, l, before, status, reason, message) => {
    expect(backupCondition(l, before)).toEqual({ type: 'LastBackupSucceeded', status, reason, message });
  });
});

describe('backupEvent', () => {
  const withStatus = (l: Last | undefined, before?: ReturnType<typeof stored>) => backup({ ...(l ? { lastBackup: l } : {}), conditions: before ? [before] : [] });
  const failed = last('Failed', { message: 'DUMP_FAILED: boom' });
  const failedCondition = backupCondition(failed);
  it.each<[string, DatabaseBackup, string | undefined]>([
    ['nothing ran: none', withStatus(undefined), undefined],
    ['the first success', withStatus(last('Succeeded')), 'Normal BackupSucceeded'],
    ['another success: none', withStatus(last('Succeeded'), stored('True', 'Succeeded', 'backup y finished')), undefined],
    ['a failure', withStatus(failed, stored('True', 'Succeeded', 'backup y finished')), 'Warning BackupFailed'],
    ['the same failure seen again: none', withStatus(failed, stored('False', failedCondition.reason, failedCondition.message)), undefined],
    ['another failure (another id)', withStatus({ ...failed, id: 'z' }, stored('False', failedCondition.reason, failedCondition.message)), 'Warning BackupFailed'],
    ['a partial success', withStatus(last('PartiallySucceeded', { message: 'not stored in s3' })), 'Warning PartiallySucceeded'],
    ['success after failures', withStatus(last('Succeeded'), stored('False', 'BackupFailed', 'backup x failed')), 'Normal BackupRecovered'],
    ['a backup runs after a failure: none', withStatus(last('Running'), stored('False', 'BackupFailed', 'backup x failed')), undefined],
  ])('%s', (_name, b, expected) => {
    const e = backupEvent(b);
    expect(e ? `${e.type} ${e.reason}` : undefined).toBe(expected);
  });
});

type Recovery = NonNullable<NonNullable<DatabaseBackup['status']>['recovery']>;
const recovery = (extra: Partial<Recovery> = {}): Recovery => ({
  walArchiving: 'Streaming',
  recoverableFrom: '2026-11-14T02:03:41.530Z',
  recoverableUntil: '2026-11-21T10:41:00Z',
  timeline: 1,
  lastSegment: '00000001000000A2000000F3',
  gaps: 0,
  ...extra,
});
const without = (key: keyof Recovery): Recovery => {
  const r = recovery();
  delete r[key];
  return r;
};

describe('archivesWal: the spec asks for continuous WAL archiving', () => {
  type Pg = Record<string, unknown>;
  const spec = (postgresql: Pg | undefined, type = 'postgresql') => ({ engine: { type, ...(postgresql ? { postgresql } : {}) } }) as unknown as DatabaseBackup['spec'];
  it.each<[string, DatabaseBackup['spec'] | undefined, boolean]>([
    ['physical, wal not set (archive defaults to true)', spec({ mode: 'physical' }), true],
    ['physical, wal.archive true', spec({ mode: 'physical', wal: { archive: true } }), true],
    ['physical, wal set without archive', spec({ mode: 'physical', wal: { partialSeconds: 30 } }), true],
    ['physical, wal.archive false', spec({ mode: 'physical', wal: { archive: false } }), false],
    ['logical (the default)', spec({}), false],
    ['logical, with a wal block (ignored)', spec({ mode: 'logical', wal: { archive: true } }), false],
    ['mysql', spec(undefined, 'mysql'), false],
    ['a command engine', spec(undefined, 'command'), false],
    ['no spec', undefined, false],
  ])('%s', (_name, s, expected) => {
    expect(archivesWal(s)).toBe(expected);
  });
});

describe('pitrCondition: PITRReady from status.recovery', () => {
  it.each<[string, boolean, Recovery | undefined, string, string, RegExp]>([
    ['streaming, no gap, a window', true, recovery(), 'True', 'WALStreaming', /^WAL is streaming with no gap: a point-in-time recovery reaches any instant from recoverableFrom to recoverableUntil/],
    ['one gap', true, recovery({ gaps: 1 }), 'False', 'WALGapDetected', /^1 stretch of WAL found missing since the runner started \(status.recovery.gaps\): a point-in-time recovery cannot cross it, so not every instant/],
    ['three gaps', true, recovery({ gaps: 3 }), 'False', 'WALGapDetected', /^3 stretches of WAL .* cannot cross them, .*takes a base backup at once after a gap .* stay until the runner restarts$/],
    [
      'restarting: the runner\'s message',
      true,
      recovery({ walArchiving: 'Restarting', message: 'DB_AUTH_FAILED: pg_receivewal: no pg_hba.conf entry for replication connection' }),
      'False',
      'WALArchivingRestarting',
      /^the WAL archiver failed and the runner restarts it: DB_AUTH_FAILED: pg_receivewal: no pg_hba.conf entry for replication connection; the recoverable window does not grow until it streams again$/,
    ],
    ['restarting without a message', true, recovery({ walArchiving: 'Restarting' }), 'False', 'WALArchivingRestarting', /restarts it: see the runner log;/],
    ['restarting with a gap: both said', true, recovery({ walArchiving: 'Restarting', message: 'X: y', gaps: 2 }), 'False', 'WALArchivingRestarting', /restarts it: X: y; .*; 2 stretches of WAL found missing/],
    ['stopped: a stale runner message is not repeated', true, recovery({ walArchiving: 'Stopped', message: 'X: an old failure' }), 'False', 'WALArchivingStopped', /^the runner reports the WAL archiver stopped: the recoverable window does not grow until it streams again$/],
    ['streaming, no base backup yet', true, without('recoverableFrom'), 'False', 'NoBaseBackup', /no base backup is stored yet/],
    [
      'a location stored nothing for 5 minutes while another did',
      true,
      recovery({ locations: [{ name: 'fs', lastStoredAt: '2026-12-04T10:10:00Z' }, { name: 's3', lastStoredAt: '2026-12-04T10:05:00Z' }] }),
      'False',
      'LocationBehind',
      /^location "s3" stored no WAL for 5 minutes or more while another did/,
    ],
    ['a location that stored nothing since the runner started while another did', true, recovery({ locations: [{ name: 'fs', lastStoredAt: '2026-12-04T10:10:00Z' }, { name: 's3' }] }), 'False', 'LocationBehind', /^location "s3" stored no WAL/],
    ['locations a few minutes apart: none behind', true, recovery({ locations: [{ name: 'fs', lastStoredAt: '2026-12-04T10:10:00Z' }, { name: 's3', lastStoredAt: '2026-12-04T10:06:00Z' }] }), 'True', 'WALStreaming', /^WAL is streaming/],
    ['an idle server: nothing stored anywhere since the start, none behind', true, recovery({ locations: [{ name: 'fs' }, { name: 's3' }] }), 'True', 'WALStreaming', /^WAL is streaming/],
    ['streaming, nothing stored in every location yet', true, without('recoverableUntil'), 'False', 'NoWALArchived', /none is reported stored in every location yet/],
    ['gaps not reported counts as none', true, without('gaps'), 'True', 'WALStreaming', /^WAL is streaming/],
    ['the spec asks, nothing reported yet', true, undefined, 'Unknown', 'NotReported', /^the spec archives WAL but the runner has not reported status.recovery yet$/],
  ])('%s', (_name, walArchive, r, status, reason, message) => {
    const c = pitrCondition(walArchive, r);
    expect(c).toMatchObject({ type: 'PITRReady', status, reason });
    expect(c!.message).toMatch(message);
  });

  it('no condition without WAL archiving (neither the spec nor the runner says so)', () => {
    expect(pitrCondition(false, undefined)).toBeUndefined();
  });

  it('names no instant, so the window advancing changes nothing', () => {
    for (const r of [recovery(), recovery({ gaps: 2 }), recovery({ walArchiving: 'Stopped' }), recovery({ walArchiving: 'Restarting', message: 'x' })]) {
      expect(pitrCondition(true, r)!.message).not.toMatch(/2026-/);
    }
  });
});

describe('pitrChanged: the runner\'s reports that make the controller write PITRReady', () => {
  it.each<[string, boolean, Recovery | undefined, Recovery | undefined, boolean]>([
    ['the window advances', true, recovery(), recovery({ recoverableUntil: '2026-11-21T10:42:00Z', lastSegment: '00000001000000A2000000F4' }), false],
    ['the oldest base backup goes (retention)', true, recovery(), recovery({ recoverableFrom: '2026-11-15T02:03:41.530Z' }), false],
    ['the same report', true, recovery(), recovery(), false],
    ['the first report', true, undefined, recovery(), true],
    ['a gap', true, recovery(), recovery({ gaps: 1 }), true],
    ['another gap', true, recovery({ gaps: 1 }), recovery({ gaps: 2 }), true],
    ['the archiver restarts', true, recovery(), recovery({ walArchiving: 'Restarting', message: 'X: y' }), true],
    ['it fails for another reason', true, recovery({ walArchiving: 'Restarting', message: 'X: y' }), recovery({ walArchiving: 'Restarting', message: 'X: z' }), true],
    ['it streams again (a stale message left behind)', true, recovery({ walArchiving: 'Restarting', message: 'X: y' }), recovery({ message: 'X: y' }), true],
    ['the first window', true, without('recoverableUntil'), recovery(), true],
    ['no archiving, nothing reported', false, undefined, undefined, false],
  ])('%s', (_name, walArchive, before, now, expected) => {
    expect(pitrChanged(walArchive, before, now)).toBe(expected);
  });
});

describe('PITRReady among the conditions', () => {
  const available = deployment({ availableReplicas: 1 });
  it.each<[string, boolean, Recovery | undefined, string[]]>([
    ['without WAL archiving: four conditions', false, undefined, ['Ready', 'ConfigValid', 'RunnerAvailable', 'LastBackupSucceeded']],
    ['the spec archives WAL: a fifth, last', true, undefined, ['Ready', 'ConfigValid', 'RunnerAvailable', 'LastBackupSucceeded', 'PITRReady']],
    ['a report left from when the spec archived WAL: none (it says nothing of now)', false, recovery({ walArchiving: 'Stopped' }), ['Ready', 'ConfigValid', 'RunnerAvailable', 'LastBackupSucceeded']],
  ])('%s', (_name, walArchive, r, types) => {
    const c = desiredConditions({ deployment: available, ...(walArchive ? { walArchive } : {}), ...(r ? { recovery: r } : {}), now: NOW });
    expect(c.map((x) => x.type)).toEqual(types);
  });

  it.each<[string, Recovery]>([
    ['a gap', recovery({ gaps: 1 })],
    ['the archiver restarting', recovery({ walArchiving: 'Restarting', message: 'X: y' })],
    ['the archiver stopped', recovery({ walArchiving: 'Stopped' })],
  ])('Ready does not follow PITRReady: %s', (_name, r) => {
    const c = desiredConditions({ deployment: available, walArchive: true, recovery: r, now: NOW });
    expect(c.find((x) => x.type === 'PITRReady')!.status).toBe('False');
    expect(c.find((x) => x.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Ready' });
  });

  it('keeps its transition time while its status holds, also across reasons; a new one when it changes', () => {
    const at = (iso: string) => new Date(iso);
    const streaming = controllerStatus(backup(), { walArchive: true, recovery: recovery(), now: NOW });
    const pitr = (s: { conditions: { type: string; status: string; reason: string; lastTransitionTime: string }[] }) => s.conditions.find((c) => c.type === 'PITRReady')!;
    expect(pitr(streaming)).toMatchObject({ status: 'True', lastTransitionTime: '2026-11-21T10:00:00Z', observedGeneration: 3 });
    const advanced = controllerStatus(backup(streaming), { walArchive: true, recovery: recovery({ recoverableUntil: '2026-11-21T11:00:00Z' }), now: at('2026-11-21T11:00:00Z') });
    expect(statusUpToDate(backup(streaming), advanced)).toBe(true);
    const gap = controllerStatus(backup(streaming), { walArchive: true, recovery: recovery({ gaps: 1 }), now: at('2026-11-21T12:00:00Z') });
    expect(statusUpToDate(backup(streaming), gap)).toBe(false);
    expect(pitr(gap)).toMatchObject({ status: 'False', reason: 'WALGapDetected', lastTransitionTime: '2026-11-21T12:00:00Z' });
    expect(gap.conditions.find((c) => c.type === 'Ready')!.lastTransitionTime).toBe('2026-11-21T10:00:00Z');
    const restarting = controllerStatus(backup(gap), { walArchive: true, recovery: recovery({ gaps: 1, walArchiving: 'Restarting', message: 'X: y' }), now: at('2026-11-21T13:00:00Z') });
    expect(statusUpToDate(backup(gap), restarting)).toBe(false);
    expect(pitr(restarting)).toMatchObject({ status: 'False', reason: 'WALArchivingRestarting', lastTransitionTime: '2026-11-21T12:00:00Z' });
    expect(statusUpToDate(backup(restarting), controllerStatus(backup(restarting), { walArchive: true, recovery: recovery({ gaps: 1, walArchiving: 'Restarting', message: 'X: y' }), now: at('2026-11-21T14:00:00Z') }))).toBe(true);
  });

  it('statusUpToDate sees the condition appear and go (the number of conditions varies)', () => {
    const four = controllerStatus(backup(), { now: NOW });
    const five = controllerStatus(backup(four), { walArchive: true, now: NOW });
    expect(four.conditions).toHaveLength(4);
    expect(five.conditions).toHaveLength(5);
    expect(statusUpToDate(backup(four), five)).toBe(false);
    expect(statusUpToDate(backup(five), five)).toBe(true);
    // Archiving turned off before the runner reported anything: the stored PITRReady goes (a merge patch replaces the list whole).
    const again = controllerStatus(backup(five), { now: NOW });
    expect(again.conditions.map((c) => c.type)).not.toContain('PITRReady');
    expect(statusUpToDate(backup(five), again)).toBe(false);
    expect(statusUpToDate(backup(four), again)).toBe(true);
  });

  it('NotReported, then the first report: a new transition time', () => {
    const waiting = controllerStatus(backup(), { walArchive: true, now: NOW });
    expect(waiting.conditions.at(-1)).toMatchObject({ type: 'PITRReady', status: 'Unknown', reason: 'NotReported' });
    const first = controllerStatus(backup(waiting), { walArchive: true, recovery: without('recoverableFrom'), now: new Date('2026-11-21T10:05:00Z') });
    expect(first.conditions.at(-1)).toMatchObject({ type: 'PITRReady', status: 'False', reason: 'NoBaseBackup', lastTransitionTime: '2026-11-21T10:05:00Z' });
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

describe('status.credentials', () => {
  const access = [{ location: 'offsite', source: 'DatabaseBackup' as const, readableBy: 'this namespace\'s own keys (Secret shop/own-s3) ...' }];
  it('is written when it changes, and then the status is up to date', () => {
    const b = backup();
    const desired = controllerStatus(b, { access, now: NOW });
    expect(desired.credentials).toEqual(access);
    expect(statusUpToDate({ status: { observedGeneration: 3, conditions: desired.conditions } }, desired)).toBe(false);
    expect(statusUpToDate({ status: { observedGeneration: 3, conditions: desired.conditions, credentials: access } }, desired)).toBe(true);
    expect(accessChanged(access, access)).toBe(false);
    expect(accessChanged(undefined, access)).toBe(true);
    expect(accessChanged(access, [])).toBe(true);
  });
  it('is left alone when the facts do not say (a runner on its last good config)', () => {
    const desired = controllerStatus(backup(), { now: NOW });
    expect(desired).not.toHaveProperty('credentials');
    expect(statusUpToDate({ status: { observedGeneration: 3, conditions: desired.conditions, credentials: access } }, desired)).toBe(true);
  });
});

describe('problemEvent: one Event per problem, one when it is gone', () => {
  const missing: Problem = { reason: 'SecretNotFound', message: 'secret "minio" not found' };
  const other: Problem = { reason: 'SecretNotFound', message: 'secret "gcs" not found' };
  it.each<[string, Problem | undefined | null, Problem | undefined, string | undefined]>([
    ['a new object without a problem: none', null, undefined, undefined],
    ['a new object with a problem: a Warning', null, missing, 'Warning SecretNotFound secret "minio" not found'],
    ['healthy and still healthy: none', undefined, undefined, undefined],
    ['a problem appears: a Warning', undefined, missing, 'Warning SecretNotFound secret "minio" not found'],
    ['the same problem continues: none', missing, missing, undefined],
    ['the same reason with another message: a Warning', missing, other, 'Warning SecretNotFound secret "gcs" not found'],
    ['the problem is gone: a Normal recovery naming it', missing, undefined, 'Normal Recovered 2 locations (was SecretNotFound: secret "minio" not found)'],
  ])('%s', (_name, before, now, expected) => {
    const e = problemEvent(before, now, '2 locations');
    expect(e ? `${e.type} ${e.reason} ${e.message}` : undefined).toBe(expected);
  });

  it('reads the last reported problem from a stored condition', () => {
    const c = (status: 'True' | 'False') => ({ status, reason: 'SecretNotFound', message: 'secret "minio" not found' });
    expect(storedProblem(undefined)).toBeNull();
    expect(storedProblem(c('True'))).toBeUndefined();
    expect(storedProblem(c('False'))).toEqual(missing);
  });
});

describe('a message longer than a condition may hold (a hostile spec with thousands of errors)', () => {
  const huge: Problem = { reason: 'ApplyFailed', message: `apply Deployment shop/orders-runner failed: HTTP 422: ${'spec.template.metadata.labels: Invalid value; '.repeat(2000)}` };
  it('is cut to fit and says how much was left out, so the status can be written', () => {
    const m = fitMessage(huge.message);
    expect(m.length).toBeLessThanOrEqual(MAX_CONDITION_MESSAGE);
    expect(m).toMatch(/^apply Deployment shop\/orders-runner failed: HTTP 422: /);
    expect(m).toMatch(/ \.\.\. \(\d+ more characters\)$/);
    expect(fitMessage('short')).toBe('short');
    const status = controllerStatus(backup(), { problem: huge, now: NOW });
    expect(status.conditions.every((c) => c.message.length <= MAX_CONDITION_MESSAGE)).toBe(true);
    expect(classStatus({ metadata: {} }, huge, 1, NOW).conditions[0]!.message).toBe(m);
  });
  it('read back from the stored condition, it is the same problem: no second Warning', () => {
    const stored = controllerStatus(backup(), { problem: huge, now: NOW }).conditions.find((c) => c.type === 'ConfigValid');
    expect(problemEvent(storedProblem(stored), huge, 'ok')).toBeUndefined();
  });
});

describe('stableRefusal', () => {
  const head = 'apply Deployment shop/orders-runner failed: HTTP 422: Deployment.apps "orders-runner" is invalid: ';
  const a = 'spec.template.metadata.labels: Invalid value: "a b": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\'';
  const b = 'spec.template.metadata.labels: Invalid value: "c d": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\'';
  const c = 'metadata.labels[x]: Invalid value: "y"';
  it.each([
    ['the same errors in another order read the same', `${head}[${b}, ${c}, ${a}]`, `${head}[${c}, ${a}, ${b}]`],
    ['one error (no list) is kept', `${head}${a}`, `${head}${a}`],
    ['another message is kept', 'HTTP 500: etcdserver: request timed out', 'HTTP 500: etcdserver: request timed out'],
  ])('%s', (_name, message, expected) => {
    expect(stableRefusal(message)).toBe(expected);
  });
});
