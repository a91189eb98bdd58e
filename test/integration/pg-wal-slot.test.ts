/**
 * The archive slot a configuration no longer uses, against a real PostgreSQL: the slot an archiving run
 * created is dropped when the daemon starts with WAL archiving off (a slot of a similar name is left alone),
 * an active slot is left with a warning, a role without REPLICATION or an unreachable server is a warning and
 * never stops the daemon; `backup-runner wal-slot drop` drops it by hand, refusing an active slot and a slot a
 * running daemon archives through.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../runner/config/load.js';
import { createRuntime } from '../../runner/build-runtime.js';
import { Daemon } from '../../runner/daemon/daemon.js';
import { archiveSlotName } from '../../runner/engines/postgresql/physical/archiver.js';
import { createLogger, silentLogger, type Logger } from '../../runner/logger.js';
import { createWalStore } from '../../runner/ops/wal-store.js';
import { closeRuntime, type Runtime } from '../../runner/runtime.js';
import { runCli } from '../cli.js';
import { eventually } from '../../testenv/eventually.js';
import { freePort } from '../../testenv/net.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';

const OWNER = { namespace: 'shop', name: 'slot' };
const SLOT = archiveSlotName(OWNER);
/** Slots of similar names: another DatabaseBackup's of the same prefix, and ours but for the hash. */
const NEIGHBOURS = [archiveSlotName({ namespace: 'shop', name: 'slot-2' }), `dbbackup_shop_slot_${'0'.repeat(12)}`];

let pg: PgInstance;
let dir: string;
const open: Runtime[] = [];

interface Variant {
  archive: boolean;
  user?: { name: string; password: string };
  port?: number;
}

/** A runner config file for this DatabaseBackup against the test server. */
async function configFile(name: string, v: Variant): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  const wal = v.archive ? { partialSeconds: 1 } : { archive: false };
  const conn = pg.connection('postgres', { mode: 'physical', wal, ...(v.user ? { user: v.user.name, password: { value: v.user.password } } : {}), ...(v.port ? { port: v.port } : {}) });
  await writeFile(
    path,
    stringify({
      ...OWNER,
      engine: { type: 'postgresql', postgresql: conn },
      locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }],
      daemon: { socket: join(dir, `${name}.sock`), metricsHost: '127.0.0.1', metricsPort: 0, shutdownGracePeriod: '10s' },
    }),
  );
  return path;
}

async function runtime(cfg: string, logger: Logger = silentLogger()): Promise<Runtime> {
  const rt = await createRuntime(await loadConfig(cfg), logger);
  open.push(rt);
  return rt;
}

function capturingLogger(): { log: Logger; lines: () => { level: number; msg: string; [k: string]: unknown }[] } {
  let text = '';
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', destination: dest, pretty: false }), lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

async function slots(): Promise<string[]> {
  return (await pg.psql("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'dbbackup_%' ORDER BY 1")).split('\n').filter(Boolean);
}

async function createSlot(name: string): Promise<void> {
  await pg.psql(`SELECT 1 FROM pg_create_physical_replication_slot('${name}', true)`);
}

async function switchSegment(): Promise<void> {
  await pg.psql("INSERT INTO marks (tag) SELECT 'x' FROM generate_series(1, 500)", 'shop');
  await pg.psql('SELECT pg_switch_wal()');
}

/** pg_receivewal streaming from the slot: the slot is active until it is stopped. */
async function streamFrom(slot: string): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  const out = await mkdtemp(join(dir, 'receive-'));
  const child = spawn(join(pg.binDir, 'pg_receivewal'), ['-D', out, '-S', slot, '--no-loop', '-w'], {
    env: { PATH: process.env.PATH, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password },
    stdio: 'ignore',
  });
  await eventually('the slot is active', async () => (await pg.psql(`SELECT active FROM pg_replication_slots WHERE slot_name = '${slot}'`)) === 't', 20_000);
  return {
    child,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await eventually('the slot is idle', async () => (await pg.psql(`SELECT active FROM pg_replication_slots WHERE slot_name = '${slot}'`)) === 'f', 20_000);
    },
  };
}

/** Runs the engine's start-up housekeeping as the daemon does, and returns what each task reported. */
async function housekeep(rt: Runtime, logger: Logger = silentLogger()) {
  const tasks = rt.engine.housekeeping?.({ logger, owner: OWNER }) ?? [];
  return Promise.all(tasks.map(async (t) => ({ name: t.name, ...(await t.run(new AbortController().signal)) })));
}

beforeAll(async () => {
  pg = await startPostgres();
  dir = await mkdtemp(join(tmpdir(), 'dbbc-wal-slot-'));
  await pg.psql('CREATE DATABASE shop');
  await pg.psql('CREATE TABLE marks (id serial PRIMARY KEY, tag text)', 'shop');
  await pg.psql("CREATE ROLE weak LOGIN PASSWORD 'weak-password'");
}, 60_000);

afterAll(async () => {
  for (const rt of open) await closeRuntime(rt);
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the archive slot of a configuration that no longer archives WAL', () => {
  it('the slot an archiving run created is dropped when the daemon starts with archiving off; slots of similar names stay', async () => {
    const on = await runtime(await configFile('on', { archive: true }));
    const [archiver] = on.engine.services!({ walStore: createWalStore(on, silentLogger()), spool: join(dir, 'spool'), logger: silentLogger(), owner: OWNER });
    const ac = new AbortController();
    let facts: Record<string, unknown> = {};
    const ran = archiver!.run(ac.signal, (f) => (facts = f));
    await eventually('the archiver streams', () => Promise.resolve(facts.receiving === true), 30_000);
    ac.abort();
    await ran;
    for (const n of NEIGHBOURS) await createSlot(n);
    expect(await slots()).toEqual([SLOT, ...NEIGHBOURS].sort());
    // WAL written since: the slot, which nothing advances now, holds it on the server.
    for (let i = 0; i < 2; i++) await switchSegment();

    const { log, lines } = capturingLogger();
    const off = await runtime(await configFile('off', { archive: false }), log);
    const daemon = new Daemon(off, { spool: join(dir, 'spool') });
    await daemon.start();
    try {
      const done = await eventually('the housekeeping ran', () => Promise.resolve((daemon.status().housekeeping as { name: string; outcome: string; facts: Record<string, unknown> }[])[0]), 30_000);
      expect(done).toMatchObject({ name: 'wal-slot', outcome: 'dropped', facts: { slot: SLOT } });
      expect(done.facts.retainedBytes).toBeGreaterThan(16 * 1024 * 1024);
      expect(await slots()).toEqual([...NEIGHBOURS].sort());
      expect(lines().find((l) => l.msg.startsWith('dropped the WAL archive slot'))).toMatchObject({ level: 30, slot: SLOT, retainedBytes: done.facts.retainedBytes });
      expect(await daemon.metrics.render()).toMatch(/backup_runner_housekeeping_total\{(?=[^}]*task="wal-slot")(?=[^}]*outcome="dropped")[^}]*\} 1/);
      expect(daemon.status().services).toEqual([]);
    } finally {
      await daemon.stop();
    }
    // A start with nothing left to drop: nothing dropped, nothing else touched.
    expect(await housekeep(off)).toEqual([{ name: 'wal-slot', outcome: 'absent', facts: { slot: SLOT } }]);
    expect(await slots()).toEqual([...NEIGHBOURS].sort());
  }, 90_000);

  it('an active slot is left, with a warning; wal-slot drop refuses it (exit 5) and drops it once nothing streams from it', async () => {
    await createSlot(SLOT);
    const cfg = await configFile('off', { archive: false });
    const off = await runtime(cfg);
    const stream = await streamFrom(SLOT);
    try {
      const { log, lines } = capturingLogger();
      expect(await housekeep(off, log)).toEqual([{ name: 'wal-slot', outcome: 'active', retry: true, facts: { slot: SLOT, error: { code: 'SLOT_ACTIVE', message: expect.stringMatching(/something streams from it/) as unknown } } }]);
      expect(lines().find((l) => l.level === 40)?.msg).toMatch(/left while something streams from it/);
      expect(await slots()).toContain(SLOT);
      const refused = await runCli(cfg, ['wal-slot', 'drop']);
      expect(refused.code).toBe(5);
      expect(refused.json.error).toMatchObject({ code: 'SLOT_ACTIVE' });
      expect(await slots()).toContain(SLOT);
    } finally {
      await stream.stop();
    }
    const dropped = await runCli(cfg, ['wal-slot', 'drop']);
    expect(dropped.code, dropped.out).toBe(0);
    expect(dropped.json).toMatchObject({ slot: SLOT, outcome: 'dropped' });
    expect(await slots()).toEqual([...NEIGHBOURS].sort());
    const again = await runCli(cfg, ['wal-slot', 'drop']);
    expect(again.code).toBe(0);
    expect(again.json).toEqual({ slot: SLOT, outcome: 'absent' });
  }, 90_000);

  it('a rolling update: the daemon finds the slot still in use by the previous pod, tries again, and drops it once that pod stopped streaming', async () => {
    await createSlot(SLOT);
    const off = await runtime(await configFile('off', { archive: false }));
    const stream = await streamFrom(SLOT);
    const daemon = new Daemon(off, { spool: join(dir, 'spool'), housekeepingRetryMs: [200, 400, 800, 1600, 3200] });
    await daemon.start();
    try {
      const latest = () => (daemon.status().housekeeping as { name: string; outcome: string; attempt?: number }[])[0];
      await eventually('the slot found in use', () => Promise.resolve(latest()?.outcome === 'active'), 30_000);
      expect(await slots()).toContain(SLOT);
      await stream.stop();
      await eventually('the slot dropped on a later run', () => Promise.resolve(latest()?.outcome === 'dropped'), 30_000);
      expect(latest()!.attempt).toBeGreaterThan(1);
      expect(await slots()).toEqual([...NEIGHBOURS].sort());
      expect(await daemon.metrics.render()).toMatch(/backup_runner_housekeeping_total\{(?=[^}]*task="wal-slot")(?=[^}]*outcome="active")[^}]*\} [1-9]/);
    } finally {
      await daemon.stop();
      if (stream.child.exitCode === null && stream.child.signalCode === null) await stream.stop();
    }
  }, 90_000);

  it('a role without REPLICATION, or a server out of reach: a warning with the fix, the slot left, nothing thrown', async () => {
    await createSlot(SLOT);
    const weakCfg = await configFile('weak', { archive: false, user: { name: 'weak', password: 'weak-password' } });
    const weak = await runtime(weakCfg);
    const { log, lines } = capturingLogger();
    const [r] = await housekeep(weak, log);
    expect(r).toMatchObject({ name: 'wal-slot', outcome: 'denied', facts: { slot: SLOT, error: { code: 'DB_AUTH_FAILED' } } });
    const warning = lines().find((l) => l.level === 40)!.msg;
    expect(warning).toContain('ALTER ROLE "weak" WITH REPLICATION');
    expect(warning).toContain(`SELECT pg_drop_replication_slot('${SLOT}');`);
    expect(await slots()).toContain(SLOT);
    expect((await runCli(weakCfg, ['wal-slot', 'drop'])).json.error).toMatchObject({ code: 'DB_AUTH_FAILED' });

    const away = await runtime(await configFile('away', { archive: false, port: await freePort() }));
    expect((await housekeep(away))[0]).toMatchObject({ outcome: 'unreachable', facts: { error: { code: 'DB_UNREACHABLE' } } });
    expect(await slots()).toContain(SLOT);
  }, 90_000);

  it('wal-slot drop refuses while a daemon archives through the slot, and drops it once the daemon is gone', async () => {
    const cfg = await configFile('on', { archive: true });
    const on = await runtime(cfg);
    const daemon = new Daemon(on, { spool: join(dir, 'spool'), configPath: cfg });
    await daemon.start();
    try {
      expect(daemon.status().housekeeping).toEqual([]);
      const refused = await runCli(cfg, ['wal-slot', 'drop']);
      expect(refused.json.error).toMatchObject({ code: 'DAEMON_RUNNING', message: expect.stringContaining(SLOT) as unknown });
      expect(await slots()).toContain(SLOT);
    } finally {
      await daemon.stop();
    }
    const dropped = await runCli(cfg, ['wal-slot', 'drop']);
    expect(dropped.code, dropped.out).toBe(0);
    expect(dropped.json).toMatchObject({ slot: SLOT, outcome: 'dropped' });
    expect(await slots()).toEqual([...NEIGHBOURS].sort());
  }, 90_000);
});
