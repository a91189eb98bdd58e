/**
 * Redis backup and restore through the tool contract, against the raw tools,
 * in one run on the same machine, medians over BENCH_RUNS interleaved
 * rounds. Prints ratios, never asserts times.
 *
 *   BENCH_SIZE_MB=256 BENCH_RUNS=3 npx tsx bench/redis.bench.ts   (after `npm run build`)
 *
 * The server's repl-diskless-sync-delay is set to 0 for the run: its default
 * (5 s) delays every `--rdb` transfer, raw or not, by that much.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { startRedis } from '../testenv/redis.js';
import { definition } from '../tools/redis/definition.js';
import { fmt, median, timed, type Timed } from './lib.js';

const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 256);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const wrapper = join(import.meta.dirname, 'rss-wrapper.mjs');
const tool = [process.execPath, join(import.meta.dirname, '../dist/tools/main.js'), 'redis'];

const source = await startRedis();
const target = await startRedis();
const work = await mkdtemp(join(tmpdir(), 'dbbc-bench-redis-'));
try {
  console.log(`seeding ~${sizeMb} MB ...`);
  const c = new Redis({ host: source.host, port: source.port, password: source.password });
  const valueBytes = 1024;
  const keys = Math.round((sizeMb * 1024 * 1024) / valueBytes);
  for (let i = 0; i < keys; i += 5000) {
    const p = c.pipeline();
    // Half random (LZF cannot shrink it), half repetitive: like real caches.
    for (let k = i; k < Math.min(keys, i + 5000); k++) p.set(`k:${k}`, k % 2 ? randomBytes(valueBytes) : Buffer.alloc(valueBytes, k % 251));
    await p.exec();
  }
  await c.config('SET', 'repl-diskless-sync-delay', '0');
  const used = /used_memory:(\d+)/.exec(await c.info('memory'))?.[1];
  c.disconnect();

  const config = async (name: string, redis: typeof source, dirs: string[]): Promise<string> => {
    const file = join(work, `${name}.yaml`);
    const engine = { type: 'command', command: { definition: { ...definition, command: tool }, host: redis.host, port: redis.port, password: { value: redis.password }, config: { batchSize: 1000 } } };
    await writeFile(file, stringify({ name: 'bench', engine, locations: dirs.map((d, i) => ({ name: `fs${i}`, type: 'filesystem', filesystem: { path: join(work, d) } })) }));
    return file;
  };
  const two = await config('two', source, ['a', 'b']);
  const restoreCfg = await config('restore', target, ['a']);
  const runner = (args: string[]): Promise<Timed> => timed(process.execPath, [wrapper, ...args, '-o', 'json'], { env: { ...process.env, LOG_LEVEL: 'warn' } });
  const auth = `REDISCLI_AUTH=${source.password}`;
  const cli = `redis-cli -h ${source.host} -p ${source.port} --no-auth-warning`;
  const sh = (script: string): Promise<Timed> => timed('bash', ['-c', `set -o pipefail; ${script}`]);
  const rdb = join(work, 'dump.rdb');
  await sh(`${auth} ${cli} --rdb ${rdb} 2>/dev/null`);

  const t = { raw: [] as number[], zstd: [] as number[], two: [] as number[], load: [] as number[], restore: [] as number[] };
  const rss: number[] = [];
  let stored = 0;
  for (let i = 0; i < runs; i++) {
    console.log(`round ${i + 1}/${runs}`);
    t.raw.push((await sh(`${auth} ${cli} --rdb - 2>/dev/null > /dev/null`)).seconds);
    t.zstd.push((await sh(`${auth} ${cli} --rdb - 2>/dev/null | zstd -q -T0 -3 > /dev/null`)).seconds);
    await rm(join(work, 'a'), { recursive: true, force: true });
    await rm(join(work, 'b'), { recursive: true, force: true });
    const r = await runner(['backup', '-c', two]);
    t.two.push(r.seconds);
    rss.push(r.maxRssKiB ?? 0);
    stored = (JSON.parse(r.stdout) as { manifest: { objects: { size: number }[] } }).manifest.objects[0]!.size;
    // The floor of any restore: a redis-server loading the RDB file from a local disk.
    const loadDir = join(work, `load-${i}`);
    await sh(`mkdir -p ${loadDir} && cp ${rdb} ${loadDir}/dump.rdb`);
    t.load.push(
      (await sh(`redis-server --port 0 --dir ${loadDir} --dbfilename dump.rdb --save '' --appendonly no --unixsocket ${loadDir}/s.sock --logfile ${loadDir}/log </dev/null >/dev/null 2>&1 & pid=$!; until redis-cli -s ${loadDir}/s.sock INFO persistence 2>/dev/null | grep -q 'loading:0'; do sleep 0.02; done; kill $pid; wait $pid || true`)).seconds,
    );
    await rm(loadDir, { recursive: true, force: true });
    await target.cli('FLUSHALL');
    const rr = await runner(['restore', '-c', restoreCfg, '--latest']);
    t.restore.push(rr.seconds);
    rss.push(rr.maxRssKiB ?? 0);
  }
  const md = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
  const rows: [string, number, number][] = [
    ['redis-cli --rdb - > /dev/null', md.raw, 1],
    ['redis-cli --rdb - | zstd -T0 -3 > /dev/null', md.zstd, md.zstd / md.raw],
    ['backup-runner backup, 2 locations (zstd)', md.two, md.two / md.raw],
    ['redis-server loading the RDB (local file)', md.load, 1],
    ['backup-runner restore (verify + load + copy)', md.restore, md.restore / md.load],
  ];
  console.log(`\nRedis ${source.version}, ${keys} keys, used_memory ${(Number(used) / 1048576).toFixed(0)} MB, medians of ${runs} rounds`);
  for (const [what, secs, ratio] of rows) console.log(`${what.padEnd(48)} ${`${fmt(secs)} s`.padStart(9)}  x${fmt(ratio)}`);
  console.log(`\nbackup, 2 locations / redis-cli --rdb | zstd: x${fmt(md.two / md.zstd)}`);
  console.log(`restore / loading the RDB locally: x${fmt(md.restore / md.load)}`);
  console.log(`bytes stored: ${(stored / 1048576).toFixed(1)} MB`);
  console.log(`runner peak RSS: ${(Math.max(...rss) / 1024).toFixed(0)} MB (the tool's own process not counted)`);
} finally {
  await rm(work, { recursive: true, force: true });
  await source.stop();
  await target.stop();
}
