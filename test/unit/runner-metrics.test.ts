import { describe, expect, it } from 'vitest';
import { RunnerMetrics } from '../../runner/daemon/metrics.js';
import { BackupError } from '../../runner/errors.js';
import type { BackupResult } from '../../runner/ops/backup.js';

/** The value of one sample in the text format, by metric name and (a subset of) its labels; undefined when absent. */
async function sample(m: RunnerMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  for (const line of (await m.render()).split('\n')) {
    const match = /^([a-z_:]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = new Map([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x): [string, string] => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(match[3]);
  }
  return undefined;
}

const backup = (status: BackupResult['status'], failed: string[] = []): BackupResult => ({
  id: 'x',
  status,
  startedAt: new Date('2026-11-21T03:00:00Z'),
  finishedAt: new Date('2026-11-21T03:01:00Z'),
  locations: ['fs', 's3'].map((location) =>
    status === 'Failed' || failed.includes(location)
      ? { location, status: 'Failed' as const, error: new BackupError('STORAGE_DENIED', 'denied') }
      : { location, status: 'Succeeded' as const, size: 10 },
  ),
});

describe('RunnerMetrics', () => {
  it('exports the schedule interval and the per-location series as 0 from the start', async () => {
    const m = new RunnerMetrics({ namespace: 'shop', name: 'orders' });
    m.initLocations(['fs', 's3'], { intervalSeconds: 21600, maxGapSeconds: 21600 });
    expect(await sample(m, 'backup_runner_schedule_interval_seconds', { namespace: 'shop', databasebackup: 'orders' })).toBe(21600);
    expect(await sample(m, 'backup_runner_schedule_max_gap_seconds', { namespace: 'shop', databasebackup: 'orders' })).toBe(21600);
    for (const location of ['fs', 's3']) {
      expect(await sample(m, 'backup_runner_location_failing', { location })).toBe(0);
      expect(await sample(m, 'backup_runner_retention_removed_total', { location })).toBe(0);
      expect(await sample(m, 'backup_runner_retention_failing', { location })).toBe(0);
    }
    expect(await sample(m, 'backup_runner_consecutive_failed_backups')).toBe(0);

    const cron = new RunnerMetrics({ namespace: 'shop', name: 'nightly' });
    cron.initLocations(['fs'], { maxGapSeconds: 7 * 86400 });
    expect(await sample(cron, 'backup_runner_schedule_interval_seconds')).toBe(0);
    expect(await sample(cron, 'backup_runner_schedule_max_gap_seconds')).toBe(7 * 86400);
    const none = new RunnerMetrics({ namespace: 'shop', name: 'manual' });
    none.initLocations(['fs']);
    expect(await sample(none, 'backup_runner_schedule_max_gap_seconds')).toBe(0);
  });

  it('counts backups that stored nothing in a row; one that stored anywhere resets the count', async () => {
    const m = new RunnerMetrics({ namespace: 'shop', name: 'orders' });
    m.backupFinished(backup('Failed'));
    m.backupFinished(backup('Failed'));
    expect(await sample(m, 'backup_runner_consecutive_failed_backups')).toBe(2);
    m.backupFinished(backup('PartiallySucceeded', ['s3']));
    expect(await sample(m, 'backup_runner_consecutive_failed_backups')).toBe(0);
    m.backupFinished(backup('Failed'));
    expect(await sample(m, 'backup_runner_consecutive_failed_backups')).toBe(1);
    m.backupFinished(backup('Succeeded'));
    expect(await sample(m, 'backup_runner_consecutive_failed_backups')).toBe(0);
  });

  it('shows the status location states as location_failing', async () => {
    const m = new RunnerMetrics({ namespace: 'shop', name: 'orders' });
    m.setLocationStates([
      { name: 'fs', state: 'Ready' },
      { name: 's3', state: 'Failing' },
      { name: 'gcs', state: 'Unknown' },
    ]);
    expect(await sample(m, 'backup_runner_location_failing', { location: 'fs' })).toBe(0);
    expect(await sample(m, 'backup_runner_location_failing', { location: 's3' })).toBe(1);
    expect(await sample(m, 'backup_runner_location_failing', { location: 'gcs' })).toBe(0);
    m.setLocationStates([{ name: 's3', state: 'Ready' }]);
    expect(await sample(m, 'backup_runner_location_failing', { location: 's3' })).toBe(0);
  });

  it('counts what retention removed per location and flags a location where it failed; a dry run changes nothing', async () => {
    const m = new RunnerMetrics({ namespace: 'shop', name: 'orders' });
    m.initLocations(['fs', 's3', 'gcs']);
    m.retentionFinished({
      dryRun: false,
      locations: [
        { location: 'fs', plan: { remove: ['a', 'b', 'c'] }, failed: [] },
        { location: 's3', plan: { remove: ['a', 'b', 'c'] }, failed: ['b'] },
        { location: 'gcs', failed: [], error: { code: 'STORAGE_DENIED' } },
      ],
    });
    expect(await sample(m, 'backup_runner_retention_removed_total', { location: 'fs' })).toBe(3);
    expect(await sample(m, 'backup_runner_retention_removed_total', { location: 's3' })).toBe(2);
    expect(await sample(m, 'backup_runner_retention_removed_total', { location: 'gcs' })).toBe(0);
    expect(await sample(m, 'backup_runner_retention_failing', { location: 'fs' })).toBe(0);
    expect(await sample(m, 'backup_runner_retention_failing', { location: 's3' })).toBe(1);
    expect(await sample(m, 'backup_runner_retention_failing', { location: 'gcs' })).toBe(1);

    m.retentionFinished({ dryRun: true, locations: [{ location: 'fs', plan: { remove: ['d'] }, failed: [] }, { location: 's3', failed: [], error: { code: 'STORAGE_DENIED' } }] });
    expect(await sample(m, 'backup_runner_retention_removed_total', { location: 'fs' })).toBe(3);

    m.retentionFinished({ dryRun: false, locations: [{ location: 's3', plan: { remove: [] }, failed: [] }] });
    expect(await sample(m, 'backup_runner_retention_failing', { location: 's3' })).toBe(0);
  });

  it('exports the WAL archiver\'s receive lag and, per location, when it last stored WAL there', async () => {
    const m = new RunnerMetrics({ namespace: 'shop', name: 'orders' });
    const archiver = (facts: Record<string, unknown>) => [{ name: 'wal-archiver', state: 'running', restarts: 0, facts }];
    m.setServices(archiver({ receiveLagBytes: 4096, locations: { fs: { lastStoredAt: '2026-11-21T03:00:52.500Z', lastSegment: '000000010000000000000007' }, s3: {} } }));
    expect(await sample(m, 'backup_runner_wal_receive_lag_bytes')).toBe(4096);
    expect(await sample(m, 'backup_runner_wal_location_last_stored_timestamp_seconds', { location: 'fs' })).toBe(Date.parse('2026-11-21T03:00:52.500Z') / 1000);
    expect(await sample(m, 'backup_runner_wal_location_last_stored_timestamp_seconds', { location: 's3' })).toBe(0);
  });
});
