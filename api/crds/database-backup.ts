/**
 * DatabaseBackup (namespaced): what to back up (engine + connection), when
 * (schedule), how long to keep (retention), into which storage class, and how
 * the runner pod looks. Database credentials are Secrets in the
 * DatabaseBackup's own namespace.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Retention as RunnerRetention, Schedule as RunnerSchedule } from '../runner-config.js';
import { ControllerStatusFields, DnsLabel, ObjectName, Resource, SecretKeyRef } from './common.js';
import { RunnerPod } from './runner-pod.js';

const ref = (description: string) => Type.Optional(Type.Object(SecretKeyRef.properties, { additionalProperties: false, description }));
const Host = Type.String({ minLength: 1, maxLength: 253, description: 'host name or address, e.g. orders-db.shop.svc' });
const Port = (port: number) => Type.Integer({ minimum: 1, maximum: 65535, default: port });
const Version = (example: string) =>
  Type.Optional(
    Type.String({
      pattern: '^[0-9]+(\\.[0-9]+)?$',
      maxLength: 16,
      description: `server major version, e.g. "${example}": picks the runner image whose client tools match (a dump tool must not be older than the server); the controller's default when unset`,
      patternText: 'a major version such as 16 or 10.11',
    }),
  );
const Args = (description: string) => Type.Optional(Type.Array(Type.String(), { description }));

export const PostgresqlEngine = Type.Object(
  {
    host: Host,
    port: Port(5432),
    version: Version('16'),
    database: Type.String({ minLength: 1, maxLength: 63 }),
    user: Type.String({ minLength: 1, maxLength: 63 }),
    passwordSecretRef: ref('password of user'),
    sslMode: Type.Optional(Type.Union(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'].map((m) => Type.Literal(m)))),
    sslRootCertSecretRef: ref('CA certificate (PEM) that verifies the server, for sslMode verify-ca / verify-full'),
    sslCertSecretRef: ref('client certificate (PEM) for certificate authentication'),
    sslKeySecretRef: ref('client key (PEM) for certificate authentication'),
    dumpArgs: Args('extra pg_dump arguments, e.g. --exclude-table=audit.*'),
    restoreArgs: Args('extra pg_restore arguments, e.g. --no-owner'),
    allDatabases: Type.Optional(Type.Boolean({ description: 'back up the whole server: every database that accepts connections (templates excepted), each a stream of one backup; `database` is then the one connected to for the list (e.g. postgres)' })),
    databases: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 63 }), { minItems: 1, maxItems: 999, uniqueItems: true, description: 'back up these databases of the server, each a stream of one backup (instead of allDatabases)' }),
    ),
    globals: Type.Optional(Type.Boolean({ description: 'with databases: also the roles, memberships and tablespaces (default true); reading role passwords needs a superuser, else they are left out' })),
    parallel: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'with databases: how many databases are dumped at a time (default 2); each holds two connections to the server' })),
    mode: Type.Optional(
      Type.Union([Type.Literal('logical'), Type.Literal('physical')], {
        description:
          'logical (default): pg_dump; physical: base backups of the whole server with pg_basebackup over a replication connection (user needs REPLICATION and a pg_hba replication line), restored into a data directory',
      }),
    ),
    checkpoint: Type.Optional(Type.Union([Type.Literal('fast'), Type.Literal('spread')], { description: 'physical: the checkpoint a base backup starts with: fast (default) or spread (paced by the server)' })),
    wal: Type.Optional(
      Type.Object(
        {
          archive: Type.Optional(Type.Boolean({ description: "stream the server's WAL into every location continuously (default true); the replication slot is named after this DatabaseBackup" })),
          partialSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 300, description: 'how often the segment being written is stored: at most this long of committed work is lost (default 15)' })),
        },
        { additionalProperties: false, description: 'physical: continuous WAL archiving' },
      ),
    ),
  },
  { additionalProperties: false },
);
export type PostgresqlEngine = Static<typeof PostgresqlEngine>;

export const MysqlEngine = Type.Object(
  {
    host: Host,
    port: Port(3306),
    version: Version('10.11'),
    database: Type.String({ minLength: 1, maxLength: 64 }),
    user: Type.String({ minLength: 1, maxLength: 80 }),
    passwordSecretRef: ref('password of user'),
    sslMode: Type.Optional(Type.Union(['DISABLED', 'PREFERRED', 'REQUIRED', 'VERIFY_CA', 'VERIFY_IDENTITY'].map((m) => Type.Literal(m)))),
    sslCaSecretRef: ref('CA certificate (PEM) that verifies the server, for VERIFY_CA / VERIFY_IDENTITY'),
    dumpArgs: Args('extra mysqldump / mariadb-dump arguments'),
    restoreArgs: Args('extra mysql / mariadb client arguments for restore'),
  },
  { additionalProperties: false },
);
export type MysqlEngine = Static<typeof MysqlEngine>;

const Json = (description: string) =>
  Type.Optional(Type.Record(Type.String(), Type.Unknown(), { 'x-kubernetes-preserve-unknown-fields': true, description }));

/** An engine defined by a command: a DatabaseBackupEngine by name, where its tool connects, and the config its schema checks. */
export const CommandEngine = Type.Object(
  {
    engineRef: ObjectName('name of a DatabaseBackupEngine (cluster-scoped) that defines the engine'),
    host: Type.Optional(Host),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    passwordSecretRef: ref('password, handed to the tool as a 0600 file'),
    database: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "what the tool backs up on the server (the engine's own meaning); default: the engine's name" })),
    tlsCaSecretRef: ref('CA certificate (PEM)'),
    tlsCertSecretRef: ref('client certificate (PEM)'),
    tlsKeySecretRef: ref('client key (PEM)'),
    config: Json("the engine's own settings, checked against its DatabaseBackupEngine's configSchema"),
  },
  { additionalProperties: false },
);
export type CommandEngine = Static<typeof CommandEngine>;

export const DB_ENGINE_TYPES = ['postgresql', 'mysql', 'command'] as const;
export type DbEngineType = (typeof DB_ENGINE_TYPES)[number];

export const Engine = Type.Object(
  {
    type: Type.Union(DB_ENGINE_TYPES.map((t) => Type.Literal(t))),
    postgresql: Type.Optional(PostgresqlEngine),
    mysql: Type.Optional(MysqlEngine),
    command: Type.Optional(CommandEngine),
  },
  { additionalProperties: false, description: 'the database; exactly the block named by type is set' },
);
export type Engine = Static<typeof Engine>;

export const Schedule = Type.Object(RunnerSchedule.properties, { additionalProperties: false, description: 'when: cron (read in timeZone) or interval; exactly one' });
export type Schedule = Static<typeof Schedule>;

export const Retention = Type.Object(RunnerRetention.properties, {
  additionalProperties: false,
  description: 'how long to keep: restic-style keep rules combined with OR, applied per location; without any rule every backup is kept',
});
export type Retention = Static<typeof Retention>;

export const LocationCredentials = Type.Object(
  {
    location: DnsLabel('a location of the storage class whose credentials.source is DatabaseBackup'),
    s3: Type.Optional(
      Type.Object(
        {
          accessKeyIdSecretRef: ref('access key id'),
          secretAccessKeySecretRef: ref('secret access key'),
          sessionTokenSecretRef: ref('session token of temporary credentials'),
        },
        { additionalProperties: false },
      ),
    ),
    gcs: Type.Optional(Type.Object({ keySecretRef: ref('service account key (JSON)') }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type LocationCredentials = Static<typeof LocationCredentials>;

export const LocationEncryption = Type.Object(
  {
    location: DnsLabel('a location this DatabaseBackup uses'),
    age: Type.Object(
      {
        recipients: Type.Optional(
          Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
            minItems: 1,
            maxItems: 32,
            description: 'this team\'s X25519 public keys (age1...), added to the storage class\'s: the location is encrypted for all of them',
          }),
        ),
        identitySecretRef: ref(
          'age identities (AGE-SECRET-KEY-1..., one per line) in a Secret of this namespace, mounted into the runner: verify then checks contents and restore needs no --identity, and the runner can read these backups',
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type LocationEncryption = Static<typeof LocationEncryption>;

export const DatabaseBackupSpec = Type.Object(
  {
    engine: Engine,
    schedule: Type.Optional(Schedule),
    retention: Type.Optional(Retention),
    storageClassName: ObjectName('the DatabaseBackupStorageClass to store into'),
    locations: Type.Optional(
      Type.Array(DnsLabel('a location name of the storage class'), { minItems: 1, maxItems: 16, description: 'subset of the class\'s locations; all when unset' }),
    ),
    runner: Type.Optional(RunnerPod),
    credentials: Type.Optional(
      Type.Array(LocationCredentials, {
        maxItems: 16,
        description:
          'storage keys from Secrets in this namespace, for the locations whose storage class says credentials.source: DatabaseBackup; ' +
          'mounted into the runner pod, never read or copied by the controller',
      }),
    ),
    signing: Type.Optional(
      Type.Object(
        {
          keySecretRef: ref('Ed25519 private key (PEM, openssl genpkey -algorithm ed25519) in a Secret of this namespace, mounted into the runner: it signs every manifest'),
          verifySecretRefs: Type.Optional(
            Type.Array(Type.Object(SecretKeyRef.properties, { additionalProperties: false }), {
              minItems: 1,
              maxItems: 8,
              description: 'Ed25519 public keys (PEM) in Secrets of this namespace: only a manifest signed by one of them is a backup; default: the public key of keySecretRef',
            }),
          ),
        },
        { additionalProperties: false, description: 'signed manifests (docs/configuration.md#signing): whoever may write into the prefix can then plant objects, never a backup' },
      ),
    ),
    encryption: Type.Optional(
      Type.Array(LocationEncryption, {
        maxItems: 16,
        description: 'per location: this team\'s own age recipients (added to the storage class\'s) and, optionally, an identity for the runner (docs/encryption.md)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type DatabaseBackupSpec = Static<typeof DatabaseBackupSpec>;

const Time = (description: string) => Type.Optional(Type.String({ format: 'date-time', description }));

export const BACKUP_RESULTS = ['Running', 'Succeeded', 'PartiallySucceeded', 'Failed'] as const;
export const LOCATION_STATES = ['Ready', 'Failing', 'Unknown'] as const;
export const WAL_ARCHIVING_STATES = ['Streaming', 'Restarting', 'Stopped'] as const;

export const ACCESS_SOURCES = ['StorageClass', 'DatabaseBackup', 'Ambient', 'Volume'] as const;

export const DatabaseBackupStatus = Type.Object(
  {
    ...ControllerStatusFields,
    credentials: Type.Optional(
      Type.Array(
        Type.Object(
          {
            location: DnsLabel('location name'),
            source: Type.Union(ACCESS_SOURCES.map((s) => Type.Literal(s))),
            readableBy: Type.String({ maxLength: 1024, description: 'where the location\'s keys are and who can read them' }),
          },
          { additionalProperties: false },
        ),
        { maxItems: 16, description: 'written by the controller: per location, where its credentials come from and who can read them' },
      ),
    ),
    lastBackup: Type.Optional(
      Type.Object(
        {
          id: Type.String({ minLength: 1, description: 'backup id, e.g. 20261121T101500Z-3fa1' }),
          status: Type.Union(BACKUP_RESULTS.map((s) => Type.Literal(s))),
          startedAt: Time('when the backup started'),
          finishedAt: Time('when it finished; unset while running'),
          message: Type.Optional(Type.String({ maxLength: 32768, description: 'why it failed, or which locations it did not reach; unset when it succeeded or runs' })),
        },
        { additionalProperties: false },
      ),
    ),
    lastSuccessAt: Time('when the last backup that reached every location (or some: PartiallySucceeded) finished'),
    nextRunAt: Time('next scheduled start'),
    recovery: Type.Optional(
      Type.Object(
        {
          walArchiving: Type.Union(WAL_ARCHIVING_STATES.map((s) => Type.Literal(s)), { description: 'the WAL archiver: Streaming, Restarting (it failed and waits to start again, see message) or Stopped' }),
          recoverableFrom: Time('the earliest instant a point-in-time recovery reaches: the oldest base backup'),
          recoverableUntil: Time('the latest instant the archive reaches (when WAL was last stored in every location), to the minute'),
          timeline: Type.Optional(Type.Integer({ minimum: 1 })),
          lastSegment: Type.Optional(Type.String({ maxLength: 64, description: 'the last WAL segment stored in every location' })),
          gaps: Type.Optional(Type.Integer({ minimum: 0, description: 'stretches of WAL found missing since the runner started (a recovery cannot cross them)' })),
          lagBytes: Type.Optional(
            Type.Integer({ minimum: 0, description: 'WAL the server has written that is not stored in every location yet (its current position, read every 10 s), rounded down to a MiB' }),
          ),
          locations: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  name: DnsLabel('location name'),
                  lastStoredAt: Time('when a WAL segment or the partial of the one being written was last stored in this location, to the minute; unset: not since the runner started'),
                  lastSegment: Type.Optional(Type.String({ maxLength: 64, description: 'the last finished WAL segment stored in this location since the runner started' })),
                },
                { additionalProperties: false },
              ),
              { maxItems: 16, description: 'every configured location, in config order: a location that fails falls behind the others here' },
            ),
          ),
          message: Type.Optional(Type.String({ maxLength: 32768 })),
        },
        { additionalProperties: false, description: 'written by the runner of a physical PostgreSQL backup: continuous WAL archiving and the recoverable window' },
      ),
    ),
    locations: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: DnsLabel('location name'),
            state: Type.Union(LOCATION_STATES.map((s) => Type.Literal(s))),
            lastSuccessAt: Time('last backup stored in this location'),
            backupsStored: Type.Optional(Type.Integer({ minimum: 0 })),
            backupsBehind: Type.Optional(Type.Integer({ minimum: 0, description: 'backups another location holds and this one lacks (it was down, or was added later)' })),
            behindSince: Time('consistency instant of the oldest backup this location lacks'),
            message: Type.Optional(Type.String({ maxLength: 32768 })),
          },
          { additionalProperties: false },
        ),
        { maxItems: 16 },
      ),
    ),
  },
  { additionalProperties: false },
);
export type DatabaseBackupStatus = Static<typeof DatabaseBackupStatus>;

export const DatabaseBackup = Resource('DatabaseBackup', DatabaseBackupSpec, DatabaseBackupStatus);
export type DatabaseBackup = Static<typeof DatabaseBackup>;
