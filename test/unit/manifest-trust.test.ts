/**
 * Objects planted in the runner's own prefix: manifests that do not match
 * where they lie, manifests dated in the future, data that is not what its
 * manifest's format says.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { validateRunnerConfig, type Retention } from '../../api/index.js';
import type { Clock } from '../../runner/daemon/clock.js';
import { Scheduler } from '../../runner/daemon/scheduler.js';
import type { Engine } from '../../runner/engines/types.js';
import { silentLogger } from '../../runner/logger.js';
import { MAX_CLOCK_SKEW_MS, type Manifest, futureInstant, misplacement, serializeManifest } from '../../runner/manifest.js';
import { listBackups } from '../../runner/ops/list.js';
import { runRetention } from '../../runner/ops/retention.js';
import { selectBackup } from '../../runner/ops/select.js';
import { checkObject, verify } from '../../runner/ops/verify.js';
import { renderListing, toJson } from '../../runner/render.js';
import { storedIn } from '../../runner/report/status.js';
import type { Location, Runtime } from '../../runner/runtime.js';
import { backupPrefix, manifestKey, objectKey } from '../../runner/storage/layout.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import { allKeys, manifestFor, writeBackup } from '../retention-fixtures.js';

const scope = { prefix: 'db', namespace: 'shop', name: 'orders' };
const NOW = new Date('2026-11-21T12:00:00Z');
const real = ['20261119T030000Z-aaaa', '20261120T030000Z-bbbb', '20261121T030000Z-cccc'];
const FUTURE_ID = '20991231T000000Z-dead';
const at = (id: string): Date => new Date(`${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}Z`);

function manifest(over: Partial<Manifest> = {}): Manifest {
  return { ...manifestFor(scope, real[0]!, at(real[0]!), { 'data.dump.zst': Buffer.from('x') }), ...over };
}

describe('misplacement (pure)', () => {
  const place = { namespace: 'shop', name: 'orders', id: real[0]! };
  it.each([
    ['matching', {}, undefined],
    ['another id', { id: real[1]! }, /id is "20261120T030000Z-bbbb", the key says "20261119T030000Z-aaaa"/],
    ['another namespace', { namespace: 'billing' }, /namespace is "billing"/],
    ['another name', { name: 'x' }, /name is "x"/],
    ['all three', { id: real[1]!, namespace: 'a', name: 'b' }, /id .*; namespace .*; name /],
  ])('%s', (_what, over, want) => {
    const got = misplacement(manifest(over), place);
    if (want === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(want);
  });
});

describe('futureInstant (pure)', () => {
  const iso = (ms: number): string => new Date(NOW.getTime() + ms).toISOString();
  it.each([
    ['all in the past', {}, undefined],
    ['exactly at the allowance', { finishedAt: iso(MAX_CLOCK_SKEW_MS) }, undefined],
    ['1 ms beyond the allowance', { finishedAt: iso(MAX_CLOCK_SKEW_MS + 1) }, 'finishedAt'],
    ['consistentAt in 2099', { consistentAt: '2099-01-01T00:00:00Z' }, 'consistentAt'],
    ['startedAt first', { startedAt: '2099-01-01T00:00:00Z', consistentAt: '2099-01-01T00:00:00Z' }, 'startedAt'],
  ])('%s', (_what, over, field) => {
    expect(futureInstant(manifest(over), NOW)?.field).toBe(field);
  });
});

function runtime(storage: MemoryStorage, retention: Partial<Retention> = {}): Runtime {
  const cfg = validateRunnerConfig({
    namespace: 'shop',
    name: 'orders',
    engine: { type: 'postgresql', postgresql: { host: 'h', database: 'd', user: 'u' } },
    locations: [{ name: 'mem', type: 'filesystem', prefix: 'db', filesystem: { path: '/unused' } }],
    retention,
  });
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  return { config: cfg.value, engine: {} as Engine, locations: [{ name: 'mem', storage, scope }], logger: silentLogger(), clock: () => NOW, runnerVersion: 'test' };
}

/** Three real backups, plus planted manifests: one dated 2099, one naming another database, one naming another id. */
async function planted(retention: Partial<Retention> = {}): Promise<{ rt: Runtime; loc: Location; storage: MemoryStorage }> {
  const storage = new MemoryStorage();
  const rt = runtime(storage, retention);
  const loc = rt.locations[0]!;
  for (const id of real) await writeBackup(loc, id, at(id));
  const files = { 'data.dump.zst': Buffer.from('foreign archive') };
  await storage.put(objectKey(scope, FUTURE_ID, 'data.dump.zst'), files['data.dump.zst']);
  await storage.put(manifestKey(scope, FUTURE_ID), serializeManifest(manifestFor(scope, FUTURE_ID, new Date('2099-12-31T00:00:00Z'), files)));
  const other = '20261121T040000Z-0001';
  await storage.put(objectKey(scope, other, 'data.dump.zst'), files['data.dump.zst']);
  await storage.put(manifestKey(scope, other), serializeManifest(manifestFor({ ...scope, namespace: 'billing' }, other, at(other), files)));
  const renamed = '20261121T050000Z-0002';
  await storage.put(manifestKey(scope, renamed), serializeManifest(manifestFor(scope, real[0]!, at(renamed), files)));
  return { rt, loc, storage };
}

describe('planted manifests in the runner’s own prefix', () => {
  it('are never listed as backups: a misplaced one is a problem, a future-dated one is flagged apart', async () => {
    const { rt } = await planted();
    const l = await listBackups(rt);
    expect(l.backups.map((b) => b.id)).toEqual(real);
    expect(l.future.map((f) => [f.id, f.field])).toEqual([[FUTURE_ID, 'startedAt']]);
    expect(l.problems.map((p) => [p.key, p.error.code]).sort()).toEqual([
      ['db/shop/orders/backups/20261121T040000Z-0001/manifest.json', 'MANIFEST_MISPLACED'],
      ['db/shop/orders/backups/20261121T050000Z-0002/manifest.json', 'MANIFEST_MISPLACED'],
    ]);
  });

  it('a future-dated manifest is never chosen by --latest or --to-time', async () => {
    const { rt } = await planted();
    const l = await listBackups(rt);
    expect(selectBackup(l.backups, { kind: 'latest' }).id).toBe(real[2]);
    expect(selectBackup(l.backups, { kind: 'time', at: new Date('2100-01-01T00:00:00Z') }).id).toBe(real[2]);
  });

  it('list shows it flagged, in the table and in JSON', async () => {
    const { rt } = await planted();
    const l = await listBackups(rt);
    const text = renderListing(l);
    expect(text).toMatch(/FUTURE-DATED manifests \(more than 5 min ahead/);
    expect(text).toMatch(new RegExp(`${FUTURE_ID}\\s+startedAt\\s+2099-12-31T00:00:00.000Z\\s+mem`));
    expect(JSON.parse(toJson(l))).toMatchObject({ future: [{ id: FUTURE_ID, field: 'startedAt', at: '2099-12-31T00:00:00.000Z', locations: ['mem'] }] });
  });

  it('verify reports it (MANIFEST_FUTURE) and the misplaced ones, and fails', async () => {
    const { rt } = await planted();
    const v = await verify(rt);
    expect(v.ok).toBe(false);
    expect(v.checks.filter((c) => c.backupId === FUTURE_ID)).toEqual([expect.objectContaining({ location: 'mem', status: 'error', error: expect.objectContaining({ code: 'MANIFEST_FUTURE' }) })]);
    expect(v.checks.filter((c) => c.error?.code === 'MANIFEST_MISPLACED')).toHaveLength(2);
  });

  it('retention plans over real backups only and removes none of the planted objects', async () => {
    const { rt, storage } = await planted({ keepLast: 1, minKeep: 1, orphanGracePeriod: '1h' });
    const before = await allKeys(storage);
    const r = await runRetention(rt, { dryRun: false });
    expect(r.locations[0]!.error).toBeUndefined();
    expect(r.locations[0]!.plan!.keep.map((k) => k.id)).toEqual([real[2]]);
    expect(r.locations[0]!.plan!.remove.map((k) => k.id).sort()).toEqual([real[0], real[1]]);
    const after = await allKeys(storage);
    expect(after).toEqual(before.filter((k) => !k.includes(real[0]!) && !k.includes(real[1]!)));
    expect(after.filter((k) => k.includes(FUTURE_ID) || k.includes('-0001/') || k.includes('-0002/'))).toHaveLength(5);
  });

  it('the last success shown in the status and metrics is the newest real backup', async () => {
    const { rt } = await planted();
    expect(storedIn(await listBackups(rt), 'mem')).toEqual({ backupsStored: 3, backupsBehind: 0, lastSuccessAt: at(real[2]!).toISOString() });
  });
});

describe('the scheduler and a last run dated in the future', () => {
  it('an interval schedule ignores it: the next run is one interval from now, not from 2099', async () => {
    const timers: number[] = [];
    const clock: Clock = { now: () => NOW, setTimer: (_fn, ms) => timers.push(ms), clearTimer: () => undefined };
    const s = new Scheduler({
      schedule: { interval: '1h', timeZone: 'UTC', suspend: false, catchUp: true },
      clock,
      random: () => 0,
      logger: silentLogger(),
      lastRun: () => Promise.resolve(new Date('2099-12-31T00:00:00Z')),
      onDue: () => Promise.resolve(),
    });
    await s.start();
    expect(s.nextRunAt()?.toISOString()).toBe('2026-11-21T13:00:00.000Z');
    s.stop();
  });
});

describe('format check: a stored object must be what its manifest’s format says', () => {
  const id = '20261121T030000Z-cccc';
  const zstd = (b: Buffer): Buffer => execFileSync('zstd', ['-q', '-c'], { input: b });
  const archive = Buffer.concat([Buffer.from('PGDMP\x01\x0e\x00'), randomBytes(64)]);
  const sql = Buffer.from('DROP TABLE IF EXISTS orders; CREATE TABLE pwned(x int);\n');

  async function check(name: string, data: Buffer, format = 'pg_dump-custom'): Promise<{ status: string; code?: string }> {
    const storage = new MemoryStorage();
    const loc: Location = { name: 'mem', storage, scope };
    await storage.put(objectKey(scope, id, name), data);
    const m = { ...manifestFor(scope, id, at(id), { [name]: data }), engine: { name: 'postgresql', serverVersion: '15', toolVersion: '15', format } };
    expect(m.objects[0]!.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    const c = await checkObject(loc, { dir: backupPrefix(scope, id), manifest: m }, m.objects[0]!);
    return { status: c.status, ...(c.error ? { code: c.error.code } : {}) };
  }

  it.each([
    ['a custom archive, zstd', 'data.dump.zst', () => zstd(archive), { status: 'ok' }],
    ['a custom archive, gzip', 'data.dump.gz', () => gzipSync(archive), { status: 'ok' }],
    ['a custom archive, uncompressed', 'data.dump', () => archive, { status: 'ok' }],
    ['a large archive (the probe reads only its start)', 'data.dump.gz', () => gzipSync(Buffer.concat([archive, randomBytes(1024 * 1024)])), { status: 'ok' }],
    ['plain SQL, zstd', 'data.dump.zst', () => zstd(sql), { status: 'corrupt', code: 'FORMAT_MISMATCH' }],
    ['plain SQL, gzip', 'data.dump.gz', () => gzipSync(sql), { status: 'corrupt', code: 'FORMAT_MISMATCH' }],
    ['plain SQL, uncompressed', 'data.dump', () => sql, { status: 'corrupt', code: 'FORMAT_MISMATCH' }],
    ['not zstd at all', 'data.dump.zst', () => sql, { status: 'corrupt', code: 'FORMAT_MISMATCH' }],
    ['empty', 'data.dump', () => Buffer.alloc(0), { status: 'corrupt', code: 'FORMAT_MISMATCH' }],
    ['a custom archive under another format\'s extension', 'data.sql.zst', () => zstd(archive), { status: 'corrupt', code: 'FORMAT_MISMATCH' }],
    ['a custom archive under an extension no format has', 'data.rdb.gz', () => gzipSync(archive), { status: 'corrupt', code: 'FORMAT_MISMATCH' }],
  ])('%s', async (_what, name, data, want) => {
    expect(await check(name, data())).toEqual(want);
  });

  it('a format this runner does not know fails, whatever the data', async () => {
    expect(await check('data.dump', archive, 'plain-sql')).toEqual({ status: 'corrupt', code: 'FORMAT_MISMATCH' });
  });
});
