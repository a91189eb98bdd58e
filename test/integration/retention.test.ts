/**
 * Retention end to end on real backends (a directory and an s3rver bucket):
 * backups written straight through the storage with the layout helpers, a
 * policy planned and applied, orphans swept; then exactly the right objects
 * must remain.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../runner/logger.js';
import { applyRetention, retentionCandidates, sweepOrphans } from '../../runner/retention/apply.js';
import { planRetention } from '../../runner/retention/policy.js';
import type { Location } from '../../runner/runtime.js';
import { FilesystemStorage } from '../../runner/storage/filesystem.js';
import type { Storage } from '../../runner/storage/types.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { policy } from '../unit/retention-cases.js';
import { allKeys, writeBackup } from '../retention-fixtures.js';

const logger = silentLogger();
const scope = { prefix: 'db-backups', namespace: 'prod', name: 'orders' };
const otherScope = { ...scope, name: 'billing' };
/** Daily at 03:00Z from 2026-10-23 to 2026-11-21 (30 backups). */
const days = Array.from({ length: 30 }, (_, i) => new Date(Date.UTC(2026, 9, 23 + i, 3)));
const idOf = (d: Date): string => `${d.toISOString().replace(/[-:]/g, '').replace('.000Z', 'Z')}-0a1b`;
/** keepLast 2 (Nov 21, 20), keepDaily 5 (Nov 21 … 17), keepWeekly 3 (W47: Nov 21, W46: Nov 15, W45: Nov 8). */
const KEPT = ['2026-11-21', '2026-11-20', '2026-11-19', '2026-11-18', '2026-11-17', '2026-11-15', '2026-11-08'];
const GRACE_MS = 2_000;

interface Backend {
  name: string;
  open(): Promise<Storage>;
  /** Directories left under the database prefix, for backends that have them. */
  dirs?(): Promise<string[]>;
}

let s3: S3Server;
let work: string;

beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket('retention');
  work = await mkdtemp(join(tmpdir(), 'dbbc-retention-'));
});

afterAll(async () => {
  await s3?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const backends: Backend[] = [
  { name: 'filesystem', open: () => Promise.resolve(new FilesystemStorage(join(work, 'fs'))), dirs: () => readdir(join(work, 'fs', 'db-backups', 'prod', 'orders', 'backups')) },
  { name: 's3', open: () => Promise.resolve(s3.storage('retention')) },
];

describe.each(backends)('retention on $name', (backend) => {
  it('keeps exactly the planned backups and young orphans, removes the rest and old orphans, leaves other databases alone', async () => {
    const storage = await backend.open();
    const loc: Location = { name: backend.name, storage, scope };
    const other: Location = { name: backend.name, storage, scope: otherScope };
    try {
      const expected: string[] = [];
      for (const d of days) {
        const keys = await writeBackup(loc, idOf(d), d, { files: ['data.dump.zst', 'data.dump.gz'] });
        if (KEPT.includes(d.toISOString().slice(0, 10))) expected.push(...keys);
      }
      expected.push(...(await writeBackup(other, idOf(days[0]!), days[0]!)));
      await writeBackup(loc, '20261121T020000Z-dead', days[29]!, { complete: false, files: ['data.dump.zst', 'data.dump.gz'] });
      await sleep(GRACE_MS + 1_500); // the orphan above is now older than the grace period; the next one is not
      expected.push(...(await writeBackup(loc, '20261121T110000Z-beef', days[29]!, { complete: false })));
      // The sweeps judge ages at this instant, however long the steps between take on a slow server.
      const sweepNow = new Date();
      const everything = await allKeys(storage);

      const { candidates, dirs, problems } = await retentionCandidates(loc);
      expect(problems).toEqual([]);
      expect(candidates).toHaveLength(30);
      const plan = planRetention(candidates, policy({ keepLast: 2, keepDaily: 5, keepWeekly: 3, minKeep: 1 }), new Date('2026-11-21T12:00Z'));
      expect(plan.keep.map((k) => k.time.toISOString().slice(0, 10))).toEqual(KEPT);
      expect(plan.keep[0]!.reasons).toEqual(['last 1/2', 'daily 2026-11-21', 'weekly 2026-W47', 'floor: newest 1']);

      const sweepOpts = { gracePeriodMs: GRACE_MS, dryRun: true, logger };
      const dry = await applyRetention(loc, plan, { dryRun: true, dirs, logger });
      const drySweep = await sweepOrphans(loc, { ...sweepOpts, now: sweepNow });
      expect(dry.removed).toHaveLength(23);
      expect(drySweep.removed.map((o) => o.id)).toEqual(['20261121T020000Z-dead']);
      expect(await allKeys(storage)).toEqual(everything);

      const applied = await applyRetention(loc, plan, { dryRun: false, dirs, logger });
      expect(applied.failed).toEqual([]);
      expect(applied.outcomes.every((o) => o.status === 'deleted' && o.leftover === 0)).toBe(true);
      const swept = await sweepOrphans(loc, { ...sweepOpts, dryRun: false, now: sweepNow });
      expect(swept.removed.map((o) => o.id)).toEqual(['20261121T020000Z-dead']);
      expect(swept.young.map((o) => o.id)).toEqual(['20261121T110000Z-beef']);

      expect(await allKeys(storage)).toEqual(expected.sort());
      if (backend.dirs) expect((await backend.dirs()).sort()).toEqual([...KEPT.map((k) => idOf(new Date(`${k}T03:00Z`))), '20261121T110000Z-beef'].sort());

      // Applying the same policy again changes nothing.
      const again = planRetention((await retentionCandidates(loc)).candidates, policy({ keepLast: 2, keepDaily: 5, keepWeekly: 3, minKeep: 1 }), new Date('2026-11-21T12:00Z'));
      expect(again.remove).toEqual([]);
    } finally {
      await storage.close();
    }
  });
});
