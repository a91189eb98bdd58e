/**
 * The WAL archiver as the daemon runs it (`backup-runner serve`, a real process) against a real PostgreSQL:
 * a supervised service shown in `status` and the metrics; stopped with the daemon; and when the archive's
 * slot was lost while the daemon was down, the gap it finds on start makes the daemon take a base backup at
 * once, so point-in-time recovery reaches past it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../cli.js';
import { eventually } from '../../testenv/eventually.js';
import { freePort } from '../../testenv/net.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';

const ROOT = resolve(import.meta.dirname, '../..');
let pg: PgInstance;
let dir: string;
let cfg: string;
let metricsPort: number;
let daemon: { child: ChildProcess; logs: () => string } | undefined;
let firstLogs = '';

async function serve(): Promise<{ child: ChildProcess; logs: () => string }> {
  // The spool lies under TMPDIR: this test's own, so no other run of it on this machine shares it.
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'runner/cli/bin.ts'), 'serve', '-c', cfg], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', TMPDIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  await eventually('daemon ready', () => Promise.resolve(logs.includes('daemon ready') || (child.exitCode !== null ? Promise.reject(new Error(logs)) : false)), 30_000, 100);
  return { child, logs: () => logs };
}

async function stop(d: { child: ChildProcess } | undefined): Promise<void> {
  if (!d || d.child.exitCode !== null) return;
  const exited = new Promise((r) => d.child.once('exit', r));
  d.child.kill('SIGTERM');
  await exited;
}

interface Archiver {
  name: string;
  state: string;
  facts: { receiving?: boolean; lastArchived?: string; gaps?: unknown[] };
}

async function archiverStatus(): Promise<Archiver | undefined> {
  const r = await runCli(cfg, ['status']);
  return (r.json.services as Archiver[] | undefined)?.find((s) => s.name === 'wal-archiver');
}

async function switchSegment(): Promise<string> {
  await pg.psql("INSERT INTO marks (tag) SELECT 'x' FROM generate_series(1, 500)", 'shop');
  return pg.psql('SELECT pg_walfile_name(pg_switch_wal())');
}

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql('CREATE DATABASE shop');
  await pg.psql('CREATE TABLE marks (id serial PRIMARY KEY, tag text)', 'shop');
  dir = await mkdtemp(join(tmpdir(), 'dbbc-wal-daemon-'));
  metricsPort = await freePort();
  cfg = join(dir, 'runner.yaml');
  await writeFile(
    cfg,
    stringify({
      namespace: 'shop',
      name: 'wald',
      engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), mode: 'physical', wal: { partialSeconds: 1 } } },
      locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }],
      daemon: { socket: join(dir, 'control.sock'), metricsHost: '127.0.0.1', metricsPort, shutdownGracePeriod: '20s' },
    }),
  );
}, 60_000);

afterAll(async () => {
  await stop(daemon);
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the WAL archiver in the daemon', () => {
  it('runs as a supervised service, shown in status and the metrics', async () => {
    daemon = await serve();
    await eventually('the archiver streams', async () => (await archiverStatus())?.facts.receiving === true, 30_000);
    const ended = await switchSegment();
    await eventually('the segment archived', async () => ((await archiverStatus())?.facts.lastArchived ?? '') >= ended, 30_000);
    expect(await archiverStatus()).toMatchObject({ state: 'running', facts: { gaps: [] } });
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/backup_runner_service_up\{[^}]*service="wal-archiver"[^}]*\} 1/);
    expect(metrics).toMatch(/backup_runner_wal_segments_archived\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/backup_runner_wal_slot_safe_bytes\{[^}]*\} -1/);
    expect(daemon.logs()).toContain('max_slot_wal_keep_size is -1 on the server');
    await stop(daemon);
    firstLogs = daemon.logs();
  }, 90_000);

  it('a slot lost while the daemon was down: the gap is reported and a base backup is taken at once', async () => {
    expect((await runCli(cfg, ['list'])).json.backups).toEqual([]);
    await pg.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'dbbackup_shop_wald_%'");
    for (let i = 0; i < 3; i++) await switchSegment();
    await pg.psql('CHECKPOINT');
    daemon = await serve();
    await eventually('the gap', async () => ((await archiverStatus())?.facts.gaps?.length ?? 0) > 0, 30_000).catch(async (err: Error) => {
      const lines = daemon!.logs().split('\n').filter((l) => !l.includes('pg_receivewal'));
      const first = firstLogs.split('\n').filter((l) => !l.includes('"level":20'));
      throw new Error(`${err.message}\n${JSON.stringify(await archiverStatus())}\n${lines.join('\n').slice(-3000)}\nFIRST:\n${first.join('\n').slice(-4000)}`);
    });
    await eventually('a base backup taken after it', async () => ((await runCli(cfg, ['list'])).json.backups as unknown[]).length === 1, 60_000);
    expect(daemon.logs()).toContain('taking a base backup now');
    await delay(100);
  }, 120_000);
});
