import { Writable } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../runner/logger.js';
import { applyRetention, retentionCandidates, sweepOrphans } from '../../runner/retention/apply.js';
import { planRetention, type RetentionPlan } from '../../runner/retention/policy.js';
import type { Location } from '../../runner/runtime.js';
import { backupPrefix, databasePrefix, manifestKey, objectKey } from '../../runner/storage/layout.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import { allKeys, recording, writeBackup, type Recorder } from '../retention-fixtures.js';
import { policy } from './retention-cases.js';

const scope = { prefix: 'backups', namespace: 'prod', name: 'orders' };
const DAY = 86_400_000;
const t = (day: number): Date => new Date(Date.UTC(2026, 10, day, 3));
const logger = silentLogger();

let rec: Recorder;
let loc: Location;

beforeEach(() => {
  rec = recording(new MemoryStorage('retention'));
  loc = { name: 'primary', storage: rec.storage, scope };
});

/** Five complete backups, one per day (Nov 17 … 21), each with two data objects. */
async function fiveBackups(): Promise<string[]> {
  const ids = ['20261117T030000Z-aaaa', '20261118T030000Z-bbbb', '20261119T030000Z-cccc', '20261120T030000Z-dddd', '20261121T030000Z-eeee'];
  for (const [i, id] of ids.entries()) await writeBackup(loc, id, t(17 + i), { files: ['data.dump.zst', 'data.dump.gz'] });
  return ids;
}

/** The plan over what the location holds, and the directories the listing found (what removal deletes in). */
async function planFor(keepLast: number): Promise<RetentionPlan & { dirs: Map<string, string> }> {
  const { candidates, dirs, problems } = await retentionCandidates(loc);
  expect(problems).toEqual([]);
  return { ...planRetention(candidates, policy({ keepLast, minKeep: 1 }), t(22)), dirs };
}

describe('applyRetention', () => {
  let plan: Awaited<ReturnType<typeof planFor>>;
  it('deletes each backup’s manifest first, then its data, oldest backup first', async () => {
    const ids = await fiveBackups();
    plan = await planFor(2);
    const result = await applyRetention(loc, plan, { dryRun: false, dirs: plan.dirs, logger });

    expect(result.removed).toEqual([ids[2], ids[1], ids[0]]);
    expect(result.failed).toEqual([]);
    expect(result.outcomes.map((o) => o.status)).toEqual(['deleted', 'deleted', 'deleted']);
    // Exactly the manifest, then the data, backup after backup.
    expect(rec.deletes()).toEqual(
      [ids[0]!, ids[1]!, ids[2]!].flatMap((id) => [manifestKey(scope, id), objectKey(scope, id, 'data.dump.gz'), objectKey(scope, id, 'data.dump.zst')]),
    );
    expect(await allKeys(rec.storage)).toEqual(
      [ids[3]!, ids[4]!].flatMap((id) => [objectKey(scope, id, 'data.dump.zst'), objectKey(scope, id, 'data.dump.gz'), manifestKey(scope, id)]).sort(),
    );
  });

  it('a dry run deletes nothing and reports what would go', async () => {
    const ids = await fiveBackups();
    const before = await allKeys(rec.storage);
    plan = await planFor(1);
    const result = await applyRetention(loc, plan, { dryRun: true, dirs: plan.dirs, logger });
    expect(result.dryRun).toBe(true);
    expect(result.removed).toEqual([ids[3], ids[2], ids[1], ids[0]]);
    expect(result.outcomes.every((o) => o.status === 'planned')).toBe(true);
    expect(rec.deletes()).toEqual([]);
    expect(await allKeys(rec.storage)).toEqual(before);
  });

  it('when the manifest cannot be deleted the backup stays whole and is reported failed', async () => {
    const ids = await fiveBackups();
    rec.failDelete = (key) => key === manifestKey(scope, ids[1]!);
    plan = await planFor(3);
    const result = await applyRetention(loc, plan, { dryRun: false, dirs: plan.dirs, logger });
    expect(result.failed).toEqual([ids[1]]);
    expect(result.removed).toEqual([ids[0]]);
    expect(result.outcomes[0]).toMatchObject({ id: ids[1], status: 'failed', error: { code: 'STORAGE_FAILED' } });
    expect(await allKeys(rec.storage, backupPrefix(scope, ids[1]!))).toHaveLength(3);
    expect(rec.deletes().filter((k) => k.startsWith(backupPrefix(scope, ids[1]!)))).toEqual([manifestKey(scope, ids[1]!)]);
  });

  it('data left after the manifest is gone is logged as an orphan, not a failure, and the sweeper removes it later', async () => {
    const ids = await fiveBackups();
    const lines: string[] = [];
    const log = createLogger({ pretty: false, level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
    rec.failDelete = (key) => key === objectKey(scope, ids[0]!, 'data.dump.gz');
    plan = await planFor(4);
    const result = await applyRetention(loc, plan, { dryRun: false, dirs: plan.dirs, logger: log });
    expect(result.outcomes).toEqual([expect.objectContaining({ id: ids[0], status: 'deleted', leftover: 1 })]);
    expect(result.failed).toEqual([]);
    expect(lines.some((l) => l.includes('orphan sweeper') && l.includes(ids[0]!))).toBe(true);
    expect((await retentionCandidates(loc)).candidates.map((c) => c.id)).toEqual(ids.slice(1));

    rec.failDelete = () => false;
    const swept = await sweepOrphans(loc, { gracePeriodMs: DAY, now: new Date(Date.now() + 2 * DAY), dryRun: false, logger });
    expect(swept.removed.map((o) => o.id)).toEqual([ids[0]]);
    expect(await allKeys(rec.storage, backupPrefix(scope, ids[0]!))).toEqual([]);
  });

  it('refuses a plan that keeps and removes the same backup, or a bad id, before deleting anything', async () => {
    const ids = await fiveBackups();
    const time = t(17);
    const both: RetentionPlan = { keep: [{ id: ids[0]!, time, reasons: ['last 1/1'] }], remove: [{ id: ids[0]!, time }] };
    await expect(applyRetention(loc, both, { dryRun: false, dirs: new Map(), logger })).rejects.toMatchObject({ code: 'INTERNAL' });
    for (const id of ['', '..', 'a/b']) {
      await expect(applyRetention(loc, { keep: [], remove: [{ id, time }] }, { dryRun: false, dirs: new Map([[id, `${id}/`]]), logger })).rejects.toMatchObject({ code: 'INTERNAL' });
    }
    expect(rec.deletes()).toEqual([]);
  });

  it('stops with ABORTED between backups once the signal is aborted', async () => {
    await fiveBackups();
    const ac = new AbortController();
    ac.abort();
    plan = await planFor(1);
    await expect(applyRetention(loc, plan, { dryRun: false, dirs: plan.dirs, logger, signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(rec.deletes()).toEqual([]);
  });
});

describe('retentionCandidates', () => {
  it('lists complete backups only; unreadable or misplaced manifests are problems, not candidates', async () => {
    const ids = await fiveBackups();
    await writeBackup(loc, '20261121T090000Z-ffff', t(21), { complete: false });
    await rec.storage.put(manifestKey(scope, ids[0]!), Buffer.from('{not json'));
    const renamed = '20261121T120000Z-9999';
    await rec.storage.put(manifestKey(scope, renamed), await (await rec.storage.get(manifestKey(scope, ids[1]!))).toArray().then((c) => Buffer.concat(c as Buffer[])));
    const { candidates, problems } = await retentionCandidates(loc);
    expect(candidates).toEqual(ids.slice(1).map((id, i) => ({ id, time: t(18 + i) })));
    expect(problems.map((p) => [p.key, p.error.code]).sort()).toEqual([
      [manifestKey(scope, ids[0]!), 'MANIFEST_INVALID'],
      [manifestKey(scope, renamed), 'MANIFEST_MISPLACED'],
    ]);
  });
});

describe('sweepOrphans', () => {
  const now = new Date('2026-11-21T12:00:00Z');
  const hoursAgo = (h: number): Date => new Date(now.getTime() - h * 3_600_000);

  async function setup(): Promise<{ complete: string; old: string; young: string }> {
    const ids = { complete: '20261101T030000Z-aaaa', old: '20261120T030000Z-bbbb', young: '20261121T110000Z-cccc' };
    for (const key of await writeBackup(loc, ids.complete, t(1))) rec.modifiedAt.set(key, hoursAgo(24 * 20));
    for (const key of await writeBackup(loc, ids.old, t(20), { complete: false, files: ['data.dump.zst', 'data.dump.gz'] })) rec.modifiedAt.set(key, hoursAgo(30));
    for (const key of await writeBackup(loc, ids.young, t(21), { complete: false })) rec.modifiedAt.set(key, hoursAgo(1));
    return ids;
  }

  it('removes old orphans, keeps young ones (a backup may be in progress), never touches complete backups', async () => {
    const ids = await setup();
    await rec.storage.put(`${databasePrefix(scope)}README`, Buffer.from('not a backup'));
    await rec.storage.put('backups/prod/other/20261101T000000Z-dddd/data.dump.zst', Buffer.from('another database'));
    rec.modifiedAt.set('backups/prod/other/20261101T000000Z-dddd/data.dump.zst', hoursAgo(1000));
    const result = await sweepOrphans(loc, { gracePeriodMs: DAY, now, dryRun: false, logger });
    expect(result.removed).toEqual([{ id: ids.old, dir: backupPrefix(scope, ids.old), objects: 2, bytes: expect.any(Number), newest: hoursAgo(30) }]);
    expect(result.young.map((o) => o.id)).toEqual([ids.young]);
    expect(result.failed).toEqual([]);
    expect(rec.deletes().every((k) => k.startsWith(backupPrefix(scope, ids.old)))).toBe(true);
    expect(await allKeys(rec.storage)).toEqual([
      'backups/prod/orders/README',
      'backups/prod/orders/backups/20261101T030000Z-aaaa/data.dump.zst',
      'backups/prod/orders/backups/20261101T030000Z-aaaa/manifest.json',
      'backups/prod/orders/backups/20261121T110000Z-cccc/data.dump.zst',
      'backups/prod/other/20261101T000000Z-dddd/data.dump.zst',
    ]);
  });

  it('a dry run deletes nothing', async () => {
    const ids = await setup();
    const before = await allKeys(rec.storage);
    const result = await sweepOrphans(loc, { gracePeriodMs: DAY, now, dryRun: true, logger });
    expect(result.removed.map((o) => o.id)).toEqual([ids.old]);
    expect(rec.deletes()).toEqual([]);
    expect(await allKeys(rec.storage)).toEqual(before);
  });

  it('the grace period is strict, and an object without a time counts as new', async () => {
    const ids = await setup();
    expect((await sweepOrphans(loc, { gracePeriodMs: 30 * 3_600_000, now, dryRun: true, logger })).young.map((o) => o.id)).toEqual([ids.old, ids.young]);
    expect((await sweepOrphans(loc, { gracePeriodMs: 30 * 3_600_000 - 1, now, dryRun: true, logger })).removed.map((o) => o.id)).toEqual([ids.old]);
    rec.modifiedAt.set(objectKey(scope, ids.old, 'data.dump.gz'), null);
    const r = await sweepOrphans(loc, { gracePeriodMs: DAY, now, dryRun: false, logger });
    expect(r.removed).toEqual([]);
    expect(r.young).toEqual([{ id: ids.old, dir: backupPrefix(scope, ids.old), objects: 2, bytes: expect.any(Number) }, expect.objectContaining({ id: ids.young })]);
  });

  it('leaves an orphan alone when its manifest appears before the deletion', async () => {
    const ids = await setup();
    rec.beforeStat = async (key) => {
      if (key === manifestKey(scope, ids.old)) await writeBackup(loc, ids.old, t(20), { files: ['data.dump.zst', 'data.dump.gz'] });
    };
    const result = await sweepOrphans(loc, { gracePeriodMs: DAY, now, dryRun: false, logger });
    expect(result.removed).toEqual([]);
    expect(result.failed).toEqual([]);
    expect(rec.deletes()).toEqual([]);
    expect((await retentionCandidates(loc)).candidates.map((c) => c.id)).toEqual([ids.complete, ids.old]);
  });

  it('reports an orphan it could not delete as failed, for the next sweep', async () => {
    const ids = await setup();
    rec.failDelete = (key) => key.endsWith('data.dump.gz');
    const result = await sweepOrphans(loc, { gracePeriodMs: DAY, now, dryRun: false, logger });
    expect(result.failed).toEqual([expect.objectContaining({ id: ids.old, error: expect.objectContaining({ code: 'STORAGE_FAILED' }) })]);
    expect(await allKeys(rec.storage, backupPrefix(scope, ids.old))).toEqual([objectKey(scope, ids.old, 'data.dump.gz')]);
  });
});
