/**
 * What the controller's metrics say and what it reports about claims, on a real kube-apiserver 1.20 +
 * kube-controller-manager, the controller running with exactly the rights of controller/rbac.ts:
 * - the queue depth is 0 once the controller is idle;
 * - the number of managed DatabaseBackups follows each create and delete, without waiting for a resync;
 * - every API request is counted under the plural resource name (as list and watch name it);
 * - a PersistentVolumeClaim the runner would mount that does not exist is ConfigValid=False ClaimNotFound,
 *   and creating it deploys the runner with no other change;
 * - so is a Secret of its namespace that the runner pod needs (NamespaceSecretNotFound), found again
 *   without any event (the controller may not watch those Secrets); a runner that exists is kept.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../controller/controller.js';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics, type ControllerMetrics } from '../../controller/metrics.js';
import { FIXTURE_DB_SECRETS, applyCrds, controllerIdentity, ensureNamespaces, kubeJson } from '../../testenv/controller.js';
import { eventually } from '../../testenv/eventually.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { CONTROLLER_NAMESPACE, controllerSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

let kube: KubeInstance;
let controller: Controller;
let metrics: ControllerMetrics;

const { apply, get, condition } = kubeJson(() => kube);
const secret = (name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: CONTROLLER_NAMESPACE }, stringData: data });
const claim = (namespace: string, name: string) => ({
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
  metadata: { name, namespace },
  spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
});

async function gauge(name: string): Promise<number | undefined> {
  return (await metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value;
}

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube();
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop']);
  await ensureNamespaces(kube, ['billing'], []); // no claim: the runner's volume is missing there
  await ensureNamespaces(kube, ['payroll'], undefined, {}); // no Secret: the runner's password and CA are missing there
  const { kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
  metrics = createControllerMetrics();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: controllerSettings(), logger, metrics, secretRecheckMs: 1000 });
  await controller.start();
  const sc = validStorageClass();
  sc.spec.allowedNamespaces = ['shop', 'billing', 'payroll'];
  await apply(secret('minio', { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'example-secret-key' }), secret('gcs', { 'key.json': '{"type":"service_account"}' }), sc);
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await kube?.stop();
});

describe('controller metrics on a real API server', () => {
  it('deploying a runner: the queue depth is 0 once idle, every request is labelled with its plural resource', async () => {
    await apply(validBackup());
    await eventually('the runner Deployment', () => get(['get', 'deployment', 'orders-runner', '-n', 'shop']));
    await controller.idle();
    expect(await gauge('dbbackup_controller_queue_depth')).toBe(0);
    const { values } = await metrics.apiRequestsTotal.get();
    const resources = new Set(values.map((v) => String(v.labels.resource)));
    expect([...resources].sort()).toEqual(
      expect.arrayContaining(['databasebackups', 'databasebackups/status', 'databasebackupstorageclasses', 'deployments', 'persistentvolumeclaims', 'rolebindings', 'roles', 'secrets', 'serviceaccounts', 'services']),
    );
    for (const r of resources) expect(r, `resource label "${r}"`).toMatch(/^[a-z]+s(\/status)?$/);
    const count = (verb: string, resource: string) => values.filter((v) => v.labels.verb === verb && v.labels.resource === resource).reduce((n, v) => n + v.value, 0);
    // The same resource under one label whatever the verb: listed, watched and applied as "deployments".
    for (const verb of ['list', 'watch', 'patch']) expect(count(verb, 'deployments'), `${verb} deployments`).toBeGreaterThan(0);
  });

  it('the managed DatabaseBackups follow each create and delete without a resync', async () => {
    await controller.idle();
    expect(await gauge('dbbackup_controller_managed_backups')).toBe(1);
    const second = validBackup();
    second.metadata.name = 'payments';
    (second.spec as Obj).locations = ['offsite'];
    await apply(second);
    await eventually('2 managed', async () => (await gauge('dbbackup_controller_managed_backups')) === 2);
    await kube.kubectlOk(['-n', 'shop', 'delete', 'dbb', 'payments']);
    await eventually('1 managed', async () => (await gauge('dbbackup_controller_managed_backups')) === 1);
    await controller.idle();
    expect(await gauge('dbbackup_controller_queue_depth')).toBe(0);
  });
});

describe('a PersistentVolumeClaim the runner would mount', () => {
  it('is ClaimNotFound while missing; creating it deploys the runner with no other change', async () => {
    const b = validBackup();
    b.metadata.namespace = 'billing';
    await apply(b);
    const c = await eventually('ConfigValid=False', async () => condition(await get(['get', 'dbb', 'orders', '-n', 'billing']), 'ConfigValid'));
    expect(c).toMatchObject({ status: 'False', reason: 'ClaimNotFound' });
    expect(c.message).toContain('PersistentVolumeClaim billing/backups (spec.locations[0].filesystem.claimName of storage class "standard") does not exist');
    const events = await kube.kubectlOk(['get', 'events', '-n', 'billing', '--field-selector', 'involvedObject.name=orders', '-o', 'jsonpath={.items[*].reason}']);
    expect(events).toContain('ClaimNotFound');
    await controller.idle();
    expect(await get(['get', 'deployment', 'orders-runner', '-n', 'billing'])).toBeUndefined();
    const generation = (await get(['get', 'dbb', 'orders', '-n', 'billing']))!.metadata.generation as number;

    await apply(claim('billing', 'backups'));
    await eventually('the runner Deployment', () => get(['get', 'deployment', 'orders-runner', '-n', 'billing']));
    const dbb = await eventually('ConfigValid=True', async () => {
      const o = await get(['get', 'dbb', 'orders', '-n', 'billing']);
      return condition(o, 'ConfigValid')?.status === 'True' ? o : undefined;
    });
    expect(condition(dbb, 'ConfigValid')).toMatchObject({ reason: 'Applied' });
    expect(dbb.metadata.generation).toBe(generation);
  });
});

describe('a Secret of its namespace that the runner pod needs', () => {
  const tenantSecret = (name: string) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'payroll' }, stringData: FIXTURE_DB_SECRETS[name] });
  const configValid = async () => condition(await get(['get', 'dbb', 'orders', '-n', 'payroll']), 'ConfigValid');

  it('is NamespaceSecretNotFound, naming each missing one and its field, until all exist; then the runner is deployed with no other change', async () => {
    const b = validBackup();
    b.metadata.namespace = 'payroll';
    await apply(b);
    const c = await eventually('ConfigValid=False', async () => ((await configValid())?.status === 'False' ? configValid() : undefined));
    expect(c).toMatchObject({ reason: 'NamespaceSecretNotFound' });
    expect(c.message).toContain('Secret payroll/orders-db (spec.engine.postgresql.passwordSecretRef); Secret payroll/orders-db-ca (spec.engine.postgresql.sslRootCertSecretRef) do not exist');
    await controller.idle();
    expect(await get(['get', 'deployment', 'orders-runner', '-n', 'payroll'])).toBeUndefined();
    const generation = (await get(['get', 'dbb', 'orders', '-n', 'payroll']))!.metadata.generation as number;

    // One of them appears: no watch event reaches the controller, its next look finds it.
    await apply(tenantSecret('orders-db'));
    const one = await eventually('only the CA missing', async () => {
      const x = await configValid();
      return String(x?.message).includes('orders-db (') ? undefined : x;
    });
    expect(one).toMatchObject({ status: 'False', reason: 'NamespaceSecretNotFound' });
    expect(one.message).toMatch(/^Secret payroll\/orders-db-ca \(spec\.engine\.postgresql\.sslRootCertSecretRef\) does not exist/);

    await apply(tenantSecret('orders-db-ca'));
    await eventually('the runner Deployment', () => get(['get', 'deployment', 'orders-runner', '-n', 'payroll']));
    const ok = await eventually('ConfigValid=True', async () => ((await configValid())?.status === 'True' ? configValid() : undefined));
    expect(ok).toMatchObject({ reason: 'Applied' });
    expect((await get(['get', 'dbb', 'orders', '-n', 'payroll']))!.metadata.generation).toBe(generation);
    const events = await kube.kubectlOk(['get', 'events', '-n', 'payroll', '--field-selector', 'involvedObject.name=orders', '-o', 'jsonpath={.items[*].reason}']);
    expect(events.split(' ')).toEqual(expect.arrayContaining(['NamespaceSecretNotFound', 'Recovered', 'RunnerCreated']));
  });

  it('a Secret deleted under a runner that exists (and has no available pod) is reported at the next reconcile (here the resync), and the runner is kept: not a revocation', async () => {
    const before = (await get(['get', 'deployment', 'orders-runner', '-n', 'payroll']))!.metadata.uid as string;
    await kube.kubectlOk(['-n', 'payroll', 'delete', 'secret', 'orders-db']);
    controller.resyncAll();
    const c = await eventually('ConfigValid=False', async () => ((await configValid())?.status === 'False' ? configValid() : undefined));
    expect(c).toMatchObject({ reason: 'NamespaceSecretNotFound' });
    await controller.idle();
    expect((await get(['get', 'deployment', 'orders-runner', '-n', 'payroll']))?.metadata.uid).toBe(before);
    await apply(tenantSecret('orders-db'));
    await eventually('ConfigValid=True', async () => ((await configValid())?.status === 'True' ? true : undefined));
  });
});
