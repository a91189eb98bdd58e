/**
 * DatabaseBackup + its storage class -> the runner's config file and the
 * files beside it (credentials copied from the controller's namespace). Pure:
 * Secrets come in through a lookup, nothing here does I/O.
 *
 * Credentials never appear in config.yaml itself: a storage class's own keys
 * (credentials.source StorageClass) are files in the same Secret, named
 * `<location>.<what>`, and the config points at them. Database credentials
 * and a DatabaseBackup's own storage keys (credentials.source DatabaseBackup)
 * stay in the DatabaseBackup's namespace; the runner gets them from the pod
 * spec (an environment variable, Secret volumes), so the controller never
 * reads them. Ambient locations have no keys at all.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { credentialSource, type DatabaseBackup, type DatabaseBackupStorageClass, type LocationCredentials, type LocationEncryption, type StorageLocation } from '../../api/crds/index.js';
import type { ControllerSecretKeyRef, SecretKeyRef } from '../../api/crds/common.js';
import { serverWritable, type LocationConfig, type RunnerConfig, type ServerAccess } from '../../api/runner-config.js';
import { runnerName } from '../names.js';
import { isServerSide, serverLocationTypes, type EngineDefinitionSpec } from '../../api/engine-contract.js';
import { RENDERED_ENGINES, renderEngine } from './engines.js';

export const CONFIG_DIR = '/etc/backup-runner';
export const CONFIG_KEY = 'config.yaml';
export const DB_SECRET_DIR = '/var/run/backup-runner/db';
export { PASSWORD_ENV } from './engines.js';

/** Why a DatabaseBackup cannot be rendered; reason is a stable CamelCase word for conditions and Events. */
export interface RenderProblem {
  reason:
    | 'EngineNotSupported'
    | 'EngineNotFound'
    | 'SecretNotFound'
    | 'SecretKeyNotFound'
    | 'RunnerImageNotFound'
    | 'InvalidName'
    | 'ReservedName'
    | 'LocationNotMounted'
    | 'CredentialsRequired'
    | 'CredentialsMismatch'
    | 'ServerSideNotPossible';
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
  /** Per location: where its credentials come from and who can read them (status.credentials). */
  access: LocationAccess[];
  config: RunnerConfig;
}

export interface LocationAccess {
  location: string;
  source: 'StorageClass' | 'DatabaseBackup' | 'Ambient' | 'Volume';
  readableBy: string;
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

/** A DatabaseBackup's own keys for one location, mounted from its namespace. */
interface TenantKeys {
  creds: LocationCredentials;
  files: DbSecretFile[];
}

type FileRef = { file: string } | undefined;

function s3Config(
  s3: NonNullable<StorageLocation['s3']>,
  file: (ref: ControllerSecretKeyRef | undefined, what: string, field: string) => FileRef,
  own: (ref: SecretKeyRef | undefined) => FileRef,
  t: LocationCredentials['s3'],
): LocationConfig['s3'] & object {
  const caFile = file(s3.caSecretRef, 'ca.pem', 's3.caSecretRef')?.file;
  const accessKeyId = file(s3.accessKeyIdSecretRef, 'access-key-id', 's3.accessKeyIdSecretRef') ?? own(t?.accessKeyIdSecretRef);
  const secretAccessKey = file(s3.secretAccessKeySecretRef, 'secret-access-key', 's3.secretAccessKeySecretRef') ?? own(t?.secretAccessKeySecretRef);
  const sessionToken = file(s3.sessionTokenSecretRef, 'session-token', 's3.sessionTokenSecretRef') ?? own(t?.sessionTokenSecretRef);
  return {
    ...(withoutRefs(s3) as LocationConfig['s3'] & object),
    ...(caFile ? { caFile } : {}),
    ...(accessKeyId ? { accessKeyId } : {}),
    ...(secretAccessKey ? { secretAccessKey } : {}),
    ...(sessionToken ? { sessionToken } : {}),
  };
}

function locationConfig(loc: StorageLocation, at: string, files: Files, claims: RenderedConfig['claims'], tenant?: TenantKeys): LocationConfig {
  const base = { name: loc.name, prefix: loc.prefix ?? '', ...(loc.heal === false ? { heal: false } : {}) };
  const file = (ref: ControllerSecretKeyRef | undefined, what: string, field: string) =>
    ref ? { file: files.copy(ref, `${loc.name}.${what}`, `${at}.${field}`) } : undefined;
  const own = (ref: SecretKeyRef | undefined) => (ref && tenant ? { file: dbFile(ref, tenant.files)! } : undefined);
  if (loc.s3) return { ...base, type: 's3', s3: s3Config(loc.s3, file, own, tenant?.creds.s3) };
  if (loc.gcs) {
    const keyFile = file(loc.gcs.keySecretRef, 'gcs-key.json', 'gcs.keySecretRef')?.file ?? own(tenant?.creds.gcs?.keySecretRef)?.file;
    return { ...base, type: 'gcs', gcs: { ...(withoutRefs(loc.gcs) as LocationConfig['gcs'] & object), ...(keyFile ? { keyFile } : {}) } };
  }
  const fs = loc.filesystem!;
  if (fs.claimName) claims.push({ claimName: fs.claimName, path: fs.path });
  return { ...base, type: 'filesystem', filesystem: { path: fs.path } };
}

/**
 * A location's encryption for the runner: the class's recipients and the DatabaseBackup's own (the
 * location is encrypted for all of them), or the class's passphrase (copied into the runner's Secret);
 * the DatabaseBackup's identity Secret mounted from its namespace. Undefined when neither encrypts.
 */
function encryptionConfig(loc: StorageLocation, at: string, files: Files, own: LocationEncryption | undefined, dbFiles: DbSecretFile[]): LocationConfig['encryption'] {
  const cls = loc.encryption?.age;
  const recipients = [...(cls?.recipients ?? []), ...(own?.age.recipients ?? [])];
  const identity = dbFile(own?.age.identitySecretRef, dbFiles);
  const identities = identity ? { identities: [{ file: identity }] } : {};
  if (cls?.passphraseSecretRef) {
    return { age: { passphrase: { file: files.copy(cls.passphraseSecretRef, `${loc.name}.age-passphrase`, `${at}.encryption.age.passphraseSecretRef`) }, ...identities } };
  }
  if (recipients.length === 0) return undefined;
  return { age: { recipients: [...new Set(recipients)], ...identities } };
}

/** The DatabaseBackup's signing keys, mounted from its namespace (never read or copied by the controller). */
function signingConfig(backup: DatabaseBackup, dbFiles: DbSecretFile[]): Pick<RunnerConfig, 'signing'> {
  const s = backup.spec.signing;
  if (!s) return {};
  const key = dbFile(s.keySecretRef, dbFiles);
  const verify = (s.verifySecretRefs ?? []).map((r) => ({ file: dbFile(r, dbFiles)! }));
  return { signing: { ...(key ? { key: { file: key } } : {}), ...(verify.length > 0 ? { verify } : {}) } };
}

const secretNames = (names: (string | undefined)[], ns?: string) =>
  [...new Set(names.filter((n): n is string => n !== undefined))].map((n) => (ns ? `${ns}/${n}` : n)).join(', ');

function classKeysText(loc: StorageLocation, className: string, namespace: string, name: string): string {
  const s3 = loc.s3;
  const from = secretNames([s3?.accessKeyIdSecretRef?.secretName, s3?.secretAccessKeySecretRef?.secretName, s3?.sessionTokenSecretRef?.secretName, loc.gcs?.keySecretRef?.secretName]);
  return (
    `keys of storage class "${className}" (Secret ${from} in the controller's namespace) copied into Secret ${namespace}/${runnerName(name)}: ` +
    `readable by anyone who may read Secrets or create pods in namespace ${namespace}, and valid for whatever those keys may do in the bucket, other tenants' prefixes included`
  );
}

function ownKeysText(tenant: LocationCredentials | undefined, namespace: string): string {
  const s3 = tenant?.s3;
  const from = secretNames([s3?.accessKeyIdSecretRef?.name, s3?.secretAccessKeySecretRef?.name, s3?.sessionTokenSecretRef?.name, tenant?.gcs?.keySecretRef?.name], namespace);
  return `this namespace's own keys (Secret ${from}), mounted into the runner pod, never read or copied by the controller: readable by anyone who may read Secrets or create pods in namespace ${namespace}`;
}

/** Where a location's credentials are and who can read them, for status.credentials and `kubectl describe`. */
function accessOf(loc: StorageLocation, sc: DatabaseBackupStorageClass, namespace: string, name: string, tenant: LocationCredentials | undefined): LocationAccess {
  const source = credentialSource(loc, sc.spec);
  if (source === 'StorageClass') return { location: loc.name, source, readableBy: classKeysText(loc, sc.metadata.name ?? '', namespace, name) };
  if (source === 'DatabaseBackup') return { location: loc.name, source, readableBy: ownKeysText(tenant, namespace) };
  if (source === 'Ambient') {
    return {
      location: loc.name,
      source,
      readableBy:
        `no keys: the runner authenticates as ServiceAccount ${namespace}/${runnerName(name)} (IRSA, GKE Workload Identity) or with the node's default credentials; ` +
        `it may do what cloud IAM grants that identity, and so may anyone who may create pods with that ServiceAccount in namespace ${namespace}`,
    };
  }
  const claim = loc.filesystem?.claimName;
  return {
    location: loc.name,
    source: 'Volume',
    readableBy: claim
      ? `no keys: PersistentVolumeClaim ${namespace}/${claim}, readable by anyone who may create pods that mount it in namespace ${namespace}`
      : `no keys: a volume of spec.runner.extraVolumes at ${loc.filesystem?.path ?? ''}`,
  };
}

/** The DatabaseBackup's spec.credentials against the locations it uses: every DatabaseBackup-source location has its keys, and nothing else does. */
function tenantKeyProblems(backup: DatabaseBackup, sc: DatabaseBackupStorageClass, chosen: StorageLocation[]): RenderProblem[] {
  const className = sc.metadata.name ?? '';
  const namespace = backup.metadata.namespace ?? '';
  const entries = backup.spec.credentials ?? [];
  const problems: RenderProblem[] = [];
  for (const loc of chosen) {
    if (credentialSource(loc, sc.spec) !== 'DatabaseBackup' || entries.some((c) => c.location === loc.name)) continue;
    const block = loc.s3 ? 's3: { accessKeyIdSecretRef, secretAccessKeySecretRef }' : 'gcs: { keySecretRef }';
    problems.push({
      reason: 'CredentialsRequired',
      message: `location "${loc.name}" of storage class "${className}" takes its keys from each DatabaseBackup (credentials.source DatabaseBackup): add { location: ${loc.name}, ${block} } to spec.credentials, naming a Secret in namespace "${namespace}"`,
    });
  }
  entries.forEach((c, i) => {
    const at = `spec.credentials[${i}]`;
    const loc = chosen.find((l) => l.name === c.location);
    const source = loc && credentialSource(loc, sc.spec);
    if (!loc) {
      problems.push({ reason: 'CredentialsMismatch', message: `${at}.location: "${c.location}" is not a location this DatabaseBackup uses (storage class "${className}")` });
    } else if (source !== 'DatabaseBackup') {
      problems.push({ reason: 'CredentialsMismatch', message: `${at}: location "${c.location}" of storage class "${className}" does not take keys from the DatabaseBackup (its credentials.source is ${source ?? 'none: a filesystem location'}); remove the entry` });
    } else if ((loc.s3 && !c.s3) || (loc.gcs && !c.gcs)) {
      problems.push({ reason: 'CredentialsMismatch', message: `${at}: location "${c.location}" is ${loc.s3 ? 's3' : 'gcs'}; set ${loc.s3 ? 's3' : 'gcs'} instead` });
    }
  });
  return problems;
}

/**
 * How a server-side engine's database server may reach each kind of location: with the tenant's own keys
 * (handed to the server), or with an identity of its own when the runner has no keys either. A storage class's
 * shared keys are never handed to a tenant's server (such a location gets the runner's copies); a volume is the
 * runner pod's, which the tool writes itself.
 */
const SERVER_ACCESS_BY_SOURCE: Record<LocationAccess['source'], ServerAccess | undefined> = { DatabaseBackup: 'credentials', Ambient: 'server', StorageClass: undefined, Volume: undefined };

/** A server-side engine against the locations it would use: one the server can write, none that encrypts (the server writes in the clear). */
function serverSideProblems(definition: EngineDefinitionSpec, sc: DatabaseBackupStorageClass, locations: readonly LocationConfig[]): RenderProblem[] {
  const className = sc.metadata.name ?? '';
  const engine = definition.name;
  const problems: RenderProblem[] = [];
  for (const l of locations.filter((x) => x.encryption)) {
    problems.push({ reason: 'ServerSideNotPossible', message: `engine "${engine}" has the database server write its backups in the clear, and location "${l.name}" of storage class "${className}" encrypts: use a class without encryption, or the engine's own encryption setting` });
  }
  if (!locations.some((l) => serverWritable(definition, l))) {
    problems.push({
      reason: 'ServerSideNotPossible',
      message: `engine "${engine}" has the database server write its backups, and no location of storage class "${className}" may be written by it: a storage class's shared keys are never handed to a database server; use a location with credentials.source DatabaseBackup (this namespace's own keys) or Ambient${serverLocationTypes(definition).includes('filesystem') ? ', or a filesystem location' : ''}`,
    });
  }
  return problems;
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
export function renderRunnerConfig(backup: DatabaseBackup, sc: DatabaseBackupStorageClass, lookup: SecretLookup, controllerNamespace: string, definition?: EngineDefinitionSpec): ConfigResult {
  const problems: RenderProblem[] = [];
  const name = backup.metadata.name ?? '';
  const namespace = backup.metadata.namespace ?? '';
  if (!DNS_LABEL.test(name) || name.length > 63) {
    problems.push({ reason: 'InvalidName', message: `DatabaseBackup name "${name}" must be a DNS label (at most 63 lower-case letters, digits and -, no dots): it names the backups' path in storage` });
  }
  const engine = backup.spec.engine;
  if (!RENDERED_ENGINES.includes(engine.type)) {
    problems.push({ reason: 'EngineNotSupported', message: `engine "${engine.type}" is not supported by this runner version (supported: ${RENDERED_ENGINES.join(', ')})` });
    return { ok: false, problems };
  }
  const files = new Files(lookup, controllerNamespace, sc.metadata.name ?? '');
  const claims: RenderedConfig['claims'] = [];
  const dbSecretFiles: DbSecretFile[] = [];
  const chosen = chosenLocations(backup, sc);
  const tenantKeys = (loc: StorageLocation): TenantKeys | undefined => {
    const creds = credentialSource(loc, sc.spec) === 'DatabaseBackup' ? backup.spec.credentials?.find((c) => c.location === loc.name) : undefined;
    return creds ? { creds, files: dbSecretFiles } : undefined;
  };
  const serverSide = definition !== undefined && isServerSide(definition);
  const locations = chosen.map((loc) => {
    const at = `spec.locations[${sc.spec.locations.indexOf(loc)}]`;
    const encryption = encryptionConfig(loc, at, files, backup.spec.encryption?.find((e) => e.location === loc.name), dbSecretFiles);
    const serverAccess = serverSide ? SERVER_ACCESS_BY_SOURCE[credentialSource(loc, sc.spec) ?? 'Volume'] : undefined;
    return { ...locationConfig(loc, at, files, claims, tenantKeys(loc)), ...(encryption ? { encryption } : {}), ...(serverAccess ? { serverAccess } : {}) };
  });
  problems.push(...files.problems, ...tenantKeyProblems(backup, sc, chosen));
  if (serverSide) problems.push(...serverSideProblems(definition, sc, locations));
  if (problems.length > 0) return { ok: false, problems };
  const access = chosen.map((loc) => accessOf(loc, sc, namespace, name, tenantKeys(loc)?.creds));

  const rendered = renderEngine(engine, (ref) => dbFile(ref, dbSecretFiles), { ...(definition ? { definition } : {}) });
  if (!rendered) {
    problems.push(
      engine.type === 'command' && engine.command
        ? { reason: 'EngineNotFound', message: `spec.engine.command.engineRef: DatabaseBackupEngine "${engine.command.engineRef}" was not resolved` }
        : { reason: 'EngineNotSupported', message: `spec.engine.${engine.type}: is required when spec.engine.type is "${engine.type}"` },
    );
    return { ok: false, problems };
  }
  const config: RunnerConfig = {
    namespace,
    name,
    engine: rendered.engine,
    compression: { algorithm: 'auto' },
    locations,
    ...(backup.spec.schedule ? { schedule: backup.spec.schedule } : {}),
    retention: backup.spec.retention ?? ({} as RunnerConfig['retention']),
    daemon: {} as RunnerConfig['daemon'],
    report: { databaseBackup: { namespace, name } },
    ...signingConfig(backup, dbSecretFiles),
  };
  const header = `# Written by db-backup-controller for DatabaseBackup ${namespace}/${name}; edits are overwritten.\n`;
  const secretData = { ...files.data, [CONFIG_KEY]: b64(header + stringify(config, { sortMapEntries: false })) };
  return {
    ok: true,
    value: {
      secretData,
      hash: hashData(secretData),
      ...(rendered.passwordEnv ? { passwordEnv: rendered.passwordEnv } : {}),
      dbSecretFiles,
      claims,
      access,
      config,
    },
  };
}
