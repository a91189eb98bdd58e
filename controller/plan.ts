/**
 * Fetch -> decide, without I/O: given a DatabaseBackup and what the caches
 * hold, either the objects to run it or the one problem to report. The
 * checks run in the order a user fixes things: the spec itself, its storage
 * class (exists, valid, allows the namespace, has the chosen locations), the
 * Secrets, the runner image, then the PersistentVolumeClaims the runner
 * would mount (they must exist in its namespace). A DatabaseBackup whose
 * storage overlaps an earlier one's (see overlap.ts) is refused before
 * anything is rendered.
 */
import {
  validateDatabaseBackup,
  validateEngine,
  validateStorageClass,
  type DatabaseBackupEngine,
  type ResolvedEngine,
  type DatabaseBackup,
  type DatabaseBackupStorageClass,
} from '../api/crds/index.js';
import type { FieldError } from '../api/runner-config.js';
import { backupRoots, overlapMessage, overlapsRefusing, type BackupRoots } from './overlap.js';
import { renderRunner, type Rendered, type RenderSettings } from './render/objects.js';
import type { SecretLookup } from './render/runner-config.js';
import type { Problem } from './status.js';

/**
 * `revoke`: the DatabaseBackup may no longer use its storage (its class is gone or no longer allows
 * its namespace, the class's keys are gone, the class now wants the DatabaseBackup's own keys, its storage
 * overlaps an earlier DatabaseBackup's): its runner
 * and every credential copied into its namespace must go. Any other problem keeps a running runner on
 * its last good config.
 */
export type Plan = { ok: true; rendered: Rendered } | { ok: false; problem: Problem; revoke: boolean };

/** The problems that take a DatabaseBackup's access to its storage away. */
export const REVOKING_REASONS: ReadonlySet<string> = new Set(['StorageClassNotFound', 'EngineNotFound', 'NamespaceNotAllowed', 'PrefixOverlap', 'SecretNotFound', 'SecretKeyNotFound', 'CredentialsRequired']);

function fieldText(errors: FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('; ');
}

/** Whether a PersistentVolumeClaim exists (as the controller's cache shows it). */
export type ClaimLookup = (namespace: string, name: string) => boolean;

/**
 * The claims the rendered runner mounts that do not exist in its namespace, each with the field that
 * names it: the storage class's filesystem.claimName or a persistentVolumeClaim of spec.runner.extraVolumes.
 */
export function missingClaims(rendered: Rendered, backup: DatabaseBackup, sc: DatabaseBackupStorageClass, claimExists: ClaimLookup): Problem[] {
  const ns = rendered.objects.deployment.metadata?.namespace ?? backup.metadata.namespace ?? '';
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const v of rendered.objects.deployment.spec?.template.spec?.volumes ?? []) {
    const claim = v.persistentVolumeClaim?.claimName;
    if (!claim || seen.has(claim) || claimExists(ns, claim)) continue;
    seen.add(claim);
    const extra = (backup.spec.runner?.extraVolumes ?? []).findIndex((x) => x.name === v.name);
    const loc = sc.spec.locations.findIndex((l) => l.filesystem?.claimName === claim);
    const field =
      extra >= 0
        ? `spec.runner.extraVolumes[${extra}].persistentVolumeClaim.claimName`
        : loc >= 0
          ? `spec.locations[${loc}].filesystem.claimName of storage class "${sc.metadata.name ?? ''}"`
          : 'a volume of the runner';
    problems.push({
      reason: 'ClaimNotFound',
      message: `PersistentVolumeClaim ${ns}/${claim} (${field}) does not exist; create it in namespace "${ns}" and the runner is deployed (or updated) without any other change`,
    });
  }
  return problems;
}

/** A Secret of the DatabaseBackup's namespace that its runner pod needs, with the spec fields that name it. */
export interface NamespaceSecret {
  name: string;
  fields: string[];
}

/** Paths in the spec of every reference to a Secret by name: `*SecretRef`/`secretKeyRef` (name), `secret` volume sources (secretName, or name in a projection). */
function secretFields(spec: unknown): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const walk = (v: unknown, path: string, key: string): void => {
    // The items of a list of references (`verifySecretRefs`) are references too.
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, /SecretRefs$/.test(key) ? key.slice(0, -1) : ''));
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const name = /SecretRef$|^secretKeyRef$/.test(key) ? o.name : key === 'secret' ? (o.secretName ?? o.name) : undefined;
      if (typeof name === 'string') fields.set(name, [...(fields.get(name) ?? []), path]);
      for (const [k, x] of Object.entries(o)) walk(x, `${path}.${k}`, k);
    }
  };
  walk(spec, 'spec', '');
  return fields;
}

/**
 * The Secrets of its own namespace that the rendered runner pod cannot start without (environment
 * values and volumes that are not optional), other than the runner's own config Secret; each with the
 * DatabaseBackup's fields that name it.
 */
export function namespaceSecrets(rendered: Rendered, backup: DatabaseBackup): NamespaceSecret[] {
  const own = rendered.objects.secret.metadata?.name;
  const names = new Set(podSecrets(rendered.objects.deployment.spec?.template.spec).filter((n) => n !== own));
  const fields = secretFields(backup.spec);
  return [...names].map((name) => ({ name, fields: fields.get(name) ?? ['a volume of the runner'] }));
}

type Ref = { name?: string; optional?: boolean } | undefined;
type PodSpec = NonNullable<NonNullable<Rendered['objects']['deployment']['spec']>['template']['spec']>;

/** The names of the Secrets a pod cannot start without, in order: its containers' environment, then its volumes. */
function podSecrets(pod: PodSpec | undefined): string[] {
  const needed = (r: Ref): string[] => (r?.name && !r.optional ? [r.name] : []);
  const containers = [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])];
  return [
    ...containers.flatMap((c) => [...(c.env ?? []).flatMap((e) => needed(e.valueFrom?.secretKeyRef)), ...(c.envFrom ?? []).flatMap((e) => needed(e.secretRef))]),
    ...(pod?.volumes ?? []).flatMap((v) => [
      ...needed(v.secret && { name: v.secret.secretName, optional: v.secret.optional }),
      ...(v.projected?.sources ?? []).flatMap((p) => needed(p.secret)),
    ]),
  ];
}

/** The problem of Secrets that `namespaceSecrets` named and that do not exist. */
export function missingSecretsProblem(namespace: string, missing: readonly NamespaceSecret[], recheckMs: number): Problem {
  const which = missing.map((s) => `Secret ${namespace}/${s.name} (${s.fields.join(', ')})`).join('; ');
  return {
    reason: 'NamespaceSecretNotFound',
    message: `${which} ${missing.length === 1 ? 'does' : 'do'} not exist; the runner pod cannot start without ${missing.length === 1 ? 'it' : 'them'}: create ${missing.length === 1 ? 'it' : 'them'} in namespace "${namespace}" and the runner is deployed (or updated) without any other change (looked for again every ${Math.round(recheckMs / 1000)} s)`,
  };
}

export function planBackup(
  backup: DatabaseBackup,
  storageClass: DatabaseBackupStorageClass | undefined,
  secrets: SecretLookup,
  settings: RenderSettings,
  /** The storage roots of every other DatabaseBackup that may use its class; omitted: no overlap check. */
  others?: readonly BackupRoots[],
  /** Whether a PersistentVolumeClaim exists; omitted: claims are not checked. */
  claimExists?: ClaimLookup,
  /** DatabaseBackupEngines by name (for engine.type command). */
  engines: (name: string) => DatabaseBackupEngine | undefined = () => undefined,
): Plan {
  const fail = (reason: string, message: string): Plan => ({ ok: false, problem: { reason, message }, revoke: REVOKING_REASONS.has(reason) });
  const alone = validateDatabaseBackup(backup);
  if (!alone.ok) return fail('InvalidSpec', `invalid DatabaseBackup: ${fieldText(alone.errors)}`);
  const className = alone.value.spec.storageClassName;
  if (!storageClass) return fail('StorageClassNotFound', `storage class "${className}" not found`);
  const sc = validateStorageClass(storageClass);
  if (!sc.ok) return fail('StorageClassInvalid', `storage class "${className}" is invalid: ${fieldText(sc.errors)}`);
  const allowed = sc.value.spec.allowedNamespaces ?? [];
  const ns = backup.metadata.namespace ?? '';
  if (allowed.length > 0 && !allowed.includes(ns)) {
    return fail('NamespaceNotAllowed', `namespace "${ns}" is not allowed by storage class "${className}" (allowed: ${allowed.join(', ')})`);
  }
  const resolved = resolveEngine(alone.value, ns, engines);
  if ('reason' in resolved) return fail(resolved.reason, resolved.message);
  const full = validateDatabaseBackup(backup, { storageClass: sc.value, ...resolved });
  if (!full.ok) return fail('InvalidSpec', `invalid DatabaseBackup: ${fieldText(full.errors)}`);
  if (others) {
    const refused = overlapsRefusing(backupRoots(full.value, sc.value), others);
    if (refused.length > 0) return fail('PrefixOverlap', overlapMessage(refused));
  }
  const r = renderRunner({ backup: full.value, storageClass: sc.value, secrets, settings, ...resolved });
  if (!r.ok) {
    // The reason is the first problem that takes access away, else the first one.
    const first = r.problems.find((p) => REVOKING_REASONS.has(p.reason)) ?? r.problems[0]!;
    return fail(first.reason, r.problems.map((p) => p.message).join('; '));
  }
  if (claimExists) {
    const missing = missingClaims(r.value, full.value, sc.value, claimExists);
    if (missing.length > 0) return fail('ClaimNotFound', missing.map((p) => p.message).join('; '));
  }
  return { ok: true, rendered: r.value };
}

/**
 * For engine.type command: the DatabaseBackupEngine the spec names, validated and allowing the namespace,
 * or why not (EngineNotFound takes the runner away: its administrator removed the engine).
 */
function resolveEngine(backup: DatabaseBackup, ns: string, engines: (name: string) => DatabaseBackupEngine | undefined): { engine?: ResolvedEngine } | Problem {
  const command = backup.spec.engine.type === 'command' ? backup.spec.engine.command : undefined;
  if (!command) return {};
  const found = engines(command.engineRef);
  if (!found) return { reason: 'EngineNotFound', message: `DatabaseBackupEngine "${command.engineRef}" not found (spec.engine.command.engineRef)` };
  const valid = validateEngine(found);
  if (!valid.ok) return { reason: 'EngineInvalid', message: `DatabaseBackupEngine "${command.engineRef}" is invalid: ${fieldText(valid.errors)}` };
  const allowed = valid.value.allowedNamespaces;
  if (allowed.length > 0 && !allowed.includes(ns)) {
    return { reason: 'NamespaceNotAllowed', message: `namespace "${ns}" is not allowed by DatabaseBackupEngine "${command.engineRef}" (allowed: ${allowed.join(', ')})` };
  }
  return { engine: valid.value };
}

/** Every Secret name a storage class references (in the controller's namespace). */
export function referencedSecrets(sc: DatabaseBackupStorageClass): Set<string> {
  const names = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'secretName' && typeof x === 'string') names.add(x);
        else walk(x);
      }
    }
  };
  walk(sc.spec);
  return names;
}
