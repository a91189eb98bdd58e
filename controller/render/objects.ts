/**
 * A DatabaseBackup -> the objects that run its runner, in its namespace:
 * ServiceAccount, Role, RoleBinding, config Secret, metrics Service and a
 * Deployment (one replica, Recreate). Pure: same input, same objects; golden
 * files in test/unit/golden/controller pin the output.
 *
 * The pod meets the restricted Pod Security Standard whatever the spec:
 * non-root, read-only root filesystem, no privilege escalation, all
 * capabilities dropped, seccomp RuntimeDefault; spec.runner reaches the pod
 * only through fields the runner pod policy (api/crds/runner-pod.ts) has
 * checked, and an image only from the controller's allowedImagePrefixes.
 * /tmp (control socket, scratch) is an emptyDir.
 */
import type {
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1OwnerReference,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import type { DatabaseBackup, DatabaseBackupStorageClass } from '../../api/crds/index.js';
import { API_VERSION, GROUP } from '../../api/crds/common.js';
import { ALLOWED_VOLUME_SOURCES, imageAllowed } from '../../api/crds/runner-pod.js';
import { ANNOTATION_CONFIG_HASH, commonLabels, runnerName, selectorLabels } from '../names.js';
import type { EngineImages } from '../settings.js';
import type { ResolvedEngine } from '../../api/crds/engine.js';
import { engineVersion } from './engines.js';
import { CONFIG_DIR, CONFIG_KEY, PASSWORD_ENV, renderRunnerConfig, type RenderProblem, type RenderedConfig, type SecretLookup } from './runner-config.js';

export const METRICS_PORT = 9090;
export const CONTAINER_NAME = 'runner';
const RESERVED_VOLUMES = /^(config|tmp|db-secret-\d+|location-\d+)$/;
const RESERVED_PATHS = ['/tmp', CONFIG_DIR];

export interface RenderSettings {
  controllerNamespace: string;
  runnerImages: { postgresql?: EngineImages; mysql?: EngineImages };
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  runnerResources: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  runnerUser: number;
  /** Where spec.runner.image (and a custom engine's image) may come from; empty: only the controller's own images. */
  allowedImagePrefixes?: readonly string[];
  /** The images of the engines the controller installs (settings.engines): its own for an engine's image, like the runnerImages. */
  engineImages?: readonly string[];
}

export interface RenderInput {
  backup: DatabaseBackup;
  storageClass: DatabaseBackupStorageClass;
  secrets: SecretLookup;
  settings: RenderSettings;
  /** For `engine.type: command`: the validated DatabaseBackupEngine it names. */
  engine?: ResolvedEngine;
}

export interface RunnerObjects {
  serviceAccount: V1ServiceAccount;
  role: V1Role;
  roleBinding: V1RoleBinding;
  secret: V1Secret;
  service: V1Service;
  deployment: V1Deployment;
}

/** Apply order: the Deployment last, so its pods start with their config and rights in place. */
export const APPLY_ORDER = ['serviceAccount', 'role', 'roleBinding', 'secret', 'service', 'deployment'] as const satisfies readonly (keyof RunnerObjects)[];

export interface Rendered {
  objects: RunnerObjects;
  configHash: string;
  image: string;
  /** Per location, where its credentials are and who can read them. */
  access: RenderedConfig['access'];
}

/** A render problem, or an image the controller's settings do not allow. */
export interface RunnerProblem {
  reason: RenderProblem['reason'] | 'ImageNotAllowed';
  message: string;
}

export type RenderResult = { ok: true; value: Rendered } | { ok: false; problems: RunnerProblem[] };

/**
 * The runner image for an engine and server version: the exact version, else
 * the lowest newer one (newer client tools read older servers), else none.
 */
/** Orders "9.6" < "10" < "10.6" < "10.11" < "11.4": each dot-separated part as a number. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function pickImage(images: EngineImages | undefined, engine: string, version: string | undefined): { image: string } | { problem: RenderProblem } {
  const available = Object.keys(images?.images ?? {}).sort(compareVersions);
  const want = version ?? images?.defaultVersion;
  const exact = want !== undefined ? images?.images[want] : undefined;
  if (exact) return { image: exact };
  const newer = available.find((v) => want !== undefined && compareVersions(v, want) > 0);
  if (newer) return { image: images!.images[newer]! };
  return {
    problem: {
      reason: 'RunnerImageNotFound',
      message: `no runner image for ${engine} ${want ?? '(no version)'} (the controller has: ${available.join(', ') || 'none'}); set spec.runner.image or add one to the controller's runnerImages`,
    },
  };
}

function ownerReference(backup: DatabaseBackup): V1OwnerReference {
  const meta = backup.metadata as { name: string; uid?: string };
  return { apiVersion: API_VERSION, kind: 'DatabaseBackup', name: meta.name, uid: meta.uid ?? '', controller: true, blockOwnerDeletion: true };
}

function meta(backup: DatabaseBackup, extra: { annotations?: Record<string, string> } = {}) {
  const name = backup.metadata.name ?? '';
  return {
    name: runnerName(name),
    namespace: backup.metadata.namespace ?? '',
    labels: commonLabels(name),
    ...(extra.annotations && Object.keys(extra.annotations).length > 0 ? { annotations: extra.annotations } : {}),
    ownerReferences: [ownerReference(backup)],
  };
}

function podVolumes(cfg: RenderedConfig, backup: DatabaseBackup): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [
    { name: 'config', secret: { secretName: runnerName(backup.metadata.name ?? ''), defaultMode: 0o440 } },
    { name: 'tmp', emptyDir: {} },
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  const bySecret = new Map<string, typeof cfg.dbSecretFiles>();
  for (const f of cfg.dbSecretFiles) bySecret.set(f.secretName, [...(bySecret.get(f.secretName) ?? []), f]);
  [...bySecret.entries()].forEach(([secretName, files], i) => {
    volumes.push({ name: `db-secret-${i}`, secret: { secretName, defaultMode: 0o440, items: files.map((f) => ({ key: f.key, path: f.key })) } });
    mounts.push({ name: `db-secret-${i}`, mountPath: files[0]!.path.slice(0, -files[0]!.key.length - 1), readOnly: true });
  });
  cfg.claims.forEach((c, i) => {
    volumes.push({ name: `location-${i}`, persistentVolumeClaim: { claimName: c.claimName } });
    mounts.push({ name: `location-${i}`, mountPath: c.path });
  });
  const runner = backup.spec.runner;
  // Only the name and the one allowed source (validateDatabaseBackup refused anything else): nothing else reaches the pod.
  for (const v of runner?.extraVolumes ?? []) {
    const source = Object.entries(v).find(([k]) => ALLOWED_VOLUME_SOURCES.includes(k));
    if (source) volumes.push({ name: v.name, [source[0]]: source[1] });
  }
  mounts.push(...(runner?.extraVolumeMounts ?? []));
  return { volumes, mounts };
}

function reservedProblems(backup: DatabaseBackup): RenderProblem[] {
  const runner = backup.spec.runner;
  const problems: RenderProblem[] = [];
  (runner?.extraVolumes ?? []).forEach((v, i) => {
    if (RESERVED_VOLUMES.test(v.name)) problems.push({ reason: 'ReservedName', message: `spec.runner.extraVolumes[${i}].name "${v.name}" is used by the runner pod itself; pick another name` });
  });
  (runner?.extraVolumeMounts ?? []).forEach((m, i) => {
    const clash = RESERVED_PATHS.find((p) => m.mountPath === p || m.mountPath.startsWith(`${p}/`));
    if (clash) problems.push({ reason: 'ReservedName', message: `spec.runner.extraVolumeMounts[${i}].mountPath "${m.mountPath}" is inside ${clash}, which the runner uses; pick another path` });
  });
  return problems;
}

/** A filesystem location needs a volume at its path: the class's claimName, or one of spec.runner.extraVolumeMounts. */
function mountProblems(cfg: RenderedConfig, backup: DatabaseBackup, className: string): RenderProblem[] {
  const mounts = backup.spec.runner?.extraVolumeMounts ?? [];
  return cfg.config.locations.flatMap((loc) => {
    const path = loc.filesystem?.path;
    if (!path || cfg.claims.some((c) => c.path === path)) return [];
    if (mounts.some((m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/+$/, '')}/`))) return [];
    return [
      {
        reason: 'LocationNotMounted' as const,
        message:
          `location "${loc.name}" stores into ${path}, but no volume is mounted there (the runner's root filesystem is read-only): ` +
          `set filesystem.claimName in storage class "${className}", or mount a volume at ${path} with spec.runner.extraVolumes and extraVolumeMounts`,
      },
    ];
  });
}

function container(cfg: RenderedConfig, image: string, mounts: V1VolumeMount[], input: RenderInput): V1Container {
  const { backup, settings } = input;
  const env: V1EnvVar[] = [{ name: 'BACKUP_RUNNER_CONFIG', value: `${CONFIG_DIR}/${CONFIG_KEY}` }];
  if (cfg.passwordEnv) env.push({ name: PASSWORD_ENV, valueFrom: { secretKeyRef: { name: cfg.passwordEnv.name, key: cfg.passwordEnv.key } } });
  const pullPolicy = backup.spec.runner?.imagePullPolicy ?? settings.imagePullPolicy;
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'metrics' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 5,
  });
  return {
    name: CONTAINER_NAME,
    image,
    ...(pullPolicy ? { imagePullPolicy: pullPolicy } : {}),
    args: ['serve'],
    env,
    ports: [{ name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' }],
    readinessProbe: probe('/readyz', 10, 3),
    livenessProbe: probe('/healthz', 20, 6),
    resources: (backup.spec.runner?.resources ?? settings.runnerResources) as V1Container['resources'],
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: mounts,
  };
}

/** An image named in the spec, if it is one of the controller's own runner images (or, for an engine, its engines' images) or its allowedImagePrefixes admit it. */
function chosenImage(image: string, field: string, settings: RenderSettings, ownEngineImage = false): { image: string } | { problem: RunnerProblem } {
  const own = Object.values(settings.runnerImages).some((e) => Object.values(e?.images ?? {}).includes(image)) || (ownEngineImage && (settings.engineImages ?? []).includes(image));
  if (own) return { image };
  const r = imageAllowed(image, settings.allowedImagePrefixes ?? []);
  return r.ok ? { image } : { problem: { reason: 'ImageNotAllowed', message: `${field}: ${r.message}` } };
}

function imageFor(backup: DatabaseBackup, settings: RenderSettings, resolved: ResolvedEngine | undefined): { image: string } | { problem: RunnerProblem } {
  const engine = backup.spec.engine;
  if (backup.spec.runner?.image) return chosenImage(backup.spec.runner.image, 'spec.runner.image', settings);
  if (engine.type === 'command') {
    if (!resolved) return { problem: { reason: 'EngineNotFound', message: `spec.engine.command.engineRef: DatabaseBackupEngine "${engine.command?.engineRef ?? ''}" was not resolved` } };
    // The images of the engines the controller installs are its own, for engines only (spec.runner.image is not one).
    return chosenImage(resolved.image, `DatabaseBackupEngine ${resolved.definition.name} spec.image`, settings, true);
  }
  return pickImage(settings.runnerImages[engine.type], engine.type, engineVersion(engine));
}

/** An image that is not allowed comes first (it must be read before any other problem); a missing one only matters for a supported engine. */
function addImageProblem(problems: RunnerProblem[], problem: RunnerProblem): void {
  if (problem.reason === 'ImageNotAllowed') problems.unshift(problem);
  else if (!problems.some((p) => p.reason === 'EngineNotSupported' || p.reason === problem.reason)) problems.push(problem);
}

/** Every object of one runner, or every reason it cannot be rendered. */
export function renderRunner(input: RenderInput): RenderResult {
  const { backup, storageClass, settings } = input;
  const cfgResult = renderRunnerConfig(backup, storageClass, input.secrets, settings.controllerNamespace, input.engine?.definition);
  const problems: RunnerProblem[] = cfgResult.ok ? mountProblems(cfgResult.value, backup, storageClass.metadata.name ?? '') : [...cfgResult.problems];
  problems.push(...reservedProblems(backup));
  const picked = imageFor(backup, settings, input.engine);
  if ('problem' in picked) addImageProblem(problems, picked.problem);
  if (!cfgResult.ok || !('image' in picked) || problems.length > 0) return { ok: false, problems };

  const cfg = cfgResult.value;
  const backupName = backup.metadata.name ?? '';
  const name = runnerName(backupName);
  const runner = backup.spec.runner ?? {};
  const { volumes, mounts } = podVolumes(cfg, backup);

  const serviceAccount: V1ServiceAccount = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: meta(backup, { annotations: runner.serviceAccountAnnotations ?? {} }),
  };
  const role: V1Role = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: meta(backup),
    // The runner reads its config from the kubelet-mounted Secret volume and needs no API right on it: granting
    // `get` on that Secret would oblige the controller itself to read Secrets in every namespace (RBAC lets a
    // Role grant only what its creator holds). So the one right is the status of its own DatabaseBackup.
    rules: [
      { apiGroups: [GROUP], resources: ['databasebackups/status'], resourceNames: [backupName], verbs: ['get', 'patch'] },
    ],
  };
  const roleBinding: V1RoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(backup),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace: backup.metadata.namespace ?? '' }],
  };
  const secret: V1Secret = { apiVersion: 'v1', kind: 'Secret', metadata: meta(backup), type: 'Opaque', data: cfg.secretData };
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(backup),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(backupName),
      ports: [{ name: 'metrics', port: METRICS_PORT, targetPort: 'metrics', protocol: 'TCP' }],
    },
  };
  const podLabels = { ...(runner.podLabels ?? {}), ...commonLabels(backupName) };
  const podAnnotations = { ...(runner.podAnnotations ?? {}), [ANNOTATION_CONFIG_HASH]: cfg.hash, 'kubectl.kubernetes.io/default-container': CONTAINER_NAME };
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(backup),
    spec: {
      replicas: 1,
      strategy: { type: 'Recreate' },
      revisionHistoryLimit: 3,
      selector: { matchLabels: selectorLabels(backupName) },
      template: {
        metadata: { labels: podLabels, annotations: podAnnotations },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 60,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: settings.runnerUser,
            runAsGroup: settings.runnerUser,
            fsGroup: runner.fsGroup ?? settings.runnerUser,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          ...(runner.imagePullSecrets ? { imagePullSecrets: runner.imagePullSecrets } : {}),
          ...(runner.nodeSelector ? { nodeSelector: runner.nodeSelector } : {}),
          ...(runner.tolerations ? { tolerations: runner.tolerations } : {}),
          ...(runner.affinity ? { affinity: runner.affinity } : {}),
          containers: [container(cfg, picked.image, mounts, input)],
          volumes,
        },
      },
    },
  };
  return { ok: true, value: { objects: { serviceAccount, role, roleBinding, secret, service, deployment }, configHash: cfg.hash, image: picked.image, access: cfg.access } };
}
