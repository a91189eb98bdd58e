/**
 * The controller's thin adapter around @kubernetes/client-node: caches fed
 * by list+watch (restarted with backoff when a watch fails), server-side
 * apply with one field manager, status merge patches and Events. Every call
 * is counted in dbbackup_controller_api_requests_total.
 *
 * What client-node 1.4's ListWatch does on its own: a watch the server ends
 * cleanly (its timeoutSeconds, an API-server restart) is watched again at
 * once from the last resourceVersion (410 Gone: listed again); a watch or
 * list that fails is not retried, it reports 'error' (retried here, with
 * backoff). Nothing in it notices a connection that went silent (no 'close',
 * no 'error': a peer gone without a FIN or RST) and its requests have no
 * timeout; so each cache bounds its requests (WatchTimings), which turns a
 * dead connection into a counted failure that is retried, and reports its
 * health (failing since when, and why) for /healthz.
 */
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  Watch,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { ListWatch } from '@kubernetes/client-node';
import type { Agent } from 'node:http';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/crds/common.js';
import { statusBody } from '../api/errors.js';
import { fromKubeError, isControllerError, kubeStatus } from './errors.js';
import type { CacheHealth } from './health.js';
import type { ControllerMetrics } from './metrics.js';
import { FIELD_MANAGER, MANAGED_SELECTOR } from './names.js';

/** The API resources of the kinds the controller reads or writes one by one (the plural, as list and watch name them). */
const RESOURCES: Readonly<Record<string, string>> = {
  Deployment: 'deployments',
  Secret: 'secrets',
  PersistentVolumeClaim: 'persistentvolumeclaims',
  Service: 'services',
  ServiceAccount: 'serviceaccounts',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  Event: 'events',
  DatabaseBackup: 'databasebackups',
  DatabaseBackupStorageClass: 'databasebackupstorageclasses',
  DatabaseBackupEngine: 'databasebackupengines',
};

/**
 * The `resource` label of a request on an object of `kind`: the plural resource name, as for list and
 * watch (a kind not in the table: its lowercase name plus "s", the API server's default plural).
 */
export function resourceOf(kind: string): string {
  return RESOURCES[kind] ?? `${kind.toLowerCase()}s`;
}

/** Field manager of the dry-run probes (never stored: dry runs write nothing). */
const PROBE_FIELD_MANAGER = 'db-backup-controller-probe';

/** The HTTP status of a failed call as a metric label, `error` when no response came. */
function errorCode(err: unknown): string {
  const code = kubeStatus(err) ?? watchStatus(err);
  return code === undefined ? 'error' : String(code);
}

/** client-node's Watch fails a non-200 answer with a plain Error carrying `statusCode`. */
function watchStatus(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown } | null | undefined)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** A failed list or watch in one line: the Status message of an API error, else the error's message. */
export function failureText(err: unknown): string {
  if (err instanceof ApiException) {
    const message = statusBody(err.body)?.message;
    return message ? `HTTP ${err.code}: ${message}` : `HTTP ${err.code}`;
  }
  const message = err instanceof Error ? err.message : String(err);
  const status = watchStatus(err);
  return (status === undefined ? message : `HTTP ${status}: ${message}`).slice(0, 500);
}

/** How a cache bounds its requests, so that a hung connection becomes a failure (counted, retried). */
export interface WatchTimings {
  /**
   * Asked of the API server for each watch (timeoutSeconds), times 1 to 2 at random as client-go's
   * reflector does; the server then ends the watch and the ListWatch watches again. Default 300.
   */
  timeoutSeconds: number;
  /** A watch still open this long after its timeoutSeconds is taken for a dead connection: aborted and counted as a failure. Default 30 s. */
  graceMs: number;
  /** Limit on a watch's connect up to the response headers, and on a whole list. Default 60 s. */
  requestTimeoutMs: number;
}

export const DEFAULT_WATCH_TIMINGS: WatchTimings = { timeoutSeconds: 300, graceMs: 30_000, requestTimeoutMs: 60_000 };

/** Rejects when `p` has not settled within `ms` (`p` itself runs on; its result is dropped). */
function withTimeout<R>(p: Promise<R>, ms: number, what: string): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/**
 * A view of `kc` whose fetch options carry node-fetch's `timeout`: from the socket to the response headers,
 * not the body (a watch's stream is not cut by it). client-node's Watch sets no timeout of its own (the
 * 30 s AbortSignal it builds is overwritten on the next line) and only enables TCP keep-alive probes.
 */
function withFetchTimeout(kc: KubeConfig, timeoutMs: number): KubeConfig {
  const view = Object.create(kc) as KubeConfig;
  view.applyToFetchOptions = async (opts) => ({ ...(await kc.applyToFetchOptions(opts)), timeout: timeoutMs });
  return view;
}

interface WatchHooks {
  /** The API server answered 200: the watch runs. */
  established(): void;
  /** The watch failed before it was established. */
  refused(err: unknown): void;
}

/**
 * client-node's Watch, asking the server to end each watch after timeoutSeconds and aborting one that is
 * still open `graceMs` later (the server's end never arrived: the connection is dead). The abort reaches
 * the ListWatch as an 'error' naming the stall.
 */
class GuardedWatch extends Watch {
  constructor(
    config: KubeConfig,
    private readonly timings: WatchTimings,
    private readonly hooks: WatchHooks,
  ) {
    super(config);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const timeoutSeconds = Math.round(this.timings.timeoutSeconds * (1 + Math.random()));
    let ended = false;
    let failure: unknown;
    let stalled = false;
    const stall: { timer?: NodeJS.Timeout } = {};
    const end = (err: unknown) => {
      ended = true;
      failure = err;
      clearTimeout(stall.timer);
      const limitS = timeoutSeconds + this.timings.graceMs / 1000;
      done(stalled ? new Error(`the watch was not ended ${limitS} s after it started (asked: ${timeoutSeconds} s): the connection is presumed dead`) : err);
    };
    const controller = await super.watch(path, { ...queryParams, timeoutSeconds }, callback, end);
    // Watch calls done before it returns when the request failed; otherwise the response was 200.
    if (ended) {
      this.hooks.refused(failure);
      return controller;
    }
    this.hooks.established();
    stall.timer = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, timeoutSeconds * 1000 + this.timings.graceMs);
    stall.timer.unref();
    return controller;
  }
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Drops what the controller never reads from a cached object: managedFields (about 40% of a cached object's
 * JSON at 1,000 DatabaseBackups) and kubectl's last-applied copy of the object.
 */
export function slim(o: KubernetesObject, keepManagedFields = false): void {
  const meta = o.metadata;
  if (!meta) return;
  if (!keepManagedFields) delete meta.managedFields;
  if (meta.annotations && LAST_APPLIED in meta.annotations) delete meta.annotations[LAST_APPLIED];
}

/**
 * Gives each item of a list the apiVersion and kind of the list (`DeploymentList` -> `Deployment`). The
 * API server's list answers carry neither on the items; a watch event's object carries both. Without this a
 * process that read its objects by the initial list (a restart) would find every owned object different
 * from what it renders (apiVersion, kind) and re-apply it on every resync.
 */
export function stampListKind<T extends KubernetesObject>(list: KubernetesListObject<T>, known: { apiVersion?: string; kind?: string } = {}): void {
  const apiVersion = known.apiVersion ?? list.apiVersion;
  const kind = known.kind ?? (list.kind?.endsWith('List') ? list.kind.slice(0, -'List'.length) : undefined);
  for (const o of list.items) {
    if (!o.apiVersion && apiVersion) o.apiVersion = apiVersion;
    if (!o.kind && kind) o.kind = kind;
  }
}

export type Handler<T> = (obj: T, kind: 'add' | 'update' | 'delete', old?: T) => void;

/** A cache of one resource, kept current by a watch. */
export interface Cache<T extends KubernetesObject> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  synced(): boolean;
  /** Whether its list+watch is up, or failing since when and why. */
  health(): CacheHealth;
}

interface Source<T extends KubernetesObject> {
  resource: string;
  /** The apiVersion and kind of its objects (given to listed objects, which carry neither). */
  apiVersion?: string;
  kind?: string;
  path: string;
  labelSelector?: string;
  list: () => Promise<KubernetesListObject<T>>;
  /** Keep metadata.managedFields in the cache (engines: whose an object is, controller/shipped-engines.ts). */
  keepManagedFields?: boolean;
}

class WatchedCache<T extends KubernetesObject> implements Cache<T> {
  private readonly lw: ListWatch<T>;
  private hasSynced = false;
  private stopped = false;
  /** Consecutive failures; reset when a watch is established (a list alone does not prove the watch works). */
  private failures = 0;
  private failingSince: Date | undefined;
  private lastError: string | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly previous = new Map<string, T>();
  private listOk = false;
  private markListed!: () => void;
  /** Resolves when the first list has succeeded (a failed list is retried with backoff). */
  readonly listed = new Promise<void>((resolve) => (this.markListed = resolve));

  constructor(
    watchConfig: KubeConfig,
    timings: WatchTimings,
    private readonly source: Source<T>,
    private readonly onEvent: Handler<T>,
    private readonly logger: Logger,
    private readonly count: (verb: string, resource: string, code: string) => void,
  ) {
    const listFn = async () => {
      try {
        const list = await withTimeout(source.list(), timings.requestTimeoutMs, `list ${source.resource}`);
        count('list', source.resource, '200');
        for (const o of list.items) slim(o, source.keepManagedFields);
        stampListKind(list, { apiVersion: source.apiVersion, kind: source.kind });
        this.listOk = true;
        return list;
      } catch (err) {
        count('list', source.resource, errorCode(err));
        throw err;
      }
    };
    const watch = new GuardedWatch(watchConfig, timings, {
      established: () => {
        count('watch', source.resource, '200');
        this.recovered();
      },
      refused: (err) => count('watch', source.resource, errorCode(err)),
    });
    this.lw = new ListWatch<T>(source.path, watch, listFn, false, source.labelSelector);
    const key = (o: T) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    this.lw.on('add', (o) => {
      slim(o, source.keepManagedFields);
      this.previous.set(key(o), o);
      this.onEvent(o, 'add');
    });
    this.lw.on('update', (o) => {
      slim(o, source.keepManagedFields);
      const old = this.previous.get(key(o));
      this.previous.set(key(o), o);
      this.onEvent(o, 'update', old);
    });
    this.lw.on('delete', (o) => {
      this.previous.delete(key(o));
      this.onEvent(o, 'delete');
    });
    this.lw.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.failures++;
      this.failingSince ??= new Date();
      this.lastError = failureText(err);
      const delay = Math.min(500 * 2 ** (this.failures - 1), 30_000);
      this.logger.warn(
        { resource: source.resource, err: this.lastError, failures: this.failures, failingSince: this.failingSince.toISOString(), retryInMs: delay },
        'list or watch failed; retrying',
      );
      this.retry = setTimeout(() => void this.attempt().catch(() => undefined), delay);
      this.retry.unref();
    });
  }

  private recovered(): void {
    if (this.failingSince) this.logger.info({ resource: this.source.resource, failures: this.failures, failingSince: this.failingSince.toISOString() }, 'watching again');
    this.failures = 0;
    this.failingSince = undefined;
    this.lastError = undefined;
  }

  health(): CacheHealth {
    return {
      resource: this.source.resource,
      failures: this.failures,
      ...(this.failingSince ? { failingSince: this.failingSince } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** Lists and starts watching; resolves once the first list succeeded (failures are logged and retried). */
  async start(): Promise<void> {
    await this.attempt();
    await this.listed;
    this.hasSynced = true;
  }

  /** One list+watch start; the ListWatch has stored the list when its start() returns. */
  private async attempt(): Promise<void> {
    if (this.stopped) return;
    await this.lw.start();
    if (this.listOk) this.markListed();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.lw.stop();
  }

  synced(): boolean {
    return this.hasSynced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }
}

type AgentFactory = (cluster: unknown, options: Record<string, unknown>) => Agent;

/**
 * A view of `kc` whose requests share keep-alive agents. client-node 1.4 makes a new https.Agent for every
 * request, i.e. a TCP and TLS handshake each; at 1,000 DatabaseBackups sharing connections halves the time
 * to converge (docs/benchmarks.md). One agent per distinct TLS material (CA, client certificate), so a
 * rotated client certificate gets a new agent; bearer tokens are headers and do not matter here.
 */
export function keepAliveConfig(kc: KubeConfig): { config: KubeConfig; close(): void } {
  const view = Object.create(kc) as KubeConfig;
  const create = (kc as unknown as { createAgent: AgentFactory }).createAgent.bind(kc);
  const agents = new Map<string, Agent>();
  (view as unknown as { createAgent: AgentFactory }).createAgent = (cluster, options) => {
    const key = JSON.stringify([options.ca, options.cert, options.key, options.pfx, options.rejectUnauthorized, options.servername].map((v) => (Buffer.isBuffer(v) ? v.toString('base64') : v)));
    let agent = agents.get(key);
    if (!agent) {
      agent = create(cluster, { ...options, keepAlive: true });
      agents.set(key, agent);
    }
    return agent;
  };
  return {
    config: view,
    close: () => {
      for (const a of agents.values()) a.destroy();
      agents.clear();
    },
  };
}

export interface KubeAdapterOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  metrics?: ControllerMetrics;
  /** Bounds of the caches' requests; default DEFAULT_WATCH_TIMINGS (tests shorten them). */
  watchTimings?: Partial<WatchTimings>;
}

export class KubeAdapter {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly rbac: RbacAuthorizationV1Api;
  readonly custom: CustomObjectsApi;
  private readonly objects: KubernetesObjectApi;
  private readonly watchConfig: KubeConfig;
  private readonly watchTimings: WatchTimings;
  private readonly caches: WatchedCache<KubernetesObject>[] = [];
  private readonly closeAgents: () => void;

  constructor(private readonly opts: KubeAdapterOptions) {
    const shared = keepAliveConfig(opts.kubeConfig);
    this.closeAgents = () => shared.close();
    const kc = shared.config;
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    // Watches keep the client's agent per request: stopping a watch destroys every socket of its agent.
    this.watchTimings = { ...DEFAULT_WATCH_TIMINGS, ...opts.watchTimings };
    this.watchConfig = withFetchTimeout(opts.kubeConfig, this.watchTimings.requestTimeoutMs);
  }

  count(verb: string, resource: string, code: string): void {
    this.opts.metrics?.apiRequestsTotal.inc({ verb, resource, code });
  }

  private async call<R>(verb: string, resource: string, what: string, fn: () => Promise<R>): Promise<R> {
    try {
      const r = await fn();
      this.count(verb, resource, '200');
      return r;
    } catch (err) {
      this.count(verb, resource, errorCode(err));
      throw fromKubeError(err, what);
    }
  }

  /** A cache of `source`, calling `onEvent` for each change; not started yet. */
  cache<T extends KubernetesObject>(source: Source<T>, onEvent: Handler<T>): Cache<T> & { start(): Promise<void> } {
    const c = new WatchedCache<T>(this.watchConfig, this.watchTimings, source, onEvent, this.opts.logger, (v, r, code) => this.count(v, r, code));
    this.caches.push(c as unknown as WatchedCache<KubernetesObject>);
    return c;
  }

  async stop(): Promise<void> {
    await Promise.all(this.caches.map((c) => c.stop()));
    this.closeAgents();
  }

  /** Server-side apply with the controller's field manager; takes ownership of conflicting fields. */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    const m = obj.metadata!;
    return this.call('patch', resourceOf(obj.kind!), `apply ${obj.kind} ${m.namespace}/${m.name}`, () =>
      this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    );
  }

  /** Creates `obj` (POST): fails with KUBE_CONFLICT when an object of that name exists, which is never taken over. */
  async create<T extends KubernetesObject>(obj: T): Promise<T> {
    const m = obj.metadata!;
    return this.call('create', resourceOf(obj.kind!), `create ${obj.kind} ${m.namespace ?? ''}/${m.name}`, () => this.objects.create(obj, undefined, undefined, FIELD_MANAGER));
  }

  /** The object named like `obj` as stored, or undefined when there is none. */
  async read<T extends KubernetesObject>(obj: T): Promise<T | undefined> {
    const m = obj.metadata!;
    const header = { apiVersion: obj.apiVersion!, kind: obj.kind!, metadata: { name: m.name!, namespace: m.namespace! } };
    try {
      return await this.call('get', resourceOf(obj.kind!), `get ${obj.kind} ${m.namespace}/${m.name}`, () => this.objects.read<T>(header));
    } catch (err) {
      if (isControllerError(err, 'KUBE_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  /**
   * Deletes an object (dependents in the background); false when it was already gone. With `uid`
   * the API server deletes only that object, never another one created under the same name since.
   */
  async delete(obj: KubernetesObject, uid?: string): Promise<boolean> {
    const m = obj.metadata!;
    try {
      await this.call('delete', resourceOf(obj.kind!), `delete ${obj.kind} ${m.namespace}/${m.name}`, () =>
        this.objects.delete(obj, undefined, undefined, undefined, undefined, 'Background', uid ? { preconditions: { uid } } : undefined),
      );
      return true;
    } catch (err) {
      if (isControllerError(err, 'KUBE_NOT_FOUND')) return false;
      throw err;
    }
  }

  /**
   * Whether an object named like `obj` exists, and the uids of its owners, for a kind the controller may
   * write but not read (runner Secrets): a dry-run server-side apply of the bare name, by a field manager
   * of its own, changes nothing and answers with the stored object (its resourceVersion is empty when
   * there is none).
   */
  async probe(obj: KubernetesObject): Promise<{ exists: boolean; ownerUids: string[]; managedFields: NonNullable<KubernetesObject['metadata']>['managedFields'] }> {
    const m = obj.metadata!;
    const bare: KubernetesObject = { apiVersion: obj.apiVersion!, kind: obj.kind!, metadata: { name: m.name!, namespace: m.namespace! } };
    const r = await this.call('patch', resourceOf(obj.kind!), `probe ${obj.kind} ${m.namespace}/${m.name}`, () =>
      this.objects.patch(bare, undefined, 'All', PROBE_FIELD_MANAGER, false, PatchStrategy.ServerSideApply),
    );
    return { exists: Boolean(r.metadata?.resourceVersion), ownerUids: (r.metadata?.ownerReferences ?? []).map((o) => o.uid), managedFields: r.metadata?.managedFields };
  }

  /**
   * Whether a Secret exists, for a namespace whose Secrets the controller may not read: a dry-run JSON
   * patch whose only operation, a test that the name is empty, always fails. The API server answers 404
   * for a Secret that does not exist and 422 for one that does; neither answer holds the Secret's data,
   * and a dry run stores nothing. Any other answer (403, 5xx) is an error.
   */
  async secretExists(namespace: string, name: string): Promise<boolean> {
    try {
      await this.call('patch', 'secrets', `test whether Secret ${namespace}/${name} exists`, () =>
        this.core.patchNamespacedSecret(
          { namespace, name, body: [{ op: 'test', path: '/metadata/name', value: '' }], dryRun: 'All', fieldManager: PROBE_FIELD_MANAGER },
          setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
        ),
      );
    } catch (err) {
      if (isControllerError(err, 'KUBE_NOT_FOUND')) return false;
      if (isControllerError(err, 'KUBE_REQUEST_FAILED') && err.details.status === 422) return true;
      throw err;
    }
    // Only a Secret named "" could pass the test, and no such Secret can exist.
    return true;
  }

  /** Merge-patches the status subresource of a DatabaseBackup (only the fields given). */
  async patchBackupStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void> {
    await this.call('patch', 'databasebackups/status', `patch status of DatabaseBackup ${namespace}/${name}`, () =>
      this.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace, plural: 'databasebackups', name, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /** Merge-patches the status subresource of a cluster-scoped resource of ours (a storage class, an engine). */
  async patchClusterStatus(kind: 'DatabaseBackupStorageClass' | 'DatabaseBackupEngine', name: string, status: Record<string, unknown>): Promise<void> {
    const plural = resourceOf(kind);
    await this.call('patch', `${plural}/status`, `patch status of ${kind} ${name}`, () =>
      this.custom.patchClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural, name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );
  }

  async createEvent(event: CoreV1Event): Promise<void> {
    const ns = event.metadata.namespace ?? 'default';
    await this.call('create', 'events', `create Event in ${ns}`, () => this.core.createNamespacedEvent({ namespace: ns, body: event }));
  }

  /** Sources the controller watches. */
  sources(controllerNamespace: string) {
    const managed = MANAGED_SELECTOR;
    const custom = (plural: string) => () =>
      this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural }) as Promise<KubernetesListObject<KubernetesObject>>;
    return {
      backups: { resource: 'databasebackups', path: `/apis/${GROUP}/${VERSION}/databasebackups`, list: custom('databasebackups') },
      classes: { resource: 'databasebackupstorageclasses', path: `/apis/${GROUP}/${VERSION}/databasebackupstorageclasses`, list: custom('databasebackupstorageclasses') },
      engines: { resource: 'databasebackupengines', path: `/apis/${GROUP}/${VERSION}/databasebackupengines`, list: custom('databasebackupengines'), keepManagedFields: true },
      secrets: { resource: 'secrets', apiVersion: 'v1', kind: 'Secret', path: `/api/v1/namespaces/${controllerNamespace}/secrets`, list: () => this.core.listNamespacedSecret({ namespace: controllerNamespace }) },
      // Only whether a claim exists is read (a runner mounting a missing one is reported as ClaimNotFound).
      claims: {
        resource: 'persistentvolumeclaims',
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        path: '/api/v1/persistentvolumeclaims',
        list: () => this.core.listPersistentVolumeClaimForAllNamespaces(),
      },
      deployments: {
        resource: 'deployments',
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        path: '/apis/apps/v1/deployments',
        labelSelector: managed,
        list: () => this.apps.listDeploymentForAllNamespaces({ labelSelector: managed }),
      },
      services: { resource: 'services', apiVersion: 'v1', kind: 'Service', path: '/api/v1/services', labelSelector: managed, list: () => this.core.listServiceForAllNamespaces({ labelSelector: managed }) },
      serviceAccounts: {
        resource: 'serviceaccounts',
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        path: '/api/v1/serviceaccounts',
        labelSelector: managed,
        list: () => this.core.listServiceAccountForAllNamespaces({ labelSelector: managed }),
      },
      roles: {
        resource: 'roles',
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        path: '/apis/rbac.authorization.k8s.io/v1/roles',
        labelSelector: managed,
        list: () => this.rbac.listRoleForAllNamespaces({ labelSelector: managed }),
      },
      roleBindings: {
        resource: 'rolebindings',
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        path: '/apis/rbac.authorization.k8s.io/v1/rolebindings',
        labelSelector: managed,
        list: () => this.rbac.listRoleBindingForAllNamespaces({ labelSelector: managed }),
      },
    } satisfies Record<string, Source<KubernetesObject>>;
  }
}
