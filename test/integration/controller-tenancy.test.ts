/**
 * Tenants sharing a cluster and a bucket, on a real kube-apiserver 1.20 +
 * kube-controller-manager, the controller running with exactly the rights of
 * controller/rbac.ts: no two DatabaseBackups get overlapping storage, a
 * class can keep its keys to itself, and access taken away removes the
 * runner and every copied key within one reconcile.
 */
import { setTimeout as delay } from 'node:timers/promises';
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

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

let kube: KubeInstance;
let controller: Controller;

const settings = (): ControllerSettings => controllerSettings();

const { apply, get, condition } = kubeJson(() => kube);
const events = (ns: string, name: string, field = 'message') =>
  kube.kubectlOk(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`, '-o', `jsonpath={range .items[*]}{.${field}}{"\\n"}{end}`]);

const s3Class = (name: string, prefix: string, extra: Obj = {}, allowedNamespaces?: string[]) => ({
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackupStorageClass',
  metadata: { name },
  spec: {
    ...(allowedNamespaces ? { allowedNamespaces } : {}),
    locations: [{ name: 'offsite', ...(prefix ? { prefix } : {}), s3: { bucket: 'shared', region: 'us-east-1', endpoint: 'http://s3.example:9000', forcePathStyle: true, ...extra } }],
  },
});

const backup = (namespace: string, name: string, storageClassName: string, extra: Obj = {}) => ({
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackup',
  metadata: { name, namespace },
  spec: {
    engine: { type: 'postgresql', postgresql: { host: `${name}-db`, database: name, user: 'backup', version: '16' } },
    schedule: { interval: '6h' },
    storageClassName,
    ...extra,
  },
});

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube();
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop', 'orders', 'team-a', 'team-b']);
  const { kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
  const metrics = createControllerMetrics();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: settings(), logger, metrics });
  await controller.start();
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await kube?.stop();
});

describe('no two DatabaseBackups share a storage prefix, across storage classes', () => {
  it('class-x prefix "" + shop/orders holds class-y prefix "shop" + orders/x: the later one is refused, naming both', async () => {
    await apply(s3Class('class-x', ''), s3Class('class-y', 'shop'), backup('shop', 'orders', 'class-x'));
    await eventually('shop/orders deployed', () => get(['get', 'deployment', 'orders-runner', '-n', 'shop']));
    // creationTimestamp has whole seconds: created in the same second, the two would be ordered by name (orders/x first).
    const created = Date.parse((await get(['get', 'dbb', 'orders', '-n', 'shop']))!.metadata.creationTimestamp as string);
    await delay(Math.max(0, created + 1100 - Date.now()));
    await apply(backup('orders', 'x', 'class-y'));
    const c = await eventually('orders/x: ConfigValid=False', async () => condition(await get(['get', 'dbb', 'x', '-n', 'orders']), 'ConfigValid'));
    expect(c).toMatchObject({ status: 'False', reason: 'PrefixOverlap' });
    expect(c.message).toContain('location "offsite" of storage class "class-y" stores under s3://shared/shop/orders/x/ at http://s3.example:9000');
    expect(c.message).toContain('overlaps s3://shared/shop/orders/ at http://s3.example:9000 of DatabaseBackup shop/orders (storage class "class-x"');
    expect(c.message).toContain('no storage credential is kept in namespace "orders"');
    const ev = await eventually('the PrefixOverlap Event', async () => (await events('orders', 'x')).split('\n').find((m) => m.includes('DatabaseBackup shop/orders')));
    expect(ev).toContain('storage class "class-y"');
    await controller.idle();
    expect(await get(['get', 'deployment', 'x-runner', '-n', 'orders'])).toBeUndefined();
    expect(await get(['get', 'secret', 'x-runner', '-n', 'orders'])).toBeUndefined();
    // The earlier one keeps running.
    expect(condition(await get(['get', 'dbb', 'orders', '-n', 'shop']), 'ConfigValid')).toMatchObject({ status: 'True' });
    expect(await get(['get', 'deployment', 'orders-runner', '-n', 'shop'])).toBeDefined();
  });

  it('a class change that ends the overlap requeues the refused one; one that brings it back removes its runner', async () => {
    await apply(s3Class('class-y', 'elsewhere'));
    await eventually('orders/x deployed', () => get(['get', 'deployment', 'x-runner', '-n', 'orders']));
    expect(condition(await get(['get', 'dbb', 'x', '-n', 'orders']), 'ConfigValid')).toMatchObject({ status: 'True' });
    // Both run now; pointing y back at "shop" is the case of two runners already sweeping each other's backups.
    await apply(s3Class('class-y', 'shop'));
    await eventually('orders/x refused again', async () => condition(await get(['get', 'dbb', 'x', '-n', 'orders']), 'ConfigValid')?.reason === 'PrefixOverlap');
    await eventually('its runner Deployment gone', async () => (await get(['get', 'deployment', 'x-runner', '-n', 'orders'])) === undefined);
    await eventually('its config Secret gone', async () => (await get(['get', 'secret', 'x-runner', '-n', 'orders'])) === undefined);
    expect(await get(['get', 'deployment', 'orders-runner', '-n', 'shop'])).toBeDefined();
  });

  it('deleting the earlier DatabaseBackup requeues the refused one', async () => {
    await kube.kubectlOk(['-n', 'shop', 'delete', 'dbb', 'orders']);
    await eventually('orders/x deployed', () => get(['get', 'deployment', 'x-runner', '-n', 'orders']));
    expect(condition(await get(['get', 'dbb', 'x', '-n', 'orders']), 'ConfigValid')).toMatchObject({ status: 'True', reason: 'Applied' });
  });
});

describe('access taken away removes the runner and every copied key within one reconcile', () => {
  const keys = (name: string) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: CONTROLLER_NAMESPACE }, stringData: { id: 'AKIATENANTTEST', secret: 'tenant-test-secret-value' } });
  const keyed = (secretName: string) => ({ accessKeyIdSecretRef: { secretName, key: 'id' }, secretAccessKeySecretRef: { secretName, key: 'secret' } });
  const runnerGone = async (ns: string, name: string) => {
    for (const kind of ['deployment', 'secret', 'service', 'rolebinding', 'role', 'serviceaccount']) {
      expect(await get(['get', kind, `${name}-runner`, '-n', ns]), `${kind} ${ns}/${name}-runner`).toBeUndefined();
    }
  };
  /** Waits for the reason, then checks that the same reconcile removed everything (no waiting for that). */
  const revoked = async (ns: string, name: string, reason: string) => {
    const c = await eventually(`${ns}/${name}: ${reason}`, async () => {
      const x = condition(await get(['get', 'dbb', name, '-n', ns]), 'ConfigValid');
      return x?.reason === reason ? x : undefined;
    });
    await runnerGone(ns, name);
    expect(c.status).toBe('False');
    expect(c.message).toContain(`no storage credential is kept in namespace "${ns}"`);
    expect(condition(await get(['get', 'dbb', name, '-n', ns]), 'RunnerAvailable')).toMatchObject({ status: 'False', reason: 'RunnerRevoked' });
    const ev = await eventually('the RunnerRevoked Event', async () => (await events(ns, name)).split('\n').find((m) => m.endsWith(`(${reason}); the stored backups are kept`)));
    expect(ev).toMatch(/^removed Deployment, Secret, Service, RoleBinding, Role, ServiceAccount of runner /);
    return c;
  };

  beforeAll(async () => {
    await apply(keys('team-keys'), s3Class('team', 'teams', keyed('team-keys'), ['team-a', 'team-b']), backup('team-a', 'db1', 'team'), backup('team-b', 'db2', 'team'));
    for (const [ns, n] of [['team-a', 'db1'], ['team-b', 'db2']]) {
      const s = await eventually(`${ns}/${n} runner Secret`, () => get(['get', 'secret', `${n}-runner`, '-n', ns!]));
      expect(Object.keys(s.data as Obj)).toContain('offsite.secret-access-key');
      await eventually(`${ns}/${n} Deployment`, () => get(['get', 'deployment', `${n}-runner`, '-n', ns!]));
    }
  });

  it('a namespace removed from allowedNamespaces: its runner and Secret go, the other namespace keeps its runner', async () => {
    await apply(s3Class('team', 'teams', keyed('team-keys'), ['team-b']));
    const c = await revoked('team-a', 'db1', 'NamespaceNotAllowed');
    expect(c.message).toContain('namespace "team-a" is not allowed by storage class "team" (allowed: team-b)');
    // kube-controller-manager's garbage collector then removes the ReplicaSet (and its pod).
    await eventually('the ReplicaSet collected', async () => ((await get(['get', 'replicasets', '-n', 'team-a']))?.items as Obj[]).length === 0, 40_000);
    expect(await get(['get', 'deployment', 'db2-runner', '-n', 'team-b'])).toBeDefined();
    // Allowed again: the runner comes back.
    await apply(s3Class('team', 'teams', keyed('team-keys'), ['team-a', 'team-b']));
    await eventually('db1 runner back', () => get(['get', 'deployment', 'db1-runner', '-n', 'team-a']));
  });

  it('the class keys deleted: every runner of the class goes', async () => {
    await kube.kubectlOk(['-n', CONTROLLER_NAMESPACE, 'delete', 'secret', 'team-keys']);
    const c = await revoked('team-b', 'db2', 'SecretNotFound');
    expect(c.message).toContain('secret "team-keys" not found');
    await revoked('team-a', 'db1', 'SecretNotFound');
    await apply(keys('team-keys'));
    await eventually('db2 runner back', () => get(['get', 'deployment', 'db2-runner', '-n', 'team-b']));
    await eventually('db1 runner back', () => get(['get', 'deployment', 'db1-runner', '-n', 'team-a']));
  });

  it('the class deleted: the runner goes, the DatabaseBackup stays', async () => {
    await kube.kubectlOk(['delete', 'dbbsc', 'team']);
    await revoked('team-b', 'db2', 'StorageClassNotFound');
    expect(await get(['get', 'dbb', 'db2', '-n', 'team-b'])).toBeDefined();
  });

  it('revocation deletes only what the DatabaseBackup owns: same-named objects of someone else stay', async () => {
    const labels = { 'app.kubernetes.io/managed-by': 'db-backup-controller', 'app.kubernetes.io/name': 'backup-runner', 'app.kubernetes.io/instance': 'intruder-runner' };
    await apply(
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'intruder-runner', namespace: 'team-a', labels }, stringData: { keep: 'me' } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'intruder-runner', namespace: 'team-a', labels },
        spec: { replicas: 0, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'x', image: 'example.invalid/x' }] } } },
      },
      s3Class('closed', 'closed', {}, ['team-b']),
      backup('team-a', 'intruder', 'closed'),
    );
    await eventually('intruder: NamespaceNotAllowed', async () => condition(await get(['get', 'dbb', 'intruder', '-n', 'team-a']), 'ConfigValid')?.reason === 'NamespaceNotAllowed');
    await controller.idle();
    expect(await get(['get', 'deployment', 'intruder-runner', '-n', 'team-a'])).toBeDefined();
    expect(await get(['get', 'secret', 'intruder-runner', '-n', 'team-a'])).toBeDefined();
    expect(await events('team-a', 'intruder', 'reason')).not.toContain('RunnerRevoked');
  });

  it('any other invalid spec keeps the running runner on its last good config', async () => {
    await apply(s3Class('team', 'teams', keyed('team-keys'), ['team-a', 'team-b']));
    await eventually('db2 runner back', () => get(['get', 'deployment', 'db2-runner', '-n', 'team-b']));
    await apply(backup('team-b', 'db2', 'team', { locations: ['nope'] }));
    const c = await eventually('db2: InvalidSpec', async () => {
      const x = condition(await get(['get', 'dbb', 'db2', '-n', 'team-b']), 'ConfigValid');
      return x?.reason === 'InvalidSpec' ? x : undefined;
    });
    expect(c.message).not.toContain('no storage credential');
    await controller.idle();
    expect(await get(['get', 'deployment', 'db2-runner', '-n', 'team-b'])).toBeDefined();
    expect(await get(['get', 'secret', 'db2-runner', '-n', 'team-b'])).toBeDefined();
  });
});

describe('credentials per tenant: a class can keep its keys to itself', () => {
  const classKeys = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vault-keys', namespace: CONTROLLER_NAMESPACE }, stringData: { id: 'AKIACLASSKEY', secret: 'class-secret-never-copied' } };
  const vault = (source?: string) =>
    s3Class('vault', 'vault', source === 'DatabaseBackup' ? { } : { accessKeyIdSecretRef: { secretName: 'vault-keys', key: 'id' }, secretAccessKeySecretRef: { secretName: 'vault-keys', key: 'secret' } }, ['team-a']);
  const withSource = (sc: Obj, source: string) => ({ ...sc, spec: { ...sc.spec, credentials: { source } } });
  const own = { credentials: [{ location: 'offsite', s3: { accessKeyIdSecretRef: { name: 'own-s3', key: 'id' }, secretAccessKeySecretRef: { name: 'own-s3', key: 'secret' } } }] };
  const status = async (name: string) => (await get(['get', 'dbb', name, '-n', 'team-a']))?.status as Obj | undefined;

  it('StorageClass keys are copied, and kubectl describe says who can read them', async () => {
    await apply(classKeys, vault(), backup('team-a', 'vault1', 'vault'));
    const s = await eventually('vault1 runner Secret', () => get(['get', 'secret', 'vault1-runner', '-n', 'team-a']));
    expect(Object.keys(s.data as Obj).sort()).toEqual(['config.yaml', 'offsite.access-key-id', 'offsite.secret-access-key']);
    const st = await eventually('status.credentials', async () => (await status('vault1'))?.credentials as Obj[] | undefined);
    expect(st).toEqual([
      {
        location: 'offsite',
        source: 'StorageClass',
        readableBy: expect.stringContaining('keys of storage class "vault" (Secret vault-keys in the controller\'s namespace) copied into Secret team-a/vault1-runner: readable by anyone who may read Secrets or create pods in namespace team-a'),
      },
    ]);
    const described = await kube.kubectlOk(['describe', 'dbb', 'vault1', '-n', 'team-a']);
    expect(described).toContain('Readable By');
    const ev = await eventually('the CredentialsAccess Event', async () => (await events('team-a', 'vault1')).split('\n').find((m) => m.startsWith('offsite: keys of storage class "vault"')));
    expect(ev).toBeDefined();
  });

  it('the class switches to DatabaseBackup keys: a DatabaseBackup without its own keys loses its runner and the copied class keys', async () => {
    await apply(withSource(vault('DatabaseBackup'), 'DatabaseBackup'));
    const c = await eventually('vault1: CredentialsRequired', async () => {
      const x = condition(await get(['get', 'dbb', 'vault1', '-n', 'team-a']), 'ConfigValid');
      return x?.reason === 'CredentialsRequired' ? x : undefined;
    });
    expect(c.message).toContain('add { location: offsite, s3: { accessKeyIdSecretRef, secretAccessKeySecretRef } } to spec.credentials');
    expect(await get(['get', 'secret', 'vault1-runner', '-n', 'team-a'])).toBeUndefined();
    expect(await get(['get', 'deployment', 'vault1-runner', '-n', 'team-a'])).toBeUndefined();
    expect((await status('vault1'))?.credentials).toEqual([]);
  });

  it('with its own keys: the runner mounts the namespace\'s Secret, no class key lands in the namespace', async () => {
    // The team's own keys, which the controller never reads (it only tests that the Secret exists).
    await apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'own-s3', namespace: 'team-a' }, stringData: { id: 'AKIATEAM', secret: 'team-secret-key' } });
    await apply(backup('team-a', 'vault1', 'vault', own));
    const d = await eventually('vault1 Deployment', () => get(['get', 'deployment', 'vault1-runner', '-n', 'team-a']));
    const volumes = d.spec.template.spec.volumes as Obj[];
    expect(volumes.filter((v) => v.secret !== undefined).map((v) => v.secret.secretName as string)).toEqual(['vault1-runner', 'own-s3']);
    const s = await get(['get', 'secret', 'vault1-runner', '-n', 'team-a']);
    expect(Object.keys(s!.data as Obj)).toEqual(['config.yaml']);
    const all = await kube.kubectlOk(['get', 'secrets', '-n', 'team-a', '-o', 'json']);
    expect(all).not.toContain(Buffer.from('class-secret-never-copied').toString('base64'));
    const st = await eventually('status.credentials says DatabaseBackup', async () => {
      const x = (await status('vault1'))?.credentials as Obj[] | undefined;
      return x?.[0]?.source === 'DatabaseBackup' ? x : undefined;
    });
    expect(st[0]!.readableBy).toContain('this namespace\'s own keys (Secret team-a/own-s3)');
  });

  it('the class refuses to hold keys once it says DatabaseBackup', async () => {
    const bad = withSource(vault(), 'DatabaseBackup');
    await apply(bad);
    const c = await eventually('vault: Ready=False', async () => {
      const x = condition(await get(['get', 'dbbsc', 'vault']), 'Ready');
      return x?.status === 'False' ? x : undefined;
    });
    expect(c.message).toContain('spec.locations[0].s3.accessKeyIdSecretRef: must be unset: spec.credentials.source is DatabaseBackup');
  });
});
