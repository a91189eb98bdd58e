/**
 * A DatabaseBackup written by a hostile tenant, against a real kube-apiserver
 * 1.20 (+ etcd, kube-controller-manager), the controller running with exactly
 * the rights of controller/rbac.ts: a spec.runner that would weaken the pod is
 * refused with its field path (condition, Event, no Deployment), and an
 * object with a runner's name that the DatabaseBackup does not own is
 * reported as NameConflict and left as it is.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../controller/controller.js';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics } from '../../controller/metrics.js';
import type { ControllerSettings } from '../../controller/settings.js';
import { applyCrds, controllerIdentity, ensureNamespaces, kubeJson } from '../../testenv/controller.js';
import { eventually } from '../../testenv/eventually.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { CONTROLLER_NAMESPACE, controllerSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';
import { restrictedViolations } from '../pod-security.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

let kube: KubeInstance;
let controller: Controller;

const settings = (): ControllerSettings => controllerSettings({ workers: 2 });

const { apply, get, condition } = kubeJson(() => kube);
const events = (ns: string, name: string) => kube.kubectlOk(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={.items[*].message}']);

/** A DatabaseBackup in shop named `name` whose spec.runner is edited by `edit`. */
function backup(name: string, edit: (runner: Obj) => void = () => undefined): Obj {
  const b = validBackup() as Obj;
  b.metadata = { name, namespace: 'shop' };
  edit(b.spec.runner as Obj);
  return b;
}

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube();
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop'], ['backups', 'store']);
  const { kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
  const metrics = createControllerMetrics();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  await apply(
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'minio', namespace: CONTROLLER_NAMESPACE }, stringData: { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'example-secret-key' } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gcs', namespace: CONTROLLER_NAMESPACE }, stringData: { 'key.json': '{"type":"service_account"}' } },
    validStorageClass(),
  );
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: settings(), logger, metrics });
  await controller.start();
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await kube?.stop();
});

describe('a hostile spec.runner on a real API server', () => {
  it('is refused with its field path: condition, Event, and no runner objects', async () => {
    const cases: [Obj, string, string][] = [
      [backup('host-root', (r) => (r.extraVolumes as Obj[]).push({ name: 'root', hostPath: { path: '/' } })), 'InvalidSpec', 'spec.runner.extraVolumes[1].hostPath: is not an allowed volume source'],
      [backup('foreign-image', (r) => (r.image = 'evil.example/backup-runner:1')), 'ImageNotAllowed', 'spec.runner.image: "evil.example/backup-runner:1" is not allowed'],
      [
        backup('unconfined', (r) => (r.podAnnotations = { 'container.apparmor.security.beta.kubernetes.io/runner': 'unconfined' })),
        'InvalidSpec',
        'spec.runner.podAnnotations["container.apparmor.security.beta.kubernetes.io/runner"]: is not allowed',
      ],
      [
        backup('over-config', (r) => (r.extraVolumeMounts as Obj[]).push({ name: 'scratch', mountPath: '/etc/backup-runner' })),
        'InvalidSpec',
        'spec.runner.extraVolumeMounts[1].mountPath: "/etc/backup-runner" would cover /etc',
      ],
    ];
    await apply(...cases.map(([b]) => b));
    for (const [b, reason, message] of cases) {
      const name = b.metadata.name as string;
      const c = await eventually(`${name}: ConfigValid=False`, async () => condition(await get(['get', 'dbb', name, '-n', 'shop']), 'ConfigValid'));
      expect(c, name).toMatchObject({ status: 'False', reason });
      expect(c.message).toContain(message);
      expect(await events('shop', name)).toContain(message);
      for (const kind of ['deployment', 'serviceaccount', 'role', 'rolebinding', 'service']) {
        expect(await get(['get', kind, `${name}-runner`, '-n', 'shop']), `${name}: ${kind}`).toBeUndefined();
      }
    }
    // The API server stored the hostPath as written (the CRD keeps unknown volume fields): only the controller stands between it and a pod.
    expect(((await get(['get', 'dbb', 'host-root', '-n', 'shop']))!.spec.runner.extraVolumes as Obj[])[1]).toEqual({ name: 'root', hostPath: { path: '/' } });
  });
});

describe('what the policy accepts, as the API server stores it', () => {
  it('every allowed volume source: the Deployment, with the server\'s defaults, meets the restricted Pod Security Standard', async () => {
    // The Secret a volume names must exist (NamespaceSecretNotFound); the claim is made by ensureNamespaces.
    await apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls', namespace: 'shop' }, stringData: { 'tls.crt': 'pem' } });
    await apply(
      backup('all-sources', (r) => {
        (r.extraVolumes as Obj[]).push(
          { name: 'pvc', persistentVolumeClaim: { claimName: 'store' } },
          { name: 'cm', configMap: { name: 'ca' } },
          { name: 'sec', secret: { secretName: 'tls' } },
          { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
          { name: 'token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', expirationSeconds: 3600, path: 'token' } }] } },
        );
        for (const n of ['pvc', 'cm', 'sec', 'info', 'token']) (r.extraVolumeMounts as Obj[]).push({ name: n, mountPath: `/data/${n}` });
        r.podAnnotations = { 'example.com/team': 'shop', 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false' };
      }),
    );
    const dep = await eventually('the runner Deployment', () => get(['get', 'deployment', 'all-sources-runner', '-n', 'shop']));
    const template = dep.spec.template as Obj;
    expect(restrictedViolations(template.spec as never, template.metadata.annotations as Record<string, string>)).toEqual([]);
    expect((template.spec.volumes as Obj[]).map((v) => Object.keys(v).filter((k) => k !== 'name')[0]).sort()).toEqual(
      ['configMap', 'downwardAPI', 'emptyDir', 'emptyDir', 'persistentVolumeClaim', 'persistentVolumeClaim', 'projected', 'secret', 'secret', 'secret'].sort(),
    );
  });
});

describe('NameConflict: an object with a runner\'s name that the DatabaseBackup does not own', () => {
  it.each([
    ['ServiceAccount', 'taken-sa', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'taken-sa-runner', namespace: 'shop', labels: { team: 'shop' } } }],
    ['Secret', 'taken-secret', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'taken-secret-runner', namespace: 'shop' }, stringData: { token: 'keep-me' } }],
    [
      'Deployment',
      'taken-deploy',
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        // The controller's own labels, copied: it is in the controller's cache, and still not its own.
        metadata: { name: 'taken-deploy-runner', namespace: 'shop', labels: { 'app.kubernetes.io/managed-by': 'db-backup-controller' } },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: 'other' } },
          template: { metadata: { labels: { app: 'other' } }, spec: { containers: [{ name: 'c', image: 'registry.example/other:1' }] } },
        },
      },
    ],
  ])('%s: reported, never taken over, and deployed once it is gone', async (kind, name, foreign) => {
    const resource = kind.toLowerCase();
    await apply(foreign);
    const before = (await get(['get', resource, `${name}-runner`, '-n', 'shop']))!;
    await apply(backup(name));
    const c = await eventually(`${name}: ConfigValid=False`, async () => condition(await get(['get', 'dbb', name, '-n', 'shop']), 'ConfigValid'));
    const message = `${kind} shop/${name}-runner exists and is not owned by DatabaseBackup shop/${name}`;
    expect(c).toMatchObject({ status: 'False', reason: 'NameConflict' });
    expect(c.message).toContain(message);
    expect(await events('shop', name)).toContain(message);
    await controller.idle();
    const after = (await get(['get', resource, `${name}-runner`, '-n', 'shop']))!;
    expect(after.metadata.resourceVersion, 'the foreign object was written').toBe(before.metadata.resourceVersion);
    expect(after.metadata.ownerReferences).toBeUndefined();
    if (kind !== 'Deployment') expect(await get(['get', 'deployment', `${name}-runner`, '-n', 'shop'])).toBeUndefined();
    if (kind === 'Secret') expect(Buffer.from(after.data.token as string, 'base64').toString()).toBe('keep-me');

    await kube.kubectlOk(['delete', resource, `${name}-runner`, '-n', 'shop']);
    controller.resyncAll();
    const dep = await eventually(`${name}: the runner deployed`, () => get(['get', 'deployment', `${name}-runner`, '-n', 'shop']));
    expect(dep.metadata.ownerReferences[0]).toMatchObject({ kind: 'DatabaseBackup', name });
    await eventually(`${name}: ConfigValid=True`, async () => condition(await get(['get', 'dbb', name, '-n', 'shop']), 'ConfigValid')?.status === 'True');
  });
});
