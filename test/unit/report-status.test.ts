import { FormatRegistry } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { DatabaseBackupStatus } from '../../api/crds/database-backup.js';
import { realClock } from '../../runner/daemon/clock.js';
import { BackupError } from '../../runner/errors.js';
import { silentLogger } from '../../runner/logger.js';
import { StatusReporter, type StatusSink } from '../../runner/report/reporter.js';
import {
  buildStatusPatch,
  MESSAGE_LIMIT,
  settleStaleRunning,
  storedIn,
  type LastBackupStatus,
  type ListingFact,
  type ReportFacts,
  type RunnerStatusPatch,
} from '../../runner/report/status.js';
import { classifyStatus } from '../../runner/report/kube.js';

// RFC 3339 as the API server checks `format: date-time` (TypeBox knows no formats by itself).
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v));

const T0 = '2026-11-21T03:00:00.000Z';
const at = (iso: string): Date => new Date(iso);
const listed = (id: string, finishedAt: string, locations: string[], startedAt = finishedAt) => ({ id, manifest: { startedAt, consistentAt: startedAt, finishedAt }, locations });
const err = (code: string, message = 'boom') => ({ code, message });

const base: ReportFacts = { startedAt: at(T0), locations: ['fs', 's3'] };
const facts = (f: Partial<ReportFacts>): ReportFacts => ({ ...base, ...f });

const twoBackups: ListingFact = {
  backups: [listed('a', '2026-11-20T03:01:00.000Z', ['fs', 's3']), listed('b', '2026-11-21T02:01:00.000Z', ['fs'])],
  problems: [],
};

describe('storedIn', () => {
  it.each([
    ['fs', { backupsStored: 2, lastSuccessAt: '2026-11-21T02:01:00.000Z', backupsBehind: 0 }],
    // s3 lacks the newer backup fs holds: one behind, since that backup.
    ['s3', { backupsStored: 1, lastSuccessAt: '2026-11-20T03:01:00.000Z', backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z' }],
    // A location added later lacks all of them, since the oldest.
    ['gcs', { backupsStored: 0, backupsBehind: 2, behindSince: '2026-11-20T03:01:00.000Z' }],
  ])('%s -> %o', (location, expected) => {
    expect(storedIn(twoBackups, location)).toEqual(expected);
  });

  it('takes the latest finish, whatever the listing order', () => {
    const l: ListingFact = { backups: [listed('y', '2026-01-02T00:00:00Z', ['fs']), listed('x', '2026-01-01T00:00:00Z', ['fs'])], problems: [] };
    expect(storedIn(l, 'fs').lastSuccessAt).toBe('2026-01-02T00:00:00Z');
  });
});

describe('buildStatusPatch', () => {
  const finishedAt = at('2026-11-21T03:05:00.000Z');
  const finished = (status: 'Succeeded' | 'PartiallySucceeded' | 'Failed', s3: 'Succeeded' | 'Failed' = status === 'Succeeded' ? 'Succeeded' : 'Failed') => ({
    id: 'c',
    status,
    startedAt: at(T0),
    finishedAt,
    locations: [
      { location: 'fs', status: status === 'Failed' ? ('Failed' as const) : ('Succeeded' as const), ...(status === 'Failed' ? { error: err('DUMP_FAILED', 'pg_dump exited 1') } : {}) },
      { location: 's3', status: s3, ...(s3 === 'Failed' ? { error: err('STORAGE_DENIED', 'access denied') } : {}) },
    ],
  });

  it.each<[string, ReportFacts, RunnerStatusPatch]>([
    [
      'at start, before the first listing: nothing known but the schedule',
      facts({ nextRunAt: at('2026-11-22T02:00:00Z') }),
      { nextRunAt: '2026-11-22T02:00:00.000Z', locations: [{ name: 'fs', state: 'Unknown' }, { name: 's3', state: 'Unknown' }] },
    ],
    [
      'at start, from the first listing: counts, newest per location, last success; no lastBackup',
      facts({ listing: twoBackups, nextRunAt: at('2026-11-22T02:00:00Z') }),
      {
        lastSuccessAt: '2026-11-21T02:01:00.000Z',
        nextRunAt: '2026-11-22T02:00:00.000Z',
        locations: [
          { name: 'fs', state: 'Ready', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T02:01:00.000Z' },
          { name: 's3', state: 'Ready', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-20T03:01:00.000Z' },
        ],
      },
    ],
    [
      'a backup runs: Running, finishedAt removed, no schedule: nextRunAt removed',
      facts({ listing: twoBackups, running: { id: 'c', startedAt: at(T0) } }),
      {
        lastBackup: { id: 'c', status: 'Running', startedAt: T0, finishedAt: null, message: null },
        lastSuccessAt: '2026-11-21T02:01:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Ready', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T02:01:00.000Z' },
          { name: 's3', state: 'Ready', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-20T03:01:00.000Z' },
        ],
      },
    ],
    [
      'it succeeded, before the listing is refreshed: success times from the outcome, counts from the last listing',
      facts({ listing: twoBackups, finished: finished('Succeeded') }),
      {
        lastBackup: { id: 'c', status: 'Succeeded', startedAt: T0, finishedAt: '2026-11-21T03:05:00.000Z', message: null },
        lastSuccessAt: '2026-11-21T03:05:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Ready', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T03:05:00.000Z' },
          { name: 's3', state: 'Ready', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-21T03:05:00.000Z' },
        ],
      },
    ],
    [
      'it partially succeeded: the failed location is Failing with the reason, its success time is the older one',
      facts({ listing: twoBackups, finished: finished('PartiallySucceeded') }),
      {
        lastBackup: { id: 'c', status: 'PartiallySucceeded', startedAt: T0, finishedAt: '2026-11-21T03:05:00.000Z', message: 'not stored in s3 (STORAGE_DENIED: access denied)' },
        lastSuccessAt: '2026-11-21T03:05:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Ready', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T03:05:00.000Z' },
          { name: 's3', state: 'Failing', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-20T03:01:00.000Z', message: 'last backup failed here: STORAGE_DENIED: access denied' },
        ],
      },
    ],
    [
      'it failed: lastSuccessAt stays the newest stored backup',
      facts({ listing: twoBackups, finished: finished('Failed') }),
      {
        lastBackup: {
          id: 'c',
          status: 'Failed',
          startedAt: T0,
          finishedAt: '2026-11-21T03:05:00.000Z',
          message: 'failed in every location: fs (DUMP_FAILED: pg_dump exited 1), s3 (STORAGE_DENIED: access denied)',
        },
        lastSuccessAt: '2026-11-21T02:01:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Failing', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T02:01:00.000Z', message: 'last backup failed here: DUMP_FAILED: pg_dump exited 1' },
          { name: 's3', state: 'Failing', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-20T03:01:00.000Z', message: 'last backup failed here: STORAGE_DENIED: access denied' },
        ],
      },
    ],
    [
      'a location that cannot be listed: Failing, no count',
      facts({ listing: { backups: twoBackups.backups, problems: [{ location: 's3', error: err('STORAGE_UNAVAILABLE', 'connect ECONNREFUSED') }] } }),
      {
        lastSuccessAt: '2026-11-21T02:01:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Ready', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T02:01:00.000Z' },
          { name: 's3', state: 'Failing', message: 'could not be listed: STORAGE_UNAVAILABLE: connect ECONNREFUSED' },
        ],
      },
    ],
    [
      'an unreadable manifest: Failing, counted without it',
      facts({ listing: { backups: twoBackups.backups, problems: [{ location: 'fs', key: 'shop/orders/x/manifest.json', error: err('MANIFEST_INVALID', 'not JSON') }] } }),
      {
        lastSuccessAt: '2026-11-21T02:01:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Failing', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T02:01:00.000Z', message: 'manifest shop/orders/x/manifest.json could not be read: MANIFEST_INVALID: not JSON' },
          { name: 's3', state: 'Ready', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-20T03:01:00.000Z' },
        ],
      },
    ],
    [
      'a planted manifest (misplaced) and a future-dated one: Failing, named for what they are, never counted',
      facts({
        listing: {
          backups: twoBackups.backups,
          problems: [{ location: 'fs', key: 'shop/orders/20261101T000000Z-beef/manifest.json', error: err('MANIFEST_MISPLACED', 'manifest names shop/other') }],
          future: [{ id: '20990101T000000Z-dead', locations: ['s3'], field: 'consistentAt', at: '2099-01-01T00:00:00.000Z' }],
        },
      }),
      {
        lastSuccessAt: '2026-11-21T02:01:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Failing', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T02:01:00.000Z', message: 'manifest shop/orders/20261101T000000Z-beef/manifest.json does not belong to this database and is ignored: MANIFEST_MISPLACED: manifest names shop/other' },
          { name: 's3', state: 'Failing', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-20T03:01:00.000Z', message: 'manifest of backup 20990101T000000Z-dead is dated in the future (consistentAt 2099-01-01T00:00:00.000Z) and is not counted' },
        ],
      },
    ],
    [
      'a new backup runs after a failed one: Running, the locations keep the last outcome',
      facts({ listing: twoBackups, finished: finished('PartiallySucceeded'), running: { id: 'd', startedAt: at('2026-11-22T03:00:00Z') } }),
      {
        lastBackup: { id: 'd', status: 'Running', startedAt: '2026-11-22T03:00:00.000Z', finishedAt: null, message: null },
        lastSuccessAt: '2026-11-21T03:05:00.000Z',
        nextRunAt: null,
        locations: [
          { name: 'fs', state: 'Ready', backupsStored: 2, backupsBehind: 0, lastSuccessAt: '2026-11-21T03:05:00.000Z' },
          { name: 's3', state: 'Failing', backupsStored: 1, backupsBehind: 1, behindSince: '2026-11-21T02:01:00.000Z', lastSuccessAt: '2026-11-20T03:01:00.000Z', message: 'last backup failed here: STORAGE_DENIED: access denied' },
        ],
      },
    ],
  ])('%s', (_name, f, expected) => {
    expect(buildStatusPatch(f)).toEqual(expected);
  });

  it('a backup that failed as a whole says why once, not per location', () => {
    const f = facts({ listing: twoBackups, finished: { ...finished('Failed'), error: err('DUMP_FAILED', 'pg_dump: password authentication failed') } });
    expect(buildStatusPatch(f).lastBackup?.message).toBe('DUMP_FAILED: pg_dump: password authentication failed');
  });

  it('never names the controller\'s fields, and what it writes is a valid status', () => {
    const f = facts({ listing: twoBackups, finished: finished('PartiallySucceeded'), nextRunAt: at('2026-11-22T02:00:00Z') });
    const patch = buildStatusPatch(f);
    expect(Object.keys(patch).sort()).toEqual(['lastBackup', 'lastSuccessAt', 'locations', 'nextRunAt']);
    expect(Value.Check(DatabaseBackupStatus, patch)).toBe(true);
    // A Running patch is valid once the merge removed finishedAt.
    const running = buildStatusPatch(facts({ running: { id: 'c', startedAt: at(T0) } }));
    const { finishedAt: _removed, message: _none, ...lastBackup } = running.lastBackup!;
    expect(Value.Check(DatabaseBackupStatus, { ...running, nextRunAt: undefined, lastBackup })).toBe(true);
  });

  it('with a WAL archiver: the recoverable window from the oldest base backup to the last stored WAL (to the minute), valid as a status', () => {
    const archiving = { lastArchived: '000000010000000000000007', lastArchivedAt: '2026-11-21T02:59:40.000Z', lastPartialAt: '2026-11-21T03:00:52.500Z', timeline: 1, gaps: [{ from: 'a', to: 'b' }] };
    const patch = buildStatusPatch(facts({ listing: twoBackups, recovery: { state: 'running', facts: archiving }, nextRunAt: at('2026-11-22T02:00:00Z') }));
    expect(patch.recovery).toEqual({
      walArchiving: 'Streaming',
      recoverableFrom: '2026-11-20T03:01:00.000Z',
      recoverableUntil: '2026-11-21T03:00:00Z',
      timeline: 1,
      lastSegment: '000000010000000000000007',
      gaps: 1,
    });
    expect(Value.Check(DatabaseBackupStatus, patch)).toBe(true);
    const restarting = buildStatusPatch(facts({ recovery: { state: 'backoff', lastError: err('DB_UNREACHABLE', 'connection refused'), facts: {} } }));
    expect(restarting.recovery).toEqual({ walArchiving: 'Restarting', gaps: 0, message: 'DB_UNREACHABLE: connection refused' });
    expect(buildStatusPatch(facts({ listing: twoBackups }))).not.toHaveProperty('recovery');
  });

  it('with a WAL archiver: per configured location when it last stored WAL (to the minute) and its last segment, and the receive lag in whole MiB', () => {
    const archiving = {
      lastArchived: '000000010000000000000007',
      lastArchivedAt: '2026-11-21T02:59:40.000Z',
      timeline: 1,
      gaps: [],
      receiveLagBytes: 5 * 1024 * 1024 + 123_456,
      locations: { s3: { lastStoredAt: '2026-11-21T02:41:07.250Z', lastSegment: '000000010000000000000005' }, fs: { lastStoredAt: '2026-11-21T03:00:52.500Z', lastSegment: '000000010000000000000007' } },
    };
    const patch = buildStatusPatch(facts({ listing: twoBackups, recovery: { state: 'running', facts: archiving }, nextRunAt: at('2026-11-22T02:00:00Z') }));
    expect(patch.recovery).toMatchObject({
      lagBytes: 5 * 1024 * 1024,
      locations: [
        { name: 'fs', lastStoredAt: '2026-11-21T03:00:00Z', lastSegment: '000000010000000000000007' },
        { name: 's3', lastStoredAt: '2026-11-21T02:41:00Z', lastSegment: '000000010000000000000005' },
      ],
    });
    expect(Value.Check(DatabaseBackupStatus, patch)).toBe(true);
    // The same minute and MiB: the same patch, so the status is not written again.
    const later = { ...archiving, receiveLagBytes: 5 * 1024 * 1024 + 9, locations: { ...archiving.locations, fs: { ...archiving.locations.fs, lastStoredAt: '2026-11-21T03:00:59.000Z' } } };
    expect(buildStatusPatch(facts({ listing: twoBackups, recovery: { state: 'running', facts: later }, nextRunAt: at('2026-11-22T02:00:00Z') }))).toEqual(patch);
    // A location that failed at once is listed without a store; none is listed before the archiver reports one.
    const failed = buildStatusPatch(facts({ recovery: { state: 'running', facts: { locations: { fs: { lastStoredAt: '2026-11-21T03:00:52.500Z' }, s3: {} }, receiveLagBytes: 1000 } } }));
    expect(failed.recovery).toMatchObject({ lagBytes: 0, locations: [{ name: 'fs', lastStoredAt: '2026-11-21T03:00:00Z' }, { name: 's3' }] });
    expect(buildStatusPatch(facts({ recovery: { state: 'running', facts: { locations: {} } } })).recovery).not.toHaveProperty('locations');
  });

  it('clips long messages to the limit', () => {
    const long = facts({ listing: { backups: [], problems: [{ location: 'fs', error: err('STORAGE_FAILED', 'x'.repeat(5000)) }] } });
    const message = buildStatusPatch(long).locations[0]!.message!;
    expect(message.length).toBe(MESSAGE_LIMIT);
    expect(message.endsWith('…')).toBe(true);
  });
});

const KILLED = 'the runner stopped while this backup ran (pod deleted, evicted or killed); nothing of it was kept';

describe('settleStaleRunning', () => {
  const observed: LastBackupStatus = { id: 'k', status: 'Running', startedAt: '2026-11-21T02:00:00Z' };
  it.each<[string, LastBackupStatus | undefined, Partial<ReportFacts>, ReturnType<typeof settleStaleRunning>]>([
    ['nothing stored', undefined, { listing: twoBackups }, undefined],
    ['a finished backup is left alone', { ...observed, status: 'Failed' }, { listing: twoBackups }, undefined],
    ['not decided before the first listing', observed, {}, undefined],
    ['the backup this process runs', observed, { listing: twoBackups, running: { id: 'k', startedAt: at(T0) } }, undefined],
    ['no manifest anywhere: Failed, finished by this start', observed, { listing: twoBackups }, { id: 'k', status: 'Failed', startedAt: '2026-11-21T02:00:00Z', finishedAt: T0, message: KILLED }],
    [
      'its manifest is everywhere: it finished (killed before reporting)',
      observed,
      { listing: { backups: [listed('k', '2026-11-21T02:10:00Z', ['fs', 's3'], '2026-11-21T02:00:00Z')], problems: [] } },
      { id: 'k', status: 'Succeeded', startedAt: '2026-11-21T02:00:00Z', finishedAt: '2026-11-21T02:10:00Z', message: null },
    ],
    [
      'its manifest is in some locations: PartiallySucceeded',
      observed,
      { listing: { backups: [listed('k', '2026-11-21T02:10:00Z', ['fs'], '2026-11-21T02:00:00Z')], problems: [] } },
      { id: 'k', status: 'PartiallySucceeded', startedAt: '2026-11-21T02:00:00Z', finishedAt: '2026-11-21T02:10:00Z', message: 'not stored in s3' },
    ],
    [
      'a location that cannot be listed does not make it partial',
      observed,
      { listing: { backups: [listed('k', '2026-11-21T02:10:00Z', ['fs'], '2026-11-21T02:00:00Z')], problems: [{ location: 's3', error: err('STORAGE_UNAVAILABLE') }] } },
      { id: 'k', status: 'Succeeded', startedAt: '2026-11-21T02:00:00Z', finishedAt: '2026-11-21T02:10:00Z', message: null },
    ],
  ])('%s', (_name, obs, f, expected) => {
    expect(settleStaleRunning(obs, facts(f))).toEqual(expected);
  });

  it('is used by buildStatusPatch only while this process has no backup of its own', () => {
    expect(buildStatusPatch(facts({ listing: twoBackups }), observed).lastBackup).toMatchObject({ id: 'k', status: 'Failed' });
    expect(buildStatusPatch(facts({ listing: twoBackups, running: { id: 'm', startedAt: at(T0) } }), observed).lastBackup).toMatchObject({ id: 'm', status: 'Running' });
  });
});

describe('classifyStatus', () => {
  it.each([
    [401, 'REPORT_DENIED'],
    [403, 'REPORT_DENIED'],
    [404, 'REPORT_NOT_FOUND'],
    [409, 'REPORT_REJECTED'],
    [422, 'REPORT_REJECTED'],
    [429, 'REPORT_UNAVAILABLE'],
    [500, 'REPORT_UNAVAILABLE'],
    [503, 'REPORT_UNAVAILABLE'],
    [418, 'REPORT_FAILED'],
  ])('HTTP %i -> %s', (status, code) => {
    expect(classifyStatus(status).code).toBe(code);
  });
});

/** A sink whose patches wait until released, recording what was sent. */
class FakeSink implements StatusSink {
  readonly sent: RunnerStatusPatch[] = [];
  reads = 0;
  readFails: BackupError | undefined;
  inFlight = 0;
  maxInFlight = 0;
  failWith: BackupError | undefined;
  stored: LastBackupStatus | undefined;
  private waiting: (() => void)[] = [];

  read(): Promise<{ lastBackup?: LastBackupStatus } | undefined> {
    this.reads++;
    if (this.readFails) return Promise.reject(this.readFails);
    return Promise.resolve(this.stored ? { lastBackup: this.stored } : undefined);
  }
  async patch(status: RunnerStatusPatch): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight--;
    if (this.failWith) throw this.failWith;
    this.sent.push(status);
  }
  /** Lets the oldest waiting patch answer. */
  release(): void {
    this.waiting.shift()?.();
  }
  get queued(): number {
    return this.waiting.length;
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};
const next = (id: string): ReportFacts => facts({ running: { id, startedAt: at(T0) } });

function reporter(sink: FakeSink, errors: BackupError[] = []): StatusReporter {
  return new StatusReporter({ connect: () => Promise.resolve(sink), logger: silentLogger(), onError: (e) => errors.push(e), clock: realClock, backoffMs: 20, maxBackoffMs: 40 });
}

describe('StatusReporter', () => {
  it('keeps one patch in flight and sends only the latest facts after it', async () => {
    const sink = new FakeSink();
    const r = reporter(sink);
    r.update(next('a'));
    await settle();
    r.update(next('b'));
    r.update(next('c'));
    await settle();
    expect(sink.queued).toBe(1);
    sink.release();
    await settle();
    sink.release();
    await settle();
    expect(sink.sent.map((p) => p.lastBackup?.id)).toEqual(['a', 'c']);
    expect(sink.maxInFlight).toBe(1);
    expect(sink.reads).toBe(1);
  });

  it('reports a backup Running once before its outcome, even when it finished while another patch was in flight', async () => {
    const sink = new FakeSink();
    const r = reporter(sink);
    r.update(facts({}));
    await settle();
    r.update(next('x'));
    r.update(facts({ finished: { id: 'x', status: 'Succeeded', startedAt: at(T0), finishedAt: new Date(Date.parse(T0) + 1000), locations: [] } }));
    for (let i = 0; i < 10; i++) {
      await settle();
      sink.release();
    }
    await settle();
    expect(sink.sent.map((p) => `${p.lastBackup?.id} ${p.lastBackup?.status}`)).toEqual(['undefined undefined', 'x Running', 'x Succeeded']);
    expect(sink.maxInFlight).toBe(1);
  });

  it('does not send a patch equal to the last one accepted', async () => {
    const sink = new FakeSink();
    const r = reporter(sink);
    r.update(next('a'));
    await settle();
    sink.release();
    await settle();
    r.update(next('a'));
    await settle();
    expect(sink.queued).toBe(0);
    expect(sink.sent).toHaveLength(1);
  });

  it('settles a Running backup left by a previous runner from what it reads once', async () => {
    const sink = new FakeSink();
    sink.stored = { id: 'old', status: 'Running', startedAt: '2026-11-21T01:00:00Z' };
    const r = reporter(sink);
    r.update(facts({ listing: { backups: [], problems: [] } }));
    await settle();
    sink.release();
    await settle();
    expect(sink.sent[0]!.lastBackup).toEqual({ id: 'old', status: 'Failed', startedAt: '2026-11-21T01:00:00Z', finishedAt: T0, message: KILLED });
  });

  it('reports without the stored status when reading it is denied; other read failures are retried', async () => {
    const sink = new FakeSink();
    const errors: BackupError[] = [];
    sink.readFails = new BackupError('REPORT_DENIED', 'HTTP 403');
    const r = reporter(sink, errors);
    r.update(next('a'));
    await settle();
    sink.release();
    await settle();
    expect(sink.sent.map((p) => p.lastBackup?.id)).toEqual(['a']);
    expect(errors.map((e) => e.code)).toEqual(['REPORT_DENIED']);

    const flaky = new FakeSink();
    const errors2: BackupError[] = [];
    flaky.readFails = new BackupError('REPORT_UNAVAILABLE', 'HTTP 503');
    const r2 = reporter(flaky, errors2);
    r2.update(next('a'));
    await settle();
    expect(flaky.queued).toBe(0);
    flaky.readFails = undefined;
    await new Promise((resolve) => setTimeout(resolve, 40));
    flaky.release();
    await settle();
    expect(flaky.reads).toBe(2);
    expect(flaky.sent.map((p) => p.lastBackup?.id)).toEqual(['a']);
    expect(errors2.map((e) => e.code)).toEqual(['REPORT_UNAVAILABLE']);
  });

  it('counts and logs a failure, retries after the backoff with the latest facts, and never throws', async () => {
    const sink = new FakeSink();
    const errors: BackupError[] = [];
    const r = reporter(sink, errors);
    sink.failWith = new BackupError('REPORT_DENIED', 'HTTP 403', { details: { httpStatus: 403 } });
    r.update(next('a'));
    await settle();
    sink.release();
    await settle();
    expect(errors.map((e) => e.code)).toEqual(['REPORT_DENIED']);
    // During the backoff new facts wait; the retry sends only them.
    r.update(next('b'));
    await settle();
    expect(sink.queued).toBe(0);
    sink.failWith = undefined;
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(sink.queued).toBe(1);
    sink.release();
    await settle();
    expect(sink.sent.map((p) => p.lastBackup?.id)).toEqual(['b']);
  });

  it('a sink that cannot connect is a counted failure too', async () => {
    const errors: BackupError[] = [];
    const r = new StatusReporter({ connect: () => Promise.reject(new Error('no kubeconfig')), logger: silentLogger(), onError: (e) => errors.push(e), backoffMs: 10_000 });
    r.update(next('a'));
    await settle();
    expect(errors.map((e) => e.code)).toEqual(['REPORT_FAILED']);
    await r.close(10);
  });

  it('close() sends the latest facts at once, whatever the backoff, and waits at most its timeout', async () => {
    const sink = new FakeSink();
    const errors: BackupError[] = [];
    const r = new StatusReporter({ connect: () => Promise.resolve(sink), logger: silentLogger(), onError: (e) => errors.push(e), backoffMs: 60_000 });
    sink.failWith = new BackupError('REPORT_UNAVAILABLE', 'HTTP 503');
    r.update(next('a'));
    await settle();
    sink.release();
    await settle();
    sink.failWith = undefined;
    r.update(next('b'));
    const closing = r.close(1000);
    await settle();
    sink.release();
    await closing;
    expect(sink.sent.map((p) => p.lastBackup?.id)).toEqual(['b']);

    const hung = new FakeSink();
    const r2 = reporter(hung);
    r2.update(next('a'));
    const t0 = Date.now();
    await r2.close(50);
    expect(Date.now() - t0).toBeLessThan(1000);
    r2.update(next('b'));
    await settle();
    expect(hung.sent).toEqual([]);
  });
});
