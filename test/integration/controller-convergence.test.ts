/**
 * The controller writes nothing when nothing changed, also as a fresh process that did not create the
 * runner objects itself, and every hand edit of a runner object converges back to what it renders: a
 * strategy edit the API server would refuse to apply over, a removed ownerReference, labels, replicas,
 * volumes, containers, the Service. Real kube-apiserver 1.20 + kube-controller-manager (garbage
 * collection, Deployments) with an audit log that counts the controller's requests at the server.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION } from '../../api/crds/common.js';
import { Controller } from '../../controller/controller.js';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics } from '../../controller/metrics.js';
import type { KubeConfig } from '@kubernetes/client-node';
import { CONTROLLER_SA, applyCrds, controllerIdentity, ensureNamespaces, kubeJson, type KubeJson } from '../../testenv/controller.js';
import { kubeBinaries, startKube, type AuditEvent, type KubeInstance } from '../../testenv/kube.js';
import { eventually } from '../../testenv/eventually.js';
import { CONTROLLER_NAMESPACE, classSecrets, controllerSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call --
   the objects are the API server's JSON, checked field by field by the assertions */

let kube: KubeInstance;
let kubeConfig: KubeConfig;
let controller: Controller | undefined;

const { apply, get, condition } = kubeJson(() => kube);
const CONTROLLER_USER = `system:serviceaccount:${CONTROLLER_NAMESPACE}:${CONTROLLER_SA}`;
const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

function newController(): Controller {
  const metrics = createControllerMetrics();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  return new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: controllerSettings(), logger, metrics });
}

const backup = (name: string) => {
  const b = validBackup();
  b.metadata = { name, namespace: 'shop' };
  return b;
};

const deployment = (name: string) => get(['get', 'deployment', `${name}-runner`, '-n', 'shop']);
const kubectl = (...args: string[]) => kube.kubectlOk(['-n', 'shop', ...args]);
const eventReasons = async (name: string) => (await kube.kubectlOk(['get', 'events', '-n', 'shop', '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={.items[*].reason}'])).split(' ');

/**
 * The controller's write requests in the audit log after the first `from` events. Dry runs store nothing
 * and are left out: the test whether a Secret of the namespace exists (404 or 422, see
 * KubeAdapter.secretExists) is one, made while a runner has no available pod, as here where no pod runs.
 */
async function controllerWrites(from: number): Promise<string[]> {
  const events: AuditEvent[] = (await kube.auditEvents()).slice(from);
  return events
    .filter((e) => e.stage === 'ResponseComplete' && e.user.username === CONTROLLER_USER && WRITES.has(e.verb) && !/[?&]dryRun=All(&|$)/.test(e.requestURI))
    .map((e) => `${e.verb} ${e.objectRef?.resource ?? ''}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''} ${e.objectRef?.namespace ?? ''}/${e.objectRef?.name ?? ''}`);
}

/** Resolves once the controller has been idle, with no reconcile started, for `ms`. */
async function settled(c: Controller, ms = 1500): Promise<void> {
  for (;;) {
    await c.idle();
    const n = c.stats.reconciles;
    await new Promise((r) => setTimeout(r, ms));
    if (c.stats.reconciles === n) return;
  }
}

/**
 * Waits until kube-controller-manager's garbage collector follows DatabaseBackup deletions. It discovers
 * a CRD applied after it started only at its next rediscovery (every 30 s), and a dependent whose owner was
 * deleted before that is never collected (kube-controller-manager 1.20). Probe: a ConfigMap owned by a
 * throwaway DatabaseBackup (in a namespace no class allows, so the controller never runs for it) must go
 * with it; new ones until it does.
 */
async function garbageCollectorFollowsDatabaseBackups(): Promise<void> {
  await ensureNamespaces(kube, ['gc-probe']);
  for (let i = 0; ; i++) {
    const b = backup(`probe-${i}`);
    b.metadata.namespace = 'gc-probe';
    await apply(b);
    const uid = (await get(['get', 'dbb', `probe-${i}`, '-n', 'gc-probe']))!.metadata.uid as string;
    const owner = { apiVersion: API_VERSION, kind: 'DatabaseBackup', name: `probe-${i}`, uid };
    await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `probe-${i}`, namespace: 'gc-probe', ownerReferences: [owner] } });
    await kube.kubectlOk(['delete', 'dbb', `probe-${i}`, '-n', 'gc-probe']);
    const gone = await eventually('the probe ConfigMap collected', async () => ((await get(['get', 'configmap', `probe-${i}`, '-n', 'gc-probe'])) === undefined ? true : undefined), 5000).catch(() => false);
    if (gone) return;
    if (i >= 15) throw new Error('the garbage collector did not follow DatabaseBackup deletions within 90 s');
  }
}

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube({ audit: true });
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop']);
  await garbageCollectorFollowsDatabaseBackups();
  ({ kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE));
  const secrets = Object.entries(classSecrets()).map(([name, data]) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: CONTROLLER_NAMESPACE }, data }));
  await apply(...secrets, validStorageClass(), backup('orders'), backup('billing'));
  controller = newController();
  await controller.start();
  for (const name of ['orders', 'billing']) {
    // kube-controller-manager has written the Deployment's status, and the controller has read it.
    await eventually(`${name}: a Deployment status for its generation`, async () => {
      const d = await deployment(name);
      return d?.status?.observedGeneration === d?.metadata.generation ? true : undefined;
    });
    await eventually(`${name}: ConfigValid`, async () => condition(await get(['get', 'dbb', name, '-n', 'shop']), 'ConfigValid'));
  }
  await settled(controller);
}, 240_000);

afterAll(async () => {
  await controller?.stop();
  await kube?.stop();
});

describe('no write when nothing changed', () => {
  it('the same process: a resync writes nothing (counted at the API server)', async () => {
    const from = (await kube.auditEvents()).length;
    controller!.resyncAll();
    await settled(controller!);
    expect(await controllerWrites(from)).toEqual([]);
  });

  it('after a restart: a new process, with objects it did not create, writes nothing at start nor on a resync', async () => {
    await controller!.stop();
    const from = (await kube.auditEvents()).length;
    controller = newController();
    await controller.start();
    await settled(controller);
    controller.resyncAll();
    await settled(controller);
    expect(controller.stats).toMatchObject({ applies: 0, statusPatches: 0, events: 0, deletes: 0 });
    expect(await controllerWrites(from)).toEqual([]);
  });
});

describe('hand edits of runner objects converge without a human', () => {
  it('a strategy edit to RollingUpdate (no apply can clear the rollingUpdate the server added): the Deployment is created again, reported once; later spec changes reach it', async () => {
    const before = (await eventReasons('orders')).filter((r) => r === 'RunnerRecreated').length;
    await kubectl('patch', 'deploy', 'orders-runner', '--type=merge', '-p', '{"spec":{"strategy":{"type":"RollingUpdate"}}}');
    const d = await eventually('strategy back to Recreate', async () => {
      const o = await deployment('orders');
      return o?.spec.strategy.type === 'Recreate' ? o : undefined;
    });
    expect(d.spec.strategy.rollingUpdate).toBeUndefined();
    expect(d.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'DatabaseBackup', name: 'orders' });
    await settled(controller!);
    const from = (await kube.auditEvents()).length;
    controller!.resyncAll();
    await settled(controller!);
    expect(await controllerWrites(from)).toEqual([]);
    const reasons = await eventReasons('orders');
    expect(reasons.filter((r) => r === 'RunnerRecreated').length).toBe(before + 1);
    expect(reasons).not.toContain('ApplyFailed');
    const b = backup('orders') as KubeJson;
    b.spec.runner.podAnnotations = { 'example.com/after-strategy-edit': 'seen' };
    await apply(b);
    await eventually('a spec change reaches the Deployment', async () => (await deployment('orders'))?.spec.template.metadata.annotations['example.com/after-strategy-edit'] === 'seen');
  });

  it('a strategy edit that also sets rollingUpdate converges the same way', async () => {
    await kubectl('patch', 'deploy', 'billing-runner', '--type=merge', '-p', '{"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":2}}}}');
    await eventually('strategy back to Recreate', async () => ((await deployment('billing'))?.spec.strategy.type === 'Recreate' ? true : undefined));
    await settled(controller!);
    const reasons = await eventReasons('billing');
    expect(reasons.filter((r) => r === 'RunnerRecreated')).toHaveLength(1);
    expect(reasons).not.toContain('ApplyFailed');
  });

  const edits: [string, string[], (d: KubeJson) => boolean][] = [
    ['replicas', ['patch', 'deploy', 'orders-runner', '--type=json', '-p', '[{"op":"replace","path":"/spec/replicas","value":3}]'], (d) => d.spec.replicas === 1],
    [
      'a label of the controller changed',
      ['label', 'deploy', 'orders-runner', '--overwrite', 'dbbackup.io/database-backup=other'],
      (d) => d.metadata.labels['dbbackup.io/database-backup'] === 'orders',
    ],
    ['the managed-by label removed', ['label', 'deploy', 'orders-runner', 'app.kubernetes.io/managed-by-'], (d) => d.metadata.labels['app.kubernetes.io/managed-by'] === 'db-backup-controller'],
    [
      'a volume edited',
      ['patch', 'deploy', 'orders-runner', '--type=json', '-p', '[{"op":"replace","path":"/spec/template/spec/volumes/0/secret/defaultMode","value":420}]'],
      (d) => d.spec.template.spec.volumes.find((v: KubeJson) => v.name === 'config').secret.defaultMode === 0o440,
    ],
    [
      'a container env value',
      ['set', 'env', 'deploy/orders-runner', 'BACKUP_RUNNER_CONFIG=/tmp/evil.yaml'],
      (d) => d.spec.template.spec.containers[0].env.find((e: KubeJson) => e.name === 'BACKUP_RUNNER_CONFIG').value === '/etc/backup-runner/config.yaml',
    ],
    ['a container image', ['set', 'image', 'deploy/orders-runner', 'runner=evil.example/x:1'], (d) => !String(d.spec.template.spec.containers[0].image).startsWith('evil.example/')],
  ];
  it.each(edits)('Deployment: %s', async (_what, args, converged) => {
    await kubectl(...args);
    await eventually('converged', async () => {
      const d = await deployment('orders');
      return d && converged(d) ? true : undefined;
    });
  });

  it('Service: selector and port edited', async () => {
    await kubectl('patch', 'svc', 'orders-runner', '--type=merge', '-p', '{"spec":{"selector":{"app.kubernetes.io/instance":"other"}}}');
    // The apply adds port 9090 next to 9999 under the same name, which the server refuses: the Service is created again.
    await kubectl('patch', 'svc', 'orders-runner', '--type=json', '-p', '[{"op":"replace","path":"/spec/ports/0/port","value":9999}]');
    await eventually('Service back', async () => {
      const s = await get(['get', 'svc', 'orders-runner', '-n', 'shop']);
      return s?.spec.selector['app.kubernetes.io/instance'] === 'orders-runner' && s.spec.ports.length === 1 && s.spec.ports[0].port === 9090 ? true : undefined;
    });
  });

  it('a removed ownerReference is restored, so deleting the DatabaseBackup garbage-collects the runner', async () => {
    await kubectl('patch', 'deploy', 'orders-runner', '--type=json', '-p', '[{"op":"remove","path":"/metadata/ownerReferences"}]');
    await kubectl('patch', 'sa', 'orders-runner', '--type=json', '-p', '[{"op":"remove","path":"/metadata/ownerReferences"}]');
    for (const kind of ['deploy', 'sa']) {
      await eventually(`${kind}: ownerReference back`, async () => ((await get(['get', kind, 'orders-runner', '-n', 'shop']))?.metadata.ownerReferences?.[0]?.name === 'orders' ? true : undefined));
    }
    expect(condition(await get(['get', 'dbb', 'orders', '-n', 'shop']), 'ConfigValid')).toMatchObject({ status: 'True' });
    await kubectl('delete', 'dbb', 'orders');
    for (const kind of ['deploy', 'sa']) {
      await eventually(`${kind} garbage-collected`, async () => ((await get(['get', kind, 'orders-runner', '-n', 'shop'])) === undefined ? true : undefined), 40_000);
    }
  });

  it('a foreign object with copied labels and no ownerReference is still refused (NameConflict)', async () => {
    await kube.kubectlOk(['create', 'serviceaccount', 'foreign-runner', '-n', 'shop']);
    await kubectl(
      'label',
      'sa',
      'foreign-runner',
      'app.kubernetes.io/managed-by=db-backup-controller',
      'app.kubernetes.io/part-of=db-backup-controller',
      'app.kubernetes.io/name=backup-runner',
      'app.kubernetes.io/instance=foreign-runner',
      'dbbackup.io/database-backup=foreign',
    );
    await apply(backup('foreign'));
    const c = await eventually('NameConflict', async () => {
      const v = condition(await get(['get', 'dbb', 'foreign', '-n', 'shop']), 'ConfigValid');
      return v?.reason === 'NameConflict' ? v : undefined;
    });
    expect(c.message).toContain('ServiceAccount shop/foreign-runner exists and is not owned by');
    expect((await get(['get', 'sa', 'foreign-runner', '-n', 'shop']))?.metadata.ownerReferences).toBeUndefined();
    expect(await deployment('foreign')).toBeUndefined();
  });
});
