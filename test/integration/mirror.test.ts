/**
 * Mirroring and healing between real locations: a real PostgreSQL, a
 * filesystem location, an encrypted location on the S3 server (behind a
 * fault proxy, to take it down or cut it mid-object) and a plain one on the
 * GCS emulator; keys made by `age-keygen`.
 *
 * - A location added later is filled on request (`mirror`, `--dry-run`
 *   first), encrypted for its recipients; the database restored from it
 *   alone equals the original.
 * - A mirror cut mid-object leaves no object and no manifest of that
 *   backup; run again, it copies the rest.
 * - A location down during three backups is healed by the daemon when it
 *   returns: status and metrics show it behind, then caught up.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createRuntime } from '../../runner/build-runtime.js';
import { main } from '../../runner/cli/main.js';
import { loadConfig } from '../../runner/config/load.js';
import { Daemon } from '../../runner/daemon/daemon.js';
import type { StreamLine } from '../../runner/daemon/protocol.js';
import { silentLogger } from '../../runner/logger.js';
import { closeRuntime } from '../../runner/runtime.js';
import { eventually } from '../../testenv/eventually.js';
import { startFaultProxy, type FaultProxy } from '../../testenv/fault-proxy.js';
import { startGcs, type GcsEmulator } from '../../testenv/gcs.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';

const AGE_HINT = 'the age command is missing: apt-get install -y age (make deps installs it)';

let pg: PgInstance;
let s3: S3Server;
let gcs: GcsEmulator;
let proxy: FaultProxy;
let dir: string;
let seeded: Record<string, string>;
let key: { file: string; recipient: string };

interface Cli {
  code: number;
  json: Record<string, unknown>;
}

async function cli(cfg: string, args: string[]): Promise<Cli> {
  let out = '';
  const code = await main([...args, '-c', cfg, '-o', 'json', '--local'], process.env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
  return { code, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

type Loc = 'fs' | 's3' | 'gcs';
let configs = 0;
/** A runner config with the named locations, in order; `prefix` names the S3 and GCS prefix (one per test). */
async function config(prefix: string, locs: Loc[]): Promise<string> {
  const n = ++configs;
  const all = {
    fs: { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, `fs-${prefix}`) } },
    s3: { name: 's3', type: 's3', prefix, s3: s3.location('mirror', { endpoint: proxy.url }), encryption: { age: { recipients: [key.recipient], identities: [{ file: key.file }] } } },
    gcs: { name: 'gcs', type: 'gcs', prefix, gcs: gcs.location('mirror') },
  };
  const file = join(dir, `runner-${n}.yaml`);
  await writeFile(
    file,
    stringify({
      namespace: 'shop',
      name: 'orders',
      engine: { type: 'postgresql', postgresql: pg.connection('shop') },
      locations: locs.map((l) => all[l]),
      daemon: { socket: join(dir, `sock-${n}`, 'control.sock'), metricsHost: '127.0.0.1', metricsPort: 0 },
    }),
  );
  return file;
}

interface Listed {
  id: string;
  locations: string[];
}
const listed = async (cfg: string): Promise<Listed[]> => (await cli(cfg, ['list'])).json.backups as Listed[];

async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of s3.storage('mirror').list(prefix)) keys.push(o.key);
  return keys;
}

beforeAll(async () => {
  if (spawnSync('age', ['--version']).status !== 0) throw new Error(AGE_HINT);
  dir = await mkdtemp(join(tmpdir(), 'dbbc-mirror-'));
  pg = await startPostgres();
  s3 = await startS3();
  gcs = await startGcs();
  proxy = await startFaultProxy({ port: s3.port });
  await s3.createBucket('mirror');
  await seedRich(pg, 'shop', { rows: 2000 });
  seeded = await tableChecksums(pg, 'shop');
  const file = join(dir, 'a.key');
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  key = { file, recipient: execFileSync('age-keygen', ['-y', file]).toString().trim() };
}, 240_000);

afterAll(async () => {
  await proxy?.close();
  await gcs?.stop();
  await s3?.stop();
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a location added later is filled on request', () => {
  it('dry run first, then every backup copied: encrypted into S3, as stored into GCS; restored from S3 alone', async () => {
    const before = await config('fill', ['fs']);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const b = await cli(before, ['backup']);
      expect(b.code, JSON.stringify(b.json)).toBe(0);
      ids.push(b.json.id as string);
    }
    const after = await config('fill', ['fs', 's3', 'gcs']);

    const dry = await cli(after, ['mirror', '--dry-run']);
    expect(dry.code, JSON.stringify(dry.json)).toBe(0);
    const plannedFor = (r: Cli, loc: string) => (r.json.locations as { location: string; planned: { id: string; from: string; mode: string }[] }[]).find((l) => l.location === loc)!.planned;
    expect(plannedFor(dry, 's3')).toEqual([...ids].reverse().map((id) => ({ id, from: 'fs', mode: 'encrypt' })));
    expect(plannedFor(dry, 'gcs')).toEqual([...ids].reverse().map((id) => ({ id, from: 'fs', mode: 'as stored' })));
    expect((await listed(after)).map((b) => b.locations)).toEqual([['fs'], ['fs']]);

    const r = await cli(after, ['mirror']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect((await listed(after)).map((b) => b.locations)).toEqual([
      ['fs', 's3', 'gcs'],
      ['fs', 's3', 'gcs'],
    ]);
    const v = await cli(after, ['verify']);
    expect(v.code, JSON.stringify(v.json)).toBe(0);
    expect((v.json.checks as { location: string; contents?: string }[]).filter((c) => c.location === 's3').every((c) => c.contents?.startsWith('checked'))).toBe(true);

    const again = await cli(after, ['mirror']);
    expect((again.json.locations as { planned: unknown[] }[]).every((l) => l.planned.length === 0)).toBe(true);

    const s3Only = await config('fill', ['s3']);
    const restored = await cli(s3Only, ['restore', '--backup', ids[1]!, '--target-database', 'from_mirror']);
    expect(restored.code, JSON.stringify(restored.json)).toBe(0);
    expect(await tableChecksums(pg, 'from_mirror')).toEqual(seeded);
  });
});

describe('a mirror cut mid-object', () => {
  it('leaves no manifest (so no backup) of what it was copying, and a second run copies every backup', async () => {
    const source = await config('resume', ['fs']);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await cli(source, ['backup'])).json.id as string);
    const both = await config('resume', ['fs', 's3']);
    const size = (await listed(both)).length;
    expect(size).toBe(3);

    // The newest backup is copied first: cut once part of its object went upstream (the listing sends a few hundred bytes).
    const m = JSON.parse(await readFile(join(dir, 'fs-resume', 'shop', 'orders', 'backups', ids[2]!, 'manifest.json'), 'utf8')) as { objects: { size: number }[] };
    const cut = proxy.cutAfter(Math.floor(m.objects[0]!.size / 2) + 4096, { refuseMs: 500 });
    const first = await cli(both, ['mirror', '--to', 's3']);
    await cut;
    expect(first.code, JSON.stringify(first.json)).not.toBe(0);
    const t = (first.json.locations as { failed: { id: string }[]; copied: unknown[] }[])[0]!;
    expect(t.failed.map((f) => f.id), JSON.stringify(t)).toEqual([ids[2]]);
    expect(t.copied).toEqual([]);
    // No manifest, so no backup. s3rver keeps the bytes of a PUT cut mid-body (S3 refuses a body shorter than
    // its Content-Length): such a leftover is data without a manifest, which the orphan sweeper removes and
    // the next run replaces.
    const left = await keysUnder(`resume/shop/orders/backups/${ids[2]!}/`);
    expect(left.filter((k) => k.endsWith('/manifest.json'))).toEqual([]);
    expect((await listed(both)).map((b) => b.locations)).toEqual([['fs'], ['fs'], ['fs']]);
    expect(await s3.openUploads('mirror')).toEqual([]);

    const second = await cli(both, ['mirror', '--to', 's3']);
    expect(second.code, JSON.stringify(second.json)).toBe(0);
    expect((await listed(both)).map((b) => b.locations)).toEqual([
      ['fs', 's3'],
      ['fs', 's3'],
      ['fs', 's3'],
    ]);
    expect((await cli(both, ['verify'])).code).toBe(0);
  });
});

describe('healing', () => {
  it('a location down during three backups gets them from the other once it is back', async () => {
    const cfg = await config('heal', ['fs', 's3']);
    const rt = await createRuntime(await loadConfig(cfg), silentLogger());
    const daemon = new Daemon(rt, { configPath: cfg });
    await daemon.start();
    const backup = async (): Promise<Record<string, unknown>> => {
      let result: Record<string, unknown> = {};
      await daemon.operate({ kind: 'backup' }, (l: StreamLine) => l.event === 'result' && (result = l.json as Record<string, unknown>), new AbortController().signal);
      return result;
    };
    const s3State = () => (daemon.status().locations as { name: string; backupsStored: number; backupsBehind?: number; behindSince?: string }[]).find((l) => l.name === 's3')!;
    try {
      expect(await backup()).toMatchObject({ status: 'Succeeded' });
      proxy.down();
      const missed: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await backup();
        expect(r).toMatchObject({ status: 'PartiallySucceeded' });
        missed.push(r.id as string);
      }
      proxy.up();
      expect(await backup()).toMatchObject({ status: 'Succeeded' });
      // The pass after that backup copies the three it missed.
      const healed = () => {
        const s = s3State();
        return s.backupsStored === 5 && s.backupsBehind === 0 ? s : undefined;
      };
      await eventually('the three missed backups copied into s3', () => Promise.resolve(healed()), 60_000);
      const metrics = await daemon.metrics.render();
      expect(metrics).toMatch(/backup_runner_location_backups_copied_total\{[^}]*location="s3"[^}]*\} 3/);
      expect(metrics).toMatch(/backup_runner_location_backups_behind\{[^}]*location="s3"[^}]*\} 0/);
      const l = await listed(cfg);
      expect(l.filter((b) => missed.includes(b.id)).map((b) => b.locations)).toEqual([
        ['fs', 's3'],
        ['fs', 's3'],
        ['fs', 's3'],
      ]);
    } finally {
      proxy.up();
      await daemon.stop();
      await closeRuntime(rt);
    }
  });
});
