/**
 * PostgreSQL physical backups and point-in-time recovery, against the raw tools, in one run on one machine
 * (prints ratios, never asserts times):
 *   1. a base backup to two locations (filesystem + S3) vs `pg_basebackup -D - -Ft -X fetch > /dev/null`;
 *   2. pgbench's throughput with the WAL archiver streaming vs without it, and the WAL rate it kept up with;
 *   3. the recovery point: a server killed (immediate stop) under a steady stream of commits, restored with
 *      `restore --latest`: the seconds of committed work the restore lacks (default partial interval);
 *   4. that restore (base backup + WAL through wal-fetch, server started until promoted), and the same with
 *      --start (the runner recovers, promotes and stops the server), vs the same recovery by hand from local
 *      files (zstd -d | tar -x, restore_command = cp).
 *
 *   BENCH_SCALE=20 BENCH_SECONDS=20 npx tsx bench/pitr.bench.ts   (after `npm run build`)
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify } from 'yaml';
import { createRuntime } from '../runner/build-runtime.js';
import { loadConfig } from '../runner/config/load.js';
import { silentLogger } from '../runner/logger.js';
import { createWalStore } from '../runner/ops/wal-store.js';
import { closeRuntime } from '../runner/runtime.js';
import { serviceOwnedDir, startPostgres, startPostgresOn } from '../testenv/postgres.js';
import { startS3 } from '../testenv/s3.js';
import { fmt, median, timed } from './lib.js';

const scale = Number(process.env.BENCH_SCALE ?? 20);
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const REPO = resolve(import.meta.dirname, '..');
const wrapper = join(import.meta.dirname, 'rss-wrapper.mjs');

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((res, rej) => {
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.slice(-1500)}`))));
  });
}

/** When the runner's debug log (one JSON object a line) reached each step of a restore --start, in seconds from `since` (epoch ms). */
function phases(log: string, since: number): string {
  const steps: [string, RegExp][] = [
    ['backup chosen', /^restore selected backup/],
    ['laid in', /^laid in: flushing/],
    ['flushed', /^laid in and flushed/],
    ['checked', /^checked$/],
    ['server started', /^starting the server/],
    ['redo', /^server log$/],
    ['ready', /^server log$/],
    ['done', /^restore finished/],
  ];
  const at = new Map<string, number>();
  for (const line of log.split('\n')) {
    let j: { time?: number; msg?: string; line?: string };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue;
    }
    const step = steps.find(([name, re]) => !at.has(name) && re.test(j.msg ?? '') && (name === 'redo' ? /redo starts/.test(j.line ?? '') : name === 'ready' ? /ready to accept connections/.test(j.line ?? '') : true));
    if (step && j.time) at.set(step[0], (j.time - since) / 1000);
  }
  return steps.map(([name]) => `${name} ${at.has(name) ? fmt(at.get(name)!) : '?'}`).join(', ');
}

/** Starts a server on a recovered directory, waits until it has promoted, and reads its newest commit's instant. */
async function promotedThrough(dataDir: string): Promise<string> {
  const server = await startPostgresOn(dataDir, login);
  try {
    while ((await server.psql('SELECT pg_is_in_recovery()')) !== 'f') await delay(100);
    return await server.psql("SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM rpo");
  } finally {
    await server.stop();
  }
}

const asService = (args: string[]): string[] => (process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...args] : args);

const pg = await startPostgres({ settings: { synchronous_commit: 'on' } });
const s3 = await startS3();
await s3.createBucket('backups');
const work = await mkdtemp(join(tmpdir(), 'dbbc-bench-pitr-'));
await chmod(work, 0o755);
const env = { ...process.env, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'postgres' };
const login = { user: pg.user, password: pg.password };
try {
  console.log(`pgbench -i -s ${scale} ...`);
  await sh(join(pg.binDir, 'pgbench'), ['-i', '-q', '-s', String(scale)], env);
  await pg.psql('CREATE TABLE rpo (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  const runnerCmd = join(work, 'backup-runner');
  await writeFile(runnerCmd, `#!/bin/sh\nexec ${process.execPath} ${REPO}/dist/runner/cli/bin.js "$@"\n`, { mode: 0o755 });
  const cfg = join(work, 'runner.yaml');
  await writeFile(
    cfg,
    stringify({
      namespace: 'bench',
      name: 'pitr',
      engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), mode: 'physical' } },
      locations: [
        { name: 's3', type: 's3', prefix: 'db', s3: s3.location('backups') },
        { name: 'fs', type: 'filesystem', filesystem: { path: join(work, 'fs') } },
      ],
    }),
    { mode: 0o644 },
  );
  const runner = (args: string[], level = 'warn') => timed(process.execPath, [wrapper, ...args, '-c', cfg, '-o', 'json'], { env: { ...process.env, LOG_LEVEL: level, BACKUP_RUNNER_COMMAND: runnerCmd } });

  // 0. Where a base backup's time goes: one location at a time, with and without compression (each under a name of its own;
  // before the archiver ever runs, so the archive of the base backups below starts where they end).
  const rawSplit = (await timed(join(pg.binDir, 'pg_basebackup'), ['-D', '-', '-Ft', '-X', 'fetch', '-w', '--checkpoint=fast'], { env, stdoutFile: '/dev/null' })).seconds;
  const split: string[] = [];
  const splitSeconds: Record<string, number> = {};
  for (const [label, locations, compression] of [
    ['filesystem, no compression', [{ name: 'fs', type: 'filesystem', filesystem: { path: join(work, 'fs-split') } }], { algorithm: 'none' }],
    ['filesystem, zstd', [{ name: 'fs', type: 'filesystem', filesystem: { path: join(work, 'fs-split') } }], { algorithm: 'zstd' }],
    ['s3, zstd', [{ name: 's3', type: 's3', prefix: 'split', s3: s3.location('backups') }], { algorithm: 'zstd' }],
  ] as const) {
    const variant = join(work, `split-${split.length}.yaml`);
    await writeFile(variant, stringify({ namespace: 'bench', name: `split${split.length}`, engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), mode: 'physical' } }, locations, compression }), { mode: 0o644 });
    const r = await timed(process.execPath, [wrapper, 'backup', '-c', variant, '-o', 'json'], { env: { ...process.env, LOG_LEVEL: 'warn' } });
    split.push(`${label} ${fmt(r.seconds)} s (x${fmt(r.seconds / rawSplit)})`);
    splitSeconds[label] = r.seconds;
  }
  // The same work by hand, to one file: compressed, written, flushed (what the filesystem location does, without the runner).
  const handFile = join(work, 'by-hand.tar.zst');
  const byHandZstd = (await timed('sh', ['-c', `'${join(pg.binDir, 'pg_basebackup')}' -D - -Ft -X fetch -w --checkpoint=fast | zstd -q -T0 -3 > '${handFile}' && sync -f '${handFile}'`], { env })).seconds;
  await rm(handFile, { force: true });
  console.log(`base backup split (pg_basebackup > /dev/null ${fmt(rawSplit)} s; by hand | zstd -T0 -3 > file, flushed ${fmt(byHandZstd)} s): ${split.join('; ')}; filesystem, zstd vs by hand x${fmt(splitSeconds['filesystem, zstd']! / byHandZstd)}`);

  // 1. Base backup.
  const raw: number[] = [];
  const ours: number[] = [];
  let bytes = 0;
  for (let i = 0; i < 2; i++) {
    raw.push((await timed(join(pg.binDir, 'pg_basebackup'), ['-D', '-', '-Ft', '-X', 'fetch', '-w', '--checkpoint=fast'], { env, stdoutFile: '/dev/null' })).seconds);
    const r = await runner(['backup']);
    ours.push(r.seconds);
    bytes = Number((JSON.parse(r.stdout) as { manifest: { engine: { position: { dataBytes: string } } } }).manifest.engine.position.dataBytes);
  }
  console.log(`base backup (${fmt(bytes / 1048576, 0)} MiB): pg_basebackup > /dev/null ${fmt(median(raw))} s, runner to 2 locations ${fmt(median(ours))} s: x${fmt(median(ours) / median(raw))} (target <= 1.15)`);

  // 2. Archiving overhead under pgbench.
  const rt = await createRuntime(await loadConfig(cfg), silentLogger(), process.env);
  const startArchiver = () => {
    const [svc] = rt.engine.services!({ walStore: createWalStore(rt, silentLogger()), spool: join(work, 'spool'), logger: silentLogger(), owner: { namespace: 'bench', name: 'pitr' } });
    const ac = new AbortController();
    let facts: Record<string, unknown> = {};
    const ran = svc!.run(ac.signal, (f) => (facts = f)).catch((e: unknown) => e);
    return { facts: () => facts, stop: async () => (ac.abort(), ran) };
  };
  const tps = async (): Promise<{ tps: number; walBytes: number }> => {
    const lsn0 = await pg.psql('SELECT pg_current_wal_lsn()');
    const out = await sh(join(pg.binDir, 'pgbench'), ['-c', '4', '-j', '2', '-T', String(seconds), '-n'], env);
    const walBytes = Number(await pg.psql(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${lsn0}')`));
    return { tps: Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0), walBytes };
  };
  const without: number[] = [];
  const withA: number[] = [];
  let walRate = 0;
  let lagAtEnd = '';
  // Without, with, with, without: pgbench's throughput drifts as its tables grow, and the order must not favour either.
  for (const archiving of [false, true, true, false]) {
    if (!archiving) {
      without.push((await tps()).tps);
      continue;
    }
    const a = startArchiver();
    await delay(2000);
    const w = await tps();
    withA.push(w.tps);
    walRate = w.walBytes / seconds;
    await delay(3000);
    const last = a.facts().lastArchived;
    lagAtEnd = typeof last === 'string' ? last : 'nothing';
    await a.stop();
  }
  const overhead = 1 - median(withA) / median(without);
  console.log(`archiving under pgbench -c 4 -T ${seconds}: ${fmt(median(without), 0)} tps without, ${fmt(median(withA), 0)} tps with the archiver (overhead ${fmt(overhead * 100, 1)}%, target <= 10%); WAL rate ${fmt(walRate / 1048576, 1)} MiB/s, archived through ${lagAtEnd}`);

  // 3. Recovery point: a steady stream of commits, the server killed, restored to the latest.
  const archiver = startArchiver();
  await delay(3000);
  const writer = spawn(join(pg.binDir, 'pgbench'), ['-c', '2', '-T', '600', '-n', '-f', '-'], { env, stdio: ['pipe', 'ignore', 'ignore'] });
  writer.stdin.end('INSERT INTO rpo DEFAULT VALUES;\n');
  await delay(20_000 + Math.floor(Math.random() * 10_000));
  await sh(asService([join(pg.binDir, 'pg_ctl')])[0]!, [...asService([join(pg.binDir, 'pg_ctl')]).slice(1), 'stop', '-D', pg.dataDir, '-m', 'immediate']);
  writer.kill();
  await delay(2000);
  await archiver.stop();
  await closeRuntime(rt);
  const original = await startPostgresOn(pg.dataDir, login);
  const committed = await original.psql("SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM rpo");
  await original.stop();

  // 4. The restore, and the same recovery by hand.
  const target = await serviceOwnedDir('pgbench-pitr-');
  const started = process.hrtime.bigint();
  await runner(['restore', '--latest', '--data-dir', target]);
  const laidIn = Number(process.hrtime.bigint() - started) / 1e9;
  const reached = await promotedThrough(target);
  const ourRestore = Number(process.hrtime.bigint() - started) / 1e9;
  const rpo = (Date.parse(committed) - Date.parse(reached)) / 1000;
  console.log(`recovery point: last commit ${committed}, restored through ${reached}: ${fmt(rpo, 1)} s of committed work lost (target <= 15 s at partialSeconds 15)`);

  // By hand: the same base backup and WAL as local files (decompressed beforehand), zstd -d | tar -x, restore_command = cp.
  const local = join(work, 'local');
  await mkdir(join(local, 'wal'), { recursive: true });
  const fsDb = join(work, 'fs', 'bench', 'pitr');
  const newest = (await readdir(join(fsDb, 'backups'))).sort().at(-1)!;
  const base = join(fsDb, 'backups', newest, (await readdir(join(fsDb, 'backups', newest))).find((f) => f.startsWith('data.tar'))!);
  for (const f of await readdir(join(fsDb, 'wal'))) {
    const m = /^([0-9A-F]{24})-[0-9a-f]{64}(\.partial)?\.zst$/.exec(f);
    if (!m) continue;
    const dest = join(local, 'wal', m[1]!);
    if (m[2] && (await readdir(join(local, 'wal'))).includes(m[1]!)) continue;
    await sh('zstd', ['-q', '-d', '-f', join(fsDb, 'wal', f), '-o', dest]);
  }
  await sh('chmod', ['-R', 'a+rX', local]);
  const byHandDir = await serviceOwnedDir('pgbench-hand-');
  const handStart = process.hrtime.bigint();
  await sh('sh', ['-c', `zstd -q -d -c '${base}' | ${asService(['tar', '-x', '-C', byHandDir]).join(' ')}`]);
  const handLaidIn = Number(process.hrtime.bigint() - handStart) / 1e9;
  const conf = join(byHandDir, 'postgresql.auto.conf');
  const auto = await readFile(conf, 'utf8').catch(() => '');
  await writeFile(conf, `${auto}\nrestore_command = 'cp ${join(local, 'wal')}/%f %p'\nrecovery_target_timeline = 'latest'\nrecovery_target_action = 'promote'\n`);
  await writeFile(join(byHandDir, 'recovery.signal'), '');
  if (process.getuid?.() === 0) await sh('chown', ['-R', 'postgres:postgres', byHandDir]);
  await chmod(byHandDir, 0o700);
  const handReached = await promotedThrough(byHandDir);
  const byHand = Number(process.hrtime.bigint() - handStart) / 1e9;
  console.log(`restore to the latest, server promoted: runner ${fmt(ourRestore)} s, by hand from local files ${fmt(byHand)} s: x${fmt(ourRestore / byHand)} (target <= 1.2): laying in ${fmt(laidIn)} s vs ${fmt(handLaidIn)} s, recovery ${fmt(ourRestore - laidIn)} s vs ${fmt(byHand - handLaidIn)} s; both reached ${reached === handReached ? reached : `${reached} vs ${handReached}`}`);
  // restore --start: the runner runs the recovery itself, to the promotion and a clean stop (the by-hand figure has no stop).
  const startTarget = await serviceOwnedDir('pgbench-start-');
  const startBegan = process.hrtime.bigint();
  const spawnedAt = Date.now();
  const traced = await runner(['restore', '--latest', '--data-dir', startTarget, '--start'], 'debug');
  const withStart = Number(process.hrtime.bigint() - startBegan) / 1e9;
  console.log(`restore --start, where its time goes (s from the command's start): ${phases(traced.stderr, spawnedAt)}`);
  const startReached = await promotedThrough(startTarget);
  console.log(`restore --latest --start (recovered, promoted and stopped by the runner): ${fmt(withStart)} s vs by hand ${fmt(byHand)} s: x${fmt(withStart / byHand)} (target <= 1.2); reached ${startReached === handReached ? 'the same commit' : `${startReached} vs ${handReached}`}`);
  await rm(startTarget, { recursive: true, force: true });
  await rm(target, { recursive: true, force: true });
  await rm(byHandDir, { recursive: true, force: true });
} finally {
  await pg.stop();
  await s3.stop();
  await rm(work, { recursive: true, force: true });
}
