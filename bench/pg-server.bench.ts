/**
 * A whole PostgreSQL server (BENCH_DBS databases of BENCH_DB_MB each, plus
 * roles) backed up by the runner (`databases: all`: the globals and one
 * pg_dump per database, streamed to one location) against `pg_dumpall |
 * zstd`, with 1, 2 (the default) and 4 databases dumped at a time, in one run
 * on the same machine, medians of BENCH_RUNS interleaved rounds. Prints
 * ratios, never asserts times.
 *
 *   BENCH_DBS=20 BENCH_DB_MB=10 BENCH_RUNS=3 npx tsx bench/pg-server.bench.ts   (after `npm run build`)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startPostgres } from '../testenv/postgres.js';
import { seedBulk } from '../testenv/seed.js';
import { fmt, median, timed, type Timed } from './lib.js';

const dbs = Number(process.env.BENCH_DBS ?? 20);
const dbMb = Number(process.env.BENCH_DB_MB ?? 10);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const wrapper = join(import.meta.dirname, 'rss-wrapper.mjs');

const pg = await startPostgres();
const work = await mkdtemp(join(tmpdir(), 'dbbc-bench-pg-server-'));
try {
  console.log(`seeding ${dbs} databases of ~${dbMb} MB ...`);
  let total = 0;
  for (let i = 1; i <= dbs; i++) total += (await seedBulk(pg, `db${String(i).padStart(2, '0')}`, dbMb * 1024 * 1024)).bytes;
  await pg.psql("CREATE ROLE app LOGIN PASSWORD 'x'; CREATE ROLE readers; GRANT readers TO app;");
  const env = { ...process.env, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'postgres' };
  // The runner with 1, 2 (the default) and 4 databases dumped at a time.
  const PARALLEL = [1, 2, 4];
  const cfgs = new Map<number, string>();
  for (const parallel of PARALLEL) {
    const cfg = join(work, `server-${parallel}.yaml`);
    await writeFile(
      cfg,
      stringify({
        name: 'bench',
        engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), binDir: pg.binDir, databases: 'all', parallel } },
        locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(work, 'fs') } }],
      }),
    );
    cfgs.set(parallel, cfg);
  }
  const runner = (args: string[]): Promise<Timed> => timed(process.execPath, [wrapper, ...args, '-o', 'json'], { env: { ...process.env, LOG_LEVEL: 'warn' } });
  const t = { raw: [] as number[], rawZstd: [] as number[], runner: new Map<number, number[]>(PARALLEL.map((p) => [p, []])) };
  const rss: number[] = [];
  let streams = 0;
  for (let i = 0; i < runs; i++) {
    console.log(`round ${i + 1}/${runs}`);
    t.raw.push((await timed(join(pg.binDir, 'pg_dumpall'), [], { env, stdoutFile: '/dev/null' })).seconds);
    t.rawZstd.push((await timed('bash', ['-c', `set -o pipefail; "${join(pg.binDir, 'pg_dumpall')}" | zstd -q -T0 -3 > /dev/null`], { env })).seconds);
    for (const parallel of PARALLEL) {
      await rm(join(work, 'fs'), { recursive: true, force: true });
      const r = await runner(['backup', '-c', cfgs.get(parallel)!]);
      t.runner.get(parallel)!.push(r.seconds);
      rss.push(r.maxRssKiB ?? 0);
      streams = (JSON.parse(r.stdout) as { manifest: { objects: unknown[] } }).manifest.objects.length;
    }
  }
  const m = { raw: median(t.raw), rawZstd: median(t.rawZstd) };
  console.log(`\nPostgreSQL ${pg.major}, ${dbs} databases, ${(total / 1048576).toFixed(0)} MB in all, medians of ${runs} rounds`);
  console.log(`${'pg_dumpall > /dev/null'.padEnd(56)} ${`${fmt(m.raw)} s`.padStart(9)}  x1.00`);
  console.log(`${'pg_dumpall | zstd -T0 -3 > /dev/null'.padEnd(56)} ${`${fmt(m.rawZstd)} s`.padStart(9)}  x${fmt(m.rawZstd / m.raw)}`);
  for (const parallel of PARALLEL) {
    const s = median(t.runner.get(parallel)!);
    console.log(`${`backup-runner backup, all (${streams} streams), parallel ${parallel}`.padEnd(56)} ${`${fmt(s)} s`.padStart(9)}  x${fmt(s / m.raw)}  (x${fmt(s / m.rawZstd)} of the zstd pipeline)`);
  }
  console.log(`runner peak RSS: ${(Math.max(...rss) / 1024).toFixed(0)} MB`);
} finally {
  await rm(work, { recursive: true, force: true });
  await pg.stop();
}
