/**
 * The Helm chart against a real kube-apiserver 1.20: its CRD templates are
 * established, every values file's rendering passes the API server's
 * validation and admission (`kubectl apply --dry-run=server`), `helm install
 * --dry-run` prints the next steps, and the controller, started in-process
 * with the rendered settings file and a token of the rendered ServiceAccount
 * bound by the rendered RBAC, takes the Lease, deploys a runner, and installs
 * the chart's shipped engines.
 *
 * Monitoring is off in every values file: the ServiceMonitor and
 * PrometheusRule kinds need the Prometheus Operator CRDs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadSettings } from '../../controller/main.js';
import { runController, type RunningController } from '../../controller/run.js';
import { ensureNamespaces } from '../../testenv/controller.js';
import { eventually } from '../../testenv/eventually.js';
import { CHART_DIR, helm, helmBinary } from '../../testenv/helm.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { CHART_CASES, chartValues, only, renderCase, type Manifest } from '../chart-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   the objects are the API server's JSON, checked field by field by the assertions */
type Obj = Record<string, any>;

let kube: KubeInstance;
let running: RunningController | undefined;
let dir = '';
const rendered = new Map<string, Manifest[]>();

const yamlOf = (docs: unknown[]) => docs.map((d) => stringify(d)).join('---\n');
const isCrd = (d: Manifest) => d.kind === 'CustomResourceDefinition';
const get = async (args: string[]): Promise<Obj | undefined> => {
  const r = await kube.kubectl([...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as Obj) : undefined;
};
const condition = (o: Obj | undefined, type: string): Obj | undefined => (o?.status?.conditions as Obj[] | undefined)?.find((c) => c.type === type);

beforeAll(async () => {
  // Fail with the build or install hint when kube-apiserver or helm is missing.
  kubeBinaries();
  helmBinary();
  dir = await mkdtemp(join(tmpdir(), 'dbbc-chart-'));
  kube = await startKube({ controllerManager: false });
  for (const c of CHART_CASES) rendered.set(c.name, await renderCase(c));
  await ensureNamespaces(kube, [...new Set(CHART_CASES.map((c) => c.namespace))]);
}, 180_000);

afterAll(async () => {
  await running?.stop();
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('chart on kube-apiserver 1.20', () => {
  it('the CRD templates are accepted as structural and established', async () => {
    const crds = rendered.get('defaults')!.filter(isCrd);
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(['databasebackupengines.dbbackup.io', 'databasebackups.dbbackup.io', 'databasebackupstorageclasses.dbbackup.io']);
    await kube.kubectlOk(['apply', '-f', '-'], { input: yamlOf(crds) });
    await kube.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', ...crds.map((c) => `crd/${c.metadata.name}`)]);
    for (const c of crds) {
      const types = await kube.kubectlOk(['get', 'crd', c.metadata.name, '-o', 'jsonpath={.status.conditions[*].type}']);
      expect(types.split(' ').sort()).toEqual(['Established', 'NamesAccepted']);
    }
  });

  it.each(CHART_CASES)('$name: every rendered object passes validation and admission (apply --dry-run=server)', async (c) => {
    const docs = rendered.get(c.name)!;
    const out = await kube.kubectlOk(['apply', '--dry-run=server', '-f', '-'], { input: yamlOf(docs) });
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(docs.length);
    for (const line of lines) expect(line).toMatch(/ \(server dry run\)$/);
  });

  it('helm install --dry-run against the API server prints the next steps', async () => {
    const r = await helm([
      'install', 'notes-check', CHART_DIR, '--dry-run', '--namespace', 'db-backup-controller',
      '--kubeconfig', kube.kubeconfigPath, '--set', 'crds.install=false',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    for (const text of [
      'kubectl -n db-backup-controller create secret generic s3-backup',
      'kind: DatabaseBackupStorageClass',
      'kind: DatabaseBackup',
      'kubectl get dbb -A',
      'kubectl exec -n shop deploy/orders-runner -- backup-runner backup',
      'kubectl exec -n shop deploy/orders-runner -- backup-runner list',
      'kubectl exec -n shop deploy/orders-runner -- backup-runner restore --latest',
      'crds.install is false',
    ]) expect(notes).toContain(text);
  });

  it('the controller runs with the chart\'s ServiceAccount, RBAC and settings: it takes the Lease and deploys a runner', async () => {
    const docs = rendered.get('defaults')!;
    const namespace = only(docs, 'ConfigMap').metadata.namespace!;
    await kube.kubectlOk(['apply', '-f', '-'], { input: yamlOf(docs.filter((d) => !isCrd(d))) });

    // The settings file as the pod reads it: from the ConfigMap in the cluster, with POD_NAMESPACE from the Downward API.
    const cm = (await get(['get', 'configmap', only(docs, 'ConfigMap').metadata.name, '-n', namespace]))!;
    const configPath = join(dir, 'config.yaml');
    await writeFile(configPath, cm.data['config.yaml'] as string);
    const settings = await loadSettings(configPath, { POD_NAMESPACE: namespace });
    // Port 8080 may be taken on this machine; the chart's port is checked by test/unit/chart.test.ts.
    settings.metricsHost = '127.0.0.1';
    settings.metricsPort = 0;

    const sa = only(docs, 'ServiceAccount').metadata.name;
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(await kube.writeKubeconfig(await kube.serviceAccountToken(namespace, sa), sa));
    running = await runController({ settings, kubeConfig, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) });

    // Leader election through the Role's Lease rule (resourceNames: the lease name of the settings).
    await eventually('leadership', () => Promise.resolve(running!.isLeader()));
    const lease = await get(['get', 'lease', settings.leaderElection.leaseName, '-n', namespace]);
    expect(lease?.spec.holderIdentity).toBe(running.identity);

    const secret = (name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, stringData: data });
    const backup = validBackup();
    delete (backup.spec.runner as Obj).resources;
    (backup.spec.engine as Obj).postgresql.version = '15';
    await ensureNamespaces(kube, ['shop']);
    await kube.kubectlOk(['apply', '-f', '-'], {
      input: yamlOf([secret('minio', { 'access-key': 'AKIAEXAMPLE', 'secret-key': 'example-secret-key' }), secret('gcs', { 'key.json': '{"type":"service_account"}' }), validStorageClass(), backup]),
    });

    const dep = await eventually('the runner Deployment', () => get(['get', 'deployment', 'orders-runner', '-n', 'shop']), 60_000);
    const values = chartValues() as Obj;
    const appVersion = (only(docs, 'Deployment').metadata.labels ?? {})['app.kubernetes.io/version'];
    expect(dep.spec.template.spec.containers[0]).toMatchObject({
      image: `ghcr.io/db-backup-controller/backup-runner-postgresql:15-${appVersion}`,
      imagePullPolicy: values.runner.image.pullPolicy,
      resources: values.runner.resources,
    });
    // Storage credentials read from the release namespace (the Role's Secret rule), conditions written (the ClusterRole).
    const sc = await eventually('the storage class Ready', async () => condition(await get(['get', 'dbbsc', 'standard']), 'Ready'));
    expect(sc).toMatchObject({ status: 'True', reason: 'Valid' });
    const dbb = await eventually('ConfigValid', async () => condition(await get(['get', 'dbb', 'orders', '-n', 'shop']), 'ConfigValid'));
    expect(dbb).toMatchObject({ status: 'True', reason: 'Applied' });

    // The chart's shipped engines: installed by the controller, valid, and their runners run in the tool's own image.
    for (const name of ['redis', 'etcd']) {
      const e = await eventually(`engine ${name} Ready`, async () => condition(await get(['get', 'dbbe', name]), 'Ready'));
      expect(e).toMatchObject({ status: 'True', reason: 'Valid' });
    }
    await kube.kubectlOk(['apply', '-f', '-'], {
      input: yamlOf([{ ...backup, metadata: { name: 'sessions', namespace: 'shop' }, spec: { ...backup.spec, engine: { type: 'command', command: { engineRef: 'redis', host: 'cache.shop.svc' } } } }]),
    });
    const cache = await eventually('the Redis runner Deployment', () => get(['get', 'deployment', 'sessions-runner', '-n', 'shop']), 60_000);
    expect(cache.spec.template.spec.containers[0].image).toBe(`ghcr.io/db-backup-controller/backup-runner-redis:${appVersion}`);

    const ready = await fetch(`http://127.0.0.1:${running.httpPort}/readyz`);
    expect(ready.status).toBe(200);
  });
});
