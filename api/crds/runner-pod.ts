/**
 * spec.runner of a DatabaseBackup: how the runner's pod is placed and
 * dressed. Typed subsets of the core/v1 types; where a core type is large and
 * validated by the API server anyway when the controller creates the
 * Deployment (affinity, volume sources), the schema keeps unknown fields
 * (x-kubernetes-preserve-unknown-fields) instead of copying the type.
 */
import { Type, type Static } from '@sinclair/typebox';
import { DnsLabel, ObjectName, StringMap } from './common.js';

/** resource.Quantity as Kubernetes publishes it: an integer or a string such as 500m, 1Gi. */
export const QUANTITY_PATTERN = '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
const Quantity = Type.Union([Type.Integer(), Type.String({ pattern: QUANTITY_PATTERN })], {
  'x-kubernetes-int-or-string': true,
  pattern: QUANTITY_PATTERN,
  description: 'a quantity such as 500m, 256Mi or 2',
});

export const Resources = Type.Object(
  {
    requests: Type.Optional(Type.Record(Type.String(), Quantity, { description: 'e.g. { cpu: 500m, memory: 256Mi }' })),
    limits: Type.Optional(Type.Record(Type.String(), Quantity, { description: 'e.g. { memory: 1Gi }' })),
  },
  { additionalProperties: false },
);
export type Resources = Static<typeof Resources>;

export const Toleration = Type.Object(
  {
    key: Type.Optional(Type.String({ maxLength: 316 })),
    operator: Type.Optional(Type.Union([Type.Literal('Exists'), Type.Literal('Equal')])),
    value: Type.Optional(Type.String({ maxLength: 63 })),
    effect: Type.Optional(Type.Union([Type.Literal('NoSchedule'), Type.Literal('PreferNoSchedule'), Type.Literal('NoExecute')])),
    tolerationSeconds: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);
export type Toleration = Static<typeof Toleration>;

/** Anything core/v1 accepts; kept as given and checked by the API server when the Deployment is applied. */
const Opaque = (description: string) =>
  Type.Record(Type.String(), Type.Unknown(), { 'x-kubernetes-preserve-unknown-fields': true, description });

export const Volume = Type.Object(
  { name: DnsLabel('volume name, referenced by extraVolumeMounts') },
  {
    additionalProperties: true,
    'x-kubernetes-preserve-unknown-fields': true,
    description: 'a core/v1 Volume: name plus one volume source (secret, configMap, persistentVolumeClaim, emptyDir, ...)',
  },
);
export type Volume = Static<typeof Volume>;

export const VolumeMount = Type.Object(
  {
    name: DnsLabel('name of one of extraVolumes'),
    mountPath: Type.String({ minLength: 1, pattern: '^/', description: 'absolute path in the runner container' }),
    subPath: Type.Optional(Type.String()),
    readOnly: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type VolumeMount = Static<typeof VolumeMount>;

export const RunnerPod = Type.Object(
  {
    image: Type.Optional(Type.String({ minLength: 1, description: 'runner image; defaults to the controller\'s image for the engine' })),
    imagePullPolicy: Type.Optional(Type.Union([Type.Literal('Always'), Type.Literal('IfNotPresent'), Type.Literal('Never')])),
    imagePullSecrets: Type.Optional(Type.Array(Type.Object({ name: ObjectName('Secret of type kubernetes.io/dockerconfigjson') }, { additionalProperties: false }))),
    resources: Type.Optional(Resources),
    nodeSelector: Type.Optional(StringMap('node labels the runner pod must match')),
    tolerations: Type.Optional(Type.Array(Toleration)),
    affinity: Type.Optional(Opaque('a core/v1 Affinity (nodeAffinity, podAffinity, podAntiAffinity)')),
    serviceAccountAnnotations: Type.Optional(StringMap('annotations of the runner\'s ServiceAccount, e.g. eks.amazonaws.com/role-arn or iam.gke.io/gcp-service-account')),
    podAnnotations: Type.Optional(StringMap('annotations of the runner pod')),
    podLabels: Type.Optional(StringMap('extra labels of the runner pod')),
    extraVolumes: Type.Optional(Type.Array(Volume, { maxItems: 32 })),
    extraVolumeMounts: Type.Optional(Type.Array(VolumeMount, { maxItems: 32 })),
    fsGroup: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, description: 'group that owns mounted volumes (e.g. a filesystem location\'s PVC)' })),
  },
  { additionalProperties: false },
);
export type RunnerPod = Static<typeof RunnerPod>;

/*
 * What a DatabaseBackup may ask of its runner pod. The controller creates the
 * pod with its own rights, so spec.runner must not grant more than a backup
 * needs: the checks below refuse, with the field path, every setting that
 * would weaken the pod's security profile or reach beyond the namespace's own
 * storage. Pure; the controller reports the result as ConfigValid=False.
 */

export interface PodFieldError {
  path: string;
  message: string;
}

/** Fields of each volume source a runner may use; anything else is refused (see docs/crds.md, "Runner pod policy"). */
const ITEM_FIELDS = ['key', 'path', 'mode'];
const VOLUME_SOURCES: Record<string, string[]> = {
  persistentVolumeClaim: ['claimName', 'readOnly'],
  emptyDir: ['medium', 'sizeLimit'],
  configMap: ['name', 'items', 'defaultMode', 'optional'],
  secret: ['secretName', 'items', 'defaultMode', 'optional'],
  downwardAPI: ['items', 'defaultMode'],
  projected: ['sources', 'defaultMode'],
};
const PROJECTED_SOURCES: Record<string, string[]> = {
  secret: ['name', 'items', 'optional'],
  configMap: ['name', 'items', 'optional'],
  downwardAPI: ['items'],
  serviceAccountToken: ['audience', 'expirationSeconds', 'path'],
};
const DOWNWARD_ITEM_FIELDS = ['path', 'fieldRef', 'resourceFieldRef', 'mode'];
export const ALLOWED_VOLUME_SOURCES = Object.keys(VOLUME_SOURCES);

/** Why a volume source that core/v1 knows is refused, for the message. */
const REFUSED_SOURCE_WHY: Record<string, string> = {
  hostPath: 'it exposes the node\'s filesystem',
  csi: 'an inline CSI driver takes driver-specific attributes that can reach storage outside the namespace; use a persistentVolumeClaim',
  ephemeral: 'use a persistentVolumeClaim',
};
const NODE_LEVEL = 'it mounts storage named in the pod, outside the namespace\'s PersistentVolumeClaims; use a persistentVolumeClaim';

/** Own keys only: "constructor" or "__proto__" in a spec must never match a table entry through the prototype. */
const has = (table: object, key: string): boolean => Object.prototype.hasOwnProperty.call(table, key);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function unknownKeys(obj: Record<string, unknown>, allowed: string[], path: string): PodFieldError[] {
  return Object.keys(obj)
    .filter((k) => !allowed.includes(k))
    .map((k) => ({ path: `${path}.${k}`, message: `is not allowed here (allowed: ${allowed.join(', ')})` }));
}

function itemErrors(items: unknown, fields: string[], path: string): PodFieldError[] {
  if (items === undefined) return [];
  if (!Array.isArray(items)) return [{ path, message: 'must be a list' }];
  return items.flatMap((it, i) => (isObject(it) ? unknownKeys(it, fields, `${path}[${i}]`) : [{ path: `${path}[${i}]`, message: 'must be an object' }]));
}

function sourceErrors(kind: string, src: unknown, allowed: Record<string, string[]>, path: string): PodFieldError[] {
  if (!isObject(src)) return [{ path, message: 'must be an object' }];
  const errors = unknownKeys(src, allowed[kind]!, path);
  if ('items' in src) errors.push(...itemErrors(src.items, kind === 'downwardAPI' ? DOWNWARD_ITEM_FIELDS : ITEM_FIELDS, `${path}.items`));
  return errors;
}

function projectedErrors(src: Record<string, unknown>, path: string): PodFieldError[] {
  const sources = src.sources;
  if (sources === undefined) return [];
  if (!Array.isArray(sources)) return [{ path: `${path}.sources`, message: 'must be a list' }];
  return sources.flatMap((s, i) => {
    const at = `${path}.sources[${i}]`;
    if (!isObject(s)) return [{ path: at, message: 'must be an object' }];
    const kinds = Object.keys(s);
    if (kinds.length !== 1) return [{ path: at, message: `must set exactly one of ${Object.keys(PROJECTED_SOURCES).join(', ')} (it sets ${kinds.join(', ') || 'none'})` }];
    const kind = kinds[0]!;
    if (!has(PROJECTED_SOURCES, kind)) return [{ path: `${at}.${kind}`, message: `is not an allowed projected source (allowed: ${Object.keys(PROJECTED_SOURCES).join(', ')})` }];
    return sourceErrors(kind, s[kind], PROJECTED_SOURCES, `${at}.${kind}`);
  });
}

/** One extra volume: its name plus exactly one allowed source, with only that source's known fields. */
export function volumeErrors(volume: unknown, path: string): PodFieldError[] {
  if (!isObject(volume)) return [{ path, message: 'must be an object' }];
  const keys = Object.keys(volume).filter((k) => k !== 'name');
  const refused = keys.filter((k) => !has(VOLUME_SOURCES, k));
  if (refused.length > 0) {
    return refused.map((k) => ({
      path: `${path}.${k}`,
      message: `is not an allowed volume source (${has(REFUSED_SOURCE_WHY, k) ? REFUSED_SOURCE_WHY[k] : has(SOURCE_NAMES, k) ? NODE_LEVEL : 'unknown field'}); allowed: ${ALLOWED_VOLUME_SOURCES.join(', ')}`,
    }));
  }
  if (keys.length !== 1) return [{ path, message: `must set exactly one volume source (it sets ${keys.join(', ') || 'none'}); allowed: ${ALLOWED_VOLUME_SOURCES.join(', ')}` }];
  const kind = keys[0]!;
  const errors = sourceErrors(kind, volume[kind], VOLUME_SOURCES, `${path}.${kind}`);
  if (kind === 'projected' && isObject(volume[kind])) errors.push(...projectedErrors(volume[kind], `${path}.${kind}`));
  return errors;
}

/** core/v1 volume sources other than the allowed ones, named in the messages as such. */
const SOURCE_NAMES = Object.fromEntries(
  ['hostPath', 'gcePersistentDisk', 'awsElasticBlockStore', 'gitRepo', 'nfs', 'iscsi', 'glusterfs', 'rbd', 'flexVolume', 'cinder', 'cephfs', 'flocker', 'fc', 'azureFile', 'vsphereVolume', 'quobyte', 'azureDisk', 'photonPersistentDisk', 'portworxVolume', 'scaleIO', 'storageos', 'csi', 'ephemeral'].map((k) => [k, true]),
);

/**
 * Directories of the runner image and pod that an extra volume must not cover, hide or replace: the
 * runner's code and tools (a volume there would run foreign code with the runner's credentials), its
 * config and Secret files, the ServiceAccount token, /tmp (control socket), and the kernel's file systems.
 */
export const PROTECTED_PATHS = ['/app', '/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/nodejs', '/proc', '/root', '/run', '/sbin', '/sys', '/tmp', '/usr', '/var/lib', '/var/run'];

/** An absolute, normalised mount path outside every protected directory (and not a parent of one). */
export function mountPathErrors(mountPath: string, path: string, reserved: readonly string[] = []): PodFieldError[] {
  const segments = mountPath.split('/').slice(1);
  if (!mountPath.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    return [{ path, message: `"${mountPath}" must be an absolute path without empty, "." or ".." segments and without a trailing /` }];
  }
  const inside = (a: string, b: string) => a === b || a.startsWith(`${b}/`);
  const clash = [...PROTECTED_PATHS, ...reserved].find((p) => inside(mountPath, p) || inside(p, mountPath));
  if (clash) return [{ path, message: `"${mountPath}" would cover ${clash}, which the runner image or pod uses; mount it elsewhere, e.g. under /data or /backups` }];
  return [];
}

/** Domains whose annotations and labels belong to Kubernetes, container runtimes or the controller. */
const RESERVED_DOMAINS = ['kubernetes.io', 'k8s.io', 'dbbackup.io'];
/** Prefixes of runtime annotations that carry no "/" (CRI-O, containerd, crun, Kata). */
const RUNTIME_PREFIXES = ['io.kubernetes.', 'io.containerd.', 'io.katacontainers.', 'run.oci.', 'com.docker.'];
/** Reserved-domain annotations that cannot change what the pod may do, allowed on the runner pod. */
export const ALLOWED_SYSTEM_ANNOTATIONS = ['cluster-autoscaler.kubernetes.io/safe-to-evict'];

function reservedKey(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash).toLowerCase() : '';
  const domain = RESERVED_DOMAINS.find((d) => prefix === d || prefix.endsWith(`.${d}`));
  if (domain) return `the ${domain} prefix is reserved`;
  const runtime = RUNTIME_PREFIXES.find((p) => key.toLowerCase().startsWith(p));
  if (runtime) return `${runtime}* keys are read by container runtimes`;
  return undefined;
}

/** Bounds that keep one DatabaseBackup from inflating every object the controller writes and caches. */
export const MAX_TOLERATIONS = 32;
export const MAX_MAP_BYTES = 16 * 1024;

/** Labels the controller puts on every runner object (controller/names.ts commonLabels; a unit test keeps both equal). */
export const CONTROLLER_LABELS = ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/part-of'];

/** Tolerations that would let the runner onto control-plane nodes (or onto any node whatever its taints). */
const CONTROL_PLANE_TAINTS = ['node-role.kubernetes.io/master', 'node-role.kubernetes.io/control-plane'];

/** podAnnotations and podLabels: nothing the kubelet, the runtimes or the controller read. */
function metadataErrors(runner: RunnerPod, base: string): PodFieldError[] {
  const errors: PodFieldError[] = [];
  for (const k of Object.keys(runner.podAnnotations ?? {})) {
    const why = ALLOWED_SYSTEM_ANNOTATIONS.includes(k) ? undefined : reservedKey(k);
    if (why) errors.push({ path: `${base}.podAnnotations["${k}"]`, message: `is not allowed: ${why} (such annotations can change the pod's security profile or runtime)` });
  }
  for (const k of Object.keys(runner.podLabels ?? {})) {
    if (CONTROLLER_LABELS.includes(k) || k.startsWith('dbbackup.io/')) {
      errors.push({ path: `${base}.podLabels["${k}"]`, message: 'is not allowed: the controller sets this label (it selects the runner\'s pods and objects)' });
    }
  }
  return errors;
}

/** Tolerations and affinity: never onto control-plane nodes, nothing but affinities. */
function schedulingErrors(runner: RunnerPod, base: string): PodFieldError[] {
  const errors: PodFieldError[] = [];
  (runner.tolerations ?? []).forEach((t, i) => {
    if (t.key === undefined || t.key === '' ? t.operator === 'Exists' : CONTROL_PLANE_TAINTS.includes(t.key)) {
      errors.push({ path: `${base}.tolerations[${i}]`, message: `would let the runner onto control-plane nodes (${t.key ? `taint ${t.key}` : 'it tolerates every taint'})` });
    }
  });
  if (runner.affinity !== undefined) errors.push(...unknownKeys(runner.affinity, ['nodeAffinity', 'podAffinity', 'podAntiAffinity'], `${base}.affinity`));
  return errors;
}

/** Bounds on lists and maps. */
function sizeErrors(runner: RunnerPod, base: string): PodFieldError[] {
  const errors: PodFieldError[] = [];
  if ((runner.tolerations ?? []).length > MAX_TOLERATIONS) errors.push({ path: `${base}.tolerations`, message: `must have at most ${MAX_TOLERATIONS} items` });
  for (const field of ['podAnnotations', 'podLabels', 'serviceAccountAnnotations', 'nodeSelector'] as const) {
    const size = Object.entries(runner[field] ?? {}).reduce((n, [k, v]) => n + k.length + v.length, 0);
    if (size > MAX_MAP_BYTES) errors.push({ path: `${base}.${field}`, message: `must hold at most ${MAX_MAP_BYTES} characters of keys and values (it holds ${size})` });
  }
  return errors;
}

/** Every rule of spec.runner that keeps the pod within what a backup needs; paths start at `base` (spec.runner). */
export function runnerPodErrors(runner: RunnerPod | undefined, base = 'spec.runner', reservedMountPaths: readonly string[] = []): PodFieldError[] {
  if (!runner) return [];
  const errors: PodFieldError[] = [];
  (runner.extraVolumes ?? []).forEach((v, i) => errors.push(...volumeErrors(v, `${base}.extraVolumes[${i}]`)));
  (runner.extraVolumeMounts ?? []).forEach((m, i) => errors.push(...mountPathErrors(m.mountPath, `${base}.extraVolumeMounts[${i}].mountPath`, reservedMountPaths)));
  errors.push(...metadataErrors(runner, base), ...schedulingErrors(runner, base), ...sizeErrors(runner, base));
  if (runner.fsGroup === 0) errors.push({ path: `${base}.fsGroup`, message: 'must not be 0 (the root group)' });
  return errors;
}

/**
 * Image references as the container runtimes read them: [host[:port]/]path[:tag][@digest], path segments
 * lower-case alphanumerics joined by ".", "_", "__" or "-".
 */
const IMAGE_REF =
  /^(?:(?<host>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)\/)?(?<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::(?<tag>[\w][\w.-]{0,127}))?(?:@(?<digest>sha256:[a-f0-9]{64}))?$/;

/** The repository of an image reference (host and path, without tag or digest), or undefined when it is no valid reference. */
export function imageRepository(image: string): string | undefined {
  const m = IMAGE_REF.exec(image);
  if (!m?.groups) return undefined;
  const { host, path } = m.groups;
  if (!host) return path;
  // "team/x": a first segment without a dot, a port or "localhost" is a path segment (lower case only).
  if (!/[.:]/.test(host) && host !== 'localhost' && host !== host.toLowerCase()) return undefined;
  return `${host}/${path}`;
}

/**
 * Whether `image` lies under one of `prefixes` (the controller's allowedRunnerImagePrefixes). A prefix
 * ending in "/" admits every repository below it; a prefix without one names a single repository. Tags and
 * digests are free. Both sides are compared as written: "registry.example.com/team" admits
 * "registry.example.com/team:1.0" but not "registry.example.com/team-evil/x" nor "registry.example.com/team/x".
 */
export function imageAllowed(image: string, prefixes: readonly string[]): { ok: true } | { ok: false; message: string } {
  const repo = imageRepository(image);
  if (repo === undefined) return { ok: false, message: `"${image}" is not a valid image reference` };
  if (prefixes.length === 0) return { ok: false, message: `"${image}" is not allowed: the controller allows no image other than its own (setting allowedRunnerImagePrefixes is empty)` };
  if (prefixes.some((p) => (p.endsWith('/') ? repo.startsWith(p) : repo === p))) return { ok: true };
  return { ok: false, message: `"${image}" is not allowed: its repository ${repo} is under none of the controller's allowedRunnerImagePrefixes (${prefixes.join(', ')})` };
}
