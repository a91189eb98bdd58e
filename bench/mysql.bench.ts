/**
 * MariaDB backup and restore speed and memory against the raw tools, in one
 * run on the same machine, medians over BENCH_RUNS interleaved rounds. Prints
 * ratios, never asserts times.
 *
 *   BENCH_SIZE_MB=1024 BENCH_RUNS=3 npx tsx bench/mysql.bench.ts   (after `npm run build`)
 *
 * Targets (docs/benchmarks.md): backup to 2 locations at most x1.0 of
 * `mariadb-dump | gzip` and at most x1.15 of the bare dump; restore at most
 * x1.15 of `mariadb < dump.sql`; peak RSS under 150 MB.
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startMariaDb } from '../testenv/mariadb.js';
import { seedMariaBulk } from '../testenv/mariadb-seed.js';
import { fmt, median, timed, type Timed } from './lib.js';

const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const wrapper = join(import.meta.dirname, 'rss-wrapper.mjs');

const m = await startMariaDb();
const work = await mkdtemp(join(tmpdir(), 'dbbc-bench-mysql-'));
try {
  console.log(`seeding ~${sizeMb} MB ...`);
  const seeded = await seedMariaBulk(m, 'bench', sizeMb * 1024 * 1024);
  console.log(`database: ${(seeded.bytes / 1048576).toFixed(0)} MB (InnoDB data + indexes), ${seeded.rows} rows`);
  const cnf = join(work, 'client.cnf');
  await writeFile(cnf, `[client]\nhost=${m.host}\nport=${m.port}\nprotocol=tcp\nuser=${m.user}\npassword=${m.password}\ndefault-character-set=utf8mb4\n`, { mode: 0o600 });
  const dumpArgs = `--defaults-file=${cnf} --single-transaction --quick --routines --triggers --events --hex-blob`;

  const config = async (name: string, dirs: string[], algorithm?: string): Promise<string> => {
    const file = join(work, `${name}.yaml`);
    await writeFile(
      file,
      stringify({
        name: 'bench',
        engine: { type: 'mysql', mysql: { host: m.host, port: m.port, database: 'bench', user: m.user, password: { value: m.password } } },
        ...(algorithm ? { compression: { algorithm } } : {}),
        locations: dirs.map((d, i) => ({ name: `fs${i}`, type: 'filesystem', filesystem: { path: join(work, d) } })),
      }),
    );
    return file;
  };
  const two = await config('two', ['a', 'b']);
  const twoGzip = await config('two-gzip', ['a', 'b'], 'gzip');
  const one = await config('one', ['a']);
  const runner = (args: string[]): Promise<Timed> => timed(process.execPath, [wrapper, ...args, '-o', 'json'], { env: { ...process.env, LOG_LEVEL: 'warn' } });
  const clear = async (): Promise<void> => {
    await rm(join(work, 'a'), { recursive: true, force: true });
    await rm(join(work, 'b'), { recursive: true, force: true });
  };
  const sh = (script: string): Promise<Timed> => timed('bash', ['-c', `set -o pipefail; ${script}`]);

  const dumpFile = join(work, 'raw.sql');
  await sh(`mariadb-dump ${dumpArgs} bench > ${dumpFile}`);
  const rawBytes = statSync(dumpFile).size;
  const t = { raw: [] as number[], gzip: [] as number[], zstd: [] as number[], two: [] as number[], twoGzip: [] as number[], rawRestore: [] as number[], restore: [] as number[] };
  const rss: number[] = [];
  let stored = 0;
  for (let i = 0; i < runs; i++) {
    console.log(`round ${i + 1}/${runs}`);
    t.raw.push((await sh(`mariadb-dump ${dumpArgs} bench > /dev/null`)).seconds);
    t.gzip.push((await sh(`mariadb-dump ${dumpArgs} bench | gzip > /dev/null`)).seconds);
    t.zstd.push((await sh(`mariadb-dump ${dumpArgs} bench | zstd -q -T0 -3 > /dev/null`)).seconds);
    await clear();
    const r2 = await runner(['backup', '-c', two]);
    t.two.push(r2.seconds);
    rss.push(r2.maxRssKiB ?? 0);
    stored = (JSON.parse(r2.stdout) as { manifest: { objects: { size: number }[] } }).manifest.objects[0]!.size;
    await clear();
    const r2g = await runner(['backup', '-c', twoGzip]);
    t.twoGzip.push(r2g.seconds);
    rss.push(r2g.maxRssKiB ?? 0);
    await clear();
    await runner(['backup', '-c', one]);

    await m.sql('DROP DATABASE IF EXISTS restore_raw; CREATE DATABASE restore_raw;');
    t.rawRestore.push((await sh(`mariadb --defaults-file=${cnf} --binary-mode restore_raw < ${dumpFile}`)).seconds);
    await m.sql('DROP DATABASE IF EXISTS restore_raw; DROP DATABASE IF EXISTS restore_runner;');
    const rr = await runner(['restore', '-c', one, '--latest', '--target-database', 'restore_runner']);
    t.restore.push(rr.seconds);
    rss.push(rr.maxRssKiB ?? 0);
    await m.sql('DROP DATABASE IF EXISTS restore_runner;');
  }
  const md = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
  const rows: [string, number, number][] = [
    ['mariadb-dump > /dev/null', md.raw, 1],
    ['mariadb-dump | gzip > /dev/null', md.gzip, md.gzip / md.raw],
    ['mariadb-dump | zstd -T0 -3 > /dev/null', md.zstd, md.zstd / md.raw],
    ['backup-runner backup, 2 locations (zstd)', md.two, md.two / md.raw],
    ['backup-runner backup, 2 locations (gzip)', md.twoGzip, md.twoGzip / md.raw],
    ['mariadb < dump.sql (local file)', md.rawRestore, 1],
    ['backup-runner restore (verify + restore)', md.restore, md.restore / md.rawRestore],
  ];
  console.log(`\nMariaDB ${m.version}, database ${(seeded.bytes / 1048576).toFixed(0)} MB, dump ${(rawBytes / 1048576).toFixed(0)} MB, medians of ${runs} rounds`);
  for (const [what, secs, ratio] of rows) console.log(`${what.padEnd(48)} ${`${fmt(secs)} s`.padStart(9)}  x${fmt(ratio)}`);
  console.log(`\nbackup, 2 locations (zstd) / mariadb-dump | gzip: x${fmt(md.two / md.gzip)} (target <= 1.0)`);
  console.log(`backup, 2 locations (zstd) / mariadb-dump: x${fmt(md.two / md.raw)} (target <= 1.15)`);
  console.log(`restore / mariadb < dump.sql: x${fmt(md.restore / md.rawRestore)} (target <= 1.15)`);
  console.log(`bytes stored: ${(stored / 1048576).toFixed(1)} MB (dump ${(rawBytes / 1048576).toFixed(1)} MB, x${fmt(stored / rawBytes)})`);
  console.log(`runner peak RSS: ${(Math.max(...rss) / 1024).toFixed(0)} MB (target < 150)`);
} finally {
  await rm(work, { recursive: true, force: true });
  await m.stop();
}
