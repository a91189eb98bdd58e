/**
 * The controller against a real kube-apiserver 1.20 + etcd + kube-controller-manager
 * (garbage collection, Deployments), running as a ServiceAccount with exactly
 * the rights of controller/rbac.ts. Pods never start here (no kubelet), so
 * the runner side of the contract is proven in controller-runner.test.ts.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { validateRunnerConfig } from '../../api/runner-config.js';
import { Controller } from '../../controller/controller.js';
import { runController, type RunningController } from '../../controller/run.js';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics, type ControllerMetrics } from '../../controller/metrics.js';
import type { ControllerSettings } from '../../controller/settings.js';
import { applyCrds, controllerIdentity, ensureNamespaces, kubeJson } from '../../testenv/controller.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { CONTROLLER_NAMESPACE, controllerSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';
import { eventually } from '../../testenv/eventually.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

let kube: KubeInstance;
let controller: Controller;
let controllerKubeconfig: string;
let metrics: ControllerMetrics;

const settings = (): ControllerSettings => controllerSettings();

const { apply, get, condition } = kubeJson(() => kube);


const secret = (name: string, data: Record<string, string>, namespace = CONTROLLER_NAMESPACE) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace },
  stringData: data,
});

const configYaml = (s: Obj) => Buffer.from(s.data['config.yaml'] as string, 'base64').toString('utf8');

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube();
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop', 'billing', 'other']);
  const { kubeConfig, path } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
  controllerKubeconfig = path;
  metrics = createControllerMetrics();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: settings(), logger, metrics });
  await controller.start();
}, 120_000);

/** dbbackup_controller_backup_ready of one DatabaseBackup; undefined when it has no series. */
async function readyMetric(namespace: string, name: string): Promise<number | undefined> {
  const { values } = await metrics.backupReady.get();
  return values.find((v) => v.labels.databasebackup_namespace === namespace && v.labels.databasebackup === name)?.value;
}

afterAll(async () => {
  await controller?.stop();
  await kube?.stop();
});

describe('controller on a real API server', () => {
  it('deploys a runner for a DatabaseBackup: ServiceAccount, Role, RoleBinding, Secret, Service, Deployment, status', async () => {
    await apply(
      secret('minio', { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'example-secret-key' }),
      secret('gcs', { 'key.json': '{"type":"service_account"}' }),
      validStorageClass(),
      validBackup(),
    );
    const dep = await eventually('the runner Deployment', () => get(['get', 'deployment', 'orders-runner', '-n', 'shop']));
    expect(dep.spec.replicas).toBe(1);
    expect(dep.spec.strategy.type).toBe('Recreate');
    expect(dep.metadata.ownerReferences[0]).toMatchObject({ kind: 'DatabaseBackup', name: 'orders', controller: true });
    for (const kind of ['serviceaccount', 'role', 'rolebinding', 'secret', 'service']) {
      expect(await get(['get', kind, 'orders-runner', '-n', 'shop']), kind).toBeDefined();
    }
    const cfg = parse(configYaml((await get(['get', 'secret', 'orders-runner', '-n', 'shop']))!)) as unknown;
    const valid = validateRunnerConfig(cfg);
    expect(valid.ok ? [] : valid.errors).toEqual([]);
    // kube-controller-manager turns the Deployment into a ReplicaSet and a (Pending) Pod.
    await eventually('a ReplicaSet', async () => ((await get(['get', 'replicasets', '-n', 'shop', '-l', 'app.kubernetes.io/instance=orders-runner']))?.items as Obj[]).length === 1);

    const dbb = await eventually('status conditions', async () => {
      const o = await get(['get', 'dbb', 'orders', '-n', 'shop']);
      return condition(o, 'ConfigValid') ? o : undefined;
    });
    expect(dbb.status.observedGeneration).toBe(dbb.metadata.generation);
    expect(condition(dbb, 'ConfigValid')).toMatchObject({ status: 'True', reason: 'Applied' });
    expect(condition(dbb, 'RunnerAvailable')).toMatchObject({ status: 'False', reason: 'RunnerUnavailable' });
    expect(condition(dbb, 'Ready')).toMatchObject({ status: 'False' });
    const events = await kube.kubectlOk(['get', 'events', '-n', 'shop', '--field-selector', 'involvedObject.name=orders', '-o', 'jsonpath={.items[*].reason}']);
    expect(events).toContain('RunnerCreated');
    const sc = await eventually('the storage class Ready', async () => condition(await get(['get', 'dbbsc', 'standard']), 'Ready'));
    expect(sc).toMatchObject({ status: 'True', reason: 'Valid' });
  });

  it('a resync where nothing changed writes nothing', async () => {
    await controller.idle();
    const before = { ...controller.stats };
    controller.resyncAll();
    await controller.idle();
    expect(controller.stats.reconciles).toBeGreaterThan(before.reconciles);
    expect({ applies: controller.stats.applies, statusPatches: controller.stats.statusPatches, events: controller.stats.events }).toEqual({
      applies: before.applies,
      statusPatches: before.statusPatches,
      events: before.events,
    });
  });

  it('a storage class change reaches the runner config and rolls the Deployment', async () => {
    const hash = (d: Obj | undefined) => d?.spec.template.metadata.annotations['dbbackup.io/config-hash'] as string | undefined;
    const old = hash(await get(['get', 'deployment', 'orders-runner', '-n', 'shop']));
    const sc = validStorageClass();
    ((sc.spec.locations as Obj[])[1]!.s3 as Obj).region = 'eu-west-1';
    await apply(sc);
    await eventually('the new region in config.yaml', async () => configYaml((await get(['get', 'secret', 'orders-runner', '-n', 'shop']))!).includes('region: eu-west-1'));
    await eventually('a new config hash', async () => hash(await get(['get', 'deployment', 'orders-runner', '-n', 'shop'])) !== old);
  });

  it('a rotated credential in the controller namespace reaches the runner Secret', async () => {
    await apply(secret('minio', { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'rotated-secret' }));
    await eventually('the rotated key', async () => {
      const s = await get(['get', 'secret', 'orders-runner', '-n', 'shop']);
      return Buffer.from((s?.data['offsite.secret-access-key'] as string) ?? '', 'base64').toString() === 'rotated-secret';
    });
  });

  it('repairs hand edits and deletions of owned objects', async () => {
    await kube.kubectlOk(['-n', 'shop', 'patch', 'deployment', 'orders-runner', '--type=json', '-p', '[{"op":"replace","path":"/spec/replicas","value":3}]']);
    await eventually('replicas back to 1', async () => (await get(['get', 'deployment', 'orders-runner', '-n', 'shop']))?.spec.replicas === 1);
    await kube.kubectlOk(['-n', 'shop', 'patch', 'role', 'orders-runner', '--type=json', '-p', '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["list"]}}]']);
    await eventually('the hand-added Role rule removed', async () => ((await get(['get', 'role', 'orders-runner', '-n', 'shop']))?.rules as Obj[]).length === 1);
    await kube.kubectlOk(['-n', 'shop', 'delete', 'service', 'orders-runner']);
    await kube.kubectlOk(['-n', 'shop', 'delete', 'deployment', 'orders-runner']);
    await eventually('the Deployment back', () => get(['get', 'deployment', 'orders-runner', '-n', 'shop']));
    await eventually('the Service back', () => get(['get', 'service', 'orders-runner', '-n', 'shop']));
  });

  it('reports what is wrong: missing storage class, namespace not allowed, missing Secret key', async () => {
    const b = validBackup();
    b.metadata.name = 'no-class';
    (b.spec as Obj).storageClassName = 'missing';
    const n = validBackup();
    n.metadata = { name: 'wrong-ns', namespace: 'other' };
    const sc = validStorageClass();
    sc.metadata.name = 'needs-key';
    ((sc.spec.locations as Obj[])[1]!.s3 as Obj).secretAccessKeySecretRef = { secretName: 'minio', key: 'nope' };
    const k = validBackup();
    k.metadata.name = 'missing-key';
    (k.spec as Obj).storageClassName = 'needs-key';
    const bad = validBackup();
    bad.metadata.name = 'bad-label';
    ((bad.spec as Obj).runner as Obj).podLabels = { 'not a label key!': 'x' };
    await apply(sc, b, n, k, bad);
    const cases: [string, string, string, string][] = [
      ['shop', 'bad-label', 'ApplyFailed', 'apply Deployment shop/bad-label-runner failed: HTTP 422'],
      ['shop', 'no-class', 'StorageClassNotFound', 'storage class "missing" not found'],
      ['other', 'wrong-ns', 'NamespaceNotAllowed', 'namespace "other" is not allowed by storage class "standard" (allowed: shop, billing)'],
      ['shop', 'missing-key', 'SecretKeyNotFound', 'secret "minio" has no key "nope"'],
    ];
    for (const [ns, name, reason, message] of cases) {
      const c = await eventually(`${name}: ConfigValid=False`, async () => condition(await get(['get', 'dbb', name, '-n', ns]), 'ConfigValid'));
      expect(c).toMatchObject({ status: 'False', reason });
      expect(c.message).toContain(message);
      const ev = await kube.kubectlOk(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={.items[*].message}']);
      expect(ev).toContain(message);
      expect(await get(['get', 'deployment', `${name}-runner`, '-n', ns])).toBeUndefined();
    }
    expect(await readyMetric('shop', 'no-class')).toBe(0);
    expect(await readyMetric('other', 'wrong-ns')).toBe(0);
    const scReady = await eventually('needs-key: Ready=False', async () => condition(await get(['get', 'dbbsc', 'needs-key']), 'Ready'));
    expect(scReady).toMatchObject({ status: 'False', reason: 'SecretKeyNotFound' });
    // Fixing the cause heals it without touching the DatabaseBackup.
    await apply(secret('minio', { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'rotated-secret', nope: 'x' }));
    await eventually('missing-key runner created', () => get(['get', 'deployment', 'missing-key-runner', '-n', 'shop']));
    await eventually('needs-key: Ready=True', async () => condition(await get(['get', 'dbbsc', 'needs-key']), 'Ready')?.status === 'True');
  });

  it('the API server itself rejects an invalid DatabaseBackup, naming the field', async () => {
    const b = validBackup();
    b.metadata.name = 'bad-engine';
    ((b.spec as Obj).engine as Obj).type = 'oracle';
    const r = await kube.kubectl(['apply', '--validate=false', '-f', '-'], { input: stringify(b) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.engine.type');
    expect(r.stderr).toContain('supported values: "postgresql", "mysql", "command"');
  });

  it('each runner ServiceAccount may patch its own DatabaseBackup status and nothing else', async () => {
    const as = ['--as', 'system:serviceaccount:shop:orders-runner', '-n', 'shop'];
    const can = async (...args: string[]) => (await kube.kubectl(['auth', 'can-i', ...args, ...as])).stdout.trim();
    expect(await can('patch', 'databasebackups.dbbackup.io/orders', '--subresource=status')).toBe('yes');
    expect(await can('patch', 'databasebackups.dbbackup.io/no-class', '--subresource=status')).toBe('no');
    expect(await can('patch', 'databasebackups.dbbackup.io/orders')).toBe('no');
    expect(await can('get', 'secrets/orders-runner')).toBe('no');
    expect(await can('list', 'secrets')).toBe('no');
    expect(await can('get', 'pods')).toBe('no');
    expect(await can('create', 'deployments')).toBe('no');
  });

  it('the controller reads Secrets only in its own namespace', async () => {
    const as = ['--as', `system:serviceaccount:${CONTROLLER_NAMESPACE}:db-backup-controller`];
    const can = async (...args: string[]) => (await kube.kubectl(['auth', 'can-i', ...args, ...as])).stdout.trim();
    expect(await can('list', 'secrets', '-n', CONTROLLER_NAMESPACE)).toBe('yes');
    expect(await can('get', 'secrets', '-n', 'shop')).toBe('no');
    expect(await can('list', 'secrets', '--all-namespaces')).toBe('no');
    expect(await can('create', 'secrets', '-n', 'shop')).toBe('yes');
  });

  it('deleting a DatabaseBackup garbage-collects its runner objects', async () => {
    expect(await readyMetric('shop', 'orders')).toBe(0); // no kubelet: never an available pod
    await kube.kubectlOk(['-n', 'shop', 'delete', 'dbb', 'orders']);
    await eventually('its ready series removed', async () => ((await readyMetric('shop', 'orders')) === undefined ? true : undefined));
    for (const kind of ['deployment', 'secret', 'service', 'role', 'rolebinding', 'serviceaccount']) {
      await eventually(`${kind} gone`, async () => (await get(['get', kind, 'orders-runner', '-n', 'shop'])) === undefined, 40_000);
    }
  });
});

describe('two controller instances', () => {
  const instances: RunningController[] = [];

  afterAll(async () => {
    await Promise.all(instances.map((i) => i.stop()));
  });

  it('exactly one leads and acts; when it stops, the other takes over', async () => {
    await controller.stop(); // the single-instance controller of the tests above
    const s = settings();
    s.metricsPort = 0;
    s.metricsHost = '127.0.0.1';
    s.leaderElection = { ...s.leaderElection, leaseDuration: '4s', renewDeadline: '3s', retryPeriod: '500ms' };
    const { KubeConfig } = await import('@kubernetes/client-node');
    const start = async (identity: string) => {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(controllerKubeconfig);
      const r = await runController({ settings: s, kubeConfig, logger: pino({ level: 'silent' }), identity });
      instances.push(r);
      return r;
    };
    const [a, b] = [await start('instance-a'), await start('instance-b')];
    const leader = await eventually('a leader', () => Promise.resolve(a.isLeader() || b.isLeader()));
    expect(leader).toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
    const [first, second] = a.isLeader() ? [a, b] : [b, a];
    const lease = await get(['get', 'lease', 'db-backup-controller', '-n', CONTROLLER_NAMESPACE]);
    expect(lease?.spec.holderIdentity).toBe(first.identity);
    // Probes: both answer ready (the standby waits), metrics say who leads.
    for (const i of [first, second]) {
      expect((await fetch(`http://127.0.0.1:${i.httpPort}/readyz`)).status).toBe(200);
    }
    const leaderMetric = async (i: RunningController) => /^dbbackup_controller_is_leader (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${i.httpPort}/metrics`)).text())?.[1];
    expect(await leaderMetric(first)).toBe('1');
    expect(await leaderMetric(second)).toBe('0');

    const b1 = validBackup();
    b1.metadata = { name: 'ha-one', namespace: 'billing' };
    await apply(b1);
    await eventually('ha-one deployed by the leader', () => get(['get', 'deployment', 'ha-one-runner', '-n', 'billing']));
    expect(second.controller()).toBeUndefined();

    await first.stop();
    await eventually('the standby leads', () => Promise.resolve(second.isLeader()), 15_000);
    const b2 = validBackup();
    b2.metadata = { name: 'ha-two', namespace: 'billing' };
    await apply(b2);
    await eventually('ha-two deployed by the new leader', () => get(['get', 'deployment', 'ha-two-runner', '-n', 'billing']));
  });
});
