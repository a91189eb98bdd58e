/**
 * The controller at scale against a real kube-apiserver 1.20 + etcd (no
 * kube-controller-manager: no garbage collection or Deployment rollouts are
 * needed, and nothing but the controller writes during a measured phase).
 *
 *   BENCH_BACKUPS=1000 BENCH_NAMESPACES=100 npx tsx --expose-gc bench/controller.bench.ts
 *
 * Knobs: BENCH_BACKUPS (1000), BENCH_NAMESPACES (100), BENCH_WORKERS (the
 * controller's default, 4), BENCH_SETTLE_MS (1000: how long the controller
 * must stay idle before a phase counts as done; not part of the timings),
 * BENCH_PHASE_TIMEOUT_S (1200), BENCH_LOG_LEVEL (silent; warn shows failed
 * reconciles). --expose-gc makes the heap figures "after a full GC".
 * About 3 minutes at 1,000 on 2 cores; BENCH_BACKUPS=100 BENCH_NAMESPACES=10
 * for a quick run.
 *
 * Phases, each scraped around on the API server's own /metrics
 * (apiserver_request_total) and on the controller's registry
 * (dbbackup_controller_api_requests_total):
 *   A. initial convergence: every DatabaseBackup exists before start();
 *      timed from start() until the controller is idle and stays idle;
 *   B. a resync where nothing changed: resyncAll() until idle; no writes;
 *   C. a storage class change that touches every runner (one location's
 *      region), timed from the PATCH until idle; every runner Secret and
 *      Deployment then carries the config hash the pure planner computes;
 *   D. phase B again after the change;
 *   E. a restart: the controller stopped and a new one (new caches, adapter, metrics: a fresh process's
 *      state) started over the runners it did not create, until idle; no writes;
 *   F. phase B again with that new controller.
 * Dry runs are counted apart and never as writes: while a runner has no
 * available pod (never, here: no kubelet) each reconcile tests that the
 * Secrets of its namespace it needs exist with a dry-run PATCH each (404 or
 * 422, see KubeAdapter.secretExists); a cluster whose runners run makes none.
 * The benchmark's own requests (creating the objects, the one class PATCH,
 * the verification lists) are outside the scraped windows or named and
 * subtracted; the verification runs after the "after" scrape.
 */
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubernetesObject,
  type V1Deployment,
  type V1Secret,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import { stringify } from 'yaml';
import type { DatabaseBackup, DatabaseBackupStorageClass } from '../api/crds/index.js';
import { GROUP, VERSION } from '../api/crds/common.js';
import { Controller } from '../controller/controller.js';
import { KubeAdapter } from '../controller/kube.js';
import { createControllerMetrics, type ControllerMetrics } from '../controller/metrics.js';
import { ANNOTATION_CONFIG_HASH, MANAGED_SELECTOR, runnerName } from '../controller/names.js';
import { planBackup } from '../controller/plan.js';
import type { RenderSettings } from '../controller/render/objects.js';
import { validateSettings } from '../controller/settings.js';
import { mapLimit } from '../runner/util/async.js';
import { CONTROLLER_NAMESPACE, classSecrets, renderSettings as fixtureRenderSettings } from '../test/controller-fixtures.js';
import { validBackup, validStorageClass } from '../test/crd-fixtures.js';
import { applyCrds, controllerIdentity, ensureNamespaces } from '../testenv/controller.js';
import { startKube } from '../testenv/kube.js';
import { fmt } from './lib.js';

const BACKUPS = Number(process.env.BENCH_BACKUPS ?? 1000);
const NAMESPACES = Number(process.env.BENCH_NAMESPACES ?? 100);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 1000);
const PHASE_TIMEOUT_MS = Number(process.env.BENCH_PHASE_TIMEOUT_S ?? 1200) * 1000;
const CLASS = 'standard';
const NEW_REGION = 'eu-west-1';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const now = () => performance.now();
const nsName = (i: number) => `bench-${String(i).padStart(3, '0')}`;
const backupName = (i: number) => `db-${String(i).padStart(4, '0')}`;
const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION', 'CREATE', 'UPDATE']);

type Counts = Map<string, number>;

function add(m: Counts, k: string, v: number): void {
  m.set(k, (m.get(k) ?? 0) + v);
}

function delta(after: Counts, before: Counts): Counts {
  const d: Counts = new Map();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) !== 0) d.set(k, v - (before.get(k) ?? 0));
  return d;
}

const sum = (m: Counts, pred: (k: string) => boolean = () => true) => [...m].filter(([k]) => pred(k)).reduce((a, [, v]) => a + v, 0);
const isWrite = (k: string) => WRITE_VERBS.has(k.split(' ')[0]!.toUpperCase());

function table(title: string, m: Counts, per?: number): void {
  console.log(`  ${title}: ${sum(m)} requests${per ? ` (${fmt(sum(m) / per, 3)} per backup)` : ''}`);
  for (const [k, v] of [...m].sort((a, b) => a[0].localeCompare(b[0]))) console.log(`    ${k.padEnd(48)} ${String(v).padStart(6)}${per ? `  ${fmt(v / per, 3)}/backup` : ''}`);
}

/** `apiserver_request_total` by "VERB resource[/subresource] code"; non-resource requests (the scrape itself) are left out. */
function parseApiserverRequests(text: string): Counts {
  const out: Counts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels: Record<string, string> = {};
    for (const m of line.slice(24, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    if (!labels.resource) continue;
    const res = labels.subresource ? `${labels.resource}/${labels.subresource}` : labels.resource;
    // A dry run stores nothing: named apart ("PATCH(dry-run)"), never counted as a write.
    add(out, `${labels.verb}${labels.dry_run ? '(dry-run)' : ''} ${res} ${labels.code}`, Number(line.slice(close + 1).trim()));
  }
  return out;
}

async function controllerRequests(metrics: ControllerMetrics): Promise<Counts> {
  const out: Counts = new Map();
  for (const v of (await metrics.apiRequestsTotal.get()).values) add(out, `${String(v.labels.verb)} ${String(v.labels.resource)} ${String(v.labels.code)}`, v.value);
  return out;
}

async function reconcileSeconds(metrics: ControllerMetrics): Promise<{ sum: number; count: number }> {
  const vals = (await metrics.reconcileDuration.get()).values;
  return {
    sum: vals.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0,
    count: vals.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0,
  };
}

/** RSS and V8 heap in use, after a full GC when run with --expose-gc. */
function memory(): { rss: number; heap: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

/** Machine-wide TCP connections opened (Tcp: ActiveOpens in /proc/net/snmp). */
async function tcpActiveOpens(): Promise<number> {
  const lines = (await readFile('/proc/net/snmp', 'utf8')).split('\n').filter((l) => l.startsWith('Tcp:'));
  const [head, vals] = lines.map((l) => l.split(/\s+/));
  return Number(vals![head!.indexOf('ActiveOpens')]);
}

type Owned = Record<'serviceAccount' | 'role' | 'roleBinding' | 'service', Map<string, KubernetesObject>> & { deployment: Map<string, V1Deployment>; secret: Map<string, V1Secret> };
const sortedJson = (o: Record<string, string> | undefined) => JSON.stringify(o ?? {}, Object.keys(o ?? {}).sort());

/** What is wrong with one DatabaseBackup's runner: a missing object, its status, or a config other than the pure planner's. */
function checkBackup(b: DatabaseBackup, by: Owned, sc: DatabaseBackupStorageClass, rs: RenderSettings): string[] {
  const key = `${b.metadata.namespace}/${runnerName(b.metadata.name ?? '')}`;
  const problems: string[] = [];
  const missing = Object.entries(by).filter(([, m]) => !m.has(key)).map(([k]) => k);
  if (missing.length > 0) problems.push(`${key}: missing ${missing.join(', ')}`);
  const cv = b.status?.conditions?.find((c) => c.type === 'ConfigValid');
  if (cv?.status !== 'True' || b.status?.observedGeneration !== b.metadata.generation) problems.push(`${key}: status ${JSON.stringify(b.status ?? null).slice(0, 200)}`);
  const plan = planBackup(b, sc, (n) => classSecrets()[n], rs);
  if (!plan.ok) return [...problems, `${key}: plan ${plan.problem.reason}`];
  const dep = by.deployment.get(key);
  if (dep && dep.spec?.template.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] !== plan.rendered.configHash) problems.push(`${key}: Deployment config hash is not ${plan.rendered.configHash}`);
  const sec = by.secret.get(key);
  if (sec && sortedJson(sec.data) !== sortedJson(plan.rendered.objects.secret.data)) problems.push(`${key}: Secret data differs from the planned config`);
  return problems;
}

// testenv's Service range is a /24 (254 addresses): past ~253 runner Services every Service apply fails with
// 500 "failed to allocate a serviceIP: range is full". A later flag wins, so widen it here.
const kube = await startKube({ controllerManager: false, apiserverArgs: ['--service-cluster-ip-range=10.0.0.0/16'] });
try {
  const t0 = now();
  await applyCrds(kube);
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => nsName(i));
  await ensureNamespaces(kube, namespaces);
  const { kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
  const admin = new KubeConfig();
  admin.loadFromFile(kube.kubeconfigPath);
  const custom = admin.makeApiClient(CustomObjectsApi);
  const core = admin.makeApiClient(CoreV1Api);
  const apps = admin.makeApiClient(AppsV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);

  const secrets = Object.entries(classSecrets()).map(([name, data]) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: CONTROLLER_NAMESPACE }, data }));
  const storageClass = validStorageClass();
  delete storageClass.spec.allowedNamespaces; // every namespace
  await kube.kubectlOk(['apply', '-f', '-'], { input: [...secrets, storageClass].map((o) => stringify(o)).join('---\n') });
  const backups = Array.from({ length: BACKUPS }, (_, i) => {
    const b = validBackup();
    b.metadata = { name: backupName(i), namespace: nsName(i % NAMESPACES) };
    return b;
  });
  // One `kubectl apply` per namespace, a few at once.
  await mapLimit(namespaces, 4, (ns) =>
    kube.kubectlOk(['apply', '-f', '-'], { input: backups.filter((b) => b.metadata.namespace === ns).map((b) => stringify(b)).join('---\n'), timeoutMs: 120_000 }),
  );
  console.log(`kube-apiserver up (${kube.startupMs.apiserver} ms); ${NAMESPACES} namespaces, ${BACKUPS} DatabaseBackups created in ${fmt((now() - t0) / 1000)} s`);

  const r = validateSettings({ namespace: CONTROLLER_NAMESPACE, runnerImages: fixtureRenderSettings().runnerImages, resyncPeriod: '1h', ...(process.env.BENCH_WORKERS ? { workers: Number(process.env.BENCH_WORKERS) } : {}) });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const settings = r.value;
  const rs: RenderSettings = {
    controllerNamespace: settings.namespace,
    runnerImages: settings.runnerImages,
    runnerResources: settings.runnerResources,
    runnerUser: settings.runnerUser,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
  };
  let metrics = createControllerMetrics();
  const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' });
  let controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings, logger, metrics });

  const ca = await readFile(kube.caFile);
  const scrapeServer = () =>
    new Promise<Counts>((resolve, reject) => {
      const req = httpsRequest(`${kube.server}/metrics`, { ca, headers: { authorization: `Bearer ${kube.adminToken}` } }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (s += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(parseApiserverRequests(s)) : reject(new Error(`/metrics: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });

  /** True when nothing waits or runs in the controller's queue right now. */
  const idleNow = () => Promise.race([controller.idle().then(() => true), new Promise<boolean>((r) => setImmediate(() => r(false)))]);
  const reconcileErrors = async () => (await metrics.reconcileTotal.get()).values.find((v) => v.labels.result === 'error')?.value ?? 0;
  /**
   * Waits until at least `minReconciles` reconciles happened since `from` and the controller then stayed idle
   * for SETTLE_MS; returns when it last became idle (the settle wait is not counted).
   */
  const quiesce = async (from: number, minReconciles: number): Promise<number> => {
    const start = now();
    for (;;) {
      while (!(await Promise.race([controller.idle().then(() => true), sleep(5000).then(() => false)]))) {
        if (now() - start > PHASE_TIMEOUT_MS) {
          const failed = [...(await controllerRequests(metrics))].filter(([k]) => !/ 200$/.test(k));
          throw new Error(`not idle after ${PHASE_TIMEOUT_MS / 1000} s: ${await reconcileErrors()} failed reconciles; failed requests: ${failed.map(([k, v]) => `${k} x${v}`).join(', ')}`);
        }
      }
      const at = now();
      const n = controller.stats.reconciles;
      await sleep(SETTLE_MS);
      if (controller.stats.reconciles === n && n - from >= minReconciles && (await idleNow())) return at;
    }
  };

  interface Snapshot {
    server: Counts;
    client: Counts;
    stats: typeof controller.stats;
    tcp: number;
    reconcile: { sum: number; count: number };
    errors: number;
  }
  const snapshot = async (): Promise<Snapshot> => ({
    server: await scrapeServer(),
    client: await controllerRequests(metrics),
    stats: { ...controller.stats },
    tcp: await tcpActiveOpens(),
    reconcile: await reconcileSeconds(metrics),
    errors: await reconcileErrors(),
  });
  interface PhaseResult {
    seconds: number;
    server: Counts;
    client: Counts;
    stats: Record<keyof typeof controller.stats, number>;
    tcp: number;
    reconcileMeanMs: number;
    errors: number;
  }
  const diff = (a: Snapshot, b: Snapshot, seconds: number, excludeServer: Counts = new Map()): PhaseResult => ({
    seconds,
    server: delta(delta(b.server, a.server), excludeServer),
    client: delta(b.client, a.client),
    stats: {
      reconciles: b.stats.reconciles - a.stats.reconciles,
      applies: b.stats.applies - a.stats.applies,
      statusPatches: b.stats.statusPatches - a.stats.statusPatches,
      events: b.stats.events - a.stats.events,
      deletes: b.stats.deletes - a.stats.deletes,
    },
    tcp: b.tcp - a.tcp,
    errors: b.errors - a.errors,
    reconcileMeanMs: ((b.reconcile.sum - a.reconcile.sum) / Math.max(1, b.reconcile.count - a.reconcile.count)) * 1000,
  });
  const report = (title: string, p: PhaseResult) => {
    console.log(`\n${title}: ${fmt(p.seconds)} s`);
    console.log(
      `  controller.stats: ${p.stats.reconciles} reconciles (${fmt(p.stats.reconciles / BACKUPS)} per backup, mean ${fmt(p.reconcileMeanMs, 1)} ms), ` +
        `${p.stats.applies} applies, ${p.stats.statusPatches} status patches, ${p.stats.events} Events, ${p.errors} failed reconciles`,
    );
    table('API server (apiserver_request_total, VERB resource code)', p.server, BACKUPS);
    table('controller (dbbackup_controller_api_requests_total, verb resource code)', p.client, BACKUPS);
    const clientNoWatch = sum(p.client, (k) => !k.startsWith('watch '));
    console.log(`  API server requests not made by the controller (the API server's own loopback clients): ${sum(p.server) - clientNoWatch} (watches count on the server only when they end)`);
    console.log(`  TCP connections opened on the machine: ${p.tcp} (${fmt(p.tcp / Math.max(1, sum(p.client)), 2)} per controller request)`);
  };

  /** Lists everything as admin and checks every DatabaseBackup against the pure planner. */
  const verify = async (what: string, sizes = false): Promise<void> => {
    const t = now();
    const sel = { labelSelector: MANAGED_SELECTOR };
    const [dbbs, sc, deps, secs, sas, roles, rbs, svcs] = await Promise.all([
      custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'databasebackups' }) as Promise<{ items: DatabaseBackup[] }>,
      custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'databasebackupstorageclasses', name: CLASS }) as Promise<DatabaseBackupStorageClass>,
      apps.listDeploymentForAllNamespaces(sel),
      core.listSecretForAllNamespaces(sel),
      core.listServiceAccountForAllNamespaces(sel),
      rbac.listRoleForAllNamespaces(sel),
      rbac.listRoleBindingForAllNamespaces(sel),
      core.listServiceForAllNamespaces(sel),
    ]);
    const index = <T extends KubernetesObject>(items: T[]) => new Map(items.map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]));
    const by: Owned = { deployment: index(deps.items), secret: index(secs.items), serviceAccount: index(sas.items), role: index(roles.items), roleBinding: index(rbs.items), service: index(svcs.items) };
    const problems = dbbs.items.flatMap((b) => checkBackup(b, by, sc, rs));
    if (dbbs.items.length !== BACKUPS) problems.push(`${dbbs.items.length} DatabaseBackups listed, ${BACKUPS} expected`);
    console.log(`  verify (${what}): ${dbbs.items.length} DatabaseBackups, ${Object.entries(by).map(([k, m]) => `${m.size} ${k}`).join(', ')}; ${problems.length} problems (${fmt((now() - t) / 1000)} s)`);
    for (const p of problems.slice(0, 10)) console.log(`    ${p}`);
    if (sizes) {
      // What the controller's caches hold: the DatabaseBackups and the five watched kinds, as JSON.
      const cached: KubernetesObject[] = [...dbbs.items, ...deps.items, ...sas.items, ...roles.items, ...rbs.items, ...svcs.items];
      const bytes = cached.reduce((a, o) => a + JSON.stringify(o).length, 0);
      const mf = cached.reduce((a, o) => a + JSON.stringify(o.metadata?.managedFields ?? []).length, 0);
      const lac = cached.reduce((a, o) => a + (o.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration']?.length ?? 0), 0);
      console.log(`  cached objects: ${cached.length}, ${fmt(bytes / 2 ** 20, 1)} MiB of JSON (${fmt(bytes / cached.length / 1024, 1)} KiB each), managedFields ${fmt((100 * mf) / bytes, 0)}%, kubectl's last-applied annotation ${fmt((100 * lac) / bytes, 0)}%`);
    }
    if (problems.length > 0) throw new Error(`${what}: not converged (${problems.length} problems)`);
  };

  // A quiet window with nothing running: what the API server does on its own.
  const quietMs = 5000;
  const q0 = await scrapeServer();
  await sleep(quietMs);
  const background = delta(await scrapeServer(), q0);
  console.log(`background (API server alone, ${quietMs / 1000} s): ${sum(background)} requests${sum(background) ? `: ${[...background].map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}`);
  const memBefore = memory();

  // A. Initial convergence.
  const a0 = await snapshot();
  const ta = now();
  await controller.start();
  const started = now() - ta;
  const ta1 = await quiesce(a0.stats.reconciles, BACKUPS);
  const a = diff(a0, await snapshot(), (ta1 - ta) / 1000);
  report(`A. initial convergence of ${BACKUPS} DatabaseBackups in ${NAMESPACES} namespaces (${settings.workers} workers; caches synced after ${fmt(started / 1000)} s)`, a);
  const memA = memory();
  await verify('after A', true);

  // B. Resync, nothing changed.
  const resync = async (title: string): Promise<PhaseResult & { maxLoopDelayMs: number }> => {
    const s0 = await snapshot();
    // How long the event loop went without running a timer (lease renewal, watch events, /healthz wait behind it).
    let last = now();
    let maxGap = 0;
    const heartbeat = setInterval(() => {
      maxGap = Math.max(maxGap, now() - last);
      last = now();
    }, 5);
    const t = now();
    controller.resyncAll();
    await controller.idle();
    const seconds = (now() - t) / 1000;
    maxGap = Math.max(maxGap, now() - last);
    clearInterval(heartbeat);
    await quiesce(s0.stats.reconciles, BACKUPS);
    const p = { ...diff(s0, await snapshot(), seconds), maxLoopDelayMs: maxGap };
    report(title, p);
    console.log(`  longest time without a timer running during the resync: ${fmt(p.maxLoopDelayMs, 0)} ms`);
    return p;
  };
  const b = await resync(`B. resync with nothing changed (${BACKUPS} reconciles)`);

  // C. A storage class change that touches every runner: one PATCH by the benchmark (subtracted below).
  const c0 = await snapshot();
  const tc = now();
  const locations = structuredClone(storageClass.spec.locations) as { s3?: { region?: string } }[];
  locations[1]!.s3!.region = NEW_REGION;
  await custom.patchClusterCustomObject(
    { group: GROUP, version: VERSION, plural: 'databasebackupstorageclasses', name: CLASS, body: { spec: { locations } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  const tc1 = await quiesce(c0.stats.reconciles, BACKUPS);
  const c = diff(c0, await snapshot(), (tc1 - tc) / 1000, new Map([['PATCH databasebackupstorageclasses 200', 1]]));
  report(`C. storage class change (s3 region -> ${NEW_REGION}) reaching all ${BACKUPS} runners (the benchmark's own class PATCH subtracted)`, c);
  await verify('after C');

  const d = await resync('D. resync with nothing changed, after C');

  // E. A restart: a new Controller with new caches, adapter and metrics (a fresh process's state) over the
  // runners the first one created; its caches read them by list, not by watch events of its own applies.
  await controller.stop();
  metrics = createControllerMetrics();
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings, logger, metrics });
  const e0 = await snapshot();
  const te = now();
  await controller.start();
  const te1 = await quiesce(e0.stats.reconciles, BACKUPS);
  const e = diff(e0, await snapshot(), (te1 - te) / 1000);
  report(`E. restart: a new controller starts over ${BACKUPS} runners it did not create`, e);
  const f = await resync('F. resync with nothing changed, after the restart');
  const memEnd = memory();

  const writes = (p: PhaseResult) => sum(p.server, isWrite);
  const w = (p: PhaseResult, re: RegExp) => sum(p.server, (k) => re.test(k));
  const dry = (p: PhaseResult) => w(p, /^\w+\(dry-run\) /);
  const MB = (x: number) => `${fmt(x / 2 ** 20, 0)} MB`;
  console.log('\n| | value | per DatabaseBackup |');
  console.log('|---|---|---|');
  const row = (k: string, v: string, per = '') => console.log(`| ${k} | ${v} | ${per} |`);
  row('A. initial convergence', `${fmt(a.seconds)} s`, `${fmt((a.seconds * 1000) / BACKUPS)} ms`);
  row('A. reconciles', String(a.stats.reconciles), fmt(a.stats.reconciles / BACKUPS));
  row('A. API server requests (all)', String(sum(a.server)), fmt(sum(a.server) / BACKUPS, 3));
  row('A. writes (apply + status + Event)', String(writes(a)), fmt(writes(a) / BACKUPS, 3));
  row('A. server-side applies / status patches / Events', `${w(a, /^APPLY /)} / ${w(a, /databasebackups\/status/)} / ${w(a, /^POST events/)}`, `${fmt(w(a, /^APPLY /) / BACKUPS)} / ${fmt(w(a, /databasebackups\/status/) / BACKUPS)} / ${fmt(w(a, /^POST events/) / BACKUPS)}`);
  row('B. no-op resync', `${fmt(b.seconds * 1000, 0)} ms`, `${fmt((b.seconds * 1000) / BACKUPS, 3)} ms`);
  row('B. longest event-loop stall (no timers, no I/O)', `${fmt(b.maxLoopDelayMs, 0)} ms`, '');
  row('B. writes (server) / controller applies+status+Events', `${writes(b)} / ${b.stats.applies + b.stats.statusPatches + b.stats.events}`, '0');
  row('B. dry runs (Secret existence tests; none where runners run)', String(dry(b)), fmt(dry(b) / BACKUPS, 3));
  row('C. class change to every runner', `${fmt(c.seconds)} s`, `${fmt((c.seconds * 1000) / BACKUPS)} ms`);
  row('C. reconciles', String(c.stats.reconciles), fmt(c.stats.reconciles / BACKUPS));
  row('C. writes', String(writes(c)), fmt(writes(c) / BACKUPS, 3));
  row('D. no-op resync after C', `${fmt(d.seconds * 1000, 0)} ms`, `${fmt((d.seconds * 1000) / BACKUPS, 3)} ms`);
  row('D. writes', String(writes(d)), '');
  row('E. restart: start until idle', `${fmt(e.seconds)} s`, `${fmt((e.seconds * 1000) / BACKUPS, 3)} ms`);
  row('E. writes (server) / controller applies+status+Events', `${writes(e)} / ${e.stats.applies + e.stats.statusPatches + e.stats.events}`, '0');
  row('F. no-op resync after the restart', `${fmt(f.seconds * 1000, 0)} ms`, `${fmt((f.seconds * 1000) / BACKUPS, 3)} ms`);
  row('F. writes (server) / controller applies+status+Events', `${writes(f)} / ${f.stats.applies + f.stats.statusPatches + f.stats.events}`, '0');
  row('F. dry runs (Secret existence tests; none where runners run)', String(dry(f)), fmt(dry(f) / BACKUPS, 3));
  row('TCP connections opened, A (machine-wide)', String(a.tcp), fmt(a.tcp / BACKUPS, 2));
  row('RSS before start / after A / end', `${MB(memBefore.rss)} / ${MB(memA.rss)} / ${MB(memEnd.rss)}`, `${fmt((memEnd.rss - memBefore.rss) / 1024 / BACKUPS, 1)} KiB`);
  row(`V8 heap in use${'gc' in globalThis ? ' after GC' : ''}: before start / after A / end`, `${MB(memBefore.heap)} / ${MB(memA.heap)} / ${MB(memEnd.heap)}`, `${fmt((memEnd.heap - memBefore.heap) / 1024 / BACKUPS, 1)} KiB`);

  await controller.stop();
} finally {
  await kube.stop();
}
