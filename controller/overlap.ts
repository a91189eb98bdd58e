/**
 * No two DatabaseBackups may share storage: each one's objects live under
 * `<prefix>/<namespace>/<name>/` of every location it uses, and a runner
 * lists, sweeps and applies retention under that root. When one root holds
 * another (class X prefix "" + shop/orders -> `shop/orders/`, class Y prefix
 * "shop" + orders/x -> `shop/orders/x/`, same bucket), the outer runner would
 * take the inner one's backups for its own. Pure.
 *
 * A root is a store plus a path of segments:
 * - S3: endpoint (default AWS) + bucket, key prefix `<prefix>/<ns>/<name>`;
 * - GCS: API endpoint (default Google) + bucket, object name prefix the same;
 * - filesystem on a PersistentVolumeClaim (the class's claimName, or one of
 *   spec.runner.extraVolumes mounted over the path): namespace + claim, the
 *   path inside the volume (mount subPath, the path below the mount point,
 *   then `<prefix>/<ns>/<name>`).
 * Other filesystem locations (an emptyDir, the runner's own disk) are private
 * to one pod and have no shared root.
 *
 * Two roots overlap when they are in the same store and one's segments start
 * with the other's. Of two overlapping DatabaseBackups the later one
 * (creationTimestamp, then namespace/name) is refused; the earlier keeps its
 * storage.
 */
import type { DatabaseBackup, DatabaseBackupStorageClass, StorageLocation } from '../api/crds/index.js';

export interface StorageRoot {
  /** The location of the storage class this root comes from. */
  location: string;
  /** Identifies the bucket or volume, e.g. `s3 https://minio.example:9000 bucket orders`. */
  store: string;
  /** Path segments inside the store, normalised (no empty, `.` or `..` segments). */
  segments: string[];
  /** For messages: `s3://orders/shop/orders/` (with the endpoint when not the default). */
  display: string;
}

/** What is known of one DatabaseBackup: its identity, order and roots. */
export interface BackupRoots {
  namespace: string;
  name: string;
  /** RFC 3339, as the API server sets it; compared as text (same format, UTC). */
  creationTimestamp: string;
  storageClass: string;
  roots: StorageRoot[];
}

export interface Overlap {
  /** The DatabaseBackup that keeps its storage (the earlier one). */
  earlier: BackupRoots;
  later: BackupRoots;
  /** The later one's root and the earlier one's root that overlap. */
  laterRoot: StorageRoot;
  earlierRoot: StorageRoot;
}

/** Splits a path into segments, dropping empty and `.` segments and resolving `..` (as a filesystem would). */
export function segmentsOf(...parts: string[]): string[] {
  const out: string[] = [];
  for (const part of parts) {
    for (const s of part.split('/')) {
      if (s === '' || s === '.') continue;
      if (s === '..') out.pop();
      else out.push(s);
    }
  }
  return out;
}

function endpointKey(endpoint: string | undefined): string {
  if (!endpoint) return 'default';
  return endpoint.trim().toLowerCase().replace(/\/+$/, '');
}

type RunnerVolumes = Pick<NonNullable<DatabaseBackup['spec']['runner']>, 'extraVolumes' | 'extraVolumeMounts'> | undefined;

/** The PersistentVolumeClaim and the path inside it under which a filesystem path lies, from spec.runner's volumes. */
function claimAt(path: string, runner: RunnerVolumes): { claimName: string; inside: string[] } | undefined {
  const target = segmentsOf(path);
  let deepest: { mount: NonNullable<NonNullable<RunnerVolumes>['extraVolumeMounts']>[number]; depth: number } | undefined;
  for (const m of runner?.extraVolumeMounts ?? []) {
    const at = segmentsOf(m.mountPath);
    if (at.length > target.length || at.some((s, i) => s !== target[i])) continue;
    if (!deepest || at.length > deepest.depth) deepest = { mount: m, depth: at.length };
  }
  if (!deepest) return undefined;
  const vol = (runner?.extraVolumes ?? []).find((v) => v.name === deepest.mount.name) as { persistentVolumeClaim?: { claimName?: unknown } } | undefined;
  const claimName = vol?.persistentVolumeClaim?.claimName;
  // Any other volume (emptyDir, ...) is private to the pod.
  if (typeof claimName !== 'string') return undefined;
  return { claimName, inside: segmentsOf(deepest.mount.subPath ?? '', ...target.slice(deepest.depth)) };
}

/** The shared storage root of one location for one DatabaseBackup, or undefined when it has none. */
export function locationRoot(loc: StorageLocation, namespace: string, name: string, runner: RunnerVolumes): StorageRoot | undefined {
  const own = segmentsOf(loc.prefix ?? '', namespace, name);
  const display = (scheme: string, host: string, segs: string[]) => `${scheme}://${host}/${segs.join('/')}/`;
  if (loc.s3) {
    const ep = endpointKey(loc.s3.endpoint);
    return { location: loc.name, store: `s3 ${ep} bucket ${loc.s3.bucket}`, segments: own, display: display('s3', loc.s3.bucket, own) + (ep === 'default' ? '' : ` at ${ep}`) };
  }
  if (loc.gcs) {
    const ep = endpointKey(loc.gcs.apiEndpoint);
    return { location: loc.name, store: `gcs ${ep} bucket ${loc.gcs.bucket}`, segments: own, display: display('gs', loc.gcs.bucket, own) + (ep === 'default' ? '' : ` at ${ep}`) };
  }
  const fs = loc.filesystem;
  if (!fs) return undefined;
  const claim = fs.claimName ? { claimName: fs.claimName, inside: [] as string[] } : claimAt(fs.path, runner);
  if (!claim) return undefined;
  const segments = [...claim.inside, ...own];
  return { location: loc.name, store: `pvc ${namespace}/${claim.claimName}`, segments, display: `pvc://${namespace}/${claim.claimName}/${segments.join('/')}/` };
}

/** Every shared root of a DatabaseBackup: one per location it uses (the class's locations it names, or all). */
export function backupRoots(backup: DatabaseBackup, sc: DatabaseBackupStorageClass): BackupRoots {
  const namespace = backup.metadata.namespace ?? '';
  const name = backup.metadata.name ?? '';
  const chosen = backup.spec?.locations;
  const locations = chosen ? sc.spec.locations.filter((l) => chosen.includes(l.name)) : sc.spec.locations;
  const roots = locations.flatMap((l) => locationRoot(l, namespace, name, backup.spec?.runner) ?? []);
  return {
    namespace,
    name,
    creationTimestamp: (backup.metadata as { creationTimestamp?: string }).creationTimestamp ?? '',
    storageClass: sc.metadata.name ?? '',
    roots,
  };
}

function contains(outer: string[], inner: string[]): boolean {
  return outer.length <= inner.length && outer.every((s, i) => s === inner[i]);
}

/** True when the two roots share objects: same store, one path inside (or equal to) the other. */
export function rootsOverlap(a: StorageRoot, b: StorageRoot): boolean {
  return a.store === b.store && (contains(a.segments, b.segments) || contains(b.segments, a.segments));
}

/** Negative when `a` came first: creationTimestamp, then namespace/name. */
export function compareAge(a: Pick<BackupRoots, 'creationTimestamp' | 'namespace' | 'name'>, b: Pick<BackupRoots, 'creationTimestamp' | 'namespace' | 'name'>): number {
  if (a.creationTimestamp !== b.creationTimestamp) {
    // An unset timestamp (not yet stored) counts as the newest.
    if (!a.creationTimestamp) return 1;
    if (!b.creationTimestamp) return -1;
    return a.creationTimestamp < b.creationTimestamp ? -1 : 1;
  }
  const ka = `${a.namespace}/${a.name}`;
  const kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * The overlaps that refuse `target`: each earlier DatabaseBackup of `others`
 * whose storage overlaps one of target's roots (the first overlapping pair of
 * roots each). Empty when target may run.
 */
export function overlapsRefusing(target: BackupRoots, others: readonly BackupRoots[]): Overlap[] {
  const found: Overlap[] = [];
  for (const o of others) {
    if (o.namespace === target.namespace && o.name === target.name) continue;
    if (compareAge(o, target) >= 0) continue;
    const pair = target.roots.flatMap((t) => o.roots.filter((r) => rootsOverlap(t, r)).map((r) => [t, r] as const))[0];
    if (pair) found.push({ earlier: o, later: target, laterRoot: pair[0], earlierRoot: pair[1] });
  }
  return found.sort((a, b) => compareAge(a.earlier, b.earlier));
}

/** Every overlap among `all`, each reported once from the later DatabaseBackup's side. */
export function findOverlaps(all: readonly BackupRoots[]): Overlap[] {
  return all.flatMap((b) => overlapsRefusing(b, all));
}

/** The condition message for a refused DatabaseBackup: names both objects and the overlapping storage. */
export function overlapMessage(overlaps: readonly Overlap[]): string {
  const one = (o: Overlap) =>
    `location "${o.laterRoot.location}" of storage class "${o.later.storageClass}" stores under ${o.laterRoot.display}, which overlaps ${o.earlierRoot.display} ` +
    `of DatabaseBackup ${o.earlier.namespace}/${o.earlier.name} (storage class "${o.earlier.storageClass}", location "${o.earlierRoot.location}", created earlier)`;
  const first = overlaps[0];
  if (!first) return '';
  const more = overlaps.length > 1 ? `; and ${overlaps.length - 1} more DatabaseBackup${overlaps.length > 2 ? 's' : ''}: ${overlaps.slice(1).map((o) => `${o.earlier.namespace}/${o.earlier.name}`).join(', ')}` : '';
  return `${one(first)}: a runner must own its storage prefix alone: use another storage class prefix or location${more}`;
}
