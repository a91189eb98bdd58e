/**
 * The minikube test environment's manifests (testenv/minikube/manifests, rendered
 * by render.sh) against a real kube-apiserver 1.20: every object passes a
 * server-side dry run (with the CRDs and both namespaces created for real), and
 * the storage class and the three DatabaseBackups (PostgreSQL `shop` and, physical
 * with WAL archiving, `shop-pitr`; MariaDB `shop-mariadb`) are ones the controller accepts: its validators pass and
 * planBackup, given the MinIO Secret, renders runners whose objects the API
 * server accepts too, selected by the labels the scripts use, on storage roots
 * that do not overlap. Also checks that the pieces point at each other
 * (Services, Secrets, seed Jobs, bucket, PVC, runner image versions, the
 * replication line of PostgreSQL's pg_hba.conf) and that
 * the MariaDB restore in docs/testenv-minikube.md turns the runner's config
 * into root's.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { validateDatabaseBackup, validateStorageClass, type DatabaseBackup, type DatabaseBackupStorageClass } from '../../api/crds/index.js';
import { validateRunnerConfig } from '../../api/runner-config.js';
import { backupRoots, findOverlaps } from '../../controller/overlap.js';
import { planBackup, type Plan } from '../../controller/plan.js';
import { APPLY_ORDER, CONTAINER_NAME } from '../../controller/render/objects.js';
import { PASSWORD_ENV } from '../../controller/render/runner-config.js';
import { applyCrds, ensureNamespaces } from '../../testenv/controller.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { find, libNames, localSettings, localValues, MINIKUBE_DIR, parseSelector, ROOT, renderManifests, type K8sObject } from '../minikube-fixtures.js';

type Obj = Record<string, unknown>;
const TESTENV_NS = 'dbbackup-testenv';
const CONTROLLER_NS = 'db-backup-controller';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const stringData = (o: K8sObject) => o.stringData as Record<string, string>;

interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
}
const podSpec = (o: K8sObject) => (o as unknown as { spec: { template: { spec: { containers: Container[]; volumes?: { configMap?: { name: string } }[] } } } }).spec.template.spec;
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.secretKeyRef]));

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
        'ConfigMap/postgres-hba',
        'Service/postgres',
        'StatefulSet/postgres',
        'Secret/mariadb',
        'Service/mariadb',
        'StatefulSet/mariadb',
        'Secret/minio',
        'PersistentVolumeClaim/minio-data',
        'Service/minio',
        'Deployment/minio',
        'ConfigMap/testenv-seed',
        'ConfigMap/testenv-seed-mariadb',
        'Job/testenv-seed',
        'Job/testenv-bucket',
        'Job/testenv-seed-mariadb',
        'Secret/testenv-minio',
        'DatabaseBackupStorageClass/dbbackup-testenv',
        'PersistentVolumeClaim/testenv-backups',
        'DatabaseBackup/shop',
        'DatabaseBackup/shop-mariadb',
        'DatabaseBackup/shop-pitr',
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

  /** The storage class and DatabaseBackup `name`, stored for real (defaults filled, a uid for the owner references, as in minikube), and the controller's plan for it. */
  async function planStored(name: string): Promise<{ objects: K8sObject[]; sc: DatabaseBackupStorageClass; dbb: DatabaseBackup; plan: Plan }> {
    const { objects } = await renderManifests();
    const k = kube!;
    await k.kubectlOk(['apply', '-f', '-'], { input: stringify(find(objects, 'DatabaseBackupStorageClass', 'dbbackup-testenv')) });
    await k.kubectlOk(['apply', '-f', '-'], { input: stringify(find(objects, 'DatabaseBackup', name)) });
    const sc = JSON.parse(await k.kubectlOk(['get', 'dbbsc', 'dbbackup-testenv', '-o', 'json'])) as DatabaseBackupStorageClass;
    const dbb = JSON.parse(await k.kubectlOk(['get', 'dbb', name, '-n', TESTENV_NS, '-o', 'json'])) as DatabaseBackup;

    const scValid = validateStorageClass(sc);
    expect(scValid.ok ? [] : scValid.errors).toEqual([]);
    const dbbValid = validateDatabaseBackup(dbb, scValid.ok ? { storageClass: scValid.value } : {});
    expect(dbbValid.ok ? [] : dbbValid.errors).toEqual([]);

    const minioKeys = stringData(find(objects, 'Secret', 'testenv-minio'));
    const secrets: Record<string, Record<string, string>> = { 'testenv-minio': Object.fromEntries(Object.entries(minioKeys).map(([key, v]) => [key, b64(v)])) };
    return { objects, sc, dbb, plan: planBackup(dbb, sc, (secret) => secrets[secret], localSettings()) };
  }

  const rendered = (plan: Plan) => {
    if (!plan.ok) throw new Error(`planBackup refused: ${plan.problem.reason}: ${plan.problem.message}`);
    return plan.rendered;
  };
  const runnerConfig = (plan: Plan) => Buffer.from(rendered(plan).objects.secret.data!['config.yaml']!, 'base64').toString('utf8');

  const cases = [
    {
      backup: 'shop',
      selector: 'RUNNER_SELECTOR',
      image: 'localhost/db-backup-controller/backup-runner-postgresql:16-dev',
      engine: { type: 'postgresql', block: { host: 'postgres.dbbackup-testenv.svc', port: 5432, database: 'shop', user: 'postgres', sslMode: 'disable' } },
      password: { name: 'postgres', key: 'password' },
    },
    {
      backup: 'shop-mariadb',
      selector: 'MARIADB_RUNNER_SELECTOR',
      image: 'localhost/db-backup-controller/backup-runner-mysql:10.11-dev',
      engine: { type: 'mysql', block: { host: 'mariadb.dbbackup-testenv.svc', port: 3306, database: 'shop', user: 'backup', sslMode: 'DISABLED' } },
      password: { name: 'mariadb', key: 'backup-password' },
    },
    {
      backup: 'shop-pitr',
      selector: 'PITR_RUNNER_SELECTOR',
      image: 'localhost/db-backup-controller/backup-runner-postgresql:16-dev',
      engine: {
        type: 'postgresql',
        block: { host: 'postgres.dbbackup-testenv.svc', port: 5432, database: 'postgres', user: 'postgres', sslMode: 'disable', mode: 'physical', wal: { archive: true, partialSeconds: 5 } },
      },
      password: { name: 'postgres', key: 'password' },
    },
  ] as const;

  for (const c of cases) {
    it(`the controller accepts the storage class and DatabaseBackup ${c.backup} and plans a runner the API server accepts`, async () => {
      const { plan } = await planStored(c.backup);
      const { objects: runner, image } = rendered(plan);
      expect(image).toBe(c.image);
      const config = parse(runnerConfig(plan)) as { engine: Obj; locations: Obj[] };
      expect(config.engine.type).toBe(c.engine.type);
      expect(config.engine[c.engine.type]).toMatchObject({ ...c.engine.block, password: { env: PASSWORD_ENV } });
      expect(config.locations.map((l) => l.name)).toEqual(['minio', 'local']);
      expect(config.locations[0]).toMatchObject({ type: 's3', s3: { bucket: 'dbbackup-testenv', endpoint: 'http://minio.dbbackup-testenv.svc:9000', forcePathStyle: true } });
      expect(config.locations[1]).toMatchObject({ type: 'filesystem', filesystem: { path: '/backups' } });

      // What the scripts select by is what the controller renders.
      const names = await libNames();
      const deployment = runner.deployment;
      const podLabels = deployment.spec!.template.metadata!.labels!;
      for (const [key, value] of Object.entries(parseSelector(names[c.selector]))) {
        expect(podLabels[key], `pod label ${key}`).toBe(value);
        expect(deployment.metadata!.labels![key], `Deployment label ${key}`).toBe(value);
      }
      const container = deployment.spec!.template.spec!.containers[0]!;
      expect(container.name).toBe(CONTAINER_NAME);
      expect(names.RUNNER_CONTAINER).toBe(CONTAINER_NAME);
      // The database password comes from the testenv's Secret.
      expect(container.env!.find((e) => e.name === PASSWORD_ENV)!.valueFrom!.secretKeyRef).toEqual(c.password);

      const stream = APPLY_ORDER.map((key) => stringify(runner[key])).join('---\n');
      const r = await kube!.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stream });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  }

  it("the three runners' storage does not overlap, and the scripts' selectors find each runner on the API server", async () => {
    const names = await libNames();
    const shop = await planStored('shop');
    const mariadb = await planStored('shop-mariadb');
    const pitr = await planStored('shop-pitr');
    const roots = [backupRoots(shop.dbb, shop.sc), backupRoots(mariadb.dbb, mariadb.sc), backupRoots(pitr.dbb, pitr.sc)];
    expect(roots.map((r) => r.roots.map((x) => x.display))).toEqual([
      ['s3://dbbackup-testenv/testenv/dbbackup-testenv/shop/ at http://minio.dbbackup-testenv.svc:9000', 'pvc://dbbackup-testenv/testenv-backups/dbbackup-testenv/shop/'],
      ['s3://dbbackup-testenv/testenv/dbbackup-testenv/shop-mariadb/ at http://minio.dbbackup-testenv.svc:9000', 'pvc://dbbackup-testenv/testenv-backups/dbbackup-testenv/shop-mariadb/'],
      ['s3://dbbackup-testenv/testenv/dbbackup-testenv/shop-pitr/ at http://minio.dbbackup-testenv.svc:9000', 'pvc://dbbackup-testenv/testenv-backups/dbbackup-testenv/shop-pitr/'],
    ]);
    expect(findOverlaps(roots)).toEqual([]);

    // Created for real (no controller manager, so nothing runs), then listed by the selectors lib.sh defines.
    const k = kube!;
    for (const { plan } of [shop, mariadb, pitr]) {
      const runner = rendered(plan).objects;
      await k.kubectlOk(['apply', '-f', '-'], { input: APPLY_ORDER.map((key) => stringify(runner[key])).join('---\n') });
    }
    const deployments = async (selector: string) => (await k.kubectlOk(['get', 'deployments', '-n', TESTENV_NS, '-l', selector, '-o', 'name'])).trim().split('\n').sort();
    expect(await deployments(names.RUNNER_SELECTOR)).toEqual(['deployment.apps/shop-runner']);
    expect(await deployments(names.MARIADB_RUNNER_SELECTOR)).toEqual(['deployment.apps/shop-mariadb-runner']);
    expect(await deployments(names.PITR_RUNNER_SELECTOR)).toEqual(['deployment.apps/shop-pitr-runner']);
    expect(await deployments(names.RUNNERS_SELECTOR)).toEqual(['deployment.apps/shop-mariadb-runner', 'deployment.apps/shop-pitr-runner', 'deployment.apps/shop-runner']);
  });

  it("the MariaDB restore of docs/testenv-minikube.md rewrites the runner's config to user root and nothing else", async () => {
    const { plan } = await planStored('shop-mariadb');
    const config = runnerConfig(plan);
    // The sed line of the documented restore, run as the runner pod's sh runs it.
    const doc = readFileSync(join(ROOT, 'docs', 'testenv-minikube.md'), 'utf8');
    const sed = /^\s*(sed "[^"]*" "\$BACKUP_RUNNER_CONFIG")/m.exec(doc)?.[1];
    expect(sed, 'the sed line of the MariaDB restore in docs/testenv-minikube.md').toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'minikube-restore-'));
    try {
      writeFileSync(join(dir, 'config.yaml'), config);
      const asRoot = execFileSync('sh', ['-c', sed!], { env: { ...process.env, BACKUP_RUNNER_CONFIG: join(dir, 'config.yaml') } }).toString();
      const before = config.split('\n');
      const after = asRoot.split('\n');
      expect(after).toHaveLength(before.length);
      expect(before.filter((line, i) => line !== after[i])).toEqual(['    user: backup']);
      const valid = validateRunnerConfig(parse(asRoot));
      expect(valid.ok ? [] : valid.errors).toEqual([]);
      expect(parse(asRoot)).toEqual({ ...(parse(config) as Obj), engine: { type: 'mysql', mysql: { ...(parse(config) as { engine: { mysql: Obj } }).engine.mysql, user: 'root' } } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
    const values = localValues();
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

    // The physical DatabaseBackup: the same server, Secret and storage class; its user may open replication
    // connections (the image's superuser), which the server's pg_hba.conf (a ConfigMap, named by hba_file) admits.
    const pitr = (find(objects, 'DatabaseBackup', 'shop-pitr') as unknown as DatabaseBackup).spec;
    const pitrPg = pitr.engine.postgresql!;
    expect({ ...pitrPg, database: pgSpec.database, mode: undefined, wal: undefined }).toEqual({ ...pgSpec, mode: undefined, wal: undefined });
    expect(pitrPg).toMatchObject({ mode: 'physical', wal: { archive: true } });
    expect(pitr.storageClassName).toBe(sc.metadata.name);
    const pgSts = find(objects, 'StatefulSet', 'postgres') as unknown as {
      spec: { template: { spec: { containers: (Container & { volumeMounts: { name: string; mountPath: string }[] })[]; volumes: { name: string; configMap?: { name: string } }[] } } };
    };
    const pgServer = pgSts.spec.template.spec.containers[0]!;
    expect(envOf(pgServer).POSTGRES_USER).toBe(pitrPg.user);
    const hbaFile = pgServer.args!.find((a) => a.startsWith('hba_file='))!.slice('hba_file='.length);
    expect(pgServer.args).toEqual(['postgres', '-c', `hba_file=${hbaFile}`]);
    const hbaMount = pgServer.volumeMounts.find((m) => hbaFile.startsWith(`${m.mountPath}/`))!;
    const hbaVolume = pgSts.spec.template.spec.volumes.find((v) => v.name === hbaMount.name)!;
    const hba = (find(objects, 'ConfigMap', hbaVolume.configMap!.name) as unknown as { data: Record<string, string> }).data[hbaFile.slice(hbaMount.mountPath.length + 1)]!;
    const hbaLines = hba.split('\n').filter((l) => l.trim() && !l.startsWith('#')).map((l) => l.trim().split(/\s+/).join(' '));
    expect(hbaLines).toContain('host replication all all scram-sha-256');
    // The image's own lines stay (the seed Job and pg_psql connect with them).
    expect(hbaLines).toEqual(expect.arrayContaining(['local all all trust', 'host all all all scram-sha-256']));

    // The seed Job's ConfigMap holds every file seed.sh reads.
    const cm = find(objects, 'ConfigMap', 'testenv-seed') as unknown as { data: Record<string, string> };
    expect(Object.keys(cm.data).sort()).toEqual(['checksums.sql', 'hugedata.sql', 'seed.sh', 'seed.sql']);
  });

  it('the MariaDB pieces point at each other: Service, Secret, seed Job, backup user, runner image version', async () => {
    const { objects } = await renderManifests();
    const dbb = find(objects, 'DatabaseBackup', 'shop-mariadb') as unknown as DatabaseBackup;
    const my = dbb.spec.engine.mysql!;
    expect(dbb.spec.engine.type).toBe('mysql');
    expect(dbb.spec.storageClassName).toBe('dbbackup-testenv');
    // The same schedule and retention as the PostgreSQL DatabaseBackup.
    const pgDbb = find(objects, 'DatabaseBackup', 'shop') as unknown as DatabaseBackup;
    expect(dbb.spec.schedule).toEqual(pgDbb.spec.schedule);
    expect(dbb.spec.retention).toEqual(pgDbb.spec.retention);

    // host is the Service, whose port is the DatabaseBackup's and leads to the container's named port.
    const service = find(objects, 'Service', 'mariadb') as unknown as K8sObject & { spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] } };
    expect(my.host).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc`);
    expect(service.spec.ports[0]!.port).toBe(my.port);
    const sts = find(objects, 'StatefulSet', 'mariadb') as unknown as K8sObject & {
      spec: { serviceName: string; template: { metadata: { labels: Record<string, string> }; spec: { containers: (Container & { ports: { name: string; containerPort: number }[] })[] } } };
    };
    expect(sts.spec.serviceName).toBe(service.metadata.name);
    expect(sts.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    const server = sts.spec.template.spec.containers[0]!;
    expect(server.ports.find((p) => p.name === service.spec.ports[0]!.targetPort)!.containerPort).toBe(3306);
    // The official image, of the version the DatabaseBackup names (which picks the runner image), binary log on.
    expect(server.image).toBe(`docker.io/library/mariadb:${my.version}`);
    expect(server.args).toEqual(expect.arrayContaining([expect.stringMatching(/^--log-bin(=|$)/), '--server-id=1']));
    // The pod labels are the ones lib.sh finds the MariaDB pod by.
    const names = await libNames();
    expect(sts.spec.template.metadata.labels).toMatchObject(parseSelector(names.MARIADB_SELECTOR));
    expect(server.name).toBe(names.MARIADB_CONTAINER);

    // The runner image for that version is one deploy-local builds and values-local.yaml names.
    const values = localValues();
    expect(values.runner.mysql.versions).toContain(my.version);
    expect(values.runner.mysql.defaultVersion).toBe(my.version);
    const matrix = JSON.parse(readFileSync(join(ROOT, 'images', 'matrix.json'), 'utf8')) as { images: { name: string; engine?: string; engineVersion?: string }[] };
    const runnerImage = matrix.images.find((i) => i.engine === 'mysql' && i.engineVersion === my.version);
    // deploy-local.sh builds and loads that image (test/unit/minikube-scripts.test.ts checks its make and helm calls).
    expect(runnerImage?.name).toBe('runner-mysql-10.11');

    // Secret mariadb holds root's password (the server's and the seed Job's) and the backup user's (the DatabaseBackup's).
    const secret = stringData(find(objects, 'Secret', 'mariadb'));
    expect(my.passwordSecretRef!.name).toBe('mariadb');
    expect(Object.keys(secret)).toContain(my.passwordSecretRef!.key);
    expect(envOf(server).MARIADB_ROOT_PASSWORD).toEqual({ name: 'mariadb', key: 'root-password' });

    // The seed Job: root against the Service, creating the DatabaseBackup's database and user with its password.
    const job = find(objects, 'Job', 'testenv-seed-mariadb');
    const seed = podSpec(job).containers[0]!;
    const seedEnv = envOf(seed);
    expect(seed.image).toBe(server.image);
    expect(seedEnv).toMatchObject({
      MYSQL_HOST: service.metadata.name,
      MYSQL_TCP_PORT: String(service.spec.ports[0]!.port),
      MYSQL_PWD: { name: 'mariadb', key: 'root-password' },
      ADMIN_USER: 'root',
      SEED_DATABASE: my.database,
      BACKUP_USER: my.user,
      BACKUP_PASSWORD: { name: my.passwordSecretRef!.name, key: my.passwordSecretRef!.key },
    });
    // Every variable the script requires is set; its ConfigMap holds every file it reads.
    const script = readFileSync(join(MINIKUBE_DIR, 'seed', 'mariadb-seed.sh'), 'utf8');
    const required = [...script.matchAll(/"\$\{([A-Z_]+):\?\}"/g)].map((m) => m[1]!);
    expect(required.length).toBeGreaterThan(0);
    for (const v of required) expect(Object.keys(seedEnv), v).toContain(v);
    expect(seed.command).toEqual(['bash', '/seed/mariadb-seed.sh']);
    const cmName = podSpec(job).volumes!.find((v) => v.configMap)!.configMap!.name;
    const cm = find(objects, 'ConfigMap', cmName) as unknown as { data: Record<string, string> };
    expect(Object.keys(cm.data).sort()).toEqual(['mariadb-checksums.sql', 'mariadb-seed.sh', 'mariadb-seed.sql']);
    for (const f of [...script.matchAll(/\$dir\/([a-z.-]+)/g)].map((m) => m[1]!)) expect(Object.keys(cm.data), f).toContain(f);
    // The backup user gets exactly the privileges docs/engines.md lists.
    for (const grant of ['GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON \\`$db\\`.* TO', 'GRANT SELECT ON mysql.proc TO', 'GRANT BINLOG MONITOR ON *.* TO']) {
      expect(script).toContain(grant);
    }
    expect([...script.matchAll(/^GRANT /gm)]).toHaveLength(3);
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
    // The MariaDB seed is always the small one.
    expect(pvcTemplate(find(small, 'StatefulSet', 'mariadb'))).toBe('1Gi');
    expect(pvcTemplate(find(huge, 'StatefulSet', 'mariadb'))).toBe('1Gi');
  });
});
