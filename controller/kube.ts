/**
 * The controller's thin adapter around @kubernetes/client-node: caches fed
 * by list+watch (restarted with backoff when a watch fails), server-side
 * apply with one field manager, status merge patches and Events. Every call
 * is counted in dbbackup_controller_api_requests_total.
 */
import {
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
import { fromKubeError, kubeStatus } from './errors.js';
import type { ControllerMetrics } from './metrics.js';
import { FIELD_MANAGER, MANAGED_SELECTOR } from './names.js';

/** The HTTP status of a failed call as a metric label, `error` when no response came. */
function errorCode(err: unknown): string {
  const code = kubeStatus(err);
  return code === undefined ? 'error' : String(code);
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Drops what the controller never reads from a cached object: managedFields (about 40% of a cached object's
 * JSON at 1,000 DatabaseBackups) and kubectl's last-applied copy of the object.
 */
export function slim(o: KubernetesObject): void {
  const meta = o.metadata;
  if (!meta) return;
  delete meta.managedFields;
  if (meta.annotations && LAST_APPLIED in meta.annotations) delete meta.annotations[LAST_APPLIED];
}

export type Handler<T> = (obj: T, kind: 'add' | 'update' | 'delete', old?: T) => void;

/** A cache of one resource, kept current by a watch. */
export interface Cache<T extends KubernetesObject> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  synced(): boolean;
}

interface Source<T extends KubernetesObject> {
  resource: string;
  path: string;
  labelSelector?: string;
  list: () => Promise<KubernetesListObject<T>>;
}

class WatchedCache<T extends KubernetesObject> implements Cache<T> {
  private readonly lw: ListWatch<T>;
  private hasSynced = false;
  private stopped = false;
  private failures = 0;
  private readonly previous = new Map<string, T>();
  private listOk = false;
  private markListed!: () => void;
  /** Resolves when the first list has succeeded (a failed list is retried with backoff). */
  readonly listed = new Promise<void>((resolve) => (this.markListed = resolve));

  constructor(
    watch: Watch,
    private readonly source: Source<T>,
    private readonly onEvent: Handler<T>,
    private readonly logger: Logger,
    private readonly count: (verb: string, resource: string, code: string) => void,
  ) {
    const listFn = async () => {
      try {
        const list = await source.list();
        count('list', source.resource, '200');
        list.items.forEach(slim);
        this.listOk = true;
        return list;
      } catch (err) {
        count('list', source.resource, errorCode(err));
        throw err;
      }
    };
    this.lw = new ListWatch<T>(source.path, watch, listFn, false, source.labelSelector);
    const key = (o: T) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    this.lw.on('add', (o) => {
      slim(o);
      this.previous.set(key(o), o);
      this.onEvent(o, 'add');
    });
    this.lw.on('update', (o) => {
      slim(o);
      const old = this.previous.get(key(o));
      this.previous.set(key(o), o);
      this.onEvent(o, 'update', old);
    });
    this.lw.on('delete', (o) => {
      this.previous.delete(key(o));
      this.onEvent(o, 'delete');
    });
    this.lw.on('connect', () => {
      this.count('watch', source.resource, '200');
    });
    this.lw.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.failures++;
      const delay = Math.min(500 * 2 ** (this.failures - 1), 30_000);
      this.logger.warn({ resource: source.resource, err: fromKubeError(err, `watch ${source.resource}`).message, retryInMs: delay }, 'watch failed; listing again');
      const t = setTimeout(() => void this.attempt().catch(() => undefined), delay);
      t.unref();
    });
  }

  /** Lists and starts watching; resolves once the first list succeeded (failures are logged and retried). */
  async start(): Promise<void> {
    await this.attempt();
    await this.listed;
    this.hasSynced = true;
  }

  /** One list+watch start; the ListWatch has stored the list when its start() returns. */
  private async attempt(): Promise<void> {
    await this.lw.start();
    if (this.listOk) {
      this.failures = 0;
      this.markListed();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
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
}

export class KubeAdapter {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly rbac: RbacAuthorizationV1Api;
  readonly custom: CustomObjectsApi;
  private readonly objects: KubernetesObjectApi;
  private readonly watch: Watch;
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
    this.watch = new Watch(opts.kubeConfig);
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
    const c = new WatchedCache<T>(this.watch, source, onEvent, this.opts.logger, (v, r, code) => this.count(v, r, code));
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
    return this.call('patch', obj.kind!.toLowerCase(), `apply ${obj.kind} ${m.namespace}/${m.name}`, () =>
      this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    );
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

  /** Merge-patches the status subresource of a DatabaseBackupStorageClass. */
  async patchClassStatus(name: string, status: Record<string, unknown>): Promise<void> {
    await this.call('patch', 'databasebackupstorageclasses/status', `patch status of DatabaseBackupStorageClass ${name}`, () =>
      this.custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: 'databasebackupstorageclasses', name, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
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
      secrets: { resource: 'secrets', path: `/api/v1/namespaces/${controllerNamespace}/secrets`, list: () => this.core.listNamespacedSecret({ namespace: controllerNamespace }) },
      deployments: { resource: 'deployments', path: '/apis/apps/v1/deployments', labelSelector: managed, list: () => this.apps.listDeploymentForAllNamespaces({ labelSelector: managed }) },
      services: { resource: 'services', path: '/api/v1/services', labelSelector: managed, list: () => this.core.listServiceForAllNamespaces({ labelSelector: managed }) },
      serviceAccounts: { resource: 'serviceaccounts', path: '/api/v1/serviceaccounts', labelSelector: managed, list: () => this.core.listServiceAccountForAllNamespaces({ labelSelector: managed }) },
      roles: { resource: 'roles', path: '/apis/rbac.authorization.k8s.io/v1/roles', labelSelector: managed, list: () => this.rbac.listRoleForAllNamespaces({ labelSelector: managed }) },
      roleBindings: {
        resource: 'rolebindings',
        path: '/apis/rbac.authorization.k8s.io/v1/rolebindings',
        labelSelector: managed,
        list: () => this.rbac.listRoleBindingForAllNamespaces({ labelSelector: managed }),
      },
    } satisfies Record<string, Source<KubernetesObject>>;
  }
}
