/**
 * The daemon reports into its DatabaseBackup's status on a real
 * kube-apiserver 1.20, as a ServiceAccount whose Role allows exactly get and
 * patch on databasebackups/status of one name: lastBackup (Running, then
 * Succeeded), lastSuccessAt, nextRunAt and per-location counts arrive, the
 * controller's conditions stay untouched, and a report the Role does not
 * allow is refused (403), logged and counted while the backup succeeds.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { validateRunnerConfig } from '../../api/index.js';
import { createRuntime } from '../../runner/build-runtime.js';
import { Daemon } from '../../runner/daemon/daemon.js';
import type { StreamLine } from '../../runner/daemon/protocol.js';
import { createLogger } from '../../runner/logger.js';
import { retainAfterBackup } from '../../runner/ops/retention.js';
import { closeRuntime, type Runtime } from '../../runner/runtime.js';
import { applyCrds } from '../../testenv/controller.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich } from '../../testenv/seed.js';
import { validBackup } from '../crd-fixtures.js';

const NS = 'shop';
const SA = 'orders-runner';

type Obj = Record<string, unknown>;
interface Status {
  observedGeneration?: number;
  conditions?: Obj[];
  lastBackup?: { id: string; status: string; startedAt?: string; finishedAt?: string };
  lastSuccessAt?: string;
  nextRunAt?: string;
  locations?: { name: string; state: string; backupsStored?: number; lastSuccessAt?: string; message?: string }[];
}

let kube: KubeInstance | undefined;
let pg: PgInstance | undefined;
let dir = '';
const kubeconfigBefore = process.env.KUBECONFIG;

const rbac = (name: string) => [
  { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SA, namespace: NS } },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: SA, namespace: NS },
    rules: [{ apiGroups: ['dbbackup.io'], resources: ['databasebackups/status'], resourceNames: [name], verbs: ['get', 'patch'] }],
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: SA, namespace: NS },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: SA },
    subjects: [{ kind: 'ServiceAccount', name: SA, namespace: NS }],
  },
];

async function status(name: string): Promise<Status | undefined> {
  const out = await kube!.kubectlOk(['get', 'dbb', name, '-n', NS, '-o', 'json']);
  return (JSON.parse(out) as { status?: Status }).status;
}

async function waitFor(name: string, what: string, ok: (s: Status) => boolean, timeoutMs = 20_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(name);
    if (s && ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`DatabaseBackup ${name}: ${what} not reported within ${timeoutMs} ms; status: ${JSON.stringify(s)}`);
    await delay(200);
  }
}

/** A daemon in this process (KUBECONFIG from the environment, as in the pod), with its log lines. */
async function startDaemon(reportTo: string): Promise<{ daemon: Daemon; rt: Runtime; logs: Obj[] }> {
  const logs: Obj[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Obj);
      cb();
    },
  });
  const cfg = validateRunnerConfig({
    namespace: NS,
    name: reportTo,
    engine: { type: 'postgresql', postgresql: pg!.connection('shop') },
    locations: [
      { name: 'local', type: 'filesystem', filesystem: { path: join(dir, reportTo, 'local') } },
      { name: 'archive', type: 'filesystem', filesystem: { path: join(dir, reportTo, 'archive') } },
    ],
    schedule: { cron: '0 3 * * *', timeZone: 'Europe/Berlin', catchUp: false },
    daemon: { socket: join(dir, reportTo, 'control.sock'), metricsHost: '127.0.0.1', metricsPort: 0 },
    report: { databaseBackup: { namespace: NS, name: reportTo } },
  });
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const rt = await createRuntime(cfg.value, createLogger({ destination: sink, pretty: false }));
  const daemon = new Daemon(rt, { afterBackup: retainAfterBackup });
  await daemon.start();
  return { daemon, rt, logs };
}

async function backup(daemon: Daemon): Promise<{ exitCode: number; json: { id: string; status: string } }> {
  const lines: StreamLine[] = [];
  await daemon.operate({ kind: 'backup' }, (l) => lines.push(l), new AbortController().signal);
  return lines.find((l) => l.event === 'result') as unknown as { exitCode: number; json: { id: string; status: string } };
}

/** `kubectl get --watch` of one DatabaseBackup: every lastBackup it goes through, as "id status" lines. */
function watchLastBackup(name: string): { lines: () => string[]; stop: () => void } {
  let out = '';
  const child = spawn(kubeBinaries().kubectl, [
    `--kubeconfig=${kube!.kubeconfigPath}`,
    'get', 'dbb', name, '-n', NS, '--watch',
    '-o', 'jsonpath={.status.lastBackup.id} {.status.lastBackup.status}{"\\n"}',
  ], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, KUBECONFIG: '' } });
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return { lines: () => out.split('\n').filter((l) => l.trim()), stop: () => child.kill() };
}

beforeAll(async () => {
  // Fails with the build hint when kube-apiserver is missing.
  kubeBinaries();
  dir = await mkdtemp(join(tmpdir(), 'dbbc-report-'));
  [kube, pg] = await Promise.all([startKube({ controllerManager: false }), startPostgres()]);
  await seedRich(pg, 'shop', { rows: 20_000 });
  await applyCrds(kube);
  await kube.kubectlOk(['create', 'namespace', NS]);
  const other = validBackup();
  other.metadata.name = 'billing';
  for (const o of [validBackup(), other, ...rbac('orders')]) await kube.kubectlOk(['apply', '-f', '-'], { input: stringify(o) });
  // The controller's part of the status, which the runner must leave alone.
  const controllerStatus = { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'RunnerAvailable', message: 'runner is up', lastTransitionTime: '2026-11-21T10:00:00Z' }] };
  await kube.kubectlOk(['patch', 'dbb', 'orders', '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: controllerStatus })]);
  const token = await kube.serviceAccountToken(NS, SA);
  process.env.KUBECONFIG = await kube.writeKubeconfig(token, `system:serviceaccount:${NS}:${SA}`);
}, 120_000);

afterAll(async () => {
  if (kubeconfigBefore === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = kubeconfigBefore;
  await kube?.stop();
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('status reports to the DatabaseBackup', () => {
  it('reports the schedule and locations at start, Running, then the outcome and counts; never the controller\'s fields', async () => {
    const { daemon, rt } = await startDaemon('orders');
    const watch = watchLastBackup('orders');
    try {
      const started = await waitFor('orders', 'nextRunAt and locations', (s) => s.nextRunAt !== undefined && s.locations?.length === 2);
      expect(started.lastBackup).toBeUndefined();
      expect(started.locations).toEqual([
        { name: 'local', state: 'Ready', backupsStored: 0, backupsBehind: 0 },
        { name: 'archive', state: 'Ready', backupsStored: 0, backupsBehind: 0 },
      ]);
      // 03:00 in Berlin is 01:00 or 02:00 UTC.
      expect(new Date(started.nextRunAt!).getUTCHours()).toBeLessThanOrEqual(2);

      const r = await backup(daemon);
      expect(r.exitCode).toBe(0);
      const done = await waitFor('orders', 'the finished backup and its counts', (s) => s.lastBackup?.status === 'Succeeded' && s.locations?.every((l) => l.backupsStored === 1) === true);
      expect(done.lastBackup).toMatchObject({ id: r.json.id, status: 'Succeeded' });
      expect(Date.parse(done.lastBackup!.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.lastBackup!.startedAt!));
      expect(done.lastSuccessAt).toBe(done.lastBackup!.finishedAt);
      expect(done.nextRunAt).toBe(started.nextRunAt);
      for (const l of done.locations!) expect(l).toEqual({ name: l.name, state: 'Ready', backupsStored: 1, backupsBehind: 0, lastSuccessAt: done.lastSuccessAt });
      // The controller's fields are as it left them.
      expect(done.observedGeneration).toBe(1);
      expect(done.conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'True', reason: 'RunnerAvailable' })]);
      // The backup was shown as Running before it was shown as Succeeded.
      expect(watch.lines()).toEqual(expect.arrayContaining([`${r.json.id} Running`, `${r.json.id} Succeeded`]));
      expect(watch.lines().indexOf(`${r.json.id} Running`)).toBeLessThan(watch.lines().indexOf(`${r.json.id} Succeeded`));
      expect(await daemon.metrics.render()).not.toMatch(/backup_runner_status_report_errors_total\{/);
    } finally {
      watch.stop();
      await daemon.stop();
      await closeRuntime(rt);
    }
  });

  it('a report the Role does not allow is refused (403), logged and counted; the backup still succeeds', async () => {
    const { daemon, rt, logs } = await startDaemon('billing');
    try {
      const r = await backup(daemon);
      expect(r.exitCode).toBe(0);
      expect(r.json.status).toBe('Succeeded');
      const deadline = Date.now() + 20_000;
      // Reading the status is refused too; the patch is still tried, and refused.
      const refused = () => logs.find((l) => l.httpStatus === 403 && (l.err as { message: string }).message.startsWith('cannot patch'));
      while (!refused() && Date.now() < deadline) await delay(100);
      const line = refused();
      expect(line, JSON.stringify(logs.filter((l) => l.module === 'status-report'))).toBeDefined();
      expect(line).toMatchObject({ level: 40, databaseBackup: `${NS}/billing`, err: { code: 'REPORT_DENIED' } });
      expect((line!.err as { message: string }).message).toMatch(/HTTP 403: databasebackups\.dbbackup\.io "billing" is forbidden: User "system:serviceaccount:shop:orders-runner" cannot patch resource "databasebackups\/status"/);
      expect(await daemon.metrics.render()).toMatch(/backup_runner_status_report_errors_total\{reason="REPORT_DENIED"[^}]*\} [1-9]/);
      expect(await status('billing')).toBeUndefined();
    } finally {
      await daemon.stop();
      await closeRuntime(rt);
    }
  });
});
