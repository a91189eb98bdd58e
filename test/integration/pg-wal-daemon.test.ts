/**
 * The WAL archiver as the daemon runs it (`backup-runner serve`, a real process) against a real PostgreSQL:
 * a supervised service shown in `status` and the metrics; stopped with the daemon; and when the archive's
 * slot was lost while the daemon was down, the gap it finds on start makes the daemon take a base backup at
 * once, so point-in-time recovery reaches past it; and a server promoted onto a new timeline (restored with
 * restore --latest --start) gets a base backup of that timeline at once.
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
import { serviceOwnedDir, startPostgres, startPostgresOn, type PgInstance } from '../../testenv/postgres.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const ROOT = resolve(import.meta.dirname, '../..');
let pg: PgInstance;
let dir: string;
let cfg: string;
let metricsPort: number;
let daemon: { child: ChildProcess; logs: () => string } | undefined;
let firstLogs = '';
/** The server restored from the archive and promoted (the last test). */
let promoted: PgInstance | undefined;

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
  cfg = await writeConfig('runner.yaml', pg);
}, 60_000);

/** The DatabaseBackup's runner config, for `server`. */
async function writeConfig(name: string, server: PgInstance): Promise<string> {
  const path = join(dir, name);
  await writeFile(
    path,
    stringify({
      namespace: 'shop',
      name: 'wald',
      engine: { type: 'postgresql', postgresql: { ...server.connection('postgres'), mode: 'physical', wal: { partialSeconds: 1 } } },
      locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }],
      daemon: { socket: join(dir, 'control.sock'), metricsHost: '127.0.0.1', metricsPort, shutdownGracePeriod: '20s' },
    }),
    { mode: 0o644 },
  );
  return path;
}

afterAll(async () => {
  await stop(daemon);
  await promoted?.stop();
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
    // The archive began empty, with no base backup to start a recovery from: one is taken at once, not at the schedule.
    await eventually('a base backup taken as archiving began', async () => ((await runCli(cfg, ['list'])).json.backups as unknown[]).length === 1, 60_000);
    expect(daemon.logs()).toContain('no base backup reaches it (archiving was just turned on');
    await stop(daemon);
    firstLogs = daemon.logs();
  }, 120_000);

  it('a slot lost while the daemon was down: the gap is reported and a base backup is taken at once', async () => {
    expect((await runCli(cfg, ['list'])).json.backups).toHaveLength(1);
    await pg.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'dbbackup_shop_wald_%'");
    for (let i = 0; i < 3; i++) await switchSegment();
    await pg.psql('CHECKPOINT');
    daemon = await serve();
    await eventually('the gap', async () => ((await archiverStatus())?.facts.gaps?.length ?? 0) > 0, 30_000).catch(async (err: Error) => {
      const lines = daemon!.logs().split('\n').filter((l) => !l.includes('pg_receivewal'));
      const first = firstLogs.split('\n').filter((l) => !l.includes('"level":20'));
      throw new Error(`${err.message}\n${JSON.stringify(await archiverStatus())}\n${lines.join('\n').slice(-3000)}\nFIRST:\n${first.join('\n').slice(-4000)}`);
    });
    await eventually('a base backup taken after it', async () => ((await runCli(cfg, ['list'])).json.backups as unknown[]).length === 2, 60_000);
    expect(daemon.logs()).toContain('taking a base backup now');
    await delay(100);
  }, 120_000);

  it('the server promoted onto a new timeline (a point-in-time recovery): a base backup of it is taken at once', async () => {
    // The WAL after the base backup is archived first: the restore recovers through it and promotes.
    const ended = await switchSegment();
    await eventually('the segment archived', async () => ((await archiverStatus())?.facts.lastArchived ?? '') >= ended, 30_000);
    await stop(daemon);
    // The restored server runs wal-fetch as the postgres account: the config, the archive and the runner must be readable by it.
    const runner = join(dir, 'backup-runner');
    await writeFile(runner, `#!/bin/sh\nexec ${ROOT}/node_modules/.bin/tsx ${ROOT}/runner/cli/bin.ts "$@"\n`, { mode: 0o755 });
    await execFileAsync('chmod', ['-R', 'a+rX', dir]);
    const before = process.env.BACKUP_RUNNER_COMMAND;
    process.env.BACKUP_RUNNER_COMMAND = runner;
    const target = await serviceOwnedDir('pgwald-');
    try {
      const restored = await runCli(cfg, ['restore', '--latest', '--data-dir', target, '--start']);
      expect(restored.code, restored.out).toBe(0);
      expect(restored.json).toMatchObject({ dataDirectory: { recovered: { promoted: true, timeline: 2 } } });
    } finally {
      if (before === undefined) delete process.env.BACKUP_RUNNER_COMMAND;
      else process.env.BACKUP_RUNNER_COMMAND = before;
    }
    // The control socket's directory is the runner's alone again.
    await execFileAsync('chmod', ['0700', dir]);
    promoted = await startPostgresOn(target, { user: pg.user, password: pg.password });
    cfg = await writeConfig('promoted.yaml', promoted);
    daemon = await serve();
    const timelines = async (): Promise<string[]> =>
      ((await runCli(cfg, ['list'])).json.backups as { manifest: { engine: { position?: { timeline?: string } } } }[]).map((b) => String(b.manifest.engine.position?.timeline));
    await eventually('a base backup of timeline 2', async () => (await timelines()).includes('2'), 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${daemon!.logs().split('\n').filter((l) => !l.includes('pg_receivewal')).join('\n').slice(-3000)}`);
    });
    expect(daemon.logs()).toContain('the server streams timeline 2 (it was promoted) and no base backup of it exists');
    expect((await timelines()).filter((t) => t === '2')).toHaveLength(1);
    await rm(target, { recursive: true, force: true }).catch(() => undefined);
  }, 180_000);
});
