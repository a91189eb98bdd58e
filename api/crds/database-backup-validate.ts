/**
 * The rules of a DatabaseBackup that a structural schema on Kubernetes 1.20
 * (no CEL) cannot state: the engine block matching engine.type, cron XOR
 * interval, valid cron expressions and time zones, unique names, volume
 * mounts that name a volume, the runner pod policy (runner-pod.ts: volume
 * sources, mount paths, annotations, labels, tolerations), the extra tool
 * arguments (postgresql-args.ts: the allowlist the runner enforces too), and
 * the fit with the chosen storage class.
 * Meant for the controller, which reports them as a ConfigValid=False
 * condition and an Event.
 */
import { Value } from '@sinclair/typebox/value';
import { recipientErrors } from '../age.js';
import { engineArgErrors } from '../engine-args.js';
import { toolConfigErrors } from '../engine-contract.js';
import type { ResolvedEngine } from './engine.js';
import { blockErrors, scheduleErrors, structuralErrors, zoneErrors, type FieldError, type ValidationResult } from '../runner-config.js';
import { DB_ENGINE_TYPES, DatabaseBackupSpec, type DatabaseBackup } from './database-backup.js';
import { runnerPodErrors, type RunnerPod } from './runner-pod.js';
import { duplicateErrors, merge, under, type DatabaseBackupStorageClass } from './storage-class.js';

export interface DatabaseBackupContext {
  /** The class named by spec.storageClassName, when it exists; enables the class checks. */
  storageClass?: DatabaseBackupStorageClass;
  /** For engine.type command: the DatabaseBackupEngine named by engineRef, when it exists; enables the config check. */
  engine?: ResolvedEngine;
}

function runnerErrors(runner: RunnerPod | undefined): FieldError[] {
  if (!runner) return [];
  const errors: FieldError[] = [];
  const volumes = (runner.extraVolumes ?? []).map((v) => v.name);
  errors.push(...duplicateErrors('spec.runner.extraVolumes', volumes, 'volume name').map((e) => ({ ...e, path: `${e.path}.name` })));
  (runner.extraVolumeMounts ?? []).forEach((m, i) => {
    if (!volumes.includes(m.name)) errors.push({ path: `spec.runner.extraVolumeMounts[${i}].name`, message: `names no volume of spec.runner.extraVolumes ("${m.name}")` });
  });
  (runner.tolerations ?? []).forEach((t, i) => {
    if (t.operator === 'Exists' && t.value) errors.push({ path: `spec.runner.tolerations[${i}].value`, message: 'must be empty when operator is Exists' });
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute') {
      errors.push({ path: `spec.runner.tolerations[${i}].tolerationSeconds`, message: 'is only allowed with effect NoExecute' });
    }
  });
  errors.push(...runnerPodErrors(runner));
  return errors;
}

/** spec.credentials on its own: one entry per location, one block (s3 or gcs) each, S3 keys in pairs. */
function credentialsErrors(spec: DatabaseBackupSpec): FieldError[] {
  const entries = spec.credentials ?? [];
  const errors = duplicateErrors('spec.credentials', entries.map((c) => c.location), 'location').map((e) => ({ ...e, path: `${e.path}.location` }));
  entries.forEach((c, i) => {
    const at = `spec.credentials[${i}]`;
    if ((c.s3 === undefined) === (c.gcs === undefined)) errors.push({ path: at, message: 'set exactly one of s3, gcs' });
    if (c.s3 && (!c.s3.accessKeyIdSecretRef || !c.s3.secretAccessKeySecretRef)) errors.push({ path: `${at}.s3`, message: 'set both accessKeyIdSecretRef and secretAccessKeySecretRef' });
    if (c.gcs && !c.gcs.keySecretRef) errors.push({ path: `${at}.gcs.keySecretRef`, message: 'is required' });
  });
  return errors;
}

/** spec.encryption on its own: one entry per location, valid recipients. */
function encryptionErrors(spec: DatabaseBackupSpec): FieldError[] {
  const entries = spec.encryption ?? [];
  const errors = duplicateErrors('spec.encryption', entries.map((e) => e.location), 'location').map((e) => ({ ...e, path: `${e.path}.location` }));
  entries.forEach((e, i) => {
    errors.push(...recipientErrors(`spec.encryption[${i}].age.recipients`, e.age.recipients));
    if (!e.age.recipients && !e.age.identitySecretRef) errors.push({ path: `spec.encryption[${i}].age`, message: 'set recipients, identitySecretRef or both' });
  });
  return errors;
}

/** spec.encryption against the class: a location this DatabaseBackup uses, encrypted by the class or here, never added to a passphrase. */
function classEncryptionErrors(spec: DatabaseBackupSpec, sc: DatabaseBackupStorageClass): FieldError[] {
  const errors: FieldError[] = [];
  const used = spec.locations ?? sc.spec.locations.map((l) => l.name);
  (spec.encryption ?? []).forEach((e, i) => {
    const at = `spec.encryption[${i}]`;
    const loc = sc.spec.locations.find((l) => l.name === e.location);
    if (!loc || !used.includes(e.location)) {
      errors.push({ path: `${at}.location`, message: `"${e.location}" is not a location this DatabaseBackup uses (storage class "${spec.storageClassName}")` });
      return;
    }
    const cls = loc.encryption?.age;
    if (cls?.passphraseSecretRef && e.age.recipients) {
      errors.push({ path: `${at}.age.recipients`, message: `location "${e.location}" of storage class "${spec.storageClassName}" is encrypted with a passphrase, which age allows only alone` });
    }
    if (!cls && !e.age.recipients) {
      errors.push({ path: `${at}.age`, message: `location "${e.location}" is not encrypted by storage class "${spec.storageClassName}": add recipients to encrypt it, or remove the entry` });
    }
  });
  return errors;
}

function classErrors(obj: DatabaseBackup, spec: DatabaseBackupSpec, sc: DatabaseBackupStorageClass | undefined): FieldError[] {
  if (!sc) return [];
  const errors: FieldError[] = [];
  const names = sc.spec.locations.map((l) => l.name);
  (spec.locations ?? []).forEach((n, i) => {
    if (!names.includes(n)) errors.push({ path: `spec.locations[${i}]`, message: `storage class "${spec.storageClassName}" has no location "${n}" (it has ${names.join(', ')})` });
  });
  const allowed = sc.spec.allowedNamespaces ?? [];
  const ns = obj.metadata?.namespace;
  if (allowed.length > 0 && (ns === undefined || !allowed.includes(ns))) {
    errors.push({ path: 'spec.storageClassName', message: `storage class "${spec.storageClassName}" does not allow namespace "${ns ?? ''}" (allowed: ${allowed.join(', ')})` });
  }
  errors.push(...classEncryptionErrors(spec, sc));
  return errors;
}

/** The PostgreSQL block's cross-field rules: a whole server (allDatabases or databases), and the fields each mode reads. */
function postgresqlErrors(pg: NonNullable<DatabaseBackupSpec['engine']['postgresql']>): FieldError[] {
  const errors: FieldError[] = [];
  if (pg.allDatabases && pg.databases) errors.push({ path: 'spec.engine.postgresql', message: 'set at most one of allDatabases, databases' });
  for (const field of ['globals', 'parallel'] as const) {
    if (pg[field] !== undefined && !pg.allDatabases && !pg.databases) errors.push({ path: `spec.engine.postgresql.${field}`, message: 'applies only with allDatabases or databases (a whole-server backup)' });
  }
  if (pg.mode === 'physical') {
    for (const field of ['allDatabases', 'databases', 'dumpArgs', 'restoreArgs'] as const) {
      if (pg[field] !== undefined) errors.push({ path: `spec.engine.postgresql.${field}`, message: 'applies only to mode logical (a physical base backup is always the whole server, taken by pg_basebackup)' });
    }
  } else {
    for (const field of ['checkpoint', 'wal'] as const) if (pg[field] !== undefined) errors.push({ path: `spec.engine.postgresql.${field}`, message: 'applies only to mode physical' });
  }
  return errors;
}

function backupRules(obj: DatabaseBackup, spec: DatabaseBackupSpec, ctx: DatabaseBackupContext): FieldError[] {
  const errors: FieldError[] = [];
  errors.push(...blockErrors('spec.engine', spec.engine.type, DB_ENGINE_TYPES, spec.engine));
  errors.push(...scheduleErrors(spec.schedule, 'spec.schedule'));
  errors.push(...zoneErrors('spec.retention.timeZone', spec.retention?.timeZone));
  errors.push(...duplicateErrors('spec.locations', spec.locations ?? [], 'location'));
  errors.push(...runnerErrors(spec.runner));
  errors.push(...engineArgErrors('spec.engine', spec.engine));
  if (spec.engine.postgresql) errors.push(...postgresqlErrors(spec.engine.postgresql));
  errors.push(...credentialsErrors(spec));
  errors.push(...encryptionErrors(spec));
  if (spec.signing && !spec.signing.keySecretRef && !spec.signing.verifySecretRefs) errors.push({ path: 'spec.signing', message: 'set keySecretRef, verifySecretRefs or both' });
  errors.push(...classErrors(obj, spec, ctx.storageClass));
  // The engine's image runs the administrator's tool: a tenant does not swap it for an image of its choice.
  if (spec.engine.type === 'command' && spec.runner?.image) errors.push({ path: 'spec.runner.image', message: "must not be set with an engine defined by a command (its DatabaseBackupEngine's image runs the tool)" });
  if (spec.engine.type === 'command' && spec.engine.command && ctx.engine) {
    errors.push(...toolConfigErrors(ctx.engine.definition.configSchema, spec.engine.command.config, 'spec.engine.command.config', `DatabaseBackupEngine ${ctx.engine.definition.name} spec.configSchema`));
  }
  return errors;
}

/**
 * Everything the controller checks on a DatabaseBackup: the shape (as the API
 * server does) plus the cross-field rules. Fills defaults; reports every
 * problem together, each with its field path.
 */
export function validateDatabaseBackup(obj: unknown, ctx: DatabaseBackupContext = {}): ValidationResult<DatabaseBackup> {
  const input = (obj ?? {}) as DatabaseBackup;
  const spec = Value.Default(DatabaseBackupSpec, Value.Clone((input as { spec?: unknown }).spec ?? {}));
  const errors = under('spec', structuralErrors(DatabaseBackupSpec, spec));
  try {
    merge(errors, backupRules(input, spec as DatabaseBackupSpec, ctx));
  } catch (err) {
    // The shape is too broken for the cross-field rules; the structural errors say why. Without
    // any, a rule that throws must still refuse the object: nothing unchecked reaches a pod.
    if (errors.length === 0) errors.push({ path: 'spec', message: `could not be checked: ${err instanceof Error ? err.message : String(err)}` });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { ...input, spec: spec as DatabaseBackupSpec } };
}
