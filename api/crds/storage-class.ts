/**
 * DatabaseBackupStorageClass (cluster-scoped): where and how backups are
 * stored. Each S3 or GCS location says where its credentials come from
 * (`credentials.source`, per location or class-wide):
 * - StorageClass: Secrets in the controller's namespace, never inline values;
 *   the controller copies what a runner needs into that runner's own config
 *   Secret (in the DatabaseBackup's namespace);
 * - DatabaseBackup: each DatabaseBackup names a Secret of its own namespace
 *   (spec.credentials); the class holds no keys and nothing is copied;
 * - Ambient: no keys at all; the runner's ServiceAccount identity (IRSA, GKE
 *   Workload Identity) or the SDK's default chain.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { recipientErrors } from '../age.js';
import { prefixErrors } from '../prefix.js';
import { FilesystemLocation, GcsLocation, S3Location, structuralErrors, type FieldError, type ValidationResult } from '../runner-config.js';
import { ControllerSecretKeyRef, ControllerStatusFields, DnsLabel, ObjectName, Resource } from './common.js';

const ref = (description: string) => Type.Optional(Type.Object(ControllerSecretKeyRef.properties, { additionalProperties: false, description }));

const { caFile: _caFile, accessKeyId: _a, secretAccessKey: _s, sessionToken: _t, ...s3Settings } = S3Location.properties;
export const StorageS3 = Type.Object(
  {
    ...s3Settings,
    caSecretRef: ref('PEM bundle of extra trusted CA certificates'),
    accessKeyIdSecretRef: ref('access key id; without keys the runner uses the AWS default chain (IRSA, instance role)'),
    secretAccessKeySecretRef: ref('secret access key; set together with accessKeyIdSecretRef'),
    sessionTokenSecretRef: ref('session token of temporary credentials'),
  },
  { additionalProperties: false },
);
export type StorageS3 = Static<typeof StorageS3>;

const { keyFile: _keyFile, ...gcsSettings } = GcsLocation.properties;
export const StorageGcs = Type.Object(
  {
    ...gcsSettings,
    keySecretRef: ref('service account key (JSON); without it the runner uses default credentials (Workload Identity)'),
  },
  { additionalProperties: false },
);
export type StorageGcs = Static<typeof StorageGcs>;

export const StorageFilesystem = Type.Object(
  {
    ...FilesystemLocation.properties,
    claimName: Type.Optional(
      ObjectName('PersistentVolumeClaim in the DatabaseBackup\'s namespace, mounted at path; without it, path must come from spec.runner.extraVolumes'),
    ),
  },
  { additionalProperties: false },
);
export type StorageFilesystem = Static<typeof StorageFilesystem>;

export const LOCATION_KINDS = ['s3', 'gcs', 'filesystem'] as const;

export const CREDENTIAL_SOURCES = ['StorageClass', 'DatabaseBackup', 'Ambient'] as const;
export type CredentialSource = (typeof CREDENTIAL_SOURCES)[number];

export const Credentials = Type.Object(
  {
    source: Type.Union(
      CREDENTIAL_SOURCES.map((s) => Type.Literal(s)),
      {
        description:
          'StorageClass: the keys this class references (Secrets in the controller\'s namespace) are copied into each runner\'s Secret; ' +
          'DatabaseBackup: each DatabaseBackup brings its own keys (spec.credentials, a Secret in its namespace) and this class holds none; ' +
          'Ambient: no keys, the runner\'s workload identity (IRSA, GKE Workload Identity) or default credentials',
      },
    ),
  },
  { additionalProperties: false, description: 'where an S3 or GCS location\'s credentials come from; unset: StorageClass when the location references keys, else Ambient' },
);
export type Credentials = Static<typeof Credentials>;

const Recipients = (description: string) =>
  Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 32, description }));

export const ClassEncryption = Type.Object(
  {
    age: Type.Object(
      {
        recipients: Recipients('X25519 public keys (age1...): whoever holds one of their identities can read what this location stores; runners get no private key'),
        passphraseSecretRef: ref('a passphrase instead of recipients (scrypt; age allows it only alone): copied to each runner, which can then read its backups too'),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: 'encrypt what this location stores, in the age format (docs/encryption.md); a DatabaseBackup may add recipients of its own' },
);
export type ClassEncryption = Static<typeof ClassEncryption>;

export const StorageLocation = Type.Object(
  {
    name: DnsLabel('location name, unique in the class; DatabaseBackups pick locations by it'),
    prefix: Type.String({ default: '', maxLength: 512, description: 'key prefix inside the bucket or directory' }),
    s3: Type.Optional(StorageS3),
    gcs: Type.Optional(StorageGcs),
    filesystem: Type.Optional(StorageFilesystem),
    credentials: Type.Optional(Credentials),
    encryption: Type.Optional(ClassEncryption),
    heal: Type.Optional(Type.Boolean({ description: 'copy into this location, from the others, the backups it missed while it could not be reached (after each backup and at the daemon start; default true); backup-runner mirror fills it on request either way' })),
  },
  { additionalProperties: false },
);
export type StorageLocation = Static<typeof StorageLocation>;

export const StorageClassSpec = Type.Object(
  {
    locations: Type.Array(StorageLocation, { minItems: 1, maxItems: 16, description: 'every backup goes to all of these (or to the subset a DatabaseBackup picks)' }),
    credentials: Type.Optional(Type.Object(Credentials.properties, { additionalProperties: false, description: 'the default of every S3 and GCS location\'s credentials.source' })),
    allowedNamespaces: Type.Optional(
      Type.Array(DnsLabel('a namespace name'), { maxItems: 256, description: 'namespaces whose DatabaseBackups may use this class; empty or unset: all' }),
    ),
  },
  { additionalProperties: false },
);
export type StorageClassSpec = Static<typeof StorageClassSpec>;

export const StorageClassStatus = Type.Object(
  {
    ...ControllerStatusFields,
  },
  { additionalProperties: false },
);
export type StorageClassStatus = Static<typeof StorageClassStatus>;

export const DatabaseBackupStorageClass = Resource('DatabaseBackupStorageClass', StorageClassSpec, StorageClassStatus);
export type DatabaseBackupStorageClass = Static<typeof DatabaseBackupStorageClass>;

/** Prefixes every path with `at.` (`(root)` becomes `at`). */
export function under(at: string, errors: FieldError[]): FieldError[] {
  return errors.map((e) => ({ ...e, path: e.path === '(root)' ? at : `${at}.${e.path}` }));
}

/** Adds `extra` errors for paths that have no error yet (the shape error says more). */
export function merge(errors: FieldError[], extra: FieldError[]): FieldError[] {
  for (const e of extra) if (!errors.some((x) => x.path === e.path)) errors.push(e);
  return errors;
}

export function duplicateErrors(path: string, names: string[], what: string): FieldError[] {
  const seen = new Set<string>();
  const errors: FieldError[] = [];
  names.forEach((n, i) => {
    if (seen.has(n)) errors.push({ path: `${path}[${i}]`, message: `duplicate ${what} "${n}"` });
    seen.add(n);
  });
  return errors;
}

/** The Secret references of a location that are credentials (a CA bundle is not one). */
export function keyRefFields(loc: StorageLocation): string[] {
  const s3 = ['accessKeyIdSecretRef', 'secretAccessKeySecretRef', 'sessionTokenSecretRef'].filter((k) => loc.s3?.[k as keyof StorageS3] !== undefined).map((k) => `s3.${k}`);
  return [...s3, ...(loc.gcs?.keySecretRef ? ['gcs.keySecretRef'] : [])];
}

/**
 * Where a location's credentials come from: its own credentials.source, else the class's, else
 * StorageClass when it references keys and Ambient when not. Undefined for a filesystem location.
 */
export function credentialSource(loc: StorageLocation, spec: Pick<StorageClassSpec, 'credentials'>): CredentialSource | undefined {
  if (!loc.s3 && !loc.gcs) return undefined;
  return loc.credentials?.source ?? spec.credentials?.source ?? (keyRefFields(loc).length > 0 ? 'StorageClass' : 'Ambient');
}

function credentialErrors(loc: StorageLocation, at: string, spec: StorageClassSpec): FieldError[] {
  if (loc.filesystem && loc.credentials) return [{ path: `${at}.credentials`, message: 'a filesystem location has no credentials; remove it' }];
  const source = credentialSource(loc, spec);
  if (!source || !CREDENTIAL_SOURCES.includes(source)) return []; // no credentials, or a shape error said why
  const from = loc.credentials ? `${at}.credentials.source` : 'spec.credentials.source';
  if (source === 'StorageClass') {
    if (keyRefFields(loc).length > 0) return []; // the pairing rules of locationErrors apply
    if (loc.s3) {
      return [{ path: `${at}.s3`, message: `set accessKeyIdSecretRef and secretAccessKeySecretRef: ${from} is StorageClass (the class's own keys)` }];
    }
    if (loc.gcs && !loc.gcs.keySecretRef) return [{ path: `${at}.gcs.keySecretRef`, message: `is required: ${from} is StorageClass (the class's own keys)` }];
    return [];
  }
  const why = source === 'DatabaseBackup' ? 'each DatabaseBackup brings its own keys' : 'the runner uses its workload identity';
  return keyRefFields(loc).map((f) => ({ path: `${at}.${f}`, message: `must be unset: ${from} is ${source} (${why}), so the class holds no keys` }));
}

function locationErrors(loc: StorageLocation, at: string): FieldError[] {
  const errors: FieldError[] = [];
  const set = LOCATION_KINDS.filter((k) => loc[k] !== undefined);
  if (set.length !== 1) {
    errors.push({ path: at, message: `set exactly one of s3, gcs, filesystem${set.length > 1 ? ` (found ${set.join(', ')})` : ''}` });
  }
  if (loc.s3 && (loc.s3.accessKeyIdSecretRef === undefined) !== (loc.s3.secretAccessKeySecretRef === undefined)) {
    errors.push({ path: `${at}.s3`, message: 'set both accessKeyIdSecretRef and secretAccessKeySecretRef, or neither (default credential chain)' });
  }
  errors.push(...prefixErrors(`${at}.prefix`, loc.prefix));
  if (loc.s3?.sessionTokenSecretRef && !loc.s3.accessKeyIdSecretRef) {
    errors.push({ path: `${at}.s3.sessionTokenSecretRef`, message: 'needs accessKeyIdSecretRef and secretAccessKeySecretRef' });
  }
  return errors;
}

function storageClassRules(spec: StorageClassSpec): FieldError[] {
  const errors: FieldError[] = [];
  spec.locations.forEach((loc, i) => errors.push(...locationErrors(loc, `spec.locations[${i}]`), ...credentialErrors(loc, `spec.locations[${i}]`, spec)));
  errors.push(...duplicateErrors('spec.locations', spec.locations.map((l) => l.name), 'location name').map((e) => ({ ...e, path: `${e.path}.name` })));
  spec.locations.forEach((loc, i) => {
    const age = loc.encryption?.age;
    if (!age) return;
    const at = `spec.locations[${i}].encryption.age`;
    if ((age.recipients === undefined) === (age.passphraseSecretRef === undefined)) {
      errors.push({ path: at, message: 'set exactly one of recipients, passphraseSecretRef (age allows a passphrase only as the one recipient)' });
    }
    errors.push(...recipientErrors(`${at}.recipients`, age.recipients));
  });
  errors.push(...duplicateErrors('spec.allowedNamespaces', spec.allowedNamespaces ?? [], 'namespace'));
  return errors;
}

/**
 * Everything the controller checks on a DatabaseBackupStorageClass: the
 * shape (as the API server does) plus the rules a structural schema cannot
 * state. Fills defaults; reports every problem together, each with its path.
 */
export function validateStorageClass(obj: unknown): ValidationResult<DatabaseBackupStorageClass> {
  const input = (obj ?? {}) as { spec?: unknown };
  const spec = Value.Default(StorageClassSpec, Value.Clone(input.spec ?? {}));
  const errors = under('spec', structuralErrors(StorageClassSpec, spec));
  try {
    merge(errors, storageClassRules(spec as StorageClassSpec));
  } catch {
    // The shape is too broken for the cross-field rules; the structural errors say why.
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { ...(input as DatabaseBackupStorageClass), spec: spec as StorageClassSpec } };
}
