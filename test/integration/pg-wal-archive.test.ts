/**
 * Continuous WAL archiving against a real PostgreSQL: pg_receivewal streams into the runner's spool, every
 * finished segment reaches a filesystem location and a real S3 server (compressed, named by its digest,
 * byte for byte the server's), the segment being written is stored as a rolling partial, and the archive's
 * slot advances only past what every location holds. A restarted archiver resumes without a gap; a lost slot
 * is a gap, reported and never bridged; a location holding other bytes for a segment is never overwritten.
 * `list` shows per location the window a recovery from its archive reaches, and the gap.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../runner/build-runtime.js';
import { validateRunnerConfig } from '../../api/index.js';
import { createLogger, silentLogger } from '../../runner/logger.js';
import { decompress } from '../../runner/pipeline/compression.js';
import { closeRuntime, type Runtime } from '../../runner/runtime.js';
import { createWalStore } from '../../runner/ops/wal-store.js';
import { runBackup } from '../../runner/ops/backup.js';
import { listBackups, type Listing } from '../../runner/ops/list.js';
import { perform } from '../../runner/ops/perform.js';
import { runRetention } from '../../runner/ops/retention.js';
import { parseWalFile, walPrefix } from '../../runner/storage/layout.js';
import { parseSegmentName, segmentName } from '../../runner/engines/postgresql/physical/wal-names.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { eventually } from '../../testenv/eventually.js';

let pg: PgInstance;
let s3: S3Server;
let dir: string;
let rt: Runtime;
const MiB16 = 16 * 1024 * 1024;

interface Facts {
  slotRetainedBytes?: number;
  slotSafeBytes?: number | null;
  lastArchived?: string;
  lastPartial?: string;
  segmentsArchived: number;
  gaps: { from: string; to: string }[];
  conflicts: { location: string; key: string }[];
  receiving: boolean;
  locations: Record<string, { lastStoredAt?: string; lastSegment?: string }>;
  receiveLagBytes?: number;
}

/** Runs the archiver until stopped; its latest facts and its end (an error, or undefined). */
function startArchiver(): { facts: () => Facts | undefined; stop: () => Promise<unknown> } {
  const log = process.env.WAL_TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();
  const [service] = rt.engine.services!({ walStore: createWalStore(rt, log), spool: join(dir, 'spool'), logger: log, owner: { namespace: 'shop', name: 'wal' } });
  expect(service?.name).toBe('wal-archiver');
  const ac = new AbortController();
  let facts: Facts | undefined;
  const ran = service!.run(ac.signal, (f) => (facts = f as unknown as Facts)).then(
    () => undefined,
    (err: unknown) => err,
  );
  return {
    facts: () => facts,
    stop: async () => {
      ac.abort();
      return ran;
    },
  };
}

const fsWal = (): string => join(dir, 'fs', 'shop', 'wal', 'wal');

async function fsObjects(): Promise<string[]> {
  return (await readdir(fsWal()).catch(() => [] as string[])).sort();
}

async function s3Objects(): Promise<string[]> {
  const loc = rt.locations.find((l) => l.name === 's3')!;
  const out: string[] = [];
  for await (const o of loc.storage.list(walPrefix(loc.scope))) out.push(o.key.slice(walPrefix(loc.scope).length));
  return out.sort();
}

async function slotRestart(): Promise<string> {
  return pg.psql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name LIKE 'dbbackup_shop_wal_%'");
}

/** `list` as the CLI runs it: its JSON and its text. */
async function list(): Promise<{ json: Listing; text: string }> {
  const o = await perform(rt, { kind: 'list' });
  return { json: o.json as Listing, text: o.text };
}

/** Commits rows and ends the current segment; returns the segment that was ended. */
async function switchSegment(tag: string): Promise<string> {
  await pg.psql(`INSERT INTO marks (tag) SELECT '${tag}' FROM generate_series(1, 1000)`, 'shop');
  return pg.psql('SELECT pg_walfile_name(pg_switch_wal())');
}

beforeAll(async () => {
  pg = await startPostgres();
  s3 = await startS3();
  await s3.createBucket('backups');
  dir = await mkdtemp(join(tmpdir(), 'dbbc-wal-'));
  await pg.psql('CREATE DATABASE shop');
  await pg.psql('CREATE TABLE marks (id serial PRIMARY KEY, tag text NOT NULL)', 'shop');
  const checked = validateRunnerConfig({
    namespace: 'shop',
    name: 'wal',
    engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), mode: 'physical', wal: { partialSeconds: 1 } } },
    locations: [
      { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } },
      { name: 's3', type: 's3', prefix: 'db', s3: s3.location('backups') },
    ],
  });
  if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
  rt = await createRuntime(checked.value, silentLogger(), process.env);
}, 120_000);

afterAll(async () => {
  if (rt) await closeRuntime(rt);
  await pg?.stop();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('continuous WAL archiving', () => {
  let firstEnded = '';

  it('stores every finished segment in every location, byte for byte the server\'s, and advances the slot past it', async () => {
    const archiver = startArchiver();
    try {
      await eventually('the archiver streams', () => Promise.resolve(archiver.facts()?.receiving === true), 30_000);
      firstEnded = await switchSegment('one');
      const second = await switchSegment('two');
      await eventually('both segments archived', () => Promise.resolve((archiver.facts()?.lastArchived ?? '') >= second), 30_000);
      const fs = await fsObjects();
      for (const seg of [firstEnded, second]) {
        const name = fs.find((n) => n.startsWith(`${seg}-`) && !n.includes('.partial'));
        expect(name, `${seg} in ${fs.join(', ')}`).toBeDefined();
        const f = parseWalFile(name!)!;
        const stored = await readFile(join(fsWal(), name!));
        const plain = await buffer(decompress(Readable.from([stored]), f.compression === '.zst' ? 'zstd' : f.compression === '.gz' ? 'gzip' : 'none').output);
        expect(createHash('sha256').update(plain).digest('hex')).toBe(f.sha256);
        expect(plain.length).toBe(16 * 1024 * 1024);
        const onServer = await readFile(join(pg.dataDir, 'pg_wal', seg)).catch(() => undefined);
        if (onServer) expect(plain.equals(onServer)).toBe(true);
        expect((await s3Objects()).filter((n) => n.startsWith(`${seg}-`) && !n.includes('.partial'))).toEqual([name]);
      }
      // The slot holds the server's WAL from the first segment no location has whole; the facts say how much, and that the server sets no limit.
      expect(archiver.facts()).toMatchObject({ slotRetainedBytes: expect.any(Number) as unknown, slotSafeBytes: null });
      // Each location stored both segments, and when; the receive lag is what the server wrote past what every location holds.
      for (const location of ['fs', 's3']) expect(archiver.facts()!.locations[location]).toMatchObject({ lastStoredAt: expect.any(String) as unknown, lastSegment: second });
      await eventually('the receive lag is read with the slot', () => Promise.resolve(typeof archiver.facts()?.receiveLagBytes === 'number'), 30_000);
      expect(archiver.facts()!.receiveLagBytes).toBeLessThan(16 * 1024 * 1024);
      const restart = await slotRestart();
      expect(await pg.psql(`SELECT pg_walfile_name('${restart}'::pg_lsn + 1) > '${second}'`)).toBe('t');
    } finally {
      expect(await archiver.stop()).toBeUndefined();
    }
  }, 90_000);

  it('stores the segment being written as a rolling partial, replacing the older partial', async () => {
    const archiver = startArchiver();
    try {
      await eventually('the archiver streams', () => Promise.resolve(archiver.facts()?.receiving === true), 30_000);
      await pg.psql("INSERT INTO marks (tag) SELECT 'open' FROM generate_series(1, 100)", 'shop');
      const current = await pg.psql('SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
      await eventually('a partial of the open segment', async () => (await fsObjects()).some((n) => n.startsWith(`${current}-`) && n.includes('.partial')), 30_000);
      const before = (await fsObjects()).filter((n) => n.includes('.partial'));
      await pg.psql("INSERT INTO marks (tag) SELECT 'more' FROM generate_series(1, 100)", 'shop');
      await eventually('a newer partial replaces it', async () => {
        const now = (await fsObjects()).filter((n) => n.includes('.partial'));
        return now.length === 1 && now[0] !== before[0];
      }, 30_000);
      // Once the server is idle and its partial stored, every location holds all it wrote: no receive lag.
      await eventually('no receive lag', () => Promise.resolve(archiver.facts()?.receiveLagBytes === 0), 45_000);
    } finally {
      expect(await archiver.stop()).toBeUndefined();
    }
  }, 90_000);

  it('a restarted archiver goes on from the slot: no gap, and what was written while it was down is archived', async () => {
    const whileDown = await switchSegment('down');
    const archiver = startArchiver();
    try {
      await eventually('the segment written while down is archived', () => Promise.resolve((archiver.facts()?.lastArchived ?? '') >= whileDown), 30_000);
      expect(archiver.facts()!.gaps).toEqual([]);
      const complete = (await fsObjects()).filter((n) => !n.includes('.partial')).map((n) => n.slice(0, 24));
      // Every segment from the first archived one on, none missing.
      const first = complete[0]!;
      const last = complete.at(-1)!;
      expect(complete.length).toBe(Number.parseInt(last.slice(16), 16) - Number.parseInt(first.slice(16), 16) + 1);
    } finally {
      expect(await archiver.stop()).toBeUndefined();
    }
  }, 90_000);

  it('never overwrites a location that holds other bytes for a segment: an alarm, and the segment stored beside it', async () => {
    await pg.psql("INSERT INTO marks (tag) VALUES ('before the conflict')", 'shop');
    const next = await pg.psql('SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
    await mkdir(fsWal(), { recursive: true });
    const planted = `${next}-${'0'.repeat(64)}.zst`;
    await writeFile(join(fsWal(), planted), 'not this segment');
    const archiver = startArchiver();
    try {
      await eventually('the archiver streams', () => Promise.resolve(archiver.facts()?.receiving === true), 30_000);
      await switchSegment('conflict');
      await eventually('the conflict is reported', () => Promise.resolve((archiver.facts()?.conflicts.length ?? 0) > 0), 30_000);
      expect(archiver.facts()!.conflicts[0]).toMatchObject({ location: 'fs' });
      expect(await readFile(join(fsWal(), planted), 'utf8')).toBe('not this segment');
      await eventually('the segment stored beside it, and the slot past it', async () => (await pg.psql(`SELECT pg_walfile_name('${await slotRestart()}'::pg_lsn + 1) > '${next}'`)) === 't', 30_000);
      expect((await fsObjects()).filter((n) => n.startsWith(`${next}-`) && !n.includes('.partial'))).toHaveLength(2);
    } finally {
      expect(await archiver.stop()).toBeUndefined();
      await rm(join(fsWal(), planted));
    }
  }, 90_000);

  it('retention removes the base backups it does not keep and exactly the WAL no kept base backup needs', async () => {
    const archiver = startArchiver();
    try {
      await eventually('the archiver streams', () => Promise.resolve(archiver.facts()?.receiving === true), 30_000);
      const first = await runBackup(rt, { trigger: 'manual' });
      expect(first.status).toBe('Succeeded');
      for (const t of ['r1', 'r2']) await switchSegment(t);
      const second = await runBackup(rt, { trigger: 'manual' });
      expect(second.status).toBe('Succeeded');
      const end = await switchSegment('r3');
      await eventually('the WAL after the second backup archived', () => Promise.resolve((archiver.facts()?.lastArchived ?? '') >= end), 30_000);
    } finally {
      expect(await archiver.stop()).toBeUndefined();
    }
    const keepFrom = (await listBackups(rt)).backups.map((b) => b.manifest.engine.position?.startWalFile).sort().at(-1)!;
    const before = (await fsObjects()).filter((n) => !n.includes('.history'));
    expect(before.some((n) => n.slice(0, 24) < keepFrom)).toBe(true);
    const r = await runRetention({ ...rt, config: { ...rt.config, retention: { ...rt.config.retention, keepLast: 1 } } }, { dryRun: false });
    const fs = r.locations.find((l) => l.location === 'fs')!;
    expect(fs.plan!.remove).toHaveLength(1);
    expect(fs.walRemoved).toBe(before.filter((n) => n.slice(0, 24) < keepFrom).length);
    for (const objects of [await fsObjects(), await s3Objects()]) {
      const segments = objects.filter((n) => !n.includes('.history')).map((n) => n.slice(0, 24));
      expect(segments.every((n) => n >= keepFrom), segments.join(' ')).toBe(true);
      expect(segments).toContain(keepFrom);
    }
  }, 120_000);

  it('list shows per location the window from the kept base backup to the last WAL stored there, with no gap', async () => {
    const archiver = startArchiver();
    let end = '';
    try {
      await eventually('the archiver streams', () => Promise.resolve(archiver.facts()?.receiving === true), 30_000);
      end = await switchSegment('w1');
      await eventually('the segment archived', () => Promise.resolve((archiver.facts()?.lastArchived ?? '') >= end), 30_000);
    } finally {
      expect(await archiver.stop()).toBeUndefined();
    }
    const { json, text } = await list();
    const kept = json.backups.at(-1)!;
    expect(json.recovery?.map((r) => r.location)).toEqual(['fs', 's3']);
    for (const r of json.recovery!) {
      expect(r, r.location).toMatchObject({ from: kept.manifest.consistentAt, timeline: 1, gaps: [] });
      expect(r.stretches).toHaveLength(1);
      expect(r.lastSegment! >= end).toBe(true);
      expect(Date.parse(String(r.until)) >= Date.parse(kept.manifest.consistentAt)).toBe(true);
    }
    expect(text).toMatch(new RegExp(`^fs\\s+${kept.manifest.consistentAt}\\s+\\S+\\s+[0-9A-F]{24}.*\\s1\\s+0$`, 'm'));
  }, 90_000);

  it('a lost slot is a gap: reported with the missing segments, never bridged', async () => {
    const newest = (await fsObjects()).filter((n) => !n.includes('.partial')).map((n) => n.slice(0, 24)).at(-1)!;
    // The archive's slot is dropped while the archiver is down, and the server recycles the WAL it held.
    await pg.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'dbbackup_shop_wal_%'");
    for (const t of ['g1', 'g2', 'g3']) await switchSegment(t);
    await pg.psql('CHECKPOINT');
    const archiver = startArchiver();
    try {
      await eventually('the gap is reported', () => Promise.resolve((archiver.facts()?.gaps.length ?? 0) > 0), 30_000);
      const gap = archiver.facts()!.gaps[0]!;
      expect(gap.from > newest).toBe(true);
      expect(gap.to >= gap.from).toBe(true);
      const after = await switchSegment('after the gap');
      await eventually('WAL after the gap archived', () => Promise.resolve((archiver.facts()?.lastArchived ?? '') >= after), 30_000);
    } finally {
      expect(await archiver.stop()).toBeUndefined();
    }
    // Every location holds WAL past the gap and no base backup after it: each window ends where the gap starts, never across it.
    const { json, text } = await list();
    const firstMissing = segmentName(1, parseSegmentName(newest, MiB16)!.segno + 1n, MiB16);
    for (const r of json.recovery!) {
      expect(r.gaps, r.location).toEqual([{ at: firstMissing, after: r.until }]);
      expect(r.stretches.at(-1)!.lastWal! <= firstMissing).toBe(true);
      expect(r.lastSegment! > firstMissing).toBe(true);
      expect(text).toContain(`gap in ${r.location} at segment ${firstMissing}: nothing after ${String(r.until)} is recoverable until a base backup is taken after it`);
    }
  }, 90_000);
});
