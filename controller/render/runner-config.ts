/**
 * DatabaseBackup + its storage class -> the runner's config file and the
 * files beside it (credentials copied from the controller's namespace). Pure:
 * Secrets come in through a lookup, nothing here does I/O.
 *
 * Credentials never appear in config.yaml itself: each one is a file in the
 * same Secret, named `<location>.<what>`, and the config points at it.
 * Database credentials stay in the DatabaseBackup's namespace; the runner
 * gets them from the pod spec (an environment variable, Secret volumes), so
 * the controller never reads them.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { DatabaseBackup, DatabaseBackupStorageClass, StorageLocation } from '../../api/crds/index.js';
import type { ControllerSecretKeyRef, SecretKeyRef } from '../../api/crds/common.js';
import type { LocationConfig, RunnerConfig } from '../../api/runner-config.js';

export const CONFIG_DIR = '/etc/backup-runner';
export const CONFIG_KEY = 'config.yaml';
export const DB_SECRET_DIR = '/var/run/backup-runner/db';
export const PASSWORD_ENV = 'DB_PASSWORD';

/** Why a DatabaseBackup cannot be rendered; reason is a stable CamelCase word for conditions and Events. */
export interface RenderProblem {
  reason: 'EngineNotSupported' | 'SecretNotFound' | 'SecretKeyNotFound' | 'RunnerImageNotFound' | 'InvalidName' | 'ReservedName' | 'LocationNotMounted';
  message: string;
}

/** Secret data (base64 values, as the API returns them) by name, from the controller's namespace. */
export type SecretLookup = (name: string) => Readonly<Record<string, string>> | undefined;

/** A key of a Secret in the DatabaseBackup's namespace, mounted as a file at `path`. */
export interface DbSecretFile {
  secretName: string;
  key: string;
  path: string;
}

export interface RenderedConfig {
  /** The Secret's data: config.yaml and the credential files, base64. */
  secretData: Record<string, string>;
  /** sha256 of secretData (first 16 hex digits): changes exactly when the runner must restart. */
  hash: string;
  /** The database password as an environment variable from the DatabaseBackup's namespace. */
  passwordEnv?: SecretKeyRef;
  dbSecretFiles: DbSecretFile[];
  /** Filesystem locations backed by a PersistentVolumeClaim: mount claimName at path. */
  claims: { claimName: string; path: string }[];
  config: RunnerConfig;
}

export type ConfigResult = { ok: true; value: RenderedConfig } | { ok: false; problems: RenderProblem[] };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** Picks the class locations a DatabaseBackup uses, in the order it names them (the class's order otherwise). */
export function chosenLocations(backup: DatabaseBackup, sc: DatabaseBackupStorageClass): StorageLocation[] {
  const names = backup.spec.locations;
  if (!names) return sc.spec.locations;
  return names.flatMap((n) => sc.spec.locations.filter((l) => l.name === n));
}

function withoutRefs<T extends object>(block: T): Partial<T> {
  return Object.fromEntries(Object.entries(block).filter(([k, v]) => !k.endsWith('SecretRef') && k !== 'claimName' && v !== undefined)) as Partial<T>;
}

class Files {
  readonly data: Record<string, string> = {};
  readonly problems: RenderProblem[] = [];
  constructor(
    private readonly lookup: SecretLookup,
    private readonly controllerNamespace: string,
    private readonly className: string,
  ) {}

  /** Copies a controller-namespace Secret key into the runner's Secret; returns the file's path. */
  copy(ref: ControllerSecretKeyRef, fileKey: string, field: string): string {
    const where = `storage class "${this.className}" ${field}`;
    const secret = this.lookup(ref.secretName);
    if (!secret) {
      this.problems.push({ reason: 'SecretNotFound', message: `secret "${ref.secretName}" not found in namespace "${this.controllerNamespace}" (referenced by ${where})` });
    } else if (secret[ref.key] === undefined) {
      const keys = Object.keys(secret).sort().join(', ') || 'none';
      this.problems.push({ reason: 'SecretKeyNotFound', message: `secret "${ref.secretName}" has no key "${ref.key}" (referenced by ${where}; it has: ${keys})` });
    } else {
      this.data[fileKey] = secret[ref.key]!;
    }
    return `${CONFIG_DIR}/${fileKey}`;
  }
}

function locationConfig(loc: StorageLocation, at: string, files: Files, claims: RenderedConfig['claims']): LocationConfig {
  const base = { name: loc.name, prefix: loc.prefix ?? '' };
  const file = (ref: ControllerSecretKeyRef | undefined, what: string, field: string) =>
    ref ? { file: files.copy(ref, `${loc.name}.${what}`, `${at}.${field}`) } : undefined;
  if (loc.s3) {
    const s3 = loc.s3;
    const caFile = file(s3.caSecretRef, 'ca.pem', 's3.caSecretRef')?.file;
    return {
      ...base,
      type: 's3',
      s3: {
        ...(withoutRefs(s3) as LocationConfig['s3'] & object),
        ...(caFile ? { caFile } : {}),
        ...(s3.accessKeyIdSecretRef ? { accessKeyId: file(s3.accessKeyIdSecretRef, 'access-key-id', 's3.accessKeyIdSecretRef') } : {}),
        ...(s3.secretAccessKeySecretRef ? { secretAccessKey: file(s3.secretAccessKeySecretRef, 'secret-access-key', 's3.secretAccessKeySecretRef') } : {}),
        ...(s3.sessionTokenSecretRef ? { sessionToken: file(s3.sessionTokenSecretRef, 'session-token', 's3.sessionTokenSecretRef') } : {}),
      },
    };
  }
  if (loc.gcs) {
    const keyFile = file(loc.gcs.keySecretRef, 'gcs-key.json', 'gcs.keySecretRef')?.file;
    return { ...base, type: 'gcs', gcs: { ...(withoutRefs(loc.gcs) as LocationConfig['gcs'] & object), ...(keyFile ? { keyFile } : {}) } };
  }
  const fs = loc.filesystem!;
  if (fs.claimName) claims.push({ claimName: fs.claimName, path: fs.path });
  return { ...base, type: 'filesystem', filesystem: { path: fs.path } };
}

/** Every missing Secret or key among a storage class's credential references. */
export function storageClassProblems(sc: DatabaseBackupStorageClass, lookup: SecretLookup, controllerNamespace: string): RenderProblem[] {
  const files = new Files(lookup, controllerNamespace, sc.metadata.name ?? '');
  sc.spec.locations.forEach((loc, i) => locationConfig(loc, `spec.locations[${i}]`, files, []));
  return files.problems;
}

function dbFile(ref: SecretKeyRef | undefined, out: DbSecretFile[]): string | undefined {
  if (!ref) return undefined;
  const path = `${DB_SECRET_DIR}/${ref.name}/${ref.key}`;
  if (!out.some((f) => f.path === path)) out.push({ secretName: ref.name, key: ref.key, path });
  return path;
}

export function hashData(data: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(data).sort()) h.update(`${k}\0${data[k]}\0`);
  return h.digest('hex').slice(0, 16);
}

/**
 * The runner's config for a validated DatabaseBackup and its validated class.
 * Reports every problem together (missing Secrets, keys, an engine the runner
 * cannot back up yet).
 */
export function renderRunnerConfig(backup: DatabaseBackup, sc: DatabaseBackupStorageClass, lookup: SecretLookup, controllerNamespace: string): ConfigResult {
  const problems: RenderProblem[] = [];
  const name = backup.metadata.name ?? '';
  const namespace = backup.metadata.namespace ?? '';
  if (!DNS_LABEL.test(name) || name.length > 63) {
    problems.push({ reason: 'InvalidName', message: `DatabaseBackup name "${name}" must be a DNS label (at most 63 lower-case letters, digits and -, no dots): it names the backups' path in storage` });
  }
  const engine = backup.spec.engine;
  if (engine.type !== 'postgresql' || !engine.postgresql) {
    problems.push({ reason: 'EngineNotSupported', message: `engine "${engine.type}" is not supported by this runner version (supported: postgresql)` });
    return { ok: false, problems };
  }
  const files = new Files(lookup, controllerNamespace, sc.metadata.name ?? '');
  const claims: RenderedConfig['claims'] = [];
  const locations = chosenLocations(backup, sc).map((loc) => locationConfig(loc, `spec.locations[${sc.spec.locations.indexOf(loc)}]`, files, claims));
  problems.push(...files.problems);
  if (problems.length > 0) return { ok: false, problems };

  const pg = engine.postgresql;
  const dbSecretFiles: DbSecretFile[] = [];
  const sslRootCert = dbFile(pg.sslRootCertSecretRef, dbSecretFiles);
  const sslCert = dbFile(pg.sslCertSecretRef, dbSecretFiles);
  const sslKey = dbFile(pg.sslKeySecretRef, dbSecretFiles);
  const config: RunnerConfig = {
    namespace,
    name,
    engine: {
      type: 'postgresql',
      postgresql: {
        host: pg.host,
        port: pg.port,
        database: pg.database,
        user: pg.user,
        ...(pg.passwordSecretRef ? { password: { env: PASSWORD_ENV } } : {}),
        ...(pg.sslMode ? { sslMode: pg.sslMode } : {}),
        ...(sslRootCert ? { sslRootCert } : {}),
        ...(sslCert ? { sslCert } : {}),
        ...(sslKey ? { sslKey } : {}),
        ...(pg.dumpArgs ? { dumpArgs: pg.dumpArgs } : {}),
        ...(pg.restoreArgs ? { restoreArgs: pg.restoreArgs } : {}),
      },
    },
    compression: { algorithm: 'auto' },
    locations,
    ...(backup.spec.schedule ? { schedule: backup.spec.schedule } : {}),
    retention: backup.spec.retention ?? ({} as RunnerConfig['retention']),
    daemon: {} as RunnerConfig['daemon'],
    report: { databaseBackup: { namespace, name } },
  };
  const header = `# Written by db-backup-controller for DatabaseBackup ${namespace}/${name}; edits are overwritten.\n`;
  const secretData = { ...files.data, [CONFIG_KEY]: b64(header + stringify(config, { sortMapEntries: false })) };
  return {
    ok: true,
    value: {
      secretData,
      hash: hashData(secretData),
      ...(pg.passwordSecretRef ? { passwordEnv: pg.passwordSecretRef } : {}),
      dbSecretFiles,
      claims,
      config,
    },
  };
}
