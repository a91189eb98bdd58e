/**
 * `backup-runner serve` as a real process, driven by the real CLI through its
 * control socket, against a real PostgreSQL and a real S3 server: commands,
 * the schedule, retention in the bucket, metrics, and a SIGKILL mid-backup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../runner/cli/main.js';
import { requestOperation } from '../../runner/cli/client.js';
import type { StreamLine } from '../../runner/daemon/protocol.js';
import { silentLogger } from '../../runner/logger.js';
import { freePort } from '../../testenv/net.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { startS3, type S3Server } from '../../testenv/s3.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';

const ROOT = join(import.meta.dirname, '..', '..');


interface Env {
  pg: PgInstance;
  s3: S3Server;
  dir: string;
}

let env: Env | undefined;
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

interface Daemon {
  child: ChildProcess;
  cfg: string;
  socket: string;
  metricsPort: number;
  logs: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

async function writeConfig(name: string, extra: Record<string, unknown>): Promise<{ cfg: string; socket: string; metricsPort: number }> {
  const { pg, s3, dir } = ready();
  const socket = join(dir, name, 'control.sock');
  const metricsPort = await freePort();
  const cfg = join(dir, `${name}.yaml`);
  await writeFile(
    cfg,
    stringify({
      namespace: 'shop',
      name,
      engine: { type: 'postgresql', postgresql: pg.connection('shop') },
      locations: [
        { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, name, 'fs') } },
        { name: 's3', type: 's3', s3: s3.location('backups') },
      ],
      daemon: { socket, metricsHost: '127.0.0.1', metricsPort, shutdownGracePeriod: '20s' },
      ...extra,
    }),
  );
  return { cfg, socket, metricsPort };
}

async function startDaemon(c: { cfg: string; socket: string; metricsPort: number }): Promise<Daemon> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'runner/cli/bin.ts'), 'serve', '-c', c.cfg], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (let i = 0; i < 150; i++) {
    if (logs.includes('daemon ready')) break;
    if (child.exitCode !== null) throw new Error(`daemon exited early:\n${logs}`);
    await delay(100);
  }
  if (!logs.includes('daemon ready')) throw new Error(`daemon not ready after 15 s:\n${logs}`);
  return {
    child,
    ...c,
    logs: () => logs,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

async function cli(args: string[], cfg: string): Promise<{ code: number; json: Record<string, unknown> }> {
  let out = '';
  const code = await main([...args, '-c', cfg, '-o', 'json'], process.env, { stdout: (t) => (out += t), logger: silentLogger() });
  return { code, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

async function s3Keys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of ready().s3.storage('backups').list(prefix)) keys.push(o.key);
  return keys;
}

beforeAll(async () => {
  try {
    const pg = await startPostgres();
    const s3 = await startS3();
    await s3.createBucket('backups');
    await seedRich(pg, 'shop', { rows: 120_000 });
    env = { pg, s3, dir: await mkdtemp(join(tmpdir(), 'dbbc-daemon-')) };
  } catch (err) {
    setupError = err;
  }
}, 180_000);

afterAll(async () => {
  await env?.s3.stop();
  await env?.pg.stop();
  if (env) await rm(env.dir, { recursive: true, force: true });
});

describe('backup-runner serve', () => {
  it('runs commands sent by the CLI, the schedule, retention, status and metrics', async () => {
    const c = await writeConfig('orders', { schedule: { interval: '4s' }, retention: { keepLast: 2 } });
    const d = await startDaemon(c);
    try {
      // A command goes through the daemon (its socket exists) and returns the daemon's result.
      const first = await cli(['backup'], c.cfg);
      expect(first.code, d.logs()).toBe(0);
      expect(first.json).toMatchObject({ status: 'Succeeded' });

      // Two commands at once: the second is queued behind the first, then runs.
      const lines: StreamLine[] = [];
      const [a, b] = await Promise.all([
        requestOperation(c.socket, { kind: 'verify' }, () => undefined),
        delay(30).then(() => requestOperation(c.socket, { kind: 'verify' }, (l) => lines.push(l))),
      ]);
      expect(a.exitCode).toBe(0);
      expect(b.exitCode).toBe(0);
      expect(lines.find((l) => l.event === 'queued')).toMatchObject({ event: 'queued', position: 1, running: { kind: 'verify' } });

      // The schedule fires on its own; retention keeps the newest 2 everywhere.
      let scheduled = false;
      for (let i = 0; i < 60 && !scheduled; i++) {
        await delay(500);
        const l = await cli(['list'], c.cfg);
        const backups = (l.json.backups ?? []) as { manifest: { trigger: string } }[];
        scheduled = backups.filter((x) => x.manifest.trigger === 'schedule').length >= 2;
      }
      expect(scheduled, d.logs()).toBe(true);
      await delay(500);
      const listing = (await cli(['list'], c.cfg)).json as { backups: { id: string; locations: string[] }[] };
      expect(listing.backups.length).toBe(2);
      const kept = listing.backups.map((x) => x.id);
      const manifests = (await s3Keys('shop/orders/')).filter((k) => k.endsWith('manifest.json'));
      expect(manifests.sort()).toEqual(kept.map((id) => `shop/orders/backups/${id}/manifest.json`).sort());
      const ids = new Set((await s3Keys('shop/orders/backups/')).map((k) => k.split('/')[3]));
      expect([...ids].sort()).toEqual([...kept].sort());
      const fsIds = await readdir(join(ready().dir, 'orders', 'fs', 'shop', 'orders', 'backups'));
      expect(fsIds.sort()).toEqual([...kept].sort());

      // retention --dry-run explains the plan and removes nothing.
      const dry = await cli(['retention', '--dry-run'], c.cfg);
      expect(dry.code, JSON.stringify(dry.json)).toBe(0);
      const plans = (dry.json as { dryRun: boolean; locations: { location: string; plan: { keep: { reasons: string[] }[]; remove: unknown[] } }[] }).locations;
      expect(plans.map((p) => [p.location, p.plan.keep.length, p.plan.remove.length])).toEqual([
        ['fs', 2, 0],
        ['s3', 2, 0],
      ]);
      expect(plans[0]!.plan.keep[0]!.reasons.join(' ')).toContain('last 1/2');

      // A restore through the daemon, chosen by time, into another database.
      const restored = await cli(['restore', '--to-time', new Date().toISOString(), '--target-database', 'via_daemon'], c.cfg);
      expect(restored.code, JSON.stringify(restored.json)).toBe(0);
      expect(await tableChecksums(ready().pg, 'via_daemon')).toEqual(await tableChecksums(ready().pg, 'shop'));

      const status = await cli(['status'], c.cfg);
      expect(status.code).toBe(0);
      expect(status.json).toMatchObject({ name: 'orders', schedule: { interval: '4s' }, lastBackup: { status: 'Succeeded' } });
      expect((status.json.schedule as { nextRunAt: string }).nextRunAt).toBeTruthy();

      const metrics = await (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/backup_runner_last_success_timestamp_seconds\{[^}]*location="s3"[^}]*\} \d+/);
      expect(metrics).toMatch(/backup_runner_backups_stored\{[^}]*location="fs"[^}]*\} 2/);
      expect(metrics).toMatch(/backup_runner_next_run_timestamp_seconds\{[^}]*\} \d+/);
      expect(metrics).toMatch(/backup_runner_schedule_interval_seconds\{[^}]*\} 4\n/);
      expect(metrics).toMatch(/backup_runner_schedule_max_gap_seconds\{[^}]*\} 4\n/);
      expect(metrics).toMatch(/backup_runner_consecutive_failed_backups\{[^}]*\} 0\n/);
      for (const location of ['fs', 's3']) {
        // At least 3 backups ran and 2 are kept: retention removed at least one in each location.
        expect(metrics).toMatch(new RegExp(`backup_runner_retention_removed_total\\{[^}]*location="${location}"[^}]*\\} [1-9]`));
        expect(metrics).toMatch(new RegExp(`backup_runner_retention_failing\\{[^}]*location="${location}"[^}]*\\} 0\\n`));
        expect(metrics).toMatch(new RegExp(`backup_runner_location_failing\\{[^}]*location="${location}"[^}]*\\} 0\\n`));
      }
      expect((await fetch(`http://127.0.0.1:${c.metricsPort}/readyz`)).status).toBe(200);
    } finally {
      expect(await d.stop()).toBe(0);
    }
  });

  it('after SIGKILL mid-backup: no partial backup is listed, the next backup runs and the orphan is swept', async () => {
    const c = await writeConfig('crash', { retention: { keepLast: 5, orphanGracePeriod: '1s' } });
    let d = await startDaemon(c);
    const running = cli(['backup'], c.cfg).catch(() => undefined);
    // Kill the daemon once the upload is under way: the data's temp file exists in the backup's directory (a fixed
    // pause is not enough on a loaded machine; the location's preflight writes a short-lived temp file at its root first).
    const fsDir = join(ready().dir, 'crash', 'fs');
    const uploading = async () => (await readdir(fsDir, { recursive: true }).catch(() => [] as string[])).some((f) => f.startsWith('shop/crash/') && f.includes('.tmp-'));
    for (let i = 0; i < 500 && !(await uploading()); i++) await delay(20);
    await d.stop('SIGKILL');
    await running;
    // The killed backup left an unfinished upload behind (a temp file on the filesystem).
    expect((await readdir(fsDir, { recursive: true })).filter((f) => f.includes('.tmp-')).length, d.logs()).toBeGreaterThan(0);

    d = await startDaemon(c);
    try {
      expect(((await cli(['list'], c.cfg)).json as { backups: unknown[] }).backups).toEqual([]);
      await delay(1100); // past the orphan grace period
      const r = await cli(['backup'], c.cfg);
      expect(r.code).toBe(0);
      const listing = (await cli(['list'], c.cfg)).json as { backups: { id: string }[] };
      expect(listing.backups.map((b) => b.id)).toEqual([r.json.id]);
      // Only the complete backup remains: orphaned data and temp files of the killed one are gone.
      const left = await readdir(fsDir, { recursive: true });
      expect(left.filter((f) => f.includes('.tmp-'))).toEqual([]);
      expect(new Set((await s3Keys('shop/crash/')).map((k) => k.split('/').slice(2, 4).join('/')))).toEqual(new Set([`backups/${r.json.id as string}`]));
    } finally {
      await d.stop();
    }
  });

  it('a location that cannot be used is location_failing; a backup stored elsewhere is not a failed backup', async () => {
    const { s3, dir } = ready();
    const c = await writeConfig('partial', {
      locations: [
        { name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'partial', 'fs') } },
        { name: 's3', type: 's3', s3: s3.location('no-such-bucket') },
      ],
    });
    const d = await startDaemon(c);
    try {
      const r = await cli(['backup'], c.cfg);
      expect(r.code, d.logs()).toBe(3);
      const metrics = await (await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/backup_runner_location_failing\{[^}]*location="s3"[^}]*\} 1\n/);
      expect(metrics).toMatch(/backup_runner_location_failing\{[^}]*location="fs"[^}]*\} 0\n/);
      // fs lacks nothing; what s3, which cannot be listed, lacks is not known: no sample.
      expect(metrics).toMatch(/backup_runner_location_backups_behind\{[^}]*location="fs"[^}]*\} 0\n/);
      expect(metrics).not.toMatch(/backup_runner_location_backups_behind\{[^}]*location="s3"/);
      expect(metrics).toMatch(/backup_runner_consecutive_failed_backups\{[^}]*\} 0\n/);
      expect(metrics).toMatch(/backup_runner_schedule_interval_seconds\{[^}]*\} 0\n/);
    } finally {
      expect(await d.stop()).toBe(0);
    }
  });

  it('SIGTERM during a backup lets it finish within the grace period', async () => {
    const c = await writeConfig('graceful', {});
    const d = await startDaemon(c);
    const running = cli(['backup'], c.cfg);
    for (let i = 0; i < 100 && !d.logs().includes('backup started'); i++) await delay(20);
    const code = await d.stop('SIGTERM');
    const r = await running;
    expect(code).toBe(0);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ status: 'Succeeded' });
  });
});
