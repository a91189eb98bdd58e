/**
 * Engines defined by a command in a cluster, on a real kube-apiserver 1.20
 * with the controller running with exactly the rights of controller/rbac.ts:
 * a DatabaseBackup picks a cluster-scoped DatabaseBackupEngine by name; the
 * runner gets the engine's image and a config carrying its definition (which
 * the runner itself accepts); the engine's schema checks the tenant's config;
 * an engine's namespaces and image rules hold; an engine removed takes its
 * runners away; the engines of the controller's settings are installed, kept
 * and removed by the controller, never one someone else made.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Controller } from '../../controller/controller.js';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics } from '../../controller/metrics.js';
import { CONFIG_KEY } from '../../controller/render/runner-config.js';
import { parseConfig } from '../../runner/config/load.js';
import { applyCrds, controllerIdentity, ensureNamespaces, kubeJson } from '../../testenv/controller.js';
import { eventually } from '../../testenv/eventually.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { definition as redis } from '../../tools/redis/definition.js';
import { TOOLS as TOOLS_BY_NAME } from '../../tools/index.js';
import { shippedEngineSpec } from '../../scripts/engine-files.js';
import { CONTROLLER_NAMESPACE, controllerSettings } from '../controller-fixtures.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

let kube: KubeInstance;
let controller: Controller;
const { apply, get, condition } = kubeJson(() => kube);

const TOOLS = 'registry.example.com/tools/';

const engine = (name: string, spec: Obj = {}) => {
  const { name: _name, ...def } = redis;
  return { apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackupEngine', metadata: { name }, spec: { image: `${TOOLS}backup-runner-redis:7.0-1.0.0`, ...def, ...spec } };
};

const storageClass = {
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackupStorageClass',
  metadata: { name: 'cache-backups' },
  spec: { locations: [{ name: 'offsite', prefix: 'caches', s3: { bucket: 'shared', region: 'us-east-1', endpoint: 'http://s3.example:9000', forcePathStyle: true } }] },
};

const backup = (namespace: string, name: string, command: Obj) => ({
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackup',
  metadata: { name, namespace },
  spec: { engine: { type: 'command', command }, schedule: { interval: '6h' }, storageClassName: 'cache-backups' },
});

const configValid = async (ns: string, name: string, reason: string): Promise<Obj> =>
  eventually(`${ns}/${name}: ConfigValid reason ${reason}`, async () => {
    const c = condition(await get(['get', 'dbb', name, '-n', ns]), 'ConfigValid');
    return c?.reason === reason ? c : undefined;
  });

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube();
  await applyCrds(kube);
  await ensureNamespaces(kube, ['shop', 'billing']);
  const { kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
  const metrics = createControllerMetrics();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: controllerSettings({ allowedRunnerImagePrefixes: [TOOLS] }), logger, metrics });
  await controller.start();
  await apply(storageClass, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cache', namespace: 'shop' }, stringData: { password: 'pw' } });
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await kube?.stop();
});

describe('a DatabaseBackup with an engine defined by a command', () => {
  it('runs the engine image with a config that carries the definition, which the runner accepts', async () => {
    await apply(engine('redis'), backup('shop', 'sessions', { engineRef: 'redis', host: 'cache.shop.svc', port: 6379, passwordSecretRef: { name: 'cache', key: 'password' }, config: { batchSize: 100 } }));
    const d = await eventually('shop/sessions deployed', () => get(['get', 'deployment', 'sessions-runner', '-n', 'shop']));
    expect(d.spec.template.spec.containers[0].image).toBe(`${TOOLS}backup-runner-redis:7.0-1.0.0`);
    const secret = await get(['get', 'secret', 'sessions-runner', '-n', 'shop']);
    const text = Buffer.from(secret!.data[CONFIG_KEY] as string, 'base64').toString('utf8');
    const cfg = parseConfig(text, 'runner.yaml');
    expect(cfg.engine).toEqual({ type: 'command', command: { definition: redis, host: 'cache.shop.svc', port: 6379, password: { env: 'DB_PASSWORD' }, config: { batchSize: 100 } } });
    expect(condition(await get(['get', 'dbb', 'sessions', '-n', 'shop']), 'ConfigValid')).toMatchObject({ status: 'True' });
    // The engine itself says it is valid.
    const ready = await eventually('the engine Ready', async () => condition(await get(['get', 'dbbe', 'redis']), 'Ready'));
    expect(ready).toMatchObject({ status: 'True', reason: 'Valid', message: 'formats redis-rdb; config checked against its schema' });
  });

  it('an invalid engine says so on itself (Ready=False and a Warning), and on the DatabaseBackups that name it', async () => {
    await apply(engine('broken', { verbs: ['probe', 'backup'], formats: [{ format: 'x', extension: 'age', magicHex: ['00'] }] }), backup('shop', 'uses-broken', { engineRef: 'broken' }));
    const c = await eventually('broken: Ready=False', async () => {
      const x = condition(await get(['get', 'dbbe', 'broken']), 'Ready');
      return x?.status === 'False' ? x : undefined;
    });
    expect(c.reason).toBe('InvalidSpec');
    expect(c.message).toContain('spec.verbs: must include restore');
    expect(c.message).toContain('spec.formats[0].extension: must not be age, zst, gz, rekeyed, json');
    const events = await kube.kubectlOk(['get', 'events', '-n', 'default', '--field-selector', 'involvedObject.name=broken', '-o', 'jsonpath={range .items[*]}{.type} {.reason}{"\\n"}{end}']);
    expect(events).toContain('Warning InvalidSpec');
    const b = await configValid('shop', 'uses-broken', 'EngineInvalid');
    expect(b.message).toContain('DatabaseBackupEngine "broken" is invalid');
  });

  it("a config the engine's schema refuses is reported with its path, and so is a schema change that refuses a running config", async () => {
    await apply(backup('shop', 'bad', { engineRef: 'redis', config: { batchSize: 'lots', flushall: true } }));
    const c = await configValid('shop', 'bad', 'InvalidSpec');
    expect(c.message).toContain('spec.engine.command.config.batchSize: must be integer');
    expect(c.message).toContain('spec.engine.command.config.flushall: is not a setting of this engine');
    expect(await get(['get', 'deployment', 'bad-runner', '-n', 'shop'])).toBeUndefined();
    // The administrator tightens the schema: the DatabaseBackups that use the engine are planned again.
    const tighter = { ...redis.configSchema, properties: { batchSize: { type: 'integer', maximum: 50 } } };
    await apply(engine('redis', { configSchema: tighter }));
    const s = await configValid('shop', 'sessions', 'InvalidSpec');
    expect(s.message).toContain('spec.engine.command.config.batchSize: must be <= 50');
    await apply(engine('redis'));
    await configValid('shop', 'sessions', 'Applied');
  });

  it('an engine that does not allow the namespace, or whose image is not allowed, is refused by name', async () => {
    await apply(engine('shop-only', { allowedNamespaces: ['shop'] }), engine('elsewhere', { image: 'evil.example/runner:1' }));
    await apply(backup('billing', 'ledger', { engineRef: 'shop-only' }), backup('shop', 'stray', { engineRef: 'elsewhere' }));
    const ns = await configValid('billing', 'ledger', 'NamespaceNotAllowed');
    expect(ns.message).toContain('namespace "billing" is not allowed by DatabaseBackupEngine "shop-only" (allowed: shop)');
    const img = await configValid('shop', 'stray', 'ImageNotAllowed');
    expect(img.message).toContain('DatabaseBackupEngine elsewhere spec.image');
    expect(await get(['get', 'deployment', 'ledger-runner', '-n', 'billing'])).toBeUndefined();
    expect(await get(['get', 'deployment', 'stray-runner', '-n', 'shop'])).toBeUndefined();
  });

  it('an engine deleted takes its runners away; created again, they come back', async () => {
    await kube.kubectlOk(['delete', 'dbbe', 'redis']);
    const c = await configValid('shop', 'sessions', 'EngineNotFound');
    expect(c.message).toContain('DatabaseBackupEngine "redis" not found');
    await eventually('the runner Deployment gone', async () => (await get(['get', 'deployment', 'sessions-runner', '-n', 'shop'])) === undefined);
    await apply(engine('redis'));
    await eventually('the runner back', () => get(['get', 'deployment', 'sessions-runner', '-n', 'shop']));
  });
});

describe('the engines the controller installs (settings.engines, the chart\'s shipped engines)', () => {
  const SHIPPED = 'ghcr.io/db-backup-controller/backup-runner-etcd:1.0.0';
  const etcdSpec = { ...shippedEngineSpec(TOOLS_BY_NAME.etcd!), image: SHIPPED };
  const start = async (settings: Record<string, unknown>): Promise<Controller> => {
    const { kubeConfig } = await controllerIdentity(kube, CONTROLLER_NAMESPACE);
    const metrics = createControllerMetrics();
    const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
    const c = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: controllerSettings({ allowedRunnerImagePrefixes: [TOOLS], ...settings }), logger, metrics });
    await c.start();
    return c;
  };
  const restart = async (settings: Record<string, unknown>) => {
    await controller.stop();
    controller = await start(settings);
  };
  const eventsOf = (name: string) =>
    kube.kubectlOk(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={range .items[*]}{.type} {.reason} {.message}{"\\n"}{end}']);

  it('installs them labelled as its own, keeps the fields it sets, and runs their runners in their images', async () => {
    await restart({ engines: { etcd: etcdSpec } });
    const installed = await eventually('etcd installed and Ready', async () => {
      const e = await get(['get', 'dbbe', 'etcd']);
      return condition(e, 'Ready')?.status === 'True' ? e : undefined;
    });
    expect(installed.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'db-backup-controller' });
    expect(installed.spec).toEqual(etcdSpec);
    // Its image is the controller's own: no allowedRunnerImagePrefixes needed.
    await apply(backup('shop', 'config-store', { engineRef: 'etcd', host: 'etcd.shop.svc', port: 2379 }));
    const d = await eventually('shop/config-store deployed', () => get(['get', 'deployment', 'config-store-runner', '-n', 'shop']));
    expect(d.spec.template.spec.containers[0].image).toBe(SHIPPED);

    // A hand edit of a field it sets (another command) is undone; a deleted engine comes back.
    await kube.kubectlOk(['patch', 'dbbe', 'etcd', '--type=merge', '-p', JSON.stringify({ spec: { command: ['/bin/sh', '-c', 'exfiltrate'] } })]);
    await eventually('the command restored', async () => JSON.stringify((await get(['get', 'dbbe', 'etcd']))?.spec.command) === JSON.stringify(etcdSpec.command));
    await kube.kubectlOk(['delete', 'dbbe', 'etcd']);
    await eventually('etcd installed again', async () => (await get(['get', 'dbbe', 'etcd']))?.spec.image === SHIPPED);
  });

  it('leaves an engine it installed alone when the settings do not mention it, and deletes it when they name it as removed', async () => {
    // Settings without engines (a hand-written file, the defaults): nothing is deleted.
    await restart({});
    await controller.idle();
    expect((await get(['get', 'dbbe', 'etcd']))?.spec.image).toBe(SHIPPED);
    // A copy someone made of it, label and all, under another name: never the controller's to delete.
    const copy = await get(['get', 'dbbe', 'etcd']);
    await apply({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackupEngine', metadata: { name: 'etcd-copy', labels: copy!.metadata.labels }, spec: copy!.spec });
    await restart({ removedEngines: ['etcd', 'etcd-copy'] });
    await eventually('etcd removed', async () => (await get(['get', 'dbbe', 'etcd'])) === undefined);
    await eventually('the runner gone', async () => (await get(['get', 'deployment', 'config-store-runner', '-n', 'shop'])) === undefined);
    await controller.idle();
    expect(await get(['get', 'dbbe', 'etcd-copy'])).toBeDefined();
    // An engine the controller did not install (redis, applied by the administrator above) stays.
    expect(await get(['get', 'dbbe', 'redis'])).toBeDefined();
  });

  it('leaves an engine of the same name that it did not install alone, label copied or not, and says so', async () => {
    const copy = await get(['get', 'dbbe', 'etcd-copy']);
    await apply({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackupEngine', metadata: { name: 'etcd', labels: copy!.metadata.labels }, spec: { ...copy!.spec, image: `${TOOLS}my-etcd:1` } });
    await restart({ engines: { etcd: etcdSpec } });
    const events = await eventually('a NotInstalled Warning', async () => {
      const text = await eventsOf('etcd');
      return text.includes('Warning NotInstalled') ? text : undefined;
    });
    expect(events).toContain('exists that the controller did not install: it is left as it is');
    await controller.idle();
    const e = await get(['get', 'dbbe', 'etcd']);
    expect(e?.spec.image).toBe(`${TOOLS}my-etcd:1`);
    // Said once per engine, not on every reconcile.
    controller.resyncAll();
    await controller.idle();
    expect((await eventsOf('etcd')).split('\n').filter((l) => l.startsWith('Warning NotInstalled'))).toHaveLength(1);
  });
});
