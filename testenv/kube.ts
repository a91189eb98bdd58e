/**
 * Starts a real, throwaway Kubernetes control plane for tests: Debian's etcd,
 * kube-apiserver 1.20 and (optionally) kube-controller-manager, built once by
 * `bash testenv/kube/build.sh` and cached.
 *
 * Invariants:
 * - Each instance owns one temp directory (etcd data, certificates, keys,
 *   token file, kubeconfigs, logs) and its own loopback ports; instances
 *   never share anything, so several can run at once.
 * - Authentication is by static bearer tokens (--token-auth-file, read once
 *   at start: every user must be named in `startKube({ users })`) and by
 *   real ServiceAccount tokens (TokenRequest API). Authorization is RBAC
 *   only, so `kubectl auth can-i` answers as a production cluster would.
 * - No scheduler and no kubelet run: Pods are created but stay Pending.
 * - With `audit: true` the API server writes every request's metadata (user,
 *   verb, resource, response code; no bodies) to audit.log in the temp dir.
 * - `stop()` is idempotent and removes the temp directory (kept with
 *   KUBE_TESTENV_KEEP=1, for reading the logs); daemons still running when
 *   the process exits are killed, and their temp directories removed, on exit.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  apiserverArgs,
  controllerManagerArgs,
  etcdArgs,
  kubeconfig,
  tokenFile,
  type KubeUser,
} from './kube/plan.js';
import { exec, freePort, httpStatus, httpsStatus, lostPortRace, removeOnExit, startDaemon, waitUntil, type Daemon, type ExecResult } from './kube/process.js';

export { DEFAULT_CONTROLLERS, serviceAccountUser, type KubeUser } from './kube/plan.js';
export type { ExecResult } from './kube/process.js';

const ETCD = '/usr/bin/etcd';
const KUBECTL_CANDIDATES = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'];

export function kubeCacheDir(): string {
  return process.env.KUBE_CACHE ?? join(homedir(), '.cache', 'db-backup-controller', 'kube');
}

export const BUILD_HINT =
  'Build them once with `bash testenv/kube/build.sh` (as root: it installs golang-go, etcd-server and a few more Debian packages when missing; ' +
  'about 12 minutes cold on 2 cores, then cached under $KUBE_CACHE or ~/.cache/db-backup-controller/kube; a second run returns at once).';

export interface KubeBinaries {
  apiserver: string;
  controllerManager: string;
  etcd: string;
  kubectl: string;
}

/** Paths of the four binaries. Throws with the build or install hint when one is missing. */
export function kubeBinaries(): KubeBinaries {
  const bin = join(kubeCacheDir(), 'bin');
  const apiserver = join(bin, 'kube-apiserver');
  const controllerManager = join(bin, 'kube-controller-manager');
  if (!existsSync(apiserver) || !existsSync(controllerManager)) {
    throw new Error(`kube-apiserver and kube-controller-manager were not found in ${bin}. ${BUILD_HINT}`);
  }
  if (!existsSync(ETCD)) throw new Error(`${ETCD} was not found. Install it with \`apt-get install -y etcd-server\` (build.sh does too).`);
  const kubectl = KUBECTL_CANDIDATES.find((p) => existsSync(p));
  if (!kubectl) throw new Error('kubectl was not found. Install it with `apt-get install -y kubernetes-client`.');
  return { apiserver, controllerManager, etcd: ETCD, kubectl };
}

export interface StartKubeOptions {
  /** Start kube-controller-manager (garbage collection, Deployments, ServiceAccount tokens). Default true. */
  controllerManager?: boolean;
  /** Controllers to run; default DEFAULT_CONTROLLERS. */
  controllers?: string[];
  /** Extra static-token users; their tokens are in `tokens[name]`. See serviceAccountUser(). */
  users?: KubeUser[];
  /** Extra kube-apiserver flags, e.g. ['--feature-gates=...']. */
  apiserverArgs?: string[];
  controllerManagerArgs?: string[];
  /** How long to wait for each component to become ready. Default 90 s. */
  readyTimeoutMs?: number;
  /** Keep the temp dir (logs, etcd data, kubeconfigs) after stop() or a failed start. Default: KUBE_TESTENV_KEEP=1 in the environment. */
  keepDir?: boolean;
  /**
   * Record every request in an audit log (audit.log in the temp dir, level Metadata: who, verb, resource,
   * response code; never a request or response body), read with auditEvents(). Default false.
   */
  audit?: boolean;
}

/** One line of the audit log (the fields the tests read; see audit.k8s.io/v1 Event). */
export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  objectRef?: { resource?: string; subresource?: string; apiGroup?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
}

/** Metadata of every request once it completed; nothing of the bodies (Secrets stay out of the log). */
export const AUDIT_POLICY = 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n';

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `apply -f -`). */
  input?: string;
  /** Authenticate with this bearer token instead of the admin's. */
  token?: string;
  timeoutMs?: number;
}

export interface KubeInstance {
  /** https://127.0.0.1:<port> */
  server: string;
  /** Bearer token of `admin` (group system:masters). */
  adminToken: string;
  /** Admin kubeconfig (verifies the server against caFile). */
  kubeconfigPath: string;
  /** CA bundle that verifies the API server's certificate. */
  caFile: string;
  /** Static tokens of the extra users, by user name. */
  tokens: Record<string, string>;
  /** The instance's temp directory; logs are etcd.log, kube-apiserver.log, kube-controller-manager.log in it. */
  dir: string;
  /** The audit log's path when started with `audit: true`. */
  auditLogPath?: string;
  /** Every event of the audit log so far (started with `audit: true`; throws otherwise). */
  auditEvents(): Promise<AuditEvent[]>;
  /** Milliseconds each component took to become ready. */
  startupMs: { etcd: number; apiserver: number; controllerManager?: number };
  /** Runs /usr/bin/kubectl against this cluster (as admin unless opts.token); never throws on a non-zero exit. */
  kubectl: (args: string[], opts?: KubectlOptions) => Promise<ExecResult>;
  /** Like kubectl() but throws on a non-zero exit, and returns stdout. */
  kubectlOk: (args: string[], opts?: KubectlOptions) => Promise<string>;
  /** Writes a kubeconfig for a bearer token (e.g. to start a controller as a given user) and returns its path. */
  writeKubeconfig(token: string, userName?: string): Promise<string>;
  /**
   * A real, signed token of a ServiceAccount from the TokenRequest API (`kubectl create token`,
   * as in clusters >= 1.24). Waits up to 30 s for the ServiceAccount to exist (the controller-manager
   * creates each namespace's `default`).
   */
  serviceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** Stops the controller-manager, the API server and etcd, and deletes the temp directory. Idempotent. */
  stop(): Promise<void>;
}

interface Started {
  dir: string;
  keep: boolean;
  daemons: Daemon[];
  forgetDir: () => void;
  startupMs: { etcd: number; apiserver: number; controllerManager?: number };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - t0)];
}

/** Starts etcd, kube-apiserver and (by default) kube-controller-manager on free loopback ports and waits until all are ready. */
export async function startKube(opts: StartKubeOptions = {}): Promise<KubeInstance> {
  const bins = kubeBinaries();
  const timeout = opts.readyTimeoutMs ?? 90_000;
  const dir = await mkdtemp(join(tmpdir(), 'kubetest-'));
  const keep = opts.keepDir ?? process.env.KUBE_TESTENV_KEEP === '1';
  const started: Started = { dir, keep, daemons: [], forgetDir: keep ? () => undefined : removeOnExit(dir), startupMs: { etcd: 0, apiserver: 0 } };
  try {
    const files = await writeStaticFiles(dir, opts.users ?? []);
    if (opts.audit) await writeFile(join(dir, 'audit-policy.yaml'), AUDIT_POLICY);
    const [etcdUrl, etcdMs] = await timed(() => startEtcd(bins, started, timeout));
    started.startupMs.etcd = etcdMs;
    const [server, apiserverMs] = await timed(() => startApiserver(bins, started, etcdUrl, files, opts, timeout));
    started.startupMs.apiserver = apiserverMs;
    const caFile = join(dir, 'apiserver-certs', 'apiserver.crt');
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    await writeFile(adminKubeconfig, kubeconfig({ server, caFile, userName: 'admin', token: files.adminToken }), { mode: 0o600 });
    if (opts.controllerManager ?? true) {
      const [, cmMs] = await timed(() => startControllerManager(bins, started, adminKubeconfig, caFile, files, opts, timeout));
      started.startupMs.controllerManager = cmMs;
    }
    return makeInstance(bins, started, { server, caFile, adminKubeconfig, adminToken: files.adminToken, tokens: files.tokens, audit: opts.audit ?? false });
  } catch (err) {
    await stopAll(started);
    if (err instanceof Error) {
      err.message += keep ? `\n(temp dir kept: ${dir})` : '\n(set KUBE_TESTENV_KEEP=1 to keep the temp dir with all logs)';
    }
    throw err;
  }
}

interface StaticFiles {
  adminToken: string;
  tokens: Record<string, string>;
  tokenFile: string;
  saPublicKey: string;
  saPrivateKey: string;
}

async function writeStaticFiles(dir: string, users: KubeUser[]): Promise<StaticFiles> {
  const token = (): string => randomBytes(24).toString('hex');
  const adminToken = token();
  const tokens: Record<string, string> = {};
  for (const u of users) {
    if (u.name === 'admin' || u.name in tokens) throw new Error(`startKube: user ${u.name} is named twice (admin is built in)`);
    tokens[u.name] = token();
  }
  const entries = [{ token: adminToken, user: { name: 'admin', uid: 'admin', groups: ['system:masters'] } }, ...users.map((user) => ({ token: tokens[user.name]!, user }))];
  const tokenPath = join(dir, 'tokens.csv');
  await writeFile(tokenPath, tokenFile(entries), { mode: 0o600 });
  const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  const saPublicKey = join(dir, 'sa.pub');
  const saPrivateKey = join(dir, 'sa.key');
  await writeFile(saPublicKey, publicKey);
  await writeFile(saPrivateKey, privateKey, { mode: 0o600 });
  return { adminToken, tokens, tokenFile: tokenPath, saPublicKey, saPrivateKey };
}

/**
 * Starts a daemon on freshly chosen ports; when another process took a port
 * between choosing and binding, tries again with new ones.
 */
async function startOnFreePorts(
  started: Started,
  launch: (ports: number[]) => { daemon: Daemon; ready: () => Promise<void> },
  portCount: number,
): Promise<number[]> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    while (ports.length < portCount) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const { daemon, ready } = launch(ports);
    started.daemons.push(daemon);
    try {
      await ready();
      return ports;
    } catch (err) {
      await daemon.stop();
      started.daemons.pop();
      if (attempt >= 3 || !lostPortRace(daemon)) throw err;
    }
  }
}

async function startEtcd(bins: KubeBinaries, started: Started, timeout: number): Promise<string> {
  const dataDir = join(started.dir, 'etcd');
  const [clientPort] = await startOnFreePorts(
    started,
    ([client, peer]) => {
      const daemon = startDaemon('etcd', bins.etcd, etcdArgs({ name: 'testenv', dataDir, clientPort: client!, peerPort: peer! }), join(started.dir, 'etcd.log'));
      return { daemon, ready: () => waitUntil(daemon, 'healthy', async () => (await httpStatus(`http://127.0.0.1:${client}/health`)) === 200, timeout) };
    },
    2,
  );
  return `http://127.0.0.1:${clientPort}`;
}

/** kube-apiserver flags of the audit log (written by writeStaticFiles' caller before start). */
function auditArgs(dir: string): string[] {
  return [`--audit-policy-file=${join(dir, 'audit-policy.yaml')}`, `--audit-log-path=${join(dir, 'audit.log')}`, '--audit-log-format=json', '--audit-log-mode=blocking'];
}

async function startApiserver(bins: KubeBinaries, started: Started, etcdUrl: string, files: StaticFiles, opts: StartKubeOptions, timeout: number): Promise<string> {
  const certDir = join(started.dir, 'apiserver-certs');
  await mkdir(certDir);
  const [port] = await startOnFreePorts(
    started,
    ([securePort]) => {
      const args = apiserverArgs({
        etcdUrl,
        securePort: securePort!,
        certDir,
        serviceAccountPublicKey: files.saPublicKey,
        serviceAccountPrivateKey: files.saPrivateKey,
        tokenFile: files.tokenFile,
        extraArgs: [...(opts.audit ? auditArgs(started.dir) : []), ...(opts.apiserverArgs ?? [])],
      });
      const daemon = startDaemon('kube-apiserver', bins.apiserver, args, join(started.dir, 'kube-apiserver.log'));
      const readyz = `https://127.0.0.1:${securePort}/readyz`;
      return { daemon, ready: () => waitUntil(daemon, 'ready', async () => (await httpsStatus(readyz, files.adminToken)) === 200, timeout) };
    },
    1,
  );
  return `https://127.0.0.1:${port}`;
}

async function startControllerManager(
  bins: KubeBinaries,
  started: Started,
  adminKubeconfig: string,
  caFile: string,
  files: StaticFiles,
  opts: StartKubeOptions,
  timeout: number,
): Promise<void> {
  const certDir = join(started.dir, 'controller-manager-certs');
  await mkdir(certDir);
  await startOnFreePorts(
    started,
    ([securePort]) => {
      const args = controllerManagerArgs({
        kubeconfig: adminKubeconfig,
        securePort: securePort!,
        certDir,
        serviceAccountPrivateKey: files.saPrivateKey,
        rootCaFile: caFile,
        controllers: opts.controllers,
        extraArgs: opts.controllerManagerArgs,
      });
      const daemon = startDaemon('kube-controller-manager', bins.controllerManager, args, join(started.dir, 'kube-controller-manager.log'));
      const healthz = `https://127.0.0.1:${securePort}/healthz`;
      return { daemon, ready: () => waitUntil(daemon, 'healthy', async () => (await httpsStatus(healthz)) === 200, timeout) };
    },
    1,
  );
}

/** Stops the daemons newest first (controller-manager, apiserver, etcd) and removes the temp directory unless kept. */
async function stopAll(started: Started): Promise<void> {
  for (const d of [...started.daemons].reverse()) await d.stop();
  started.daemons.length = 0;
  if (!started.keep) await rm(started.dir, { recursive: true, force: true });
  started.forgetDir();
}

function makeInstance(
  bins: KubeBinaries,
  started: Started,
  p: { server: string; caFile: string; adminKubeconfig: string; adminToken: string; tokens: Record<string, string>; audit: boolean },
): KubeInstance {
  const auditLogPath = p.audit ? join(started.dir, 'audit.log') : undefined;
  let stopped: Promise<void> | undefined;
  let kubeconfigs = 0;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.KUBECONFIG;
  const kubectl = (args: string[], o: KubectlOptions = {}): Promise<ExecResult> => {
    const auth = o.token === undefined ? [] : [`--token=${o.token}`];
    const base = [`--kubeconfig=${p.adminKubeconfig}`, `--cache-dir=${join(started.dir, 'kubectl-cache')}`, ...auth];
    return exec(bins.kubectl, [...base, ...args], { env, input: o.input, timeoutMs: o.timeoutMs });
  };
  const kubectlOk = async (args: string[], o: KubectlOptions = {}): Promise<string> => {
    const r = await kubectl(args, o);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  };
  return {
    server: p.server,
    adminToken: p.adminToken,
    kubeconfigPath: p.adminKubeconfig,
    caFile: p.caFile,
    tokens: p.tokens,
    dir: started.dir,
    startupMs: started.startupMs,
    ...(auditLogPath ? { auditLogPath } : {}),
    async auditEvents() {
      if (!auditLogPath) throw new Error('startKube was called without audit: true');
      const text = await readFile(auditLogPath, 'utf8');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as AuditEvent);
    },
    kubectl,
    kubectlOk,
    async writeKubeconfig(token, userName = 'user') {
      const path = join(started.dir, `user-${++kubeconfigs}.kubeconfig`);
      await writeFile(path, kubeconfig({ server: p.server, caFile: p.caFile, userName, token }), { mode: 0o600 });
      return path;
    },
    async serviceAccountToken(namespace, name, expirationSeconds = 3600) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = await kubectl(['create', 'token', name, '-n', namespace, `--duration=${expirationSeconds}s`]);
        if (r.code === 0) return r.stdout.trim();
        if (!/not ?found/i.test(r.stderr) || Date.now() > deadline) {
          throw new Error(`TokenRequest for ServiceAccount ${namespace}/${name} failed (exit ${r.code}): ${r.stderr.trim()}`);
        }
        await new Promise((res) => setTimeout(res, 250));
      }
    },
    stop() {
      stopped ??= stopAll(started);
      return stopped;
    },
  };
}
