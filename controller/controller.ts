/**
 * The reconcile loop. Caches (list+watch) feed a work queue of DatabaseBackup
 * keys; a worker takes a key and runs fetch (from the caches) -> plan (pure)
 * -> apply (server-side apply, only the objects that differ) -> status
 * (only when it changed) -> Events (only on transitions). A resync where
 * nothing changed therefore writes nothing.
 *
 * An object with a runner's name that the DatabaseBackup does not own (no
 * ownerReference to its uid) is never taken over: NameConflict, nothing applied.
 *
 * What requeues a DatabaseBackup: its own spec (a new generation), its
 * storage class, a Secret that class references, any object it owns (a hand
 * edit or deletion is repaired), a change of another DatabaseBackup or class
 * whose storage overlaps its own (or that refused it with PrefixOverlap), a
 * PersistentVolumeClaim created or deleted in its namespace, and the periodic
 * resync.
 */
import { hostname } from 'node:os';
import type { CoreV1Event, KubernetesObject, V1Deployment, V1ObjectReference, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { validateEngine, validateStorageClass, type Condition, type DatabaseBackup, type DatabaseBackupEngine, type DatabaseBackupStorageClass } from '../api/crds/index.js';
import { API_VERSION } from '../api/crds/common.js';
import { parseDuration } from '../api/duration.js';
import { appliedLabel, contains, differences } from './compare.js';
import { isControllerError } from './errors.js';
import { cachesLiveness, DEFAULT_WATCH_FAILURE_TIMEOUT_MS, type Liveness } from './health.js';
import type { Cache, KubeAdapter } from './kube.js';
import type { ControllerMetrics } from './metrics.js';
import { FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY, backupKey, parseKey, runnerName } from './names.js';
import { backupRoots, rootsOverlap, type BackupRoots } from './overlap.js';
import { planEngineInstall } from './shipped-engines.js';
import { missingSecretsProblem, namespaceSecrets, planBackup, referencedSecrets, type Plan } from './plan.js';
import { WorkQueue } from './queue.js';
import { APPLY_ORDER, type RunnerObjects, type RenderSettings } from './render/objects.js';
import type { ControllerSettings } from './settings.js';
import { accessChanged, archivesWal, backupEvent, classStatus, controllerStatus, pitrChanged, problemEvent, readyStatus, stableRefusal, statusUpToDate, storedProblem, type Problem } from './status.js';
import type { LocationAccess } from './render/runner-config.js';
import { storageClassProblems } from './render/runner-config.js';

/** True when the runner reported another backup, or another result of the same one. */
function backupResultChanged(old: DatabaseBackup, now: DatabaseBackup): boolean {
  const a = old.status?.lastBackup;
  const b = now.status?.lastBackup;
  return a?.id !== b?.id || a?.status !== b?.status || a?.message !== b?.message;
}

/**
 * True when the runner reported something a condition follows: a backup result (LastBackupSucceeded) or
 * WAL archiving that reads as another PITRReady. The recoverable window advancing alone is not (it moves
 * every minute and no condition message names it), nor is the controller's own status write.
 */
function runnerReportChanged(old: DatabaseBackup, now: DatabaseBackup): boolean {
  return backupResultChanged(old, now) || pitrChanged(archivesWal(now.spec), old.status?.recovery, now.status?.recovery);
}

/** What a DatabaseBackup whose access is revoked is told, after the cause. */
function revokedText(namespace: string): string {
  return `so no runner runs for it and no storage credential is kept in namespace "${namespace}" until this is fixed (stored backups are kept)`;
}

/** Queue keys of storage classes; DatabaseBackup keys are namespace/name and never contain ':'. */
const CLASS_KEY = 'class:';
/** Queue keys of engines (DatabaseBackupEngine), for their Ready condition. */
const ENGINE_KEY = 'engine:';

type OwnedKind = Exclude<keyof RunnerObjects, 'secret'>;
const OWNED: OwnedKind[] = ['serviceAccount', 'role', 'roleBinding', 'service', 'deployment'];

/** Owned kinds that are deleted and created again when the API server refuses an apply of them (422). */
const RECREATABLE: readonly OwnedKind[] = ['service', 'deployment'];

/** What a revoked runner loses, in this order: the pod first, then the copied credentials, then the rest. */
const REVOKE_ORDER: { key: keyof RunnerObjects; apiVersion: string; kind: string }[] = [
  { key: 'deployment', apiVersion: 'apps/v1', kind: 'Deployment' },
  { key: 'secret', apiVersion: 'v1', kind: 'Secret' },
  { key: 'service', apiVersion: 'v1', kind: 'Service' },
  { key: 'roleBinding', apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' },
  { key: 'role', apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' },
  { key: 'serviceAccount', apiVersion: 'v1', kind: 'ServiceAccount' },
];

export interface ControllerOptions {
  kube: KubeAdapter;
  settings: ControllerSettings;
  logger: Logger;
  metrics: ControllerMetrics;
  now?: () => Date;
  identity?: string;
  /** How often a DatabaseBackup whose runner needs a Secret that does not exist looks again (its namespace's Secrets are not watched). Default 30 s. */
  secretRecheckMs?: number;
}

/** Default of ControllerOptions.secretRecheckMs. */
export const SECRET_RECHECK_MS = 30_000;

export interface ReconcileStats {
  reconciles: number;
  applies: number;
  statusPatches: number;
  events: number;
  deletes: number;
}

export class Controller {
  private readonly queue: WorkQueue;
  private readonly backups: Cache<DatabaseBackup> & { start(): Promise<void> };
  private readonly classes: Cache<DatabaseBackupStorageClass> & { start(): Promise<void> };
  private readonly engines: Cache<DatabaseBackupEngine> & { start(): Promise<void> };
  private readonly secrets: Cache<V1Secret> & { start(): Promise<void> };
  private readonly claims: Cache<KubernetesObject> & { start(): Promise<void> };
  private readonly owned: Record<OwnedKind, Cache<KubernetesObject> & { start(): Promise<void> }>;
  private readonly renderSettings: RenderSettings;
  private readonly now: () => Date;
  private started = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Validated storage classes by cached object (a changed class is a new object). */
  private readonly validClasses = new WeakMap<DatabaseBackupStorageClass, DatabaseBackupStorageClass | null>();
  /** Storage roots by cached DatabaseBackup object, with the cached class object they were computed from. */
  private readonly rootsMemo = new WeakMap<DatabaseBackup, { sc: DatabaseBackupStorageClass | undefined; roots: BackupRoots | undefined }>();
  /** Per DatabaseBackup key and class key: the problem last reported in an Event, for the object with this uid. */
  private readonly reported = new Map<string, { uid: string; problem: Problem | undefined }>();
  /** DatabaseBackup keys whose runner needs a Secret that did not exist: queued again when the timer fires. */
  private readonly secretRechecks = new Map<string, NodeJS.Timeout>();
  readonly stats: ReconcileStats = { reconciles: 0, applies: 0, statusPatches: 0, events: 0, deletes: 0 };

  constructor(private readonly opts: ControllerOptions) {
    const { kube, settings, logger } = opts;
    this.now = opts.now ?? (() => new Date());
    this.renderSettings = {
      controllerNamespace: settings.namespace,
      runnerImages: settings.runnerImages,
      runnerResources: settings.runnerResources,
      runnerUser: settings.runnerUser,
      allowedImagePrefixes: settings.allowedRunnerImagePrefixes,
      engineImages: Object.values(settings.engines).map((e) => e.image),
      ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    };
    this.queue = new WorkQueue({
      workers: settings.workers,
      handle: (key) =>
        key.startsWith(CLASS_KEY) ? this.reconcileClass(key.slice(CLASS_KEY.length)) : key.startsWith(ENGINE_KEY) ? this.reconcileEngine(key.slice(ENGINE_KEY.length)) : this.reconcile(key),
      onDepth: (depth) => opts.metrics.queueDepth.set(depth),
      onError: (key, err, retryInMs) => {
        opts.metrics.reconcileTotal.inc({ result: 'error' });
        logger.warn({ backup: key, err: err instanceof Error ? err.message : String(err), retryInMs }, 'reconcile failed; retrying');
      },
    });
    const src = kube.sources(settings.namespace);
    this.backups = kube.cache(src.backups as never, (o: DatabaseBackup, kind, old?: DatabaseBackup) => {
      if (kind !== 'update') opts.metrics.managedBackups.set(this.backups.list().length);
      // Status changes need no reconcile, except a new report of the runner's that a condition follows.
      if (kind === 'update' && old && old.metadata.generation === o.metadata.generation && !('deletionTimestamp' in (o.metadata as object)) && !runnerReportChanged(old, o)) return;
      this.enqueue(backupKey(o.metadata.namespace ?? '', o.metadata.name ?? ''));
      if (kind !== 'update' || old?.metadata.generation !== o.metadata.generation) this.enqueueOverlapping([o, ...(old ? [old] : [])]);
    });
    this.classes = kube.cache(src.classes as never, (o: DatabaseBackupStorageClass, _kind, old?: DatabaseBackupStorageClass) => {
      this.enqueueClass(o.metadata.name ?? '');
      const users = this.backups.list().filter((b) => b.spec?.storageClassName === o.metadata.name);
      this.enqueueOverlapping(users, [o, ...(old ? [old] : [])]);
    });
    // An engine that appears, changes or goes: the DatabaseBackups that name it are planned again.
    this.engines = kube.cache(src.engines as never, (o: DatabaseBackupEngine) => {
      this.enqueue(`${ENGINE_KEY}${o.metadata.name ?? ''}`);
      for (const b of this.backups.list()) if (b.spec?.engine?.command?.engineRef === o.metadata.name) this.enqueue(backupKey(b.metadata.namespace ?? '', b.metadata.name ?? ''));
    });
    this.secrets = kube.cache(src.secrets, (o: V1Secret) => this.enqueueSecret(o.metadata?.name ?? ''));
    // A claim that appears or goes: the DatabaseBackups of its namespace are planned again (ClaimNotFound).
    this.claims = kube.cache(src.claims, (o: KubernetesObject, kind) => {
      if (kind === 'update') return;
      for (const b of this.backups.list(o.metadata?.namespace ?? '')) this.enqueue(backupKey(b.metadata.namespace ?? '', b.metadata.name ?? ''));
    });
    // An edit that removed the ownerReference is seen through the object before it (`old`).
    const ownerHandler = (o: KubernetesObject, _kind: string, old?: KubernetesObject) => {
      for (const x of old ? [o, old] : [o]) {
        const owner = x.metadata?.ownerReferences?.find((r) => r.kind === 'DatabaseBackup' && r.apiVersion === API_VERSION);
        if (owner && x.metadata?.namespace) this.enqueue(backupKey(x.metadata.namespace, owner.name));
      }
    };
    this.owned = {
      serviceAccount: kube.cache(src.serviceAccounts, ownerHandler),
      role: kube.cache(src.roles, ownerHandler),
      roleBinding: kube.cache(src.roleBindings, ownerHandler),
      service: kube.cache(src.services, ownerHandler),
      deployment: kube.cache(src.deployments, ownerHandler),
    };
  }

  /** Starts the caches, waits until each has listed once, then reconciles every DatabaseBackup. */
  async start(): Promise<void> {
    await Promise.all([this.backups, this.classes, this.engines, this.secrets, this.claims, ...Object.values(this.owned)].map((c) => c.start()));
    this.started = true;
    this.resyncAll();
    const period = parseDuration(this.opts.settings.resyncPeriod) ?? 600_000;
    this.resyncTimer = setInterval(() => this.resyncAll(), period);
    this.resyncTimer.unref();
    this.opts.logger.info({ backups: this.backups.list().length, resyncPeriod: this.opts.settings.resyncPeriod }, 'controller started');
  }

  synced(): boolean {
    return this.started;
  }

  /** Not ok once a cache has failed to list or watch, without a break, for longer than liveness.watchFailureTimeout. */
  health(now: Date = this.now()): Liveness {
    const caches = [this.backups, this.classes, this.engines, this.secrets, this.claims, ...Object.values(this.owned)];
    const timeoutMs = parseDuration(this.opts.settings.liveness.watchFailureTimeout) ?? DEFAULT_WATCH_FAILURE_TIMEOUT_MS;
    return cachesLiveness(caches.map((c) => c.health()), now, timeoutMs);
  }

  /** Queues every DatabaseBackup (the periodic resync). */
  resyncAll(): void {
    for (const sc of this.classes.list()) this.enqueue(`${CLASS_KEY}${sc.metadata.name ?? ''}`);
    for (const e of this.engines.list()) this.enqueue(`${ENGINE_KEY}${e.metadata.name ?? ''}`);
    for (const name of [...Object.keys(this.opts.settings.engines), ...this.opts.settings.removedEngines]) this.enqueue(`${ENGINE_KEY}${name}`);
    for (const b of this.backups.list()) this.enqueue(backupKey(b.metadata.namespace ?? '', b.metadata.name ?? ''));
  }

  /** Resolves when the queue is empty and nothing is being reconciled. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const t of this.secretRechecks.values()) clearTimeout(t);
    this.secretRechecks.clear();
    this.queue.stop();
    // Only the leader speaks for the DatabaseBackups.
    this.opts.metrics.backupReady.reset();
    this.opts.metrics.managedBackups.set(0);
    await this.opts.kube.stop();
  }

  private enqueue(key: string): void {
    if (!this.started) return;
    this.queue.add(key);
  }

  private enqueueClass(className: string): void {
    this.enqueue(`${CLASS_KEY}${className}`);
    for (const b of this.backups.list()) {
      if (b.spec?.storageClassName === className) this.enqueue(backupKey(b.metadata.namespace ?? '', b.metadata.name ?? ''));
    }
  }

  /** The storage class as the controller reads it (defaults filled), or null when it is invalid. */
  private validClass(sc: DatabaseBackupStorageClass | undefined): DatabaseBackupStorageClass | null {
    if (!sc) return null;
    let v = this.validClasses.get(sc);
    if (v === undefined) {
      const r = validateStorageClass(sc);
      v = r.ok ? r.value : null;
      this.validClasses.set(sc, v);
    }
    return v;
  }

  /** The storage roots of a DatabaseBackup that may use its class (it exists, is valid, allows the namespace); else undefined. */
  private rootsOf(b: DatabaseBackup, sc: DatabaseBackupStorageClass | null = this.validClass(this.classes.get(b.spec?.storageClassName ?? ''))): BackupRoots | undefined {
    if (!sc) return undefined;
    const allowed = sc.spec.allowedNamespaces ?? [];
    if (allowed.length > 0 && !allowed.includes(b.metadata.namespace ?? '')) return undefined;
    try {
      return backupRoots(b, sc);
    } catch {
      return undefined; // a spec too broken to read; its own reconcile reports why
    }
  }

  /** The storage roots of every DatabaseBackup that may use its class (memoised per cached object: ~0.3 ms per reconcile at 1,000). */
  private allRoots(): BackupRoots[] {
    return this.backups.list().flatMap((b) => {
      const sc = this.classes.get(b.spec?.storageClassName ?? '');
      let memo = this.rootsMemo.get(b);
      if (!memo || memo.sc !== sc) {
        memo = { sc, roots: this.rootsOf(b, this.validClass(sc)) };
        this.rootsMemo.set(b, memo);
      }
      return memo.roots ?? [];
    });
  }

  /**
   * After `changed` DatabaseBackups (or classes `viaClasses`, old and new, used by them) changed: queues
   * every DatabaseBackup whose storage overlaps theirs, and every one refused with PrefixOverlap (the
   * overlap may be gone).
   */
  private enqueueOverlapping(changed: readonly DatabaseBackup[], viaClasses: readonly DatabaseBackupStorageClass[] = []): void {
    if (!this.started) return;
    const roots = changed.flatMap((b) => {
      const own = this.rootsOf(b);
      const via = viaClasses.flatMap((c) => this.rootsOf(b, this.validClass(c)) ?? []);
      return [...(own ? [own] : []), ...via].flatMap((r) => r.roots);
    });
    for (const b of this.backups.list()) {
      const refused = b.status?.conditions?.some((c) => c.type === 'ConfigValid' && c.reason === 'PrefixOverlap');
      const mine = refused ? undefined : this.rootsOf(b);
      if (refused || mine?.roots.some((r) => roots.some((x) => rootsOverlap(r, x)))) this.enqueue(backupKey(b.metadata.namespace ?? '', b.metadata.name ?? ''));
    }
  }

  private enqueueSecret(secretName: string): void {
    for (const sc of this.classes.list()) if (referencedSecrets(sc).has(secretName)) this.enqueueClass(sc.metadata.name ?? '');
  }

  private async reconcile(key: string): Promise<void> {
    const started = process.hrtime.bigint();
    const { namespace, name } = parseKey(key);
    const backup = this.backups.get(name, namespace);
    this.stats.reconciles++;
    try {
      if (!backup || (backup.metadata as { deletionTimestamp?: string }).deletionTimestamp) {
        this.opts.metrics.backupReady.remove({ databasebackup_namespace: namespace, databasebackup: name });
        this.reported.delete(key);
        this.cancelSecretRecheck(key);
        return; // owned objects go by garbage collection
      }
      const log = this.opts.logger.child({ backup: key });
      let deployment = this.owned.deployment.get(runnerName(name), namespace);
      const hadRunner = deployment !== undefined;
      const plan = await this.plan(key, backup, deployment);
      let applied: string[] = [];
      let conflict: Problem | undefined;
      let removed: string[] = [];
      const planned: Problem | undefined = plan.ok
        ? undefined
        : plan.revoke
          ? { reason: plan.problem.reason, message: `${plan.problem.message}; ${revokedText(namespace)}` }
          : plan.problem;
      if (plan.ok) {
        try {
          const r = await this.applyObjects(plan.rendered.objects, backup, log);
          applied = r.applied;
          conflict = r.conflict;
          deployment = r.deployment ?? deployment;
        } catch (err) {
          // Say why in the status and an Event, then let the queue retry with backoff.
          const failed: Problem = { reason: 'ApplyFailed', message: stableRefusal(err instanceof Error ? err.message : String(err)) };
          await this.writeStatus(backup, failed, deployment).catch((e: unknown) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not write status'));
          await this.emitEvents(backup, failed, [], undefined, hadRunner);
          throw err;
        }
      } else if (plan.revoke) {
        removed = await this.revokeRunner(backup, log).catch(async (err: unknown) => {
          await this.writeStatus(backup, planned, deployment).catch((e: unknown) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not write status'));
          throw err;
        });
        deployment = undefined;
      } else if (deployment) {
        log.info({ reason: plan.problem.reason }, 'spec cannot be applied; the runner keeps its last good config');
      }
      const problem = plan.ok ? conflict : planned;
      const revoked = !plan.ok && plan.revoke;
      const access = plan.ok && !conflict ? plan.rendered.access : revoked ? [] : undefined;
      await this.writeStatus(backup, problem, deployment, revoked, access);
      await this.emitEvents(backup, problem, applied, plan.ok && !conflict ? plan.rendered.configHash : undefined, hadRunner);
      await this.accessEvents(backup, plan, removed);
      this.opts.metrics.reconcileTotal.inc({ result: 'success' });
    } finally {
      this.opts.metrics.reconcileDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  /** The plan from the caches, then (only when it is ok) whether the Secrets of its namespace the runner needs exist. */
  private async plan(key: string, backup: DatabaseBackup, deployment: V1Deployment | undefined): Promise<Plan> {
    const plan = planBackup(
      backup,
      this.classes.get(backup.spec?.storageClassName ?? ''),
      (n) => this.secrets.get(n, this.opts.settings.namespace)?.data,
      this.renderSettings,
      this.allRoots(),
      (ns, claim) => this.claims.get(claim, ns) !== undefined,
      (name) => this.engines.get(name),
    );
    const missing = plan.ok ? await this.missingSecrets(key, plan, backup, deployment) : undefined;
    return missing ? { ok: false, problem: missing, revoke: false } : plan;
  }

  /**
   * The Secrets of its namespace that the planned runner pod needs and that do not exist, as one problem;
   * undefined when all exist. The controller cannot read those Secrets: each is tested with
   * KubeAdapter.secretExists, only when the answer matters: the runner Deployment is missing, about to
   * change, or has no available pod (a pod that runs has what it needs), or one was missing before. While
   * one is missing the DatabaseBackup is queued again every secretRecheckMs.
   */
  private async missingSecrets(key: string, plan: Extract<Plan, { ok: true }>, backup: DatabaseBackup, deployment: V1Deployment | undefined): Promise<Problem | undefined> {
    const { objects } = plan.rendered;
    const ns = objects.deployment.metadata!.namespace!;
    const name = objects.deployment.metadata!.name!;
    const running = (deployment?.status?.availableReplicas ?? 0) >= 1 && OWNED.every((k) => contains(this.owned[k].get(name, ns), objects[k]));
    if (running && !this.secretRechecks.has(key)) return undefined;
    const missing = [];
    for (const s of namespaceSecrets(plan.rendered, backup)) if (!(await this.opts.kube.secretExists(ns, s.name))) missing.push(s);
    this.cancelSecretRecheck(key);
    if (missing.length === 0) return undefined;
    const ms = this.opts.secretRecheckMs ?? SECRET_RECHECK_MS;
    const timer = setTimeout(() => {
      this.secretRechecks.delete(key);
      this.enqueue(key);
    }, ms);
    timer.unref();
    this.secretRechecks.set(key, timer);
    return missingSecretsProblem(ns, missing, ms);
  }

  private cancelSecretRecheck(key: string): void {
    clearTimeout(this.secretRechecks.get(key));
    this.secretRechecks.delete(key);
  }

  /** A storage class's own Ready condition: valid, and its Secrets hold every referenced key. */
  private async reconcileClass(name: string): Promise<void> {
    const sc = this.classes.get(name);
    if (!sc) {
      this.reported.delete(`${CLASS_KEY}${name}`);
      return;
    }
    const v = validateStorageClass(sc);
    let problem: Problem | undefined;
    if (!v.ok) problem = { reason: 'InvalidSpec', message: `invalid storage class: ${v.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}` };
    else {
      const problems = storageClassProblems(v.value, (n) => this.secrets.get(n, this.opts.settings.namespace)?.data, this.opts.settings.namespace);
      if (problems.length > 0) problem = { reason: problems[0]!.reason, message: problems.map((p) => p.message).join('; ') };
    }
    const locations = v.ok ? v.value.spec.locations.length : 0;
    const desired = classStatus(sc, problem, locations, this.now());
    if (!statusUpToDate(sc, desired)) {
      await this.opts.kube.patchClusterStatus('DatabaseBackupStorageClass', name, { ...desired });
      this.stats.statusPatches++;
    }
    await this.clusterEvents('DatabaseBackupStorageClass', CLASS_KEY, sc, problem, desired.conditions[0]!.message);
  }

  /** An engine's Ready condition: whether it is valid (the DatabaseBackups that name it say the rest). */
  private async reconcileEngine(name: string): Promise<void> {
    const engine = this.engines.get(name);
    if (!(await this.installEngine(name, engine)) || !engine) {
      this.reported.delete(`${ENGINE_KEY}${name}`);
      return;
    }
    const v = validateEngine(engine);
    const problem: Problem | undefined = v.ok ? undefined : { reason: 'InvalidSpec', message: `invalid engine: ${v.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}` };
    const healthy = v.ok ? `formats ${v.value.definition.formats.map((f) => f.format).join(', ')}; ${v.value.definition.configSchema ? 'config checked against its schema' : 'takes no config'}` : '';
    const desired = readyStatus(engine, problem, healthy, this.now());
    if (!statusUpToDate(engine, desired)) {
      await this.opts.kube.patchClusterStatus('DatabaseBackupEngine', name, { ...desired });
      this.stats.statusPatches++;
    }
    await this.clusterEvents('DatabaseBackupEngine', ENGINE_KEY, engine, problem, desired.conditions[0]!.message);
  }

  /**
   * An engine of the settings (the chart's shipped engines) created, or brought back to its spec; one the
   * controller installed that the settings name as removed, deleted. False when the engine is gone or is being
   * written: the watch brings the name back once the object changes, and its status follows from that.
   */
  private async installEngine(name: string, engine: DatabaseBackupEngine | undefined): Promise<boolean> {
    const { engines, removedEngines } = this.opts.settings;
    const install = planEngineInstall(name, Object.hasOwn(engines, name) ? engines[name] : undefined, removedEngines.includes(name), engine);
    const log = this.opts.logger.child({ engine: name });
    switch (install.action) {
      case 'create':
        log.info('installing engine');
        await this.opts.kube.create(install.object);
        this.stats.applies++;
        return false;
      case 'apply':
        log.info('bringing the installed engine back to the settings\' spec');
        await this.opts.kube.apply(install.object);
        this.stats.applies++;
        return false;
      case 'delete':
        log.info('removing the engine it installed: the settings name it as removed');
        await this.opts.kube.delete(engine!, install.uid);
        this.stats.deletes++;
        return false;
      case 'foreign': {
        const key = `${ENGINE_KEY}foreign:${name}`;
        const meta = engine!.metadata as { name: string; uid?: string; resourceVersion?: string };
        const uid = meta.uid ?? '';
        if (this.reported.get(key)?.uid !== uid) {
          log.warn(install.message);
          await this.record('default', { apiVersion: API_VERSION, kind: 'DatabaseBackupEngine', name: meta.name, uid: meta.uid, resourceVersion: meta.resourceVersion }, 'Warning', 'NotInstalled', install.message);
          this.reported.set(key, { uid, problem: undefined });
        }
        return true;
      }
      case 'none':
        return true;
    }
  }

  /**
   * Events of a storage class or an engine: a Warning once per problem, a Normal Recovered when it is gone. In
   * namespace default, where the API server wants the Events of a cluster-scoped object (as the core components
   * put a Node's).
   */
  private async clusterEvents(kind: 'DatabaseBackupStorageClass' | 'DatabaseBackupEngine', prefix: string, obj: DatabaseBackupStorageClass | DatabaseBackupEngine, problem: Problem | undefined, healthy: string): Promise<void> {
    const meta = obj.metadata as { name: string; uid?: string; resourceVersion?: string };
    const key = `${prefix}${meta.name}`;
    const uid = meta.uid ?? '';
    const change = problemEvent(this.lastReported(key, uid, obj.status?.conditions?.find((c) => c.type === 'Ready')), problem, healthy);
    if (change) {
      const involved = { apiVersion: API_VERSION, kind, name: meta.name, uid: meta.uid, resourceVersion: meta.resourceVersion };
      await this.record('default', involved, change.type, change.reason, change.message);
    }
    this.reported.set(key, { uid, problem });
  }

  /**
   * Applies the objects that differ from what is observed; the config Secret goes with any other write.
   * Nothing is applied while an object with a runner's name exists that this DatabaseBackup does not own
   * (a forced apply would take it over): that is reported as NameConflict instead.
   */
  private async applyObjects(objects: RunnerObjects, backup: DatabaseBackup, log: Logger): Promise<{ applied: string[]; deployment?: V1Deployment; conflict?: Problem }> {
    const ns = objects.deployment.metadata!.namespace!;
    const name = objects.deployment.metadata!.name!;
    const stale = OWNED.filter((k) => !contains(this.owned[k].get(name, ns), objects[k]));
    if (stale.length === 0) return { applied: [] };
    const conflict = await this.nameConflict(objects, stale, backup);
    if (conflict) return { applied: [], conflict };
    log.info({ objects: stale, fields: stale.flatMap((k) => differences(this.owned[k].get(name, ns), objects[k]).map((f) => `${k}.${f}`)) }, 'applying runner objects');
    let deployment: V1Deployment | undefined;
    const applied: string[] = [];
    for (const k of APPLY_ORDER) {
      if (k !== 'secret' && !stale.includes(k)) continue;
      const result = k === 'secret' ? await this.opts.kube.apply(objects[k]) : await this.applyOrRecreate(k, objects[k], backup, log);
      this.stats.applies++;
      applied.push(objects[k].kind!);
      if (k === 'deployment') deployment = result;
    }
    return { applied, ...(deployment ? { deployment } : {}) };
  }

  /**
   * Applies one owned object; when the API server refuses it as invalid (422: a hand edit left a field the
   * apply cannot clear, e.g. a Deployment's rollingUpdate under strategy Recreate), a Service or Deployment
   * this DatabaseBackup owns is deleted (only that uid) and created again, and that is reported as one
   * `RunnerRecreated` Event. Anything else fails the reconcile as before.
   */
  private async applyOrRecreate(k: OwnedKind, obj: KubernetesObject, backup: DatabaseBackup, log: Logger): Promise<KubernetesObject> {
    try {
      return await this.opts.kube.apply(obj);
    } catch (err) {
      if (!RECREATABLE.includes(k) || !isControllerError(err, 'KUBE_REQUEST_FAILED') || err.details.status !== 422) throw err;
      const m = obj.metadata!;
      const uid = this.owned[k].get(m.name!, m.namespace)?.metadata?.uid ?? (await this.opts.kube.read(obj))?.metadata?.uid;
      if (!uid) throw err;
      log.warn({ object: `${obj.kind} ${m.namespace}/${m.name}`, err: err.message }, 'apply refused; deleting and creating the object again');
      await this.opts.kube.delete(obj, uid);
      this.stats.deletes++;
      const created = await this.opts.kube.apply(obj);
      await this.event(backup, 'Normal', 'RunnerRecreated', `${obj.kind} ${m.name} was deleted and created again: the API server refused to update it (${err.message})`);
      return created;
    }
  }

  /** The first object about to be applied that exists without an ownerReference to this DatabaseBackup. */
  private async nameConflict(objects: RunnerObjects, stale: OwnedKind[], backup: DatabaseBackup): Promise<Problem | undefined> {
    const uid = (backup.metadata as { uid?: string }).uid ?? '';
    for (const k of APPLY_ORDER) {
      if (k !== 'secret' && !stale.includes(k)) continue;
      const o = objects[k];
      const m = o.metadata!;
      let owners: string[] | undefined;
      let found: KubernetesObject | undefined;
      if (k === 'secret') {
        const p = await this.opts.kube.probe(o);
        owners = p.exists ? p.ownerUids : undefined;
        if (p.exists) found = { apiVersion: o.apiVersion, kind: o.kind, metadata: { ...m, ownerReferences: [], managedFields: p.managedFields ?? [] } };
      } else {
        found = this.owned[k].get(m.name!, m.namespace) ?? (await this.opts.kube.read(o));
        owners = found ? (found.metadata?.ownerReferences ?? []).map((r) => r.uid) : undefined;
      }
      if (owners && !owners.includes(uid) && !(found && owners.length === 0 && (await this.lostOwner(found, o)))) {
        return {
          reason: 'NameConflict',
          message: `${o.kind} ${m.namespace}/${m.name} exists and is not owned by DatabaseBackup ${m.namespace}/${backup.metadata.name ?? ''}; the controller does not take it over: delete or rename it, or rename the DatabaseBackup`,
        };
      }
    }
    return undefined;
  }

  /**
   * An object without any ownerReference is still this runner's when the controller's own field manager
   * applied its managed-by label: it was created by the controller and someone removed the reference by
   * hand. The next apply restores it. A copy made with kubectl (labels copied) names kubectl's manager and
   * stays a NameConflict. The caches drop managedFields, so the object is read once for this.
   */
  private async lostOwner(cached: KubernetesObject, desired: KubernetesObject): Promise<boolean> {
    const live = cached.metadata?.managedFields ? cached : await this.opts.kube.read(desired);
    if (!live || (live.metadata?.ownerReferences ?? []).length > 0) return false;
    return appliedLabel(live.metadata?.managedFields, FIELD_MANAGER, LABEL_MANAGED_BY);
  }

  /**
   * Removes the runner of a DatabaseBackup that may no longer use its storage: the Deployment (its pod
   * stops), the config Secret (the copied storage credentials), then the Service, RoleBinding, Role and
   * ServiceAccount (which may carry a cloud identity). Only objects this DatabaseBackup owns (by UID, as
   * the caches show them); the config Secret, which the controller cannot read, goes with them. Returns
   * the kinds that were there.
   */
  private async revokeRunner(backup: DatabaseBackup, log: Logger): Promise<string[]> {
    const meta = backup.metadata as { name: string; namespace: string; uid?: string };
    const name = runnerName(meta.name);
    const ours = (o: KubernetesObject | undefined) =>
      o?.metadata?.ownerReferences?.some((r) => r.kind === 'DatabaseBackup' && r.apiVersion === API_VERSION && r.name === meta.name && (!meta.uid || r.uid === meta.uid)) === true;
    const found = new Map(OWNED.map((k) => [k, this.owned[k].get(name, meta.namespace)] as const).filter(([, o]) => ours(o)));
    if (found.size === 0) return [];
    const removed: string[] = [];
    for (const { key, apiVersion, kind } of REVOKE_ORDER) {
      const cached = key === 'secret' ? undefined : found.get(key);
      if (key !== 'secret' && !cached) continue;
      const gone = await this.opts.kube.delete({ apiVersion, kind, metadata: { name, namespace: meta.namespace } }, cached?.metadata?.uid);
      this.stats.deletes++;
      if (gone) removed.push(kind);
    }
    log.warn({ removed }, 'access to the storage revoked: runner removed');
    return removed;
  }

  private async writeStatus(backup: DatabaseBackup, problem: Problem | undefined, deployment: V1Deployment | undefined, revoked = false, access?: LocationAccess[]): Promise<void> {
    const lastBackup = backup.status?.lastBackup;
    const recovery = backup.status?.recovery;
    const desired = controllerStatus(backup, {
      ...(problem ? { problem } : {}),
      ...(deployment ? { deployment } : {}),
      ...(lastBackup ? { lastBackup } : {}),
      ...(archivesWal(backup.spec) ? { walArchive: true } : {}),
      ...(recovery ? { recovery } : {}),
      ...(revoked ? { revoked } : {}),
      ...(access ? { access } : {}),
      now: this.now(),
    });
    const ready = desired.conditions.find((c) => c.type === 'Ready')?.status === 'True';
    this.opts.metrics.backupReady.set({ databasebackup_namespace: backup.metadata.namespace ?? '', databasebackup: backup.metadata.name ?? '' }, ready ? 1 : 0);
    if (statusUpToDate(backup, desired)) return;
    await this.opts.kube.patchBackupStatus(backup.metadata.namespace ?? '', backup.metadata.name ?? '', { ...desired });
    this.stats.statusPatches++;
  }

  /**
   * The problem last reported in an Event for `key` (a DatabaseBackup or class, by uid), else the one its
   * stored condition says (after a restart, or before the first reconcile of this process).
   */
  private lastReported(key: string, uid: string, stored: Condition | undefined): Problem | undefined | null {
    const r = this.reported.get(key);
    return r && r.uid === uid ? r.problem : storedProblem(stored);
  }

  /**
   * Events of a DatabaseBackup: a Warning once per problem (a continuing one is not repeated, even when
   * the stored status lags behind), a Normal Recovered when it is gone (even when nothing is written), a
   * new backup result, and what was applied (RunnerCreated when there was no runner Deployment before).
   */
  private async emitEvents(backup: DatabaseBackup, problem: Problem | undefined, applied: string[], hash: string | undefined, hadRunner = true): Promise<void> {
    const meta = backup.metadata as { name: string; namespace: string; uid?: string };
    const key = backupKey(meta.namespace, meta.name);
    const uid = meta.uid ?? '';
    const before = this.lastReported(key, uid, backup.status?.conditions?.find((c) => c.type === 'ConfigValid'));
    const change = problemEvent(before, problem, 'the runner has the current spec');
    if (change) await this.event(backup, change.type, change.reason, change.message);
    this.reported.set(key, { uid, problem });
    const outcome = backupEvent(backup);
    if (outcome) await this.event(backup, outcome.type, outcome.reason, outcome.message);
    if (applied.length > 0) {
      const created = !hadRunner && applied.includes('Deployment');
      await this.event(backup, 'Normal', created ? 'RunnerCreated' : 'RunnerUpdated', `applied ${applied.join(', ')} of runner ${runnerName(meta.name)} (config ${hash ?? ''})`);
    }
  }

  /** Who can read the keys, when that changed; what a revocation removed. */
  private async accessEvents(backup: DatabaseBackup, plan: Plan, removed: string[]): Promise<void> {
    if (plan.ok && accessChanged(backup.status?.credentials, plan.rendered.access)) {
      await this.event(backup, 'Normal', 'CredentialsAccess', plan.rendered.access.map((a) => `${a.location}: ${a.readableBy}`).join('; '));
    }
    if (!plan.ok && removed.length > 0) {
      await this.event(backup, 'Warning', 'RunnerRevoked', `removed ${removed.join(', ')} of runner ${runnerName(backup.metadata.name ?? '')} (${plan.problem.reason}); the stored backups are kept`);
    }
  }

  private async event(backup: DatabaseBackup, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const meta = backup.metadata as { name: string; namespace: string; uid?: string; resourceVersion?: string };
    await this.record(meta.namespace, { apiVersion: API_VERSION, kind: 'DatabaseBackup', name: meta.name, namespace: meta.namespace, uid: meta.uid, resourceVersion: meta.resourceVersion }, type, reason, message);
  }

  /** Records an Event in `namespace` about `involved`. */
  private async record(namespace: string, involved: V1ObjectReference & { name: string }, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = this.now();
    const ev: CoreV1Event = {
      metadata: { generateName: `${involved.name}.`, namespace },
      involvedObject: involved,
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: MANAGED_BY },
      reportingComponent: MANAGED_BY,
      reportingInstance: this.opts.identity ?? hostname(),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    const what = involved.namespace ? `${involved.namespace}/${involved.name}` : involved.name;
    try {
      await this.opts.kube.createEvent(ev);
      this.stats.events++;
    } catch (err) {
      this.opts.logger.warn({ [involved.kind === 'DatabaseBackup' ? 'backup' : 'storageClass']: what, reason, err: err instanceof Error ? err.message : String(err) }, 'could not record an Event');
    }
  }
}
