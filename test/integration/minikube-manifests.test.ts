/**
 * The minikube test environment's manifests (testenv/minikube/manifests, rendered
 * by render.sh) against a real kube-apiserver 1.20: every object passes a
 * server-side dry run (with the CRDs and both namespaces created for real), and
 * the storage class and DatabaseBackup are ones the controller accepts: its
 * validators pass and planBackup, given the MinIO Secret, renders a runner whose
 * objects the API server accepts too. Also checks that the pieces point at each
 * other (Services, Secrets, bucket, PVC, runner image version).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { validateDatabaseBackup, validateStorageClass, type DatabaseBackup, type DatabaseBackupStorageClass } from '../../api/crds/index.js';
import { planBackup } from '../../controller/plan.js';
import { APPLY_ORDER, CONTAINER_NAME, type RenderSettings } from '../../controller/render/objects.js';
import { applyCrds, ensureNamespaces } from '../../testenv/controller.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { find, libNames, MINIKUBE_DIR, parseSelector, renderManifests, type K8sObject } from '../minikube-fixtures.js';

type Obj = Record<string, unknown>;
const TESTENV_NS = 'dbbackup-testenv';
const CONTROLLER_NS = 'db-backup-controller';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const stringData = (o: K8sObject) => o.stringData as Record<string, string>;

/** The controller's settings as values-local.yaml and deploy-local.sh make them (controller/settings.ts shape). */
function localSettings(): RenderSettings {
  const values = parse(readFileSync(join(MINIKUBE_DIR, 'values-local.yaml'), 'utf8')) as { runner: { postgresql: { versions: string[]; defaultVersion: string } } };
  const pg = values.runner.postgresql;
  return {
    controllerNamespace: CONTROLLER_NS,
    runnerImages: {
      postgresql: {
        defaultVersion: pg.defaultVersion,
        images: Object.fromEntries(pg.versions.map((v) => [v, `localhost/db-backup-controller/backup-runner-postgresql:${v}-dev`])),
      },
    },
    imagePullPolicy: 'IfNotPresent',
    runnerResources: { requests: { cpu: '100m', memory: '192Mi' }, limits: { memory: '1Gi' } },
    runnerUser: 65532,
  };
}

describe('minikube testenv manifests on kube-apiserver 1.20', () => {
  let kube: KubeInstance | undefined;

  beforeAll(async () => {
    // Throws with the `bash testenv/kube/build.sh` hint when the binaries are missing: this suite fails rather than skips.
    kubeBinaries();
    kube = await startKube({ controllerManager: false });
    await applyCrds(kube);
    await ensureNamespaces(kube, [TESTENV_NS, CONTROLLER_NS]);
  });

  afterAll(async () => {
    await kube?.stop();
  });

  for (const env of [{}, { TESTENV_HUGEDATA: 'true', TESTENV_HUGEDATA_GB: '6' }] as Record<string, string>[]) {
    it(`every manifest passes a server-side dry run (${JSON.stringify(env)})`, async () => {
      const { yaml, objects } = await renderManifests(env);
      const r = await kube!.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: yaml });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      // One line per object, e.g. "statefulset.apps/postgres created (server dry run)".
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(objects.length);
      for (const line of lines) expect(line).toMatch(/ (created|configured|unchanged) \(server dry run\)$/);
      expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
        'Namespace/dbbackup-testenv',
        'Secret/postgres',
        'Service/postgres',
        'StatefulSet/postgres',
        'Secret/minio',
        'PersistentVolumeClaim/minio-data',
        'Service/minio',
        'Deployment/minio',
        'ConfigMap/testenv-seed',
        'Job/testenv-seed',
        'Job/testenv-bucket',
        'Secret/testenv-minio',
        'DatabaseBackupStorageClass/dbbackup-testenv',
        'PersistentVolumeClaim/testenv-backups',
        'DatabaseBackup/shop',
      ]);
    });
  }

  it('puts everything in the testenv namespace except the MinIO keys, which live in the controller namespace', async () => {
    const { objects } = await renderManifests();
    for (const o of objects) {
      if (o.kind === 'Namespace' || o.kind === 'DatabaseBackupStorageClass') expect(o.metadata.namespace).toBeUndefined();
      else if (o.kind === 'Secret' && o.metadata.name === 'testenv-minio') expect(o.metadata.namespace).toBe(CONTROLLER_NS);
      else expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(TESTENV_NS);
    }
  });

  it('the controller accepts the storage class and the DatabaseBackup and plans a runner the API server accepts', async () => {
    const { objects } = await renderManifests();
    const k = kube!;
    // Stored for real, so the API server fills its defaults and a uid (the runner objects' owner reference) as in minikube.
    const sc = find(objects, 'DatabaseBackupStorageClass', 'dbbackup-testenv');
    const dbb = find(objects, 'DatabaseBackup', 'shop');
    await k.kubectlOk(['apply', '-f', '-'], { input: stringify(sc) });
    await k.kubectlOk(['apply', '-f', '-'], { input: stringify(dbb) });
    const storedSc = JSON.parse(await k.kubectlOk(['get', 'dbbsc', 'dbbackup-testenv', '-o', 'json'])) as DatabaseBackupStorageClass;
    const storedDbb = JSON.parse(await k.kubectlOk(['get', 'dbb', 'shop', '-n', TESTENV_NS, '-o', 'json'])) as DatabaseBackup;

    const scValid = validateStorageClass(storedSc);
    expect(scValid.ok ? [] : scValid.errors).toEqual([]);
    const dbbValid = validateDatabaseBackup(storedDbb, scValid.ok ? { storageClass: scValid.value } : {});
    expect(dbbValid.ok ? [] : dbbValid.errors).toEqual([]);

    const minioKeys = stringData(find(objects, 'Secret', 'testenv-minio'));
    const secrets: Record<string, Record<string, string>> = { 'testenv-minio': Object.fromEntries(Object.entries(minioKeys).map(([key, v]) => [key, b64(v)])) };
    const plan = planBackup(storedDbb, storedSc, (name) => secrets[name], localSettings());
    if (!plan.ok) throw new Error(`planBackup refused: ${plan.problem.reason}: ${plan.problem.message}`);

    const { objects: runner, image } = plan.rendered;
    expect(image).toBe('localhost/db-backup-controller/backup-runner-postgresql:16-dev');
    const config = parse(Buffer.from(runner.secret.data!['config.yaml']!, 'base64').toString('utf8')) as { engine: { postgresql: Obj }; locations: Obj[] };
    expect(config.engine.postgresql).toMatchObject({ host: 'postgres.dbbackup-testenv.svc', port: 5432, database: 'shop', user: 'postgres', sslMode: 'disable' });
    expect(config.locations.map((l) => l.name)).toEqual(['minio', 'local']);
    expect(config.locations[0]).toMatchObject({ type: 's3', s3: { bucket: 'dbbackup-testenv', endpoint: 'http://minio.dbbackup-testenv.svc:9000', forcePathStyle: true } });
    expect(config.locations[1]).toMatchObject({ type: 'filesystem', filesystem: { path: '/backups' } });

    // What the scripts select by is what the controller renders.
    const names = await libNames();
    const deployment = runner.deployment;
    const podLabels = deployment.spec!.template.metadata!.labels!;
    for (const [key, value] of Object.entries(parseSelector(names.RUNNER_SELECTOR))) {
      expect(podLabels[key], `pod label ${key}`).toBe(value);
      expect(deployment.metadata!.labels![key], `Deployment label ${key}`).toBe(value);
    }
    expect(deployment.spec!.template.spec!.containers[0]!.name).toBe(CONTAINER_NAME);
    expect(names.RUNNER_CONTAINER).toBe(CONTAINER_NAME);

    const stream = APPLY_ORDER.map((key) => stringify(runner[key])).join('---\n');
    const r = await k.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stream });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('the pieces point at each other: Services, Secrets, bucket, PVC, credentials', async () => {
    const { objects } = await renderManifests();
    const dbb = find(objects, 'DatabaseBackup', 'shop') as unknown as DatabaseBackup;
    const sc = find(objects, 'DatabaseBackupStorageClass', 'dbbackup-testenv') as unknown as DatabaseBackupStorageClass;
    const pgSpec = dbb.spec.engine.postgresql!;

    // PostgreSQL: host is the Service, the password Secret and key exist, the StatefulSet takes its password from it.
    const pgService = find(objects, 'Service', 'postgres');
    expect(pgSpec.host).toBe(`${pgService.metadata.name}.${pgService.metadata.namespace}.svc`);
    expect((pgService.spec as { ports: { port: number }[] }).ports[0]!.port).toBe(pgSpec.port);
    expect(Object.keys(stringData(find(objects, 'Secret', pgSpec.passwordSecretRef!.name)))).toContain(pgSpec.passwordSecretRef!.key);
    const values = parse(readFileSync(join(MINIKUBE_DIR, 'values-local.yaml'), 'utf8')) as { runner: { postgresql: { versions: string[] } } };
    expect(values.runner.postgresql.versions).toContain(pgSpec.version);

    // MinIO: the endpoint is the Service, the keys equal the server's root credentials, the bucket Job makes the bucket.
    const s3 = sc.spec.locations.find((l) => l.s3)!.s3!;
    const minioService = find(objects, 'Service', 'minio');
    const s3Port = (minioService.spec as { ports: { name: string; port: number }[] }).ports.find((p) => p.name === 's3')!.port;
    expect(s3.endpoint).toBe(`http://${minioService.metadata.name}.${minioService.metadata.namespace}.svc:${s3Port}`);
    const root = stringData(find(objects, 'Secret', 'minio'));
    const keys = stringData(find(objects, 'Secret', s3.accessKeyIdSecretRef!.secretName));
    expect(keys[s3.accessKeyIdSecretRef!.key]).toBe(root['root-user']);
    expect(keys[s3.secretAccessKeySecretRef!.key]).toBe(root['root-password']);
    const bucketJob = find(objects, 'Job', 'testenv-bucket') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    expect(bucketJob.spec.template.spec.containers[0]!.args).toEqual(['mb', '--ignore-existing', `testenv/${s3.bucket}`]);

    // The filesystem location's PVC exists in the DatabaseBackup's namespace; the class allows that namespace.
    const fs = sc.spec.locations.find((l) => l.filesystem)!.filesystem!;
    expect(find(objects, 'PersistentVolumeClaim', fs.claimName!).metadata.namespace).toBe(dbb.metadata.namespace);
    expect(sc.spec.allowedNamespaces).toEqual([dbb.metadata.namespace]);
    expect(dbb.spec.storageClassName).toBe(sc.metadata.name);

    // The seed Job's ConfigMap holds every file seed.sh reads.
    const cm = find(objects, 'ConfigMap', 'testenv-seed') as unknown as { data: Record<string, string> };
    expect(Object.keys(cm.data).sort()).toEqual(['checksums.sql', 'hugedata.sql', 'seed.sh', 'seed.sql']);
  });

  it('sizes the seed and the volumes by TESTENV_HUGEDATA_GB', async () => {
    const env = (o: K8sObject) => (o as unknown as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } }).spec.template.spec.containers[0]!.env;
    const storage = (o: K8sObject) => (o as unknown as { spec: { resources: { requests: { storage: string } } } }).spec.resources.requests.storage;
    const small = (await renderManifests()).objects;
    const huge = (await renderManifests({ TESTENV_HUGEDATA: 'true', TESTENV_HUGEDATA_GB: '6' })).objects;
    expect(env(find(small, 'Job', 'testenv-seed')).find((e) => e.name === 'HUGEDATA_GB')!.value).toBe('0');
    expect(env(find(huge, 'Job', 'testenv-seed')).find((e) => e.name === 'HUGEDATA_GB')!.value).toBe('6');
    expect(storage(find(small, 'PersistentVolumeClaim', 'minio-data'))).toBe('2Gi');
    expect(storage(find(huge, 'PersistentVolumeClaim', 'minio-data'))).toBe('32Gi');
    const pvcTemplate = (o: K8sObject) => (o as unknown as { spec: { volumeClaimTemplates: { spec: { resources: { requests: { storage: string } } } }[] } }).spec.volumeClaimTemplates[0]!.spec.resources.requests.storage;
    expect(pvcTemplate(find(huge, 'StatefulSet', 'postgres'))).toBe('14Gi');
  });
});
