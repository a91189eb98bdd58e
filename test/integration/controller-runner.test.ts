/**
 * The controller -> runner contract end to end. The controller runs in this
 * process against a real kube-apiserver 1.20 (+ controller-manager) and
 * renders a runner for a DatabaseBackup of a real PostgreSQL whose storage
 * class has an S3 location (s3rver) and a filesystem location (a PVC).
 *
 * Pods cannot run here (no kubelet), so this file plays the kubelet for the
 * rendered Deployment: it materialises the pod's volumes (the config Secret,
 * the emptyDir, the PVC) as temp directories, resolves the container's env
 * from the pod spec, hands the runner a token of the pod's ServiceAccount, and
 * runs the container's args (`serve`) in this process. The CLI commands then
 * reach that daemon over its control socket, as `kubectl exec` would.
 *
 * What this proves: the runner accepts the config exactly as rendered; the
 * credential files, the password env and the PVC mount line up with the
 * paths the config names; the Role the controller renders lets the runner
 * report its status (and the controller's conditions stay); a spec change
 * reaches the runner through the Secret and a rollout. The same for a
 * DatabaseBackup of a real MariaDB with a binary log (engine type mysql): the
 * mysql runner image, a SQL dump with the binlog position in its manifest, a
 * restore that matches the seeded fingerprint.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import type { V1Container, V1Deployment, V1PodSpec, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseDocument, stringify, visit } from 'yaml';
import type { DatabaseBackupStatus } from '../../api/crds/database-backup.js';
import { Controller } from '../../controller/controller.js';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics } from '../../controller/metrics.js';
import { ANNOTATION_CONFIG_HASH, runnerName } from '../../controller/names.js';
import { CONTAINER_NAME } from '../../controller/render/objects.js';
import { CONFIG_KEY, hashData } from '../../controller/render/runner-config.js';
import { validateSettings } from '../../controller/settings.js';
import { main } from '../../runner/cli/main.js';
import { parseConfig } from '../../runner/config/load.js';
import { createLogger, silentLogger } from '../../runner/logger.js';
import { applyCrds, controllerIdentity, ensureNamespaces } from '../../testenv/controller.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { startMariaDb, type MariaDbInstance } from '../../testenv/mariadb.js';
import { mariaFingerprint, seedMariaRich } from '../../testenv/mariadb-seed.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { S3RVER_KEY, startS3, type S3Server } from '../../testenv/s3.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';
import { CONTROLLER_NAMESPACE, renderSettings } from '../controller-fixtures.js';
import { eventually } from '../../testenv/eventually.js';
import { findLeaks, type Output } from '../../testenv/leak.js';

const NS = 'shop';
const NAME = 'orders';
const RUNNER = runnerName(NAME);
const DB = 'shop';
const BUCKET = 'backups';
const S3_PREFIX = 'db';
const CLAIM = 'backups';
/** s3rver checks the access key id only, so the secret key can be a value that appears nowhere else. */
const S3_SECRET = `s3-secret-${randomBytes(12).toString('hex')}`;
/** Everything the controller and the runner write, for the final check that no secret appears in it. */
const outputs: Output[] = [];
const capture = (source: string) =>
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      outputs.push({ source, text: chunk.toString() });
      cb();
    },
  });

type Log = Record<string, unknown>;

let kube: KubeInstance | undefined;
let pg: PgInstance | undefined;
let s3: S3Server | undefined;
let controller: Controller | undefined;
let controllerMetrics: ReturnType<typeof createControllerMetrics> | undefined;
let dir = '';
let seeded: Record<string, string> = {};
const kubeconfigBefore = process.env.KUBECONFIG;

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  dir = await mkdtemp(join(tmpdir(), 'dbbc-contract-'));
  const started = await Promise.allSettled([startKube(), startPostgres(), startS3()]);
  if (started[0].status === 'fulfilled') kube = started[0].value;
  if (started[1].status === 'fulfilled') pg = started[1].value;
  if (started[2].status === 'fulfilled') s3 = started[2].value;
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  await seedRich(pg!, DB, { rows: 5_000 });
  seeded = await tableChecksums(pg!, DB);
  await s3!.createBucket(BUCKET);

  await applyCrds(kube!);
  await ensureNamespaces(kube!, [NS]);
  const { kubeConfig } = await controllerIdentity(kube!, CONTROLLER_NAMESPACE);
  const settings = validateSettings({ namespace: CONTROLLER_NAMESPACE, runnerImages: renderSettings().runnerImages, resyncPeriod: '1h', workers: 2 });
  if (!settings.ok) throw new Error(JSON.stringify(settings.errors));
  const metrics = createControllerMetrics();
  controllerMetrics = metrics;
  // Debug level: the most the controller ever logs, all of it searched for secrets at the end.
  const logger = pino({ level: 'debug' }, capture('controller log'));
  controller = new Controller({ kube: new KubeAdapter({ kubeConfig, logger, metrics }), settings: settings.value, logger, metrics });
  await controller.start();
}, 120_000);

afterAll(async () => {
  await serving?.stop().catch(() => undefined);
  if (kubeconfigBefore === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = kubeconfigBefore;
  await controller?.stop();
  await kube?.stop();
  await pg?.stop();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- API helpers

const apply = (...objs: unknown[]) => kube!.kubectlOk(['apply', '-f', '-'], { input: objs.map((o) => stringify(o)).join('---\n') });

async function get<T>(kind: string, name: string, namespace = NS): Promise<T | undefined> {
  const r = await kube!.kubectl(['get', kind, name, '-n', namespace, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}


const decode = (b64: string | undefined) => Buffer.from(b64 ?? '', 'base64').toString('utf8');
const configHash = (d: V1Deployment | undefined) => d?.spec?.template.metadata?.annotations?.[ANNOTATION_CONFIG_HASH];

interface Dbb {
  metadata: { generation?: number };
  status?: DatabaseBackupStatus;
}
const dbb = (name = NAME) => get<Dbb>('dbb', name);
const condition = (o: Dbb | undefined, type: string) => o?.status?.conditions?.find((c) => c.type === type);

/** The runner's objects once the controller has written them for the current config (`hash` differs from `notHash`). */
async function renderedRunner(notHash?: string, name = NAME): Promise<{ deployment: V1Deployment; secret: V1Secret }> {
  return eventually('the runner Deployment and Secret from the controller', async () => {
    const deployment = await get<V1Deployment>('deployment', runnerName(name));
    const secret = await get<V1Secret>('secret', runnerName(name));
    const hash = configHash(deployment);
    if (!deployment || !secret?.data || !hash || hash === notHash) return undefined;
    // The Deployment's config hash is the hash of exactly this Secret's data: the pod would mount this Secret.
    return hashData(secret.data) === hash ? { deployment, secret } : undefined;
  });
}

// ------------------------------------------------------------ the kubelet stand-in

interface Pod {
  /** The container's args from the pod spec. */
  args: string[];
  /** The container's environment as the kubelet resolves it (plus the image's PATH and friends). */
  env: NodeJS.ProcessEnv;
  /** Container path -> host directory, one per volumeMount. */
  mounts: [string, string][];
  /** The host path of a container path. */
  toHost(path: string): string;
  /** config.yaml as the controller rendered it (text). */
  rendered: string;
  readinessPath: string;
  livenessPath: string;
}

/** Host directories of PVCs: they outlive pods, so a new pod of the same runner mounts the same data. */
const claimDir = (claim: string) => join(dir, 'pvc', claim);

function podPathMapper(mounts: [string, string][]): (path: string) => string {
  const byLength = [...mounts].sort((a, b) => b[0].length - a[0].length);
  return (path) => {
    if (!path.startsWith('/')) return path;
    const m = byLength.find(([at]) => path === at || path.startsWith(`${at.replace(/\/$/, '')}/`));
    return m ? m[1] + path.slice(m[0].length) : path;
  };
}

async function secretData(name: string): Promise<Record<string, string>> {
  const s = await get<V1Secret>('secret', name);
  if (!s) throw new Error(`kubelet stand-in: secret ${NS}/${name} not found (the pod would not start)`);
  return s.data ?? {};
}

/** Mounts the pod's volumes into `podDir`, as the kubelet does for the runner's container. */
async function mountVolumes(spec: V1PodSpec, container: V1Container, podDir: string): Promise<[string, string][]> {
  const mounts: [string, string][] = [];
  for (const m of container.volumeMounts ?? []) {
    if (m.subPath || m.subPathExpr) throw new Error(`kubelet stand-in: volumeMount ${m.name} uses subPath, which this test does not emulate`);
    const v = spec.volumes?.find((x) => x.name === m.name);
    if (!v) throw new Error(`volumeMount ${m.name} names no volume of the pod`);
    let host: string;
    if (v.secret) {
      host = join(podDir, 'volumes', v.name);
      await mkdir(host, { recursive: true });
      const data = await secretData(v.secret.secretName!);
      const items = v.secret.items ?? Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
      for (const item of items) {
        if (data[item.key] === undefined) throw new Error(`kubelet stand-in: secret ${v.secret.secretName} has no key ${item.key} (the pod would not start)`);
        await mkdir(dirname(join(host, item.path)), { recursive: true });
        await writeFile(join(host, item.path), Buffer.from(data[item.key]!, 'base64'), { mode: item.mode ?? v.secret.defaultMode ?? 0o644 });
      }
    } else if (v.emptyDir) {
      host = join(podDir, 'volumes', v.name);
      await mkdir(host, { recursive: true });
    } else if (v.persistentVolumeClaim) {
      host = claimDir(v.persistentVolumeClaim.claimName);
      await mkdir(host, { recursive: true });
    } else {
      throw new Error(`kubelet stand-in: volume ${v.name} has a kind this test does not emulate: ${JSON.stringify(v)}`);
    }
    mounts.push([m.mountPath, host]);
  }
  return mounts;
}

/** The container env: `value` (with $(VAR) expansion) and `valueFrom.secretKeyRef` from the pod's namespace, as the kubelet resolves them. */
async function containerEnv(container: V1Container): Promise<Record<string, string>> {
  if (container.envFrom?.length) throw new Error('kubelet stand-in: envFrom is not emulated');
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => env[n] ?? m);
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const v = (await secretData(ref.name!))[ref.key];
      if (v === undefined) throw new Error(`kubelet stand-in: env ${e.name}: secret ${NS}/${ref.name} has no key ${ref.key} (the container would not start)`);
      env[e.name] = decode(v);
    } else {
      throw new Error(`kubelet stand-in: env ${e.name} has a source this test does not emulate: ${JSON.stringify(e.valueFrom)}`);
    }
  }
  return env;
}

/**
 * What the kubelet does for the runner's container, in `podDir`: mount the
 * volumes, resolve the env, give it its ServiceAccount's token.
 *
 * The config file: the container sees the Secret volume at /etc/backup-runner
 * and the PVC at the filesystem location's path; here those directories are
 * temp directories, so the paths that point into a mount are rewritten to the
 * host directory behind it. That is exactly what the volume mounts do, and
 * nothing else in the config changes. The one addition is pod isolation this
 * process does not have: the pod owns its /tmp (an emptyDir, where the
 * runner's default control socket lives) and its network namespace (the
 * runner's default metrics port 9090), so the daemon block names the socket at
 * its default path inside the /tmp mount, and port 0 on loopback.
 */
async function startPodFor(deployment: V1Deployment, podDir: string): Promise<Pod> {
  const spec = deployment.spec!.template.spec!;
  const container = spec.containers.find((c) => c.name === CONTAINER_NAME);
  if (!container) throw new Error(`the Deployment has no container ${CONTAINER_NAME}`);
  if (spec.automountServiceAccountToken === false) throw new Error('the pod mounts no ServiceAccount token: the runner could not report its status');
  const mounts = await mountVolumes(spec, container, podDir);
  const toHost = podPathMapper(mounts);
  const podEnv = await containerEnv(container);

  const configPath = podEnv.BACKUP_RUNNER_CONFIG;
  if (!configPath) throw new Error('the container env has no BACKUP_RUNNER_CONFIG');
  const hostConfig = toHost(configPath);
  if (hostConfig === configPath) throw new Error(`BACKUP_RUNNER_CONFIG ${configPath} is not inside any volume mount of the container`);
  const rendered = await readFile(hostConfig, 'utf8');

  const doc = parseDocument(rendered);
  visit(doc, {
    Scalar(key, node) {
      if (key !== 'key' && typeof node.value === 'string') node.value = toHost(node.value); // values, never map keys
    },
  });
  const defaults = parseConfig(rendered, configPath).daemon; // the runner's own defaults
  if (toHost(defaults.socket) === defaults.socket) throw new Error(`the daemon socket ${defaults.socket} is not inside a volume of the pod (the read-only root filesystem would refuse it)`);
  doc.setIn(['daemon', 'socket'], toHost(defaults.socket));
  doc.setIn(['daemon', 'metricsHost'], '127.0.0.1');
  doc.setIn(['daemon', 'metricsPort'], 0);
  await writeFile(hostConfig, doc.toString(), { mode: 0o440 });

  // The image's environment (PATH to the database tools and node), without anything that could stand in for
  // the credentials the pod must get from its config Secret and env; then the pod spec's env on top.
  const imageEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(AWS_|PG|MYSQL_|MARIADB_|KUBECONFIG$|BACKUP_RUNNER_|DB_PASSWORD$)/.test(k)));
  // The pod's ServiceAccount token, as the in-cluster credentials would be (the runner loads KUBECONFIG first).
  const token = await kube!.serviceAccountToken(NS, spec.serviceAccountName!);
  const kubeconfig = await kube!.writeKubeconfig(token, `system:serviceaccount:${NS}:${spec.serviceAccountName!}`);
  process.env.KUBECONFIG = kubeconfig; // @kubernetes/client-node reads it from process.env
  // BACKUP_RUNNER_CONFIG names a path inside the config volume: the same mount rewrite as in the file.
  const env = { ...imageEnv, ...Object.fromEntries(Object.entries(podEnv).map(([k, v]) => [k, toHost(v)])), KUBECONFIG: kubeconfig };

  return {
    args: container.args ?? [],
    env,
    mounts,
    toHost,
    rendered,
    readinessPath: container.readinessProbe?.httpGet?.path ?? '',
    livenessPath: container.livenessProbe?.httpGet?.path ?? '',
  };
}

// ------------------------------------------------------------ the runner in this process

interface Serving {
  pod: Pod;
  logs: Log[];
  metricsPort: number;
  /** SIGTERM, as the kubelet sends on a rollout; resolves with the exit code. */
  stop(): Promise<number>;
}
let serving: Serving | undefined;

const listeners = (s: NodeJS.Signals) => process.rawListeners(s) as ((sig: NodeJS.Signals) => void)[];

/** Runs the container's args (`serve`) through the CLI's main, with the pod's env, until stop(). */
async function serve(pod: Pod): Promise<Serving> {
  const logs: Log[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      outputs.push({ source: 'runner log', text: chunk.toString() });
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Log);
      cb();
    },
  });
  const before = { SIGTERM: listeners('SIGTERM'), SIGINT: listeners('SIGINT') };
  let exited: number | undefined;
  const done = main(pod.args, pod.env, { stdout: () => undefined, logger: createLogger({ destination: sink, pretty: false, level: 'debug' }) }).then((code) => (exited = code));
  const added = (s: 'SIGTERM' | 'SIGINT') => listeners(s).filter((l) => !before[s].includes(l));
  const ready = await eventually('the daemon to be ready and wait for SIGTERM', () => {
    if (exited !== undefined) throw new Error(`backup-runner ${pod.args.join(' ')} exited with ${exited}: ${JSON.stringify(logs.filter((l) => Number(l.level) >= 40))}`);
    const line = logs.find((l) => l.msg === 'daemon ready');
    return Promise.resolve(line && added('SIGTERM').length > 0 ? line : undefined);
  });
  const term = added('SIGTERM');
  const int = added('SIGINT');
  return {
    pod,
    logs,
    metricsPort: Number(ready.metricsPort),
    async stop() {
      for (const l of term) l('SIGTERM'); // the once-wrappers: each removes itself, then runs serve's handler
      const code = await done;
      for (const l of int) process.removeListener('SIGINT', l);
      return code;
    },
  };
}

interface CliResult {
  code: number;
  json: Record<string, unknown>;
  out: string;
}

/** A CLI command in the runner container (`kubectl exec ... backup-runner <args>`): config from $BACKUP_RUNNER_CONFIG, sent to the daemon. */
async function exec(pod: Pod, ...args: string[]): Promise<CliResult> {
  let out = '';
  const code = await main([...args, '-o', 'json'], pod.env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
  outputs.push({ source: `backup-runner ${args.join(' ')} -o json`, text: out });
  return { code, out, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

// ------------------------------------------------------------ where the backups are

async function idsInS3(name = NAME): Promise<string[]> {
  const ids = new Set<string>();
  const keys: string[] = [];
  for await (const o of s3!.storage(BUCKET).list(`${S3_PREFIX}/${NS}/${name}/`)) keys.push(o.key);
  for (const k of keys) {
    const m = new RegExp(`^${S3_PREFIX}/${NS}/${name}/backups/([^/]+)/manifest\\.json$`).exec(k);
    if (m) ids.add(m[1]!);
  }
  return [...ids].sort();
}

const s3Dir = (id: string, name: string) => `${S3_PREFIX}/${NS}/${name}/backups/${id}/`;

async function s3Keys(id: string, name = NAME): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of s3!.storage(BUCKET).list(s3Dir(id, name))) keys.push(o.key.slice(s3Dir(id, name).length));
  return keys.sort();
}

const s3Text = async (key: string) => Buffer.concat((await (await s3!.storage(BUCKET).get(key)).toArray()) as Buffer[]).toString();

/** A backup's directory on the PVC (the filesystem location has no prefix). */
const onClaim = (name: string, id = '') => join(claimDir(CLAIM), NS, name, 'backups', id);

/** Backups on the PVC. */
async function idsOnClaim(name = NAME): Promise<string[]> {
  const root = onClaim(name);
  const entries = await readdir(root).catch(() => [] as string[]);
  const ids: string[] = [];
  for (const e of entries) if (await stat(join(root, e, 'manifest.json')).catch(() => undefined)) ids.push(e);
  return ids.sort();
}

/** Events about the DatabaseBackup, oldest first. */
async function backupEvents(): Promise<{ type: string; reason: string; message: string }[]> {
  const r = await kube!.kubectlOk(['-n', NS, 'get', 'events', '--field-selector', `involvedObject.kind=DatabaseBackup,involvedObject.name=${NAME}`, '-o', 'json']);
  return (JSON.parse(r) as { items: { type: string; reason: string; message: string }[] }).items;
}

async function waitForStatus(what: string, ok: (s: DatabaseBackupStatus) => boolean, name = NAME): Promise<Dbb> {
  return eventually(`status: ${what}`, async () => {
    const o = await dbb(name);
    return o?.status && ok(o.status) ? o : undefined;
  });
}

/** Warnings and errors the daemon logged (a refused status report would be one), and its report error counter. */
async function complaints(s: Serving): Promise<unknown[]> {
  const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
  return [...s.logs.filter((l) => Number(l.level) >= 40), ...metrics.split('\n').filter((l) => l.startsWith('backup_runner_status_report_errors_total{'))];
}

/** A storage class with a filesystem location on a PVC and an S3 location whose keys the controller copies from its own namespace, and that Secret. */
const storageClass = (name: string) => [
  {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 's3-keys', namespace: CONTROLLER_NAMESPACE },
    stringData: { 'access-key': S3RVER_KEY, 'secret-key': S3_SECRET },
  },
  {
    apiVersion: 'dbbackup.io/v1alpha1',
    kind: 'DatabaseBackupStorageClass',
    metadata: { name },
    spec: {
      allowedNamespaces: [NS],
      locations: [
        { name: 'pvc', filesystem: { path: '/backups', claimName: CLAIM } },
        {
          name: 'offsite',
          prefix: S3_PREFIX,
          s3: {
            bucket: BUCKET,
            region: 'us-east-1',
            endpoint: s3!.endpoint,
            forcePathStyle: true,
            accessKeyIdSecretRef: { secretName: 's3-keys', key: 'access-key' },
            secretAccessKeySecretRef: { secretName: 's3-keys', key: 'secret-key' },
          },
        },
      ],
    },
  },
];

/** `verify` in the pod: one data object checked per location, every check ok. */
async function expectVerified(pod: Pod): Promise<void> {
  const v = await exec(pod, 'verify');
  expect(v.code, v.out).toBe(0);
  const checks = v.json.checks as { status: string; location: string }[];
  expect(checks.map((c) => c.location).sort()).toEqual(['offsite', 'pvc']);
  expect(checks.every((c) => c.status === 'ok')).toBe(true);
}

/**
 * Records what a secret could leak into, for the DatabaseBackup `name` and its class: the CLI's human tables
 * (the JSON forms are recorded by exec), every manifest in both locations, what the API server holds (status with
 * the controller's and the runner's patches, Events, every runner object but the Secret that carries the keys by
 * design), and both metrics endpoints.
 */
async function recordOutputs(pod: Pod, s: Serving, name: string, className: string): Promise<void> {
  for (const args of [['list'], ['status'], ['verify'], ['retention', '--dry-run'], ['backup']]) {
    let out = '';
    const code = await main(args, pod.env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
    expect(code, out).toBe(0);
    outputs.push({ source: `backup-runner ${args.join(' ')}`, text: out });
  }
  for (const args of [['list'], ['status'], ['retention', '--dry-run']]) await exec(pod, ...args);

  for await (const o of s3!.storage(BUCKET).list(`${S3_PREFIX}/`)) {
    if (o.key.endsWith('/manifest.json')) outputs.push({ source: `manifest s3 ${o.key}`, text: await s3Text(o.key) });
  }
  for (const id of await idsOnClaim(name)) {
    outputs.push({ source: `manifest pvc ${id}`, text: await readFile(join(onClaim(name, id), 'manifest.json'), 'utf8') });
  }
  for (const [what, args] of [
    ['DatabaseBackup', ['-n', NS, 'get', 'dbb', name, '-o', 'json']],
    ['storage class', ['get', 'dbbsc', className, '-o', 'json']],
    ['Events', ['get', 'events', '-A', '-o', 'json']],
    ['runner objects', ['-n', NS, 'get', 'deployment,serviceaccount,role,rolebinding,service', '-o', 'json']],
    ['kubectl describe', ['-n', NS, 'describe', 'dbb', name]],
  ] as const) {
    outputs.push({ source: what, text: await kube!.kubectlOk([...args]) });
  }
  outputs.push({ source: 'controller metrics', text: await controllerMetrics!.registry.metrics() });
  outputs.push({ source: 'runner metrics', text: await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text() });
}

/** Neither the database password nor the S3 secret key is in any output recorded from `since` on, which has each kind of output (a capture that stopped working would pass vacuously). */
function expectNoSecrets(databasePassword: string, since: number): void {
  const recorded = outputs.slice(since);
  const sources = new Set(recorded.map((o) => o.source.split(' ')[0]));
  for (const s of ['controller', 'runner', 'backup-runner', 'manifest', 'DatabaseBackup', 'Events', 'kubectl']) expect(sources, s).toContain(s);
  expect(findLeaks({ 'database password': databasePassword, 's3 secret key': S3_SECRET }, recorded)).toEqual([]);
}

// ------------------------------------------------------------ the tests

describe('controller -> runner contract', () => {
  let pod: Pod;
  let firstHash = '';

  it('the controller renders a runner for a DatabaseBackup of a real database, and the runner accepts its config as rendered', async () => {
    await apply(
      ...storageClass('contract'),
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'orders-db', namespace: NS }, stringData: { password: pg!.password } },
      {
        apiVersion: 'dbbackup.io/v1alpha1',
        kind: 'DatabaseBackup',
        metadata: { name: NAME, namespace: NS },
        spec: {
          engine: {
            type: 'postgresql',
            postgresql: { host: '127.0.0.1', port: pg!.port, database: DB, user: pg!.user, passwordSecretRef: { name: 'orders-db', key: 'password' } },
          },
          schedule: { interval: '1h' },
          retention: { keepLast: 2 },
          storageClassName: 'contract',
        },
      },
    );
    const { deployment, secret } = await renderedRunner();
    firstHash = configHash(deployment)!;
    const c = await eventually('ConfigValid', async () => condition(await dbb(), 'ConfigValid'));
    expect(c, JSON.stringify(c)).toMatchObject({ status: 'True', reason: 'Applied' });

    // The runner's own loader takes the rendered file unchanged (an invalid field would throw, listing each).
    const rendered = decode(secret.data![CONFIG_KEY]);
    const cfg = parseConfig(rendered, `secret ${RUNNER}/${CONFIG_KEY}`);
    expect(cfg.report).toEqual({ databaseBackup: { namespace: NS, name: NAME } });
    expect(cfg.locations.map((l) => l.name)).toEqual(['pvc', 'offsite']);

    pod = await startPodFor(deployment, join(dir, 'pod-1'));
    expect(pod.args).toEqual(['serve']);
    expect(pod.rendered).toBe(rendered);
    // Undo the mounts: what is left is the rendered config plus the pod-isolation daemon block.
    const toContainer = (v: unknown): unknown =>
      typeof v === 'string' ? pod.mounts.reduce((s, [at, host]) => (s === host || s.startsWith(`${host}/`) ? at + s.slice(host.length) : s), v)
      : Array.isArray(v) ? v.map(toContainer)
      : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toContainer(x)]))
      : v;
    const materialised = parse(await readFile(pod.env.BACKUP_RUNNER_CONFIG!, 'utf8')) as Record<string, unknown>;
    const original = parse(rendered) as Record<string, unknown>;
    expect({ ...(toContainer(materialised) as Record<string, unknown>), daemon: {} }).toEqual(original);
    expect(original.daemon).toEqual({});
    expect(pod.env.DB_PASSWORD).toBe(pg!.password);
  });

  it('serve with the pod\'s env and ServiceAccount: probes answer, status is reported through the rendered Role', async () => {
    // The only right the runner gets, and all it needs (a refused report fails the checks below).
    const role = await get<{ rules: unknown[] }>('role', RUNNER);
    expect(role?.rules).toEqual([{ apiGroups: ['dbbackup.io'], resources: ['databasebackups/status'], resourceNames: [NAME], verbs: ['get', 'patch'] }]);
    serving = await serve(pod);
    for (const path of [pod.readinessPath, pod.livenessPath]) {
      expect(path).toMatch(/^\//);
      expect((await fetch(`http://127.0.0.1:${serving.metricsPort}${path}`)).status, path).toBe(200);
    }
    const s = await waitForStatus('the daemon\'s start report', (st) => st.nextRunAt !== undefined && st.locations?.length === 2);
    expect(s.status!.locations).toEqual([
      { name: 'pvc', state: 'Ready', backupsStored: 0, backupsBehind: 0 },
      { name: 'offsite', state: 'Ready', backupsStored: 0, backupsBehind: 0 },
    ]);
    // interval 1h from now
    expect(Date.parse(s.status!.nextRunAt!) - Date.now()).toBeGreaterThan(50 * 60_000);
  });

  let first = '';

  it('backup (exec into the pod): one dump in the S3 bucket and on the PVC; lastBackup, counts and the controller\'s conditions in the status', async () => {
    const r = await exec(pod, 'backup');
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ status: 'Succeeded' });
    expect((r.json.locations as { location: string; status: string }[]).map((l) => [l.location, l.status])).toEqual([
      ['pvc', 'Succeeded'],
      ['offsite', 'Succeeded'],
    ]);
    first = r.json.id as string;

    expect(await idsInS3()).toEqual([first]);
    expect(await s3Keys(first)).toEqual([expect.stringMatching(/^data\.dump\.(zst|gz)$/), 'manifest.json']);
    expect(await idsOnClaim()).toEqual([first]);
    expect((await readdir(onClaim(NAME, first))).sort()).toEqual([expect.stringMatching(/^data\.dump\.(zst|gz)$/), 'manifest.json']);

    const o = await waitForStatus('the finished backup and its counts', (st) => st.lastBackup?.id === first && st.lastBackup.status === 'Succeeded' && st.locations?.every((l) => l.backupsStored === 1) === true);
    const st = o.status!;
    expect(st.lastBackup).toMatchObject({ id: first, status: 'Succeeded' });
    expect(st.lastSuccessAt).toBe(st.lastBackup!.finishedAt);
    for (const l of st.locations!) expect(l).toEqual({ name: l.name, state: 'Ready', backupsStored: 1, backupsBehind: 0, lastSuccessAt: st.lastSuccessAt });
    // Next to the controller's part, which the runner leaves alone.
    expect(st.observedGeneration).toBe(o.metadata.generation);
    expect(condition(o, 'ConfigValid')).toMatchObject({ status: 'True', reason: 'Applied' });
    expect(condition(o, 'RunnerAvailable')).toMatchObject({ status: 'False' }); // no kubelet: the Deployment never has a pod
    // The controller reads the runner's result into a condition and an Event.
    const ok = await eventually('LastBackupSucceeded', async () => {
      const c = condition(await dbb(), 'LastBackupSucceeded');
      return c?.status === 'True' ? c : undefined;
    });
    expect(ok).toMatchObject({ reason: 'Succeeded', message: expect.stringContaining(first) as string });
    expect(await eventually('a BackupSucceeded Event', async () => (await backupEvents()).find((e) => e.reason === 'BackupSucceeded'))).toMatchObject({ type: 'Normal' });
    expect(await complaints(serving!)).toEqual([]);
  });

  it('list, restore --latest into the dropped database (every checksum as seeded), verify', async () => {
    const l = await exec(pod, 'list');
    expect(l.code, l.out).toBe(0);
    expect((l.json.backups as { id: string; locations: string[] }[]).map((b) => [b.id, b.locations])).toEqual([[first, ['pvc', 'offsite']]]);
    expect(l.json.problems).toEqual([]);

    await pg!.psql(`DROP DATABASE ${DB}`);
    const r = await exec(pod, 'restore', '--latest');
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ database: DB, backup: { id: first } });
    expect(await tableChecksums(pg!, DB)).toEqual(seeded);

    await expectVerified(pod);
    expect(await complaints(serving!)).toEqual([]);
  });

  it('a retention change flows: controller -> Secret and config hash -> rollout -> the new runner keeps only 1 backup', async () => {
    await kube!.kubectlOk(['-n', NS, 'patch', 'dbb', NAME, '--type=merge', '-p', JSON.stringify({ spec: { retention: { keepLast: 1 } } })]);
    const { deployment, secret } = await renderedRunner(firstHash);
    expect(configHash(deployment)).not.toBe(firstHash);
    expect(parseConfig(decode(secret.data![CONFIG_KEY]), 'config.yaml').retention).toMatchObject({ keepLast: 1 });

    // The rollout (strategy Recreate): the old pod gets SIGTERM and exits, a new pod mounts the new Secret and the same PVC.
    expect(deployment.spec!.strategy!.type).toBe('Recreate');
    expect(await serving!.stop()).toBe(0);
    serving = undefined;
    pod = await startPodFor(deployment, join(dir, 'pod-2'));
    expect(parseConfig(pod.rendered, 'config.yaml').retention).toMatchObject({ keepLast: 1 });
    serving = await serve(pod);

    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await exec(pod, 'backup');
      expect(r.code, r.out).toBe(0);
      ids.push(r.json.id as string);
    }
    const newest = ids[1]!;
    const l = await exec(pod, 'list');
    expect((l.json.backups as { id: string; locations: string[] }[]).map((b) => [b.id, b.locations])).toEqual([[newest, ['pvc', 'offsite']]]);
    expect(await idsInS3()).toEqual([newest]);
    expect(await idsOnClaim()).toEqual([newest]);

    const o = await waitForStatus('one backup per location', (st) => st.lastBackup?.id === newest && st.locations?.every((x) => x.backupsStored === 1) === true);
    expect(o.metadata.generation).toBe(2);
    expect(o.status!.observedGeneration).toBe(2);
    expect(condition(o, 'ConfigValid')).toMatchObject({ status: 'True', reason: 'Applied', observedGeneration: 2 });
    expect(await complaints(serving)).toEqual([]);
  });

  it('a failed backup: Failed with the reason in lastBackup, a False condition, a Warning Event, the Last Backup column; the next success recovers', async () => {
    await pg!.psql(`ALTER DATABASE ${DB} ALLOW_CONNECTIONS false`);
    let failedId = '';
    try {
      const r = await exec(pod, 'backup');
      expect(r.code, r.out).not.toBe(0);
      expect(r.json).toMatchObject({ status: 'Failed' });
      failedId = r.json.id as string;
    } finally {
      await pg!.psql(`ALTER DATABASE ${DB} ALLOW_CONNECTIONS true`);
    }
    const o = await waitForStatus('the failed backup', (st) => st.lastBackup?.id === failedId && st.lastBackup.status === 'Failed');
    expect(o.status!.lastBackup!.message).toMatch(/does not allow connections|not currently accepting connections/);
    const c = await eventually('LastBackupSucceeded False', async () => {
      const x = condition(await dbb(), 'LastBackupSucceeded');
      return x?.status === 'False' ? x : undefined;
    });
    expect(c).toMatchObject({ reason: 'BackupFailed', message: expect.stringContaining(failedId) as string });
    expect(c.message).toContain(o.status!.lastBackup!.message!);
    // Ready stays about the runner: it runs the current spec.
    expect(condition(await dbb(), 'ConfigValid')).toMatchObject({ status: 'True' });
    const warning = await eventually('a BackupFailed Event', async () => (await backupEvents()).find((e) => e.reason === 'BackupFailed'));
    expect(warning).toMatchObject({ type: 'Warning', message: c.message });
    const table = await kube!.kubectlOk(['-n', NS, 'get', 'dbb', NAME]);
    expect(table.split('\n')[0]).toMatch(/LAST BACKUP/);
    expect(table.split('\n')[1]).toMatch(/\bFailed\b/);

    const r = await exec(pod, 'backup');
    expect(r.code, r.out).toBe(0);
    await eventually('LastBackupSucceeded True again', async () => (condition(await dbb(), 'LastBackupSucceeded')?.status === 'True' ? true : undefined));
    const recovered = await eventually('a BackupRecovered Event', async () => (await backupEvents()).find((e) => e.reason === 'BackupRecovered'));
    expect(recovered).toMatchObject({ type: 'Normal', message: expect.stringContaining(r.json.id as string) as string });
    expect((await backupEvents()).filter((e) => e.reason === 'BackupFailed')).toHaveLength(1);
  });

  it('no secret appears in any log line, CLI output (table and JSON), manifest, status, Event, object or metric', async () => {
    await recordOutputs(pod, serving!, NAME, 'contract');
    expect(outputs.filter((o) => o.source === 'controller log').length).toBeGreaterThan(0);
    expect(outputs.filter((o) => o.source.startsWith('manifest')).length).toBeGreaterThanOrEqual(2); // keepLast 1: one per location
    // The runner Secret does hold the S3 key (copied by the controller): proof the canary is the key actually in use.
    const runnerSecret = await get<V1Secret>('secret', RUNNER);
    expect(findLeaks({ s3: S3_SECRET }, [{ source: 'runner Secret', text: JSON.stringify(runnerSecret?.data) }])).not.toEqual([]);

    expectNoSecrets(pg!.password, 0);
  });

  it('a class that takes each DatabaseBackup\'s own keys: none is copied, the runner mounts the namespace\'s Secret and backs up with it', async () => {
    const before = configHash(await get<V1Deployment>('deployment', RUNNER));
    const cls = JSON.parse(await kube!.kubectlOk(['get', 'dbbsc', 'contract', '-o', 'json'])) as { spec: { locations: { s3?: Record<string, unknown> }[] } };
    const s3 = cls.spec.locations[1]!.s3!;
    delete s3.accessKeyIdSecretRef;
    delete s3.secretAccessKeySecretRef;
    await apply(
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'orders-s3', namespace: NS }, stringData: { id: S3RVER_KEY, secret: S3RVER_KEY } },
      { apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackupStorageClass', metadata: { name: 'contract' }, spec: { ...cls.spec, credentials: { source: 'DatabaseBackup' } } },
    );
    await kube!.kubectlOk(['-n', NS, 'patch', 'dbb', NAME, '--type=merge', '-p', JSON.stringify({
      spec: { credentials: [{ location: 'offsite', s3: { accessKeyIdSecretRef: { name: 'orders-s3', key: 'id' }, secretAccessKeySecretRef: { name: 'orders-s3', key: 'secret' } } }] },
    })]);
    const { deployment, secret } = await renderedRunner(before);
    expect(Object.keys(secret.data!)).toEqual([CONFIG_KEY]);
    const offsite = parseConfig(decode(secret.data![CONFIG_KEY]), 'config.yaml').locations.find((l) => l.name === 'offsite');
    expect(offsite?.s3?.accessKeyId).toEqual({ file: '/var/run/backup-runner/db/orders-s3/id' });

    expect(await serving!.stop()).toBe(0);
    serving = undefined;
    pod = await startPodFor(deployment, join(dir, 'pod-3'));
    serving = await serve(pod);
    const r = await exec(pod, 'backup');
    expect(r.code, r.out).toBe(0);
    expect((r.json.locations as { location: string; status: string }[]).map((l) => [l.location, l.status])).toEqual([
      ['pvc', 'Succeeded'],
      ['offsite', 'Succeeded'],
    ]);
    expect(await idsInS3()).toContain(r.json.id);
    const o = await waitForStatus('status.credentials', (st) => st.credentials?.find((c) => c.location === 'offsite')?.source === 'DatabaseBackup');
    expect(o.status!.credentials!.find((c) => c.location === 'offsite')!.readableBy).toContain('Secret shop/orders-s3');
    expect(await complaints(serving)).toEqual([]);
  });
});

describe('controller -> runner contract: MariaDB with a binary log', () => {
  const name = 'inventory';
  const database = 'inventory';
  const className = 'contract-mysql';
  let maria: MariaDbInstance | undefined;
  let setupError: Error | undefined;
  let seededMaria: Record<string, string> = {};
  let pod: Pod;
  let since = 0;
  let first = '';

  beforeAll(async () => {
    // One pod at a time: this stand-in hands each pod its ServiceAccount through the process-wide KUBECONFIG.
    await serving?.stop();
    serving = undefined;
    since = outputs.length;
    try {
      maria = await startMariaDb({ binlog: true });
      await seedMariaRich(maria, database);
      seededMaria = await mariaFingerprint(maria, database);
    } catch (err) {
      setupError = err instanceof Error ? err : new Error(`setup failed: ${JSON.stringify(err)}`);
    }
  });

  afterAll(async () => {
    await maria?.stop();
  });

  /** The MariaDB server, or the setup's error (with the install hint when the server binaries are missing). */
  function ready(): MariaDbInstance {
    if (setupError) throw setupError;
    return maria!;
  }

  it('the controller renders a runner with the mysql image for a MariaDB DatabaseBackup, and the runner serves its config as rendered', async () => {
    const m = ready();
    const version = /^\d+\.\d+/.exec(m.version)![0];
    await apply(
      ...storageClass(className),
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${name}-db`, namespace: NS }, stringData: { password: m.password } },
      {
        apiVersion: 'dbbackup.io/v1alpha1',
        kind: 'DatabaseBackup',
        metadata: { name, namespace: NS },
        spec: {
          engine: {
            type: 'mysql',
            mysql: { host: m.host, port: m.port, version, database, user: m.user, passwordSecretRef: { name: `${name}-db`, key: 'password' }, sslMode: 'DISABLED' },
          },
          schedule: { interval: '1h' },
          retention: { keepLast: 2 },
          storageClassName: className,
        },
      },
    );
    const { deployment, secret } = await renderedRunner(undefined, name);
    const c = await eventually('ConfigValid', async () => condition(await dbb(name), 'ConfigValid'));
    expect(c, JSON.stringify(c)).toMatchObject({ status: 'True', reason: 'Applied' });
    const image = deployment.spec!.template.spec!.containers.find((x) => x.name === CONTAINER_NAME)?.image;
    expect(image).toBe(renderSettings().runnerImages.mysql!.images[version]);

    const rendered = decode(secret.data![CONFIG_KEY]);
    const cfg = parseConfig(rendered, `secret ${runnerName(name)}/${CONFIG_KEY}`);
    expect(cfg.engine).toEqual({ type: 'mysql', mysql: { host: m.host, port: m.port, database, user: m.user, password: { env: 'DB_PASSWORD' }, sslMode: 'DISABLED' } });
    expect(cfg.report).toEqual({ databaseBackup: { namespace: NS, name } });
    expect(cfg.locations.map((l) => l.name)).toEqual(['pvc', 'offsite']);

    pod = await startPodFor(deployment, join(dir, 'pod-mysql'));
    expect(pod.rendered).toBe(rendered);
    expect(pod.env.DB_PASSWORD).toBe(m.password);
    serving = await serve(pod);
    await waitForStatus('the daemon\'s start report', (st) => st.locations?.length === 2, name);
  });

  it('backup (exec into the pod): one SQL dump per location, a manifest with the snapshot\'s binlog position and GTID, the backup in the status', async () => {
    const m = ready();
    const r = await exec(pod, 'backup');
    expect(r.code, r.out).toBe(0);
    expect((r.json.locations as { location: string; status: string }[]).map((l) => [l.location, l.status])).toEqual([
      ['pvc', 'Succeeded'],
      ['offsite', 'Succeeded'],
    ]);
    first = r.json.id as string;
    // Nothing has written since the dump's snapshot: the server is still at the position the dump recorded.
    const [binlogFile, binlogPosition] = (await m.sql('SHOW MASTER STATUS')).split('\t');
    const gtid = await m.sql('SELECT @@gtid_binlog_pos');
    expect(gtid).toMatch(/^\d+-1-\d+$/);

    const data = expect.stringMatching(/^data\.sql\.(zst|gz)$/) as string;
    expect(await idsInS3(name)).toEqual([first]);
    expect(await s3Keys(first, name)).toEqual([data, 'manifest.json']);
    expect(await idsOnClaim(name)).toEqual([first]);
    expect((await readdir(onClaim(name, first))).sort()).toEqual([data, 'manifest.json']);
    for (const text of [await s3Text(`${s3Dir(first, name)}manifest.json`), await readFile(join(onClaim(name, first), 'manifest.json'), 'utf8')]) {
      const manifest = JSON.parse(text) as { database: string; engine: unknown; objects: { name: string }[] };
      expect(manifest.database).toBe(database);
      expect(manifest.objects.map((o) => o.name)).toEqual([data]);
      expect(manifest.engine).toEqual({
        name: 'mysql',
        format: 'mysql-sql',
        serverVersion: m.version,
        toolVersion: expect.any(String) as string,
        position: { binlogFile, binlogPosition, gtid },
      });
    }

    const o = await waitForStatus('the finished backup and its counts', (st) => st.lastBackup?.id === first && st.lastBackup.status === 'Succeeded' && st.locations?.every((l) => l.backupsStored === 1) === true, name);
    expect(o.status!.lastSuccessAt).toBe(o.status!.lastBackup!.finishedAt);
    expect(condition(o, 'ConfigValid')).toMatchObject({ status: 'True', reason: 'Applied' });
    expect(await complaints(serving!)).toEqual([]);
  });

  it('restore --latest into the dropped database (the fingerprint as seeded), verify', async () => {
    const m = ready();
    await m.sql(`DROP DATABASE ${database}`);
    const r = await exec(pod, 'restore', '--latest');
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ database, backup: { id: first } });
    expect(await mariaFingerprint(m, database)).toEqual(seededMaria);
    await expectVerified(pod);
    expect(await complaints(serving!)).toEqual([]);
  });

  it('no secret appears in any log line, CLI output (table and JSON), manifest, status, Event, object or metric', async () => {
    const m = ready();
    await recordOutputs(pod, serving!, name, className);
    expect(outputs.slice(since).map((o) => o.source)).toEqual(expect.arrayContaining([`manifest pvc ${first}`, `manifest s3 ${s3Dir(first, name)}manifest.json`, 'runner log', 'controller log']));
    expectNoSecrets(m.password, since);
  });
});
