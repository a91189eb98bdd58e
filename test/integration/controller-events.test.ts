/**
 * The cause at a glance, against a real kube-apiserver 1.20 + kube-controller-manager and real kubectl:
 * the REASON column of `kubectl get` for both kinds, one Warning Event per continuing problem (however
 * often it is reconciled), a Normal Event when it is gone (also when that needs no write), Events for
 * storage classes, and RunnerCreated for the first runner after a failed try.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../controller/controller.js';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics } from '../../controller/metrics.js';
import { applyCrds, controllerIdentity, ensureNamespaces, kubeJson } from '../../testenv/controller.js';
import { eventually } from '../../testenv/eventually.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { CONTROLLER_NAMESPACE, controllerSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

let kube: KubeInstance;
let controller: Controller;

const { apply, get, condition } = kubeJson(() => kube);

const secret = (name: string, namespace: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, stringData: data });

/** The Events about `name` in `namespace`, oldest first (by resourceVersion), as "Type Reason" plus their count and message. */
async function eventsOf(namespace: string, name: string): Promise<{ what: string; count: number; message: string }[]> {
  const list = await get(['get', 'events', '-n', namespace, '--field-selector', `involvedObject.name=${name}`]);
  return ((list?.items ?? []) as Obj[])
    .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
    .map((e) => ({ what: `${e.type as string} ${e.reason as string}`, count: e.count as number, message: e.message as string }));
}

/**
 * Reconciles everything again, `times` times, waiting each time until each DatabaseBackup
 * was reconciled once more and half a second for the rest (not for an idle queue: a failing key stays
 * scheduled for retry).
 */
async function resync(times: number): Promise<void> {
  const backups = ((await get(['get', 'dbb', '-A']))?.items as Obj[]).length;
  for (let i = 0; i < times; i++) {
    const before = controller.stats.reconciles;
    controller.resyncAll();
    await eventually('the resync reconciled', () => Promise.resolve(controller.stats.reconciles >= before + backups));
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The cells of `kubectl get <args>` for the row named `name`, by column header. */
async function row(args: string[], name: string): Promise<Record<string, string>> {
  const [header, ...rows] = (await kube.kubectlOk(['get', ...args])).trim().split('\n');
  const starts = [...header!.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], at: m.index }));
  const line = rows.find((r) => r.startsWith(`${name} `)) ?? '';
  return Object.fromEntries(starts.map((c, i) => [c.name, line.slice(c.at, starts[i + 1]?.at ?? line.length).trim()]));
}

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube();
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop']);
  const { kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
  // Everything the fixtures reference in the DatabaseBackups' namespace exists: their only problems are the ones each test makes.
  await apply(
    secret('minio', CONTROLLER_NAMESPACE, { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'example-secret-key' }),
    secret('gcs', CONTROLLER_NAMESPACE, { 'key.json': '{"type":"service_account"}' }),
    secret('orders-db', 'shop', { password: 'pw' }),
    secret('orders-db-ca', 'shop', { 'ca.crt': 'pem' }),
    { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'backups', namespace: 'shop' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    validStorageClass(),
  );
  const metrics = createControllerMetrics();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: controllerSettings({ workers: 2 }), logger, metrics });
  await controller.start();
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await kube?.stop();
});

describe('the cause at a glance', () => {
  it('a storage class: REASON column, one Warning Event while a Secret is missing, a Normal Event when it is back', async () => {
    const sc = validStorageClass();
    sc.metadata.name = 'vaulted';
    const s3 = ((sc.spec.locations as Obj[])[1]!.s3 as Obj);
    s3.accessKeyIdSecretRef = { secretName: 'vault', key: 'access-key' };
    s3.secretAccessKeySecretRef = { secretName: 'vault', key: 'secret-key' };
    await apply(sc);
    await eventually('vaulted: Ready=False', async () => condition(await get(['get', 'dbbsc', 'vaulted']), 'Ready')?.status === 'False');
    await resync(3);
    const cells = await row(['dbbsc'], 'vaulted');
    expect(cells).toMatchObject({ READY: 'False', REASON: 'SecretNotFound' });
    const warnings = await eventsOf('default', 'vaulted');
    expect(warnings.map((e) => e.what)).toEqual(['Warning SecretNotFound']);
    expect(warnings[0]!.message).toContain('secret "vault" not found');
    expect(warnings[0]!.count).toBe(1);

    await apply(secret('vault', CONTROLLER_NAMESPACE, { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'example-secret-key' }));
    await eventually('vaulted: Ready=True', async () => condition(await get(['get', 'dbbsc', 'vaulted']), 'Ready')?.status === 'True');
    await resync(2);
    const after = await eventsOf('default', 'vaulted');
    expect(after.map((e) => e.what)).toEqual(['Warning SecretNotFound', 'Normal Recovered']);
    expect(after[1]!.message).toContain('was SecretNotFound');
    expect(await row(['dbbsc'], 'vaulted')).toMatchObject({ READY: 'True', REASON: 'Valid' });
  });

  it('a DatabaseBackup that fails to apply: one Warning over many reconciles, REASON column, then RunnerCreated and a Normal recovery', async () => {
    const b = validBackup() as Obj;
    b.metadata.name = 'labelled';
    b.spec.runner.podLabels = { 'not a label key!': 'x' };
    await apply(b);
    await eventually('labelled: ConfigValid=False', async () => condition(await get(['get', 'dbb', 'labelled', '-n', 'shop']), 'ConfigValid')?.reason === 'ApplyFailed');
    await resync(4);
    await new Promise((r) => setTimeout(r, 4000)); // and the retries after 0.5, 1 and 2 s
    const failing = await eventsOf('shop', 'labelled');
    expect(failing.map((e) => e.what)).toEqual(['Warning ApplyFailed']);
    expect(failing[0]!.count).toBe(1);
    expect(await row(['dbb', '-n', 'shop'], 'labelled')).toMatchObject({ READY: 'False', REASON: 'ApplyFailed' });
    expect((await row(['dbb', '-n', 'shop', '-o', 'wide'], 'labelled')).MESSAGE).toContain('HTTP 422');

    delete b.spec.runner.podLabels;
    await apply(b);
    await eventually('the runner Deployment', () => get(['get', 'deployment', 'labelled-runner', '-n', 'shop']));
    await eventually('labelled: ConfigValid=True', async () => condition(await get(['get', 'dbb', 'labelled', '-n', 'shop']), 'ConfigValid')?.status === 'True');
    await resync(2);
    const reasons = (await eventsOf('shop', 'labelled')).map((e) => e.what);
    expect(reasons).toContain('Normal RunnerCreated');
    expect(reasons).not.toContain('Normal RunnerUpdated');
    expect(reasons.filter((r) => r === 'Normal Recovered')).toHaveLength(1);
    expect(reasons.filter((r) => r.startsWith('Warning'))).toEqual(['Warning ApplyFailed']);
    // No kubelet here: the runner never becomes available, and the column says so.
    expect(await row(['dbb', '-n', 'shop'], 'labelled')).toMatchObject({ READY: 'False', REASON: 'RunnerUnavailable' });
  });

  it('a recovery that needs no write still gets a Normal Event', async () => {
    const b = validBackup() as Obj;
    b.metadata.name = 'steady';
    await apply(b);
    await eventually('steady: its runner', () => get(['get', 'deployment', 'steady-runner', '-n', 'shop']));
    await eventually('steady: ConfigValid=True', async () => condition(await get(['get', 'dbb', 'steady', '-n', 'shop']), 'ConfigValid')?.status === 'True');
    // A spec the controller refuses: the runner keeps its last good config.
    const volumes = b.spec.runner.extraVolumes as Obj[];
    volumes.push({ name: 'root', hostPath: { path: '/' } });
    await apply(b);
    await eventually('steady: InvalidSpec', async () => condition(await get(['get', 'dbb', 'steady', '-n', 'shop']), 'ConfigValid')?.reason === 'InvalidSpec');
    await resync(2);
    expect(await row(['dbb', '-n', 'shop'], 'steady')).toMatchObject({ REASON: 'InvalidSpec' });
    volumes.pop();
    await resync(1);
    const applies = controller.stats.applies;
    await apply(b);
    await eventually('steady: ConfigValid=True again', async () => condition(await get(['get', 'dbb', 'steady', '-n', 'shop']), 'ConfigValid')?.status === 'True');
    await resync(2);
    expect(controller.stats.applies).toBe(applies); // the runner had the spec all along
    const events = (await eventsOf('shop', 'steady')).filter((e) => e.what !== 'Normal CredentialsAccess');
    expect(events.map((e) => e.what)).toEqual(['Normal RunnerCreated', 'Warning InvalidSpec', 'Normal Recovered']);
    expect(events[2]!.message).toContain('was InvalidSpec: invalid DatabaseBackup: spec.runner.extraVolumes[1].hostPath');
  });
  it('a hostile spec whose failure outgrows a condition message: the status is written (message cut) and one Warning is recorded', async () => {
    const b = validBackup() as Obj;
    b.metadata.name = 'chatty';
    // 500 invalid label keys: the refusal lists each, far beyond the 32768 characters a condition message may hold.
    b.spec.runner.podLabels = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`not a label key ${i}!`, 'x']));
    await apply(b);
    const c = await eventually('chatty: ConfigValid=False', async () => {
      const x = condition(await get(['get', 'dbb', 'chatty', '-n', 'shop']), 'ConfigValid');
      return x?.status === 'False' ? x : undefined;
    });
    expect(c.message.length).toBeLessThanOrEqual(32768);
    expect(c.message).toMatch(/ \.\.\. \(\d+ more characters\)$/);
    await resync(3);
    await new Promise((r) => setTimeout(r, 4000)); // and the retries after 0.5, 1 and 2 s
    const warnings = (await eventsOf('shop', 'chatty')).filter((e) => e.what.startsWith('Warning'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.what).toBe(`Warning ${c.reason as string}`);
    expect(warnings[0]!.count).toBe(1);
  });
});
