/**
 * Two runners on one bucket with nesting prefixes: runner A (prefix "",
 * DatabaseBackup shop/orders) and runner B (prefix "shop", DatabaseBackup
 * orders/x). B's keys lie under A's database prefix `shop/orders/`.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { RunnerMetrics } from '../../runner/daemon/metrics.js';
import { createLogger } from '../../runner/logger.js';
import { listBackups } from '../../runner/ops/list.js';
import type { Runtime } from '../../runner/runtime.js';
import { applyRetention, retentionCandidates, sweepOrphans } from '../../runner/retention/apply.js';
import { planRetention } from '../../runner/retention/policy.js';
import type { Location } from '../../runner/runtime.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import { ForeignObjects } from '../../runner/storage/foreign.js';
import type { Storage } from '../../runner/storage/types.js';
import { writeBackup } from '../retention-fixtures.js';
import { policy } from './retention-cases.js';

const scopeA = { prefix: '', namespace: 'shop', name: 'orders' };
const scopeB = { prefix: 'shop', namespace: 'orders', name: 'x' };
const idsB = ['20261119T030000Z-b001', '20261120T030000Z-b002', '20261121T030000Z-b003'];
const idsA = ['20261120T040000Z-a001', '20261121T040000Z-a002'];
const orphanA = '20261118T040000Z-a000';
const t = (id: string): Date => new Date(`${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:00Z`);

/** sha256 of every object in the bucket, by key. */
async function checksums(storage: Storage): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const o of storage.list('')) out[o.key] = createHash('sha256').update(await text(await storage.get(o.key))).digest('hex');
  return out;
}

async function bucket(): Promise<{ storage: MemoryStorage; a: Location; b: Location }> {
  const storage = new MemoryStorage('shared');
  const a: Location = { name: 'shared', storage, scope: scopeA };
  const b: Location = { name: 'shared', storage, scope: scopeB };
  for (const id of idsB) await writeBackup(b, id, t(id));
  await writeBackup(b, '20261121T050000Z-b004', t('20261121T050000Z-b004'), { complete: false });
  for (const id of idsA) await writeBackup(a, id, t(id));
  await writeBackup(a, orphanA, t(orphanA), { complete: false });
  return { storage, a, b };
}

function capture(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', destination: new Writable({ write: (c: Buffer, _e, cb) => { lines.push(JSON.parse(c.toString()) as Record<string, unknown>); cb(); } }) });
  return { logger, lines };
}

describe('two runners on one bucket with nesting prefixes', () => {
  it("runner A's orphan sweep (grace 0) leaves runner B's backups byte-identical and removes only A's own orphan", async () => {
    const { storage, a } = await bucket();
    const before = await checksums(storage);
    const { logger } = capture();
    const result = await sweepOrphans(a, { gracePeriodMs: 0, now: new Date(Date.now() + 60_000), dryRun: false, logger });
    const after = await checksums(storage);
    const bKeys = Object.keys(before).filter((k) => k.startsWith('shop/orders/x/'));
    expect(bKeys).toHaveLength(3 * 2 + 1);
    for (const k of bKeys) expect(after[k], k).toBe(before[k]);
    expect(result.removed.map((o) => o.id)).toEqual([orphanA]);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).filter((k) => !k.startsWith(`shop/orders/backups/${orphanA}/`)).sort());
  });

  it("runner A's retention plans over A's backups only and deletes nothing of B's", async () => {
    const { storage, a } = await bucket();
    const before = await checksums(storage);
    const { candidates, dirs } = await retentionCandidates(a);
    expect(candidates.map((c) => c.id)).toEqual(idsA);
    const plan = planRetention(candidates, policy({ keepLast: 1, minKeep: 1 }), new Date('2026-11-22T00:00:00Z'));
    await applyRetention(a, plan, { dryRun: false, dirs, logger: capture().logger });
    const after = await checksums(storage);
    for (const k of Object.keys(before).filter((x) => x.startsWith('shop/orders/x/'))) expect(after[k], k).toBe(before[k]);
  });

  it("runner B's candidates are its own complete backups, whatever A stores around them", async () => {
    const { b } = await bucket();
    const { candidates, problems } = await retentionCandidates(b);
    expect(candidates.map((c) => c.id)).toEqual(idsB);
    expect(problems).toEqual([]);
  });

  it('reports each foreign key once per process (a warn line and a count), however often it sweeps', async () => {
    const { a } = await bucket();
    const foreign = new ForeignObjects();
    const { logger, lines } = capture();
    const now = new Date(Date.now() + 60_000);
    const first = await sweepOrphans(a, { gracePeriodMs: 0, now, dryRun: false, logger, foreign });
    await sweepOrphans(a, { gracePeriodMs: 0, now, dryRun: false, logger, foreign });
    const warned = lines.filter((l) => l.msg === 'foreign object under the database prefix: not written by this runner; left alone').map((l) => l.key as string);
    expect(first.foreign).toBe(7);
    expect(warned).toHaveLength(7);
    expect(new Set(warned).size).toBe(7);
    expect(warned.every((k) => k.startsWith('shop/orders/x/'))).toBe(true);
    expect(foreign.count('shared')).toBe(7);
    const metrics = new RunnerMetrics({ namespace: 'shop', name: 'orders' }, foreign);
    metrics.initLocations(['shared', 'other']);
    const text = await metrics.render();
    expect(text).toMatch(/^backup_runner_foreign_objects\{location="shared",namespace="shop",databasebackup="orders"\} 7$/m);
    expect(text).toMatch(/^backup_runner_foreign_objects\{location="other",namespace="shop",databasebackup="orders"\} 0$/m);
  });

  it("runner A's list shows only A's backups and reports B's keys as foreign, once", async () => {
    const { a } = await bucket();
    const { logger, lines } = capture();
    const foreign = new ForeignObjects();
    const rt = { locations: [a], logger, clock: () => new Date(), config: {}, foreign } as unknown as Runtime;
    const first = await listBackups(rt);
    await listBackups(rt);
    expect(first.backups.map((b) => b.id)).toEqual(idsA);
    expect(first.problems).toEqual([]);
    const warned = lines.filter((l) => l.msg === 'foreign object under the database prefix: not written by this runner; left alone').map((l) => l.key as string);
    expect(warned).toHaveLength(7);
    expect(new Set(warned).size).toBe(7);
    expect(warned.every((k) => k.startsWith('shop/orders/x/'))).toBe(true);
  });

  it('never sweeps a backup directory that holds a manifest at any depth, even with a well-formed id', async () => {
    const { storage, a } = await bucket();
    // Runner C's prefix lies inside what looks like one of A's backup directories.
    const c: Location = { name: 'shared', storage, scope: { prefix: 'shop/orders/20261117T000000Z-c000', namespace: 'n', name: 'm' } };
    await writeBackup(c, '20261117T010000Z-c001', t('20261117T010000Z-c001'));
    await storage.put('shop/orders/20261117T000000Z-c000/data.dump.zst', Buffer.from('looks like an orphan of A'));
    const before = await checksums(storage);
    const result = await sweepOrphans(a, { gracePeriodMs: 0, now: new Date(Date.now() + 60_000), dryRun: false, logger: capture().logger, foreign: new ForeignObjects() });
    expect(result.removed.map((o) => o.id)).toEqual([orphanA]);
    const after = await checksums(storage);
    for (const k of Object.keys(before).filter((x) => x.startsWith('shop/orders/20261117T000000Z-c000/'))) expect(after[k], k).toBe(before[k]);
  });

  it('leaves a backup directory holding foreign objects whole, even without a manifest', async () => {
    const { storage, a } = await bucket();
    await storage.put('shop/orders/20261116T000000Z-d000/data.dump.zst', Buffer.from('orphan-looking data'));
    await storage.put('shop/orders/20261116T000000Z-d000/notes.txt', Buffer.from('not ours'));
    const result = await sweepOrphans(a, { gracePeriodMs: 0, now: new Date(Date.now() + 60_000), dryRun: false, logger: capture().logger, foreign: new ForeignObjects() });
    expect(result.shielded).toEqual(['shop/orders/20261116T000000Z-d000/']);
    expect(await storage.stat('shop/orders/20261116T000000Z-d000/data.dump.zst')).toBeTruthy();
    expect(await storage.stat('shop/orders/20261116T000000Z-d000/notes.txt')).toBeTruthy();
  });
});
