/**
 * Backup and restore speed and memory against the raw PostgreSQL tools, in one
 * run on the same machine, with medians over BENCH_RUNS rounds (interleaved so
 * machine noise hits every variant alike). Prints ratios, never asserts times.
 *
 * Encryption: 2 locations with one encrypted (age) against none encrypted;
 * a restore from an encrypted location against one from a plain location;
 * and the encryption alone (the runner's node:crypto payload, and the
 * age-encryption package's pure JavaScript one) against zstd on the same
 * bytes.
 *
 *   BENCH_SIZE_MB=1024 BENCH_RUNS=3 npx tsx bench/backup.bench.ts   (after `npm run build`)
 */
import { createReadStream, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startPostgres } from '../testenv/postgres.js';
import { seedBulk } from '../testenv/seed.js';
import { AgeEncrypt } from '../runner/crypto/age.js';
import { fmt, median, timed, type Timed } from './lib.js';

const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const wrapper = join(import.meta.dirname, 'rss-wrapper.mjs');
/** Extra zstd levels to compare at one location (e.g. "6,9"); the default level is always measured. */
const extraLevels = (process.env.BENCH_LEVELS ?? '').split(',').filter(Boolean).map(Number);

const pg = await startPostgres();
const work = await mkdtemp(join(tmpdir(), 'dbbc-bench-'));
try {
  console.log(`seeding ~${sizeMb} MB ...`);
  const seeded = await seedBulk(pg, 'bench', sizeMb * 1024 * 1024);
  console.log(`database: ${(seeded.bytes / 1048576).toFixed(0)} MB, ${seeded.rows} rows`);
  const env = { ...process.env, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'bench' };
  const bin = (t: string): string => join(pg.binDir, t);

  const identity = await generateX25519Identity();
  const identityFile = join(work, 'key.txt');
  await writeFile(identityFile, `${identity}\n`);
  const age = { age: { recipients: [await identityToRecipient(identity)], identities: [{ file: identityFile }] } };
  /** A config with a filesystem location per dir; those in `encrypted` are encrypted (age). */
  const config = async (name: string, dirs: string[], level?: number, encrypted: string[] = []): Promise<string> => {
    const file = join(work, `${name}.yaml`);
    await writeFile(
      file,
      stringify({
        name: 'bench',
        engine: { type: 'postgresql', postgresql: { ...pg.connection('bench'), binDir: pg.binDir } },
        ...(level ? { compression: { algorithm: 'zstd', level } } : {}),
        locations: dirs.map((d, i) => ({ name: `fs${i}`, type: 'filesystem', filesystem: { path: join(work, d) }, ...(encrypted.includes(d) ? { encryption: age } : {}) })),
      }),
    );
    return file;
  };
  const one = await config('one', ['a']);
  const two = await config('two', ['a', 'b']);
  const twoEnc = await config('two-enc', ['a', 'b'], undefined, ['b']);
  const oneEnc = await config('one-enc', ['b'], undefined, ['b']);
  const levelConfigs = await Promise.all(extraLevels.map((l) => config(`level${l}`, ['a'], l)));
  const levelTimes = extraLevels.map(() => [] as number[]);
  const levelBytes = extraLevels.map(() => 0);
  const runner = (args: string[]): Promise<Timed> => timed(process.execPath, [wrapper, ...args, '-o', 'json'], { env: { ...process.env, LOG_LEVEL: 'warn' } });
  const clearLocations = async (): Promise<void> => {
    await rm(join(work, 'a'), { recursive: true, force: true });
    await rm(join(work, 'b'), { recursive: true, force: true });
  };

  const t = { raw: [] as number[], rawZstd: [] as number[], one: [] as number[], two: [] as number[], twoEnc: [] as number[], rawRestore: [] as number[], restore: [] as number[], restoreEnc: [] as number[] };
  const rss: number[] = [];
  let storedBytes = 0;
  const dumpFile = join(work, 'raw.dump');
  await timed(bin('pg_dump'), ['-Fc', '-f', dumpFile], { env });
  const rawBytes = statSync(dumpFile).size;

  for (let i = 0; i < runs; i++) {
    console.log(`round ${i + 1}/${runs}`);
    t.raw.push((await timed(bin('pg_dump'), ['-Fc'], { env, stdoutFile: '/dev/null' })).seconds);
    t.rawZstd.push((await timed('bash', ['-c', `set -o pipefail; "${bin('pg_dump')}" -Fc -Z0 | zstd -q -T0 -3 > /dev/null`], { env })).seconds);
    await clearLocations();
    const r1 = await runner(['backup', '-c', one]);
    t.one.push(r1.seconds);
    rss.push(r1.maxRssKiB ?? 0);
    await clearLocations();
    const r2 = await runner(['backup', '-c', two]);
    t.two.push(r2.seconds);
    rss.push(r2.maxRssKiB ?? 0);
    storedBytes = (JSON.parse(r2.stdout) as { manifest: { objects: { size: number }[] } }).manifest.objects[0]!.size;
    await clearLocations();
    const r2e = await runner(['backup', '-c', twoEnc]);
    t.twoEnc.push(r2e.seconds);
    rss.push(r2e.maxRssKiB ?? 0);
    for (const [j, cfg] of levelConfigs.entries()) {
      await clearLocations();
      const r = await runner(['backup', '-c', cfg]);
      levelTimes[j]!.push(r.seconds);
      levelBytes[j] = (JSON.parse(r.stdout) as { manifest: { objects: { size: number }[] } }).manifest.objects[0]!.size;
    }

    await pg.psql('DROP DATABASE IF EXISTS restore_raw; CREATE DATABASE restore_raw;', 'postgres');
    t.rawRestore.push((await timed(bin('pg_restore'), ['--single-transaction', '--exit-on-error', '-d', 'restore_raw', dumpFile], { env })).seconds);
    await pg.psql('DROP DATABASE IF EXISTS restore_raw; DROP DATABASE IF EXISTS restore_runner;', 'postgres');
    const rr = await runner(['restore', '-c', one, '--latest', '--target-database', 'restore_runner']);
    t.restore.push(rr.seconds);
    rss.push(rr.maxRssKiB ?? 0);
    await pg.psql('DROP DATABASE IF EXISTS restore_runner;', 'postgres');
    // The same backup's encrypted copy (location b of the two-enc run).
    const re = await runner(['restore', '-c', oneEnc, '--latest', '--target-database', 'restore_runner']);
    t.restoreEnc.push(re.seconds);
    rss.push(re.maxRssKiB ?? 0);
    await pg.psql('DROP DATABASE IF EXISTS restore_runner;', 'postgres');
  }

  const m = {
    raw: median(t.raw),
    rawZstd: median(t.rawZstd),
    one: median(t.one),
    two: median(t.two),
    twoEnc: median(t.twoEnc),
    rawRestore: median(t.rawRestore),
    restore: median(t.restore),
    restoreEnc: median(t.restoreEnc),
  };
  const rows: [string, string, string][] = [
    ['pg_dump -Fc > /dev/null', `${fmt(m.raw)} s`, '1.00'],
    ['pg_dump -Fc -Z0 | zstd -T0 -3 > /dev/null', `${fmt(m.rawZstd)} s`, fmt(m.rawZstd / m.raw)],
    ['backup-runner backup, 1 location', `${fmt(m.one)} s`, fmt(m.one / m.raw)],
    ['backup-runner backup, 2 locations', `${fmt(m.two)} s`, fmt(m.two / m.raw)],
    ['pg_restore --single-transaction (local file)', `${fmt(m.rawRestore)} s`, '1.00'],
    ['backup-runner restore (verify + restore)', `${fmt(m.restore)} s`, fmt(m.restore / m.rawRestore)],
  ];
  const enc = await encryptionAlone(dumpFile, await identityToRecipient(identity));
  console.log(`\nPostgreSQL ${pg.major}, database ${(seeded.bytes / 1048576).toFixed(0)} MB, medians of ${runs} rounds`);
  for (const [what, secs, ratio] of rows) console.log(`${what.padEnd(48)} ${secs.padStart(9)}  x${ratio}`);
  console.log(`\n2 locations / 1 location: x${fmt(m.two / m.one)}`);
  console.log(`2 locations, one encrypted / none encrypted: x${fmt(m.twoEnc / m.two)} (target <= 1.10)`);
  console.log(`restore from an encrypted location / from a plain one: x${fmt(m.restoreEnc / m.restore)} (target <= 1.10)`);
  console.log(
    `on the same ${(enc.bytes / 1048576).toFixed(0)} MB (pg_dump -Fc): encryption (node:crypto) ${fmt(enc.runner)} MB/s, age-encryption package (pure JavaScript) ${fmt(enc.pkg)} MB/s, zstd -3 -T0 ${fmt(enc.zstd)} MB/s: ` +
      `encryption x${fmt(enc.runner / enc.zstd)} of zstd's throughput`,
  );
  console.log(`bytes stored: ${(storedBytes / 1048576).toFixed(1)} MB (pg_dump -Fc: ${(rawBytes / 1048576).toFixed(1)} MB, x${fmt(storedBytes / rawBytes)})`);
  for (const [j, level] of extraLevels.entries()) {
    const secs = median(levelTimes[j]!);
    console.log(`zstd -${level}, 1 location: ${fmt(secs)} s x${fmt(secs / m.raw)} of pg_dump -Fc, ${(levelBytes[j]! / 1048576).toFixed(1)} MB stored (x${fmt(levelBytes[j]! / rawBytes)} of pg_dump -Fc)`);
  }
  console.log(`runner peak RSS: ${(Math.max(...rss) / 1024).toFixed(0)} MB (max over backup and restore runs)`);
} finally {
  await rm(work, { recursive: true, force: true });
  await pg.stop();
}

/** MB/s of the runner's age encryption, of the age-encryption package's, and of zstd -3 -T0, each over the same file, best of 3. */
async function encryptionAlone(file: string, recipient: string): Promise<{ bytes: number; runner: number; pkg: number; zstd: number }> {
  const bytes = statSync(file).size;
  const best = async (fn: () => Promise<unknown>): Promise<number> => {
    let s = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      await fn();
      s = Math.min(s, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return bytes / 1048576 / s;
  };
  const drain = () => new Writable({ write: (_c, _e, cb) => cb() });
  const runner = await best(() => pipeline(createReadStream(file), new AgeEncrypt({ recipients: [recipient] }), drain()));
  const pkg = await best(async () => {
    const e = new Encrypter();
    e.addRecipient(recipient);
    const out = await e.encrypt(Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>);
    for await (const _ of out as unknown as AsyncIterable<Uint8Array>) void _;
  });
  const zstd = await best(() => timed('zstd', ['-q', '-T0', '-3', '-c', file], { stdoutFile: '/dev/null' }));
  return { bytes, runner, pkg, zstd };
}
