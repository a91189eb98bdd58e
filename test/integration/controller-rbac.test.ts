/**
 * The controller's least privilege, measured: kube-apiserver 1.20 records
 * every request in an audit log while the controller (leader election on,
 * the rights of controller/rbac.ts, OwnerReferencesPermissionEnforcement
 * admission on) runs a representative life: create, update, storage class
 * change, credential rotation, a refused spec, a name conflict, revoked
 * access, deletion,
 * stepping down. The (verb, group, resource/subresource) of every request
 * must be granted by rbac.ts, and every grant of rbac.ts must be used.
 *
 * A few rights are used without a request of their own; each is counted
 * from what the API server checks:
 * - `create`: a server-side apply that creates an object (answer 201) is
 *   authorized as create as well as patch;
 * - a Role's rules: RBAC lets the controller create a Role only with rights
 *   it holds itself (the runner's Role, read back from the API server);
 * - ADMISSION_RULES of rbac.ts: checked by an admission plugin.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMISSION_RULES, CLUSTER_RULES, namespaceRules } from '../../controller/rbac.js';
import { runController, type RunningController } from '../../controller/run.js';
import { validateSettings } from '../../controller/settings.js';
import { CONTROLLER_SA, applyCrds, controllerIdentity, ensureNamespaces, kubeJson } from '../../testenv/controller.js';
import { eventually } from '../../testenv/eventually.js';
import { kubeBinaries, startKube, type AuditEvent, type KubeInstance } from '../../testenv/kube.js';
import { CONTROLLER_NAMESPACE, renderSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';
import { shippedEngineSpec } from '../../scripts/engine-files.js';
import { TOOLS } from '../../tools/index.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

const LEASE = 'db-backup-controller';
const USER = `system:serviceaccount:${CONTROLLER_NAMESPACE}:${CONTROLLER_SA}`;

let kube: KubeInstance;
let running: RunningController | undefined;

const { apply, get, condition } = kubeJson(() => kube);
const secret = (name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: CONTROLLER_NAMESPACE }, stringData: data });

/** "verb group resource[/subresource]", the unit both sides are compared in. */
const key = (verb: string, group: string, resource: string) => `${verb} ${group || 'core'} ${resource}`;

function granted(rules: { apiGroups?: string[]; resources?: string[]; verbs: string[] }[]): Set<string> {
  const out = new Set<string>();
  for (const r of rules) for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) out.add(key(v, g, res));
  return out;
}

function requested(events: AuditEvent[]): { used: Set<string>; nonResource: Set<string> } {
  const used = new Set<string>();
  const nonResource = new Set<string>();
  for (const e of events) {
    if (e.user.username !== USER || e.stage !== 'ResponseComplete') continue;
    const o = e.objectRef;
    if (!o?.resource) {
      nonResource.add(`${e.verb} ${e.requestURI.split('?')[0]}`);
      continue;
    }
    const resource = o.subresource ? `${o.resource}/${o.subresource}` : o.resource;
    used.add(key(e.verb, o.apiGroup ?? '', resource));
    if (e.verb === 'patch' && e.responseStatus?.code === 201) used.add(key('create', o.apiGroup ?? '', resource));
  }
  return { used, nonResource };
}

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube({ audit: true, apiserverArgs: ['--enable-admission-plugins=OwnerReferencesPermissionEnforcement'] });
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop']);
}, 120_000);

afterAll(async () => {
  await running?.stop();
  await kube?.stop();
});

describe('controller least privilege, measured against kube-apiserver', () => {
  it('every request is granted by controller/rbac.ts and every grant is used', async () => {
    const { path } = await controllerIdentity(kube, CONTROLLER_NAMESPACE, LEASE);
    const settings = (engines: Record<string, unknown>, removedEngines: string[] = []) => {
      const s = validateSettings({
        namespace: CONTROLLER_NAMESPACE,
        runnerImages: renderSettings().runnerImages,
        engines,
        removedEngines,
        resyncPeriod: '1h',
        workers: 2,
        metricsHost: '127.0.0.1',
        metricsPort: 0,
        leaderElection: { enabled: true, leaseName: LEASE, leaseDuration: '4s', renewDeadline: '3s', retryPeriod: '500ms' },
      });
      if (!s.ok) throw new Error(JSON.stringify(s.errors));
      return s.value;
    };
    const redis = { ...shippedEngineSpec(TOOLS.redis!), image: 'ghcr.io/db-backup-controller/backup-runner-redis:1.0.0' };
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(path);
    running = await runController({ settings: settings({ redis }), kubeConfig, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), identity: 'audited' });
    await eventually('leading', () => Promise.resolve(running!.isLeader()));

    // Create: a runner, its status and Events.
    await apply(secret('minio', { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'example-secret-key' }), secret('gcs', { 'key.json': '{}' }), validStorageClass(), validBackup());
    await eventually('the runner Deployment', () => get(['get', 'deployment', 'orders-runner', '-n', 'shop']));
    await eventually('ConfigValid=True', async () => condition(await get(['get', 'dbb', 'orders', '-n', 'shop']), 'ConfigValid')?.status === 'True');
    await eventually('the class Ready', async () => condition(await get(['get', 'dbbsc', 'standard']), 'Ready')?.status === 'True');
    // An engine defined by a command: its status is written too.
    await apply({
      apiVersion: 'dbbackup.io/v1alpha1',
      kind: 'DatabaseBackupEngine',
      metadata: { name: 'sqlite' },
      spec: { image: 'registry.example/sqlite-runner:1', command: ['/opt/tool.sh'], verbs: ['probe', 'backup', 'restore'], formats: [{ format: 'sqlite-file', extension: 'sqlite', magicHex: ['53514c69746520666f726d6174203300'] }] },
    });
    await eventually('the engine Ready', async () => condition(await get(['get', 'dbbe', 'sqlite']), 'Ready')?.status === 'True');
    // An engine of the settings: installed (create), restored after a hand edit (patch), removed when no longer listed (delete, below).
    await eventually('the installed engine Ready', async () => condition(await get(['get', 'dbbe', 'redis']), 'Ready')?.status === 'True');
    await kube.kubectlOk(['patch', 'dbbe', 'redis', '--type=merge', '-p', '{"spec":{"command":["/bin/true"]}}']);
    await eventually('the installed engine restored', async () => (await get(['get', 'dbbe', 'redis']))?.spec.command[0] === 'db-backup-tool');
    // Update the spec, change the class, rotate a key.
    const b = validBackup() as Obj;
    b.spec.retention.keepLast = 5;
    await apply(b);
    const sc = validStorageClass() as Obj;
    sc.spec.locations[1].s3.region = 'eu-west-1';
    await apply(sc, secret('minio', { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'rotated' }));
    await eventually('the rotated key', async () => {
      const x = await get(['get', 'secret', 'orders-runner', '-n', 'shop']);
      return Buffer.from((x?.data['offsite.secret-access-key'] as string) ?? '', 'base64').toString() === 'rotated';
    });
    // A refused spec and a name conflict (Warning Events, the dry-run probe).
    const bad = validBackup() as Obj;
    bad.metadata.name = 'bad';
    (bad.spec.runner.extraVolumes as Obj[]).push({ name: 'root', hostPath: { path: '/' } });
    await apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'taken-runner', namespace: 'shop' }, stringData: { x: 'keep' } });
    const taken = validBackup() as Obj;
    taken.metadata.name = 'taken';
    await apply(bad, taken);
    await eventually('bad refused', async () => condition(await get(['get', 'dbb', 'bad', '-n', 'shop']), 'ConfigValid')?.reason === 'InvalidSpec');
    await eventually('taken conflicts', async () => condition(await get(['get', 'dbb', 'taken', '-n', 'shop']), 'ConfigValid')?.reason === 'NameConflict');
    // A hand edit repaired; access revoked; a deletion garbage-collected.
    await kube.kubectlOk(['-n', 'shop', 'delete', 'service', 'orders-runner']);
    await eventually('the Service back', () => get(['get', 'service', 'orders-runner', '-n', 'shop']));
    const runnerRole = (await get(['get', 'role', 'orders-runner', '-n', 'shop']))!;
    // Access revoked (the namespace leaves allowedNamespaces): the runner's six objects, its copied keys among them, are deleted.
    sc.spec.allowedNamespaces = ['billing'];
    await apply(sc);
    await eventually('the runner revoked', async () => {
      for (const kind of ['deployment', 'secret', 'service', 'rolebinding', 'role', 'serviceaccount']) if (await get(['get', kind, 'orders-runner', '-n', 'shop'])) return undefined;
      return true;
    });
    await kube.kubectlOk(['-n', 'shop', 'delete', 'dbb', 'orders', '--wait=false']);
    await running.controller()?.idle();
    // Step down (the Lease is released); a controller whose settings name the engine as removed deletes it.
    await running.stop();
    running = await runController({ settings: settings({}, ['redis']), kubeConfig, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), identity: 'audited' });
    await eventually('the installed engine removed', async () => (await get(['get', 'dbbe', 'redis'])) === undefined);
    await running.stop();
    running = undefined;

    const events = await kube.auditEvents();
    const { used, nonResource } = requested(events);
    expect(used.size, 'no request of the controller was recorded').toBeGreaterThan(10);
    // Rights used by the API server's own checks rather than by a request.
    for (const k of granted(runnerRole.rules as never)) used.add(k);
    const admission = granted(ADMISSION_RULES);
    const grants = granted([...CLUSTER_RULES, ...namespaceRules(LEASE)]);

    const ungranted = [...used].filter((k) => !grants.has(k)).sort();
    const unused = [...grants].filter((k) => !used.has(k) && !admission.has(k)).sort();
    expect({ ungranted, unused }).toEqual({ ungranted: [], unused: [] });
    // Discovery (KubernetesObjectApi resolves a kind's plural) is the only non-resource request; system:discovery grants it to every user.
    expect([...nonResource].filter((r) => !/^get \/(api|apis)(\/[^/]+){0,2}$/.test(r))).toEqual([]);
    // Nothing was refused: a 403 would mean rbac.ts misses a right the code path needs.
    expect(events.filter((e) => e.user.username === USER && e.responseStatus?.code === 403).map((e) => `${e.verb} ${e.requestURI}`)).toEqual([]);
  });
});
