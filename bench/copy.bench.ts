/**
 * Copies between locations and key rotation, against the raw tools on the
 * same machine in one run (medians over BENCH_RUNS rounds). Prints ratios,
 * never asserts times.
 *
 * - mirror into a plain filesystem location vs `dd conv=fsync` of the same
 *   object (a copy through user space, flushed to disk as the runner's is);
 * - mirror into an encrypted filesystem location vs `age -r` of the same
 *   object, then `sync`;
 * - rekey on the S3 server: the bytes the runner sends (through a counting
 *   proxy) against the object's size, and its time against a mirror that
 *   uploads the whole object.
 *
 *   BENCH_COPY_MB=256 BENCH_RUNS=3 npx tsx bench/copy.bench.ts
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { stringify } from 'yaml';
import { main } from '../runner/cli/main.js';
import { silentLogger } from '../runner/logger.js';
import { startFaultProxy } from '../testenv/fault-proxy.js';
import { startS3 } from '../testenv/s3.js';
import { fmt, median } from './lib.js';

const sizeMb = Number(process.env.BENCH_COPY_MB ?? 256);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const ID = '20261203T120000Z-be0c';

const work = await mkdtemp(join(tmpdir(), 'dbbc-copy-bench-'));
const s3 = await startS3();
const proxy = await startFaultProxy({ port: s3.port });
try {
  await s3.createBucket('bench');
  // One backup of incompressible bytes (what a compressed dump looks like), written into location `src`.
  const dir = join(work, 'src', 'shop', 'orders', 'backups', ID);
  await mkdir(dir, { recursive: true });
  const data = join(dir, 'data.dump.zst');
  const hash = createHash('sha256');
  {
    const chunk = randomBytes(1024 * 1024);
    const { open } = await import('node:fs/promises');
    const fh = await open(data, 'w');
    for (let i = 0; i < sizeMb; i++) {
      chunk.writeUInt32LE(i, 0);
      hash.update(chunk);
      await fh.write(chunk);
    }
    await fh.close();
  }
  const digest = { size: sizeMb * 1024 * 1024, sha256: hash.digest('hex') };
  const at = '2026-12-03T12:00:00.000Z';
  const manifest = {
    formatVersion: 2, kind: 'backup', id: ID, namespace: 'shop', name: 'orders', database: 'app',
    engine: { name: 'postgresql', serverVersion: '16', toolVersion: '16', format: 'custom' },
    startedAt: at, consistentAt: at, finishedAt: at, trigger: 'manual', runnerVersion: 'bench',
    objects: [{ name: 'data.dump.zst', ...digest, plain: digest, compression: { algorithm: 'zstd' }, encryption: { scheme: 'none' } }],
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));

  const keys = await Promise.all([0, 1].map(async () => {
    const identity = await generateX25519Identity();
    return { identity, recipient: await identityToRecipient(identity) };
  }));
  const keyFile = join(work, 'old.key');
  await writeFile(keyFile, `${keys[0]!.identity}\n`);

  let n = 0;
  const config = async (locations: Record<string, unknown>[]): Promise<string> => {
    const file = join(work, `cfg-${++n}.yaml`);
    await writeFile(file, stringify({ namespace: 'shop', name: 'orders', engine: { type: 'postgresql', postgresql: { host: 'unused', database: 'app', user: 'u' } }, locations }));
    return file;
  };
  const src = { name: 'src', type: 'filesystem', filesystem: { path: join(work, 'src') } };
  const fsTarget = (name: string, encrypted?: string) => ({ name, type: 'filesystem', filesystem: { path: join(work, name) }, ...(encrypted ? { encryption: { age: { recipients: [encrypted] } } } : {}) });
  const s3Target = (prefix: string, recipient: string) => ({ name: 's3', type: 's3', prefix, s3: s3.location('bench', { endpoint: proxy.url, partSizeMiB: 16 }), encryption: { age: { recipients: [recipient] } } });

  const cli = async (cfg: string, args: string[]): Promise<number> => {
    let out = '';
    const t0 = performance.now();
    const code = await main([...args, '-c', cfg, '-o', 'json', '--local'], process.env, { stdout: (t) => (out += t), logger: silentLogger() });
    if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}: ${out.slice(0, 2000)}`);
    return (performance.now() - t0) / 1000;
  };
  const shell = (cmd: string, args: string[]): number => {
    const t0 = performance.now();
    execFileSync(cmd, args, { stdio: 'ignore' });
    return (performance.now() - t0) / 1000;
  };

  const m = { cp: [] as number[], mirror: [] as number[], age: [] as number[], mirrorEnc: [] as number[], upload: [] as number[], rekey: [] as number[], sent: [] as number[] };
  for (let r = 0; r < runs; r++) {
    for (const d of ['plain', 'enc', 'cp']) await rm(join(work, d), { recursive: true, force: true });
    await mkdir(join(work, 'cp'), { recursive: true });
    m.cp.push(shell('dd', [`if=${data}`, `of=${join(work, 'cp', 'data')}`, 'bs=1M', 'conv=fsync']));
    m.mirror.push(await cli(await config([src, fsTarget('plain')]), ['mirror', '--to', 'plain']));
    // Flushed like the runner's copy (and so that its dirty pages do not slow the next measurement).
    m.age.push(shell('sh', ['-c', `age -r ${keys[0]!.recipient} -o '${join(work, 'cp', 'data.age')}' '${data}' && sync`]));
    m.mirrorEnc.push(await cli(await config([src, fsTarget('enc', keys[0]!.recipient)]), ['mirror', '--to', 'enc']));

    // S3: the whole object uploaded (mirror, encrypting for the old key), then re-wrapped for the new key.
    const prefix = `round-${r}`;
    m.upload.push(await cli(await config([src, s3Target(prefix, keys[0]!.recipient)]), ['mirror', '--to', 's3']));
    const before = proxy.bytesUpstream;
    m.rekey.push(await cli(await config([s3Target(prefix, keys[1]!.recipient)]), ['rekey', '--identity', keyFile]));
    m.sent.push(proxy.bytesUpstream - before);
  }

  const md = (xs: number[]) => median(xs);
  console.log(`object: ${sizeMb} MiB of incompressible bytes, ${runs} round(s), medians`);
  console.log(`dd conv=fsync: ${fmt(md(m.cp))} s; mirror into a plain filesystem location: ${fmt(md(m.mirror))} s: x${fmt(md(m.mirror) / md(m.cp))}`);
  console.log(`age -r && sync: ${fmt(md(m.age))} s; mirror into an encrypted filesystem location: ${fmt(md(m.mirrorEnc))} s: x${fmt(md(m.mirrorEnc) / md(m.age))}`);
  console.log(`S3: mirror uploading the whole object ${fmt(md(m.upload))} s; rekey ${fmt(md(m.rekey))} s: x${fmt(md(m.rekey) / md(m.upload))}`);
  console.log(`S3: rekey sent ${fmt(md(m.sent) / 1048576)} MiB of the ${sizeMb} MiB object: x${fmt(md(m.sent) / (sizeMb * 1048576), 3)}`);
} finally {
  await proxy.close();
  await s3.stop();
  await rm(work, { recursive: true, force: true });
}
