/**
 * The runner's configuration: one schema that gives the TypeScript types and
 * the runtime validation. The controller writes this file into the runner's
 * Secret; the runner reads it standalone from `--config`.
 */
import { Type, type Static, type TOptional, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { IANAZone } from 'luxon';
import cron from 'node-cron';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { recipientErrors } from './age.js';
import { prefixErrors } from './prefix.js';
import { EngineDefinitionSpec, isServerSide, serverLocationTypes } from './engine-contract.js';

const Name = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63, description: 'a DNS label: lower-case letters, digits and -' });

/** A credential: exactly one of an inline value, an environment variable or a file. */
export const SecretSource = Type.Object(
  {
    value: Type.Optional(Type.String({ description: 'the secret itself (the config file is a Secret in Kubernetes)' })),
    env: Type.Optional(Type.String({ minLength: 1, description: 'name of an environment variable that holds the secret' })),
    file: Type.Optional(Type.String({ minLength: 1, description: 'path of a file that holds the secret (trailing newline ignored)' })),
  },
  { additionalProperties: false },
);
export type SecretSource = Static<typeof SecretSource>;

export const SslMode = Type.Union(
  ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'].map((m) => Type.Literal(m)),
);

export const PostgresqlConnection = Type.Object(
  {
    host: Type.String({ minLength: 1 }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 5432 }),
    database: Type.String({ minLength: 1 }),
    user: Type.String({ minLength: 1 }),
    password: Type.Optional(SecretSource),
    sslMode: Type.Optional(SslMode),
    sslRootCert: Type.Optional(Type.String({ minLength: 1, description: 'path of the CA certificate file' })),
    sslCert: Type.Optional(Type.String({ minLength: 1 })),
    sslKey: Type.Optional(Type.String({ minLength: 1 })),
    binDir: Type.Optional(Type.String({ minLength: 1, description: 'directory holding pg_dump, pg_restore and psql' })),
    dumpArgs: Type.Optional(Type.Array(Type.String(), { description: 'extra pg_dump arguments, e.g. --exclude-table' })),
    restoreArgs: Type.Optional(Type.Array(Type.String(), { description: 'extra pg_restore arguments, e.g. --no-owner' })),
    databases: Type.Optional(
      Type.Union([Type.Literal('all'), Type.Array(Type.String({ minLength: 1, maxLength: 63 }), { minItems: 1, maxItems: 999, uniqueItems: true })], {
        description: 'back up the whole server ("all": every database that accepts connections, templates excepted) or these databases, one stream each; `database` is then the one connected to for the list',
      }),
    ),
    globals: Type.Optional(Type.Boolean({ description: 'with databases: also the roles, their memberships and settings, and tablespaces (pg_dumpall --globals-only); default true' })),
    parallel: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 16, description: 'with databases: how many databases are dumped at a time, each with its own snapshot session, pg_dump, compressor and uploads; default 2' }),
    ),
    mode: Type.Optional(
      Type.Union([Type.Literal('logical'), Type.Literal('physical')], {
        description:
          'logical (default): pg_dump of the database (or databases); physical: base backups of the whole server with pg_basebackup over a replication connection (the user needs REPLICATION), restored into a data directory with restore --data-dir',
      }),
    ),
    checkpoint: Type.Optional(Type.Union([Type.Literal('fast'), Type.Literal('spread')], { description: 'physical: the checkpoint a base backup starts with: fast (default: at once) or spread (paced by the server, gentler on its disks)' })),
    wal: Type.Optional(
      Type.Object(
        {
          archive: Type.Optional(Type.Boolean({ description: 'stream the server\'s WAL into every location continuously while the daemon runs (default true)' })),
          slot: Type.Optional(Type.String({ pattern: '^[a-z0-9_]{1,63}$', description: "the archive's replication slot (default: derived from the namespace and name)" })),
          partialSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 300, description: 'how often the segment being written is stored as a partial: at most this long of committed work is lost (default 15)' })),
        },
        { additionalProperties: false, description: 'physical: continuous WAL archiving with pg_receivewal' },
      ),
    ),
  },
  { additionalProperties: false },
);
export type PostgresqlConnection = Static<typeof PostgresqlConnection>;

/** MariaDB and MySQL: one protocol family, dumped with mariadb-dump or mysqldump (whichever matches the server). */
export const MysqlConnection = Type.Object(
  {
    host: Type.String({ minLength: 1 }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 3306 }),
    database: Type.String({ minLength: 1, maxLength: 64 }),
    user: Type.String({ minLength: 1 }),
    password: Type.Optional(SecretSource),
    sslMode: Type.Optional(Type.Union(['DISABLED', 'PREFERRED', 'REQUIRED', 'VERIFY_CA', 'VERIFY_IDENTITY'].map((m) => Type.Literal(m)))),
    sslCa: Type.Optional(Type.String({ minLength: 1, description: 'path of the CA certificate file, for VERIFY_CA / VERIFY_IDENTITY' })),
    binDir: Type.Optional(Type.String({ minLength: 1, description: 'directory holding mariadb-dump and mariadb (or mysqldump and mysql)' })),
    dumpArgs: Type.Optional(Type.Array(Type.String(), { description: 'extra dump arguments, e.g. --ignore-table=shop.sessions' })),
    restoreArgs: Type.Optional(Type.Array(Type.String(), { description: 'extra client arguments for restore, e.g. --max-allowed-packet=1G' })),
  },
  { additionalProperties: false },
);
export type MysqlConnection = Static<typeof MysqlConnection>;

/**
 * An engine defined by a command (docs/engines.md, "Bring your own tool"): its definition, where the
 * tool connects, and the user's config, checked against the definition's configSchema.
 */
export const CommandConnection = Type.Object(
  {
    definition: EngineDefinitionSpec,
    host: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    password: Type.Optional(SecretSource),
    database: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'what the tool backs up on the server (its own meaning per engine); default: the engine name' })),
    tlsCa: Type.Optional(Type.String({ minLength: 1, description: 'path of the CA certificate file' })),
    tlsCert: Type.Optional(Type.String({ minLength: 1, description: 'path of the client certificate file' })),
    tlsKey: Type.Optional(Type.String({ minLength: 1, description: 'path of the client key file' })),
    config: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: "the engine's own settings, checked against its configSchema" })),
  },
  { additionalProperties: false },
);
export type CommandConnection = Static<typeof CommandConnection>;

/** Each schema of `blocks`, optional. */
function optionals<T extends Record<string, TSchema>>(blocks: T): { [K in keyof T]: TOptional<T[K]> } {
  return Object.fromEntries(Object.entries(blocks).map(([k, v]) => [k, Type.Optional(v)])) as { [K in keyof T]: TOptional<T[K]> };
}

/** Every engine's connection block, by `engine.type`: the one line per engine on the config side. */
const ENGINE_BLOCKS = {
  postgresql: PostgresqlConnection,
  mysql: MysqlConnection,
  command: CommandConnection,
};

export const ENGINE_TYPES = Object.keys(ENGINE_BLOCKS) as (keyof typeof ENGINE_BLOCKS)[];
export type EngineType = keyof typeof ENGINE_BLOCKS;

export const EngineConfig = Type.Object(
  {
    type: Type.Union(ENGINE_TYPES.map((t) => Type.Literal(t))),
    ...optionals(ENGINE_BLOCKS),
  },
  { additionalProperties: false },
);
export type EngineConfig = Static<typeof EngineConfig>;

export const Compression = Type.Object(
  {
    algorithm: Type.Union([Type.Literal('auto'), Type.Literal('zstd'), Type.Literal('gzip'), Type.Literal('none')], {
      default: 'auto',
      description: 'auto: zstd when the zstd binary exists, gzip otherwise',
    }),
    level: Type.Optional(Type.Integer({ minimum: 1, maximum: 19 })),
  },
  { additionalProperties: false },
);
export type Compression = Static<typeof Compression>;

export const S3Location = Type.Object(
  {
    bucket: Type.String({ minLength: 3, maxLength: 63 }),
    region: Type.String({ minLength: 1, default: 'us-east-1' }),
    endpoint: Type.Optional(Type.String({ pattern: '^https?://', description: 'for S3-compatible servers (MinIO, Ceph)' })),
    forcePathStyle: Type.Boolean({ default: false }),
    caFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM file with extra trusted CA certificates' })),
    insecureSkipTLSVerify: Type.Boolean({ default: false }),
    accessKeyId: Type.Optional(SecretSource),
    secretAccessKey: Type.Optional(SecretSource),
    sessionToken: Type.Optional(SecretSource),
    partSizeMiB: Type.Integer({ minimum: 5, maximum: 5120, default: 8 }),
    queueSize: Type.Integer({ minimum: 1, maximum: 16, default: 2 }),
  },
  { additionalProperties: false },
);
export type S3Location = Static<typeof S3Location>;

export const GcsLocation = Type.Object(
  {
    bucket: Type.String({ minLength: 3, maxLength: 222 }),
    projectId: Type.Optional(Type.String({ minLength: 1 })),
    keyFile: Type.Optional(Type.String({ minLength: 1, description: 'service account key file; default credentials otherwise' })),
    apiEndpoint: Type.Optional(Type.String({ pattern: '^https?://', description: 'for emulators and private endpoints' })),
  },
  { additionalProperties: false },
);
export type GcsLocation = Static<typeof GcsLocation>;

export const FilesystemLocation = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'directory (e.g. a mounted PVC); created when missing' }),
  },
  { additionalProperties: false },
);
export type FilesystemLocation = Static<typeof FilesystemLocation>;

export const AgeEncryption = Type.Object(
  {
    recipients: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'X25519 public keys (age1...) the data is encrypted for: whoever holds one of their identities can read it; the runner needs none' }),
    ),
    passphrase: Type.Optional(Type.Object(SecretSource.properties, { additionalProperties: false, description: 'encrypt with a passphrase instead (scrypt; age allows it only alone): the runner can then read its backups' })),
    identities: Type.Optional(
      Type.Array(Type.Object({ file: Type.String({ minLength: 1 }) }, { additionalProperties: false }), {
        description: 'files of age identities (AGE-SECRET-KEY-1..., one per line, # comments) that restore and verify use to read this location; also given with --identity',
      }),
    ),
  },
  { additionalProperties: false },
);
export type AgeEncryption = Static<typeof AgeEncryption>;

export const LocationEncryption = Type.Object({ age: AgeEncryption }, { additionalProperties: false, description: 'encrypt what this location stores, in the age format' });
export type LocationEncryption = Static<typeof LocationEncryption>;

export const LOCATION_TYPES = ['s3', 'gcs', 'filesystem'] as const;

/** How a server-side engine's database server may reach a location (LocationConfig.serverAccess). */
export const SERVER_ACCESS = ['credentials', 'server'] as const;
export type ServerAccess = (typeof SERVER_ACCESS)[number];
export type LocationType = (typeof LOCATION_TYPES)[number];

export const LocationConfig = Type.Object(
  {
    name: Name,
    type: Type.Union(LOCATION_TYPES.map((t) => Type.Literal(t))),
    prefix: Type.String({ default: '', description: 'key prefix inside the bucket or directory: segments joined by /, no leading or trailing /, no empty, . or .. segment' }),
    s3: Type.Optional(S3Location),
    gcs: Type.Optional(GcsLocation),
    filesystem: Type.Optional(FilesystemLocation),
    encryption: Type.Optional(LocationEncryption),
    heal: Type.Optional(Type.Boolean({ description: 'copy into this location, from the others, the backups it missed while it could not be reached (after each backup and at the daemon start; default true); backup-runner mirror fills it on request either way' })),
    serverAccess: Type.Optional(
      Type.Union(SERVER_ACCESS.map((a) => Type.Literal(a)), {
        description:
          "a server-side engine's database server may write this s3 or gcs location itself: with the location's own credentials, handed to the server (credentials: only keys the tenant owns), or with an identity of its own (server: nothing handed over); absent: the location receives the runner's copies only",
      }),
    ),
  },
  { additionalProperties: false },
);
export type LocationConfig = Static<typeof LocationConfig>;

const Duration = (description: string, extra: Record<string, unknown> = {}) =>
  Type.String({ pattern: DURATION_PATTERN, description: `${description} (a duration such as 90s, 15m, 36h, 7d, 2w or 1d12h)`, ...extra });

export const Schedule = Type.Object(
  {
    cron: Type.Optional(Type.String({ minLength: 1, description: 'cron expression: 5 fields (minute first), 6 (seconds first) or a macro: @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually)' })),
    interval: Type.Optional(Duration('time between backups')),
    timeZone: Type.String({ minLength: 1, default: 'UTC', description: 'IANA time zone the cron expression is read in, e.g. Europe/Berlin' }),
    suspend: Type.Boolean({ default: false, description: 'keep the daemon up but start no scheduled backup' }),
    jitter: Type.Optional(Duration('random delay added to each scheduled start, to spread load')),
    catchUp: Type.Boolean({ default: true, description: 'run once at start when a scheduled run was missed while the daemon was down' }),
  },
  { additionalProperties: false },
);
export type Schedule = Static<typeof Schedule>;

const Count = (what: string) => Type.Optional(Type.Integer({ minimum: 0, description: what }));

export const Retention = Type.Object(
  {
    keepLast: Count('keep the newest N backups'),
    keepHourly: Count('keep the newest backup of each of the last N hours that have one'),
    keepDaily: Count('… of each of the last N days that have one'),
    keepWeekly: Count('… of each of the last N ISO weeks (Monday start) that have one'),
    keepMonthly: Count('… of each of the last N months that have one'),
    keepYearly: Count('… of each of the last N years that have one'),
    keepWithin: Type.Optional(Duration('keep every backup this close to the newest backup')),
    maxAge: Type.Optional(Duration('time-based: keep every backup younger than this')),
    minKeep: Type.Integer({ minimum: 1, default: 1, description: 'never remove the newest N successful backups' }),
    timeZone: Type.Optional(Type.String({ minLength: 1, description: 'IANA time zone of the hour/day/week/month/year buckets; defaults to schedule.timeZone' })),
    orphanGracePeriod: Duration('data without a manifest older than this is removed by the sweeper', { default: '24h' }),
  },
  { additionalProperties: false },
);
export type Retention = Static<typeof Retention>;

export const Daemon = Type.Object(
  {
    socket: Type.String({ minLength: 1, default: '/tmp/backup-runner/control.sock', description: 'Unix socket of the control API used by the CLI commands' }),
    metricsHost: Type.String({ minLength: 1, default: '0.0.0.0' }),
    metricsPort: Type.Integer({ minimum: 0, maximum: 65535, default: 9090, description: '/metrics, /healthz and /readyz; 0 picks a free port' }),
    shutdownGracePeriod: Duration('how long SIGTERM waits for a running backup before aborting it', { default: '25s' }),
  },
  { additionalProperties: false },
);
export type Daemon = Static<typeof Daemon>;

export const Report = Type.Object(
  {
    databaseBackup: Type.Object(
      {
        namespace: Name,
        name: Type.String({ minLength: 1, maxLength: 253 }),
      },
      { additionalProperties: false, description: 'the DatabaseBackup whose status the runner writes (in-cluster ServiceAccount credentials, or KUBECONFIG)' },
    ),
  },
  { additionalProperties: false },
);
export type Report = Static<typeof Report>;

export const Signing = Type.Object(
  {
    key: Type.Optional(Type.Object(SecretSource.properties, { additionalProperties: false, description: 'Ed25519 private key (PEM, openssl genpkey -algorithm ed25519) that signs every manifest this runner writes' })),
    verify: Type.Optional(
      Type.Array(Type.Object(SecretSource.properties, { additionalProperties: false }), {
        minItems: 1,
        description: 'Ed25519 public keys (PEM, openssl pkey -pubout): only a manifest signed by one of them is a backup of this database; default: the public key of `key`',
      }),
    ),
  },
  { additionalProperties: false, description: 'signed manifests: whoever may write into the prefix can then plant objects, never a backup' },
);
export type Signing = Static<typeof Signing>;

export const RunnerConfig = Type.Object(
  {
    namespace: Type.String({ ...Name, default: 'default' }),
    name: Name,
    engine: EngineConfig,
    compression: Type.Object(Compression.properties, { additionalProperties: false, default: {} }),
    locations: Type.Array(LocationConfig, { minItems: 1 }),
    schedule: Type.Optional(Schedule),
    retention: Type.Object(Retention.properties, { additionalProperties: false, default: {} }),
    daemon: Type.Object(Daemon.properties, { additionalProperties: false, default: {} }),
    report: Type.Optional(Report),
    signing: Type.Optional(Signing),
  },
  { additionalProperties: false },
);
export type RunnerConfig = Static<typeof RunnerConfig>;

export interface FieldError {
  /** Dotted path with indices, e.g. `locations[1].s3.bucket`. */
  path: string;
  message: string;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** `/locations/1/s3/bucket` -> `locations[1].s3.bucket` */
export function pointerToPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

/** Shape errors (types, required, enums, patterns, ranges) of `value` against `schema`, one per path. */
export function structuralErrors(schema: TSchema, value: unknown): FieldError[] {
  const errors: FieldError[] = [];
  for (const e of Value.Errors(schema, value)) {
    const path = pointerToPath(e.path) || '(root)';
    // A union of literals reports once per member; keep the first word for each path.
    if (errors.some((x) => x.path === path)) continue;
    const rule = e.schema.anyOf
      ? `must be one of ${describeLiterals(e.schema)}`
      : e.schema.pattern === DURATION_PATTERN
        ? 'must be a duration such as 90s, 15m, 36h, 7d, 2w or 1d12h'
      : e.schema.pattern && typeof e.schema.patternText === 'string'
        ? typeof e.value === 'string' ? `must be ${e.schema.patternText}` : e.message.toLowerCase()
      : e.schema.pattern && typeof e.schema.description === 'string'
        ? `must be ${e.schema.description}`
        : e.message.toLowerCase();
    errors.push({ path, message: rule });
  }
  return errors;
}

function describeLiterals(schema: TSchema): string {
  const members = (schema.anyOf as TSchema[] | undefined) ?? [];
  return members.map((m) => JSON.stringify(m.const)).join(', ');
}

function secretErrors(path: string, s: SecretSource | undefined): FieldError[] {
  if (!s) return [];
  const set = (['value', 'env', 'file'] as const).filter((k) => s[k] !== undefined);
  return set.length === 1 ? [] : [{ path, message: 'must set exactly one of value, env, file' }];
}

/** `path.<type>` must be set and every other block of `all` must not. */
export function blockErrors<T extends string>(path: string, type: T, all: readonly T[], obj: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  if (!all.includes(type)) return errors;
  if (obj[type] === undefined) errors.push({ path: `${path}.${type}`, message: `is required when ${path}.type is "${type}"` });
  for (const other of all) {
    if (other !== type && obj[other] !== undefined) {
      errors.push({ path: `${path}.${other}`, message: `must not be set when ${path}.type is "${type}"` });
    }
  }
  return errors;
}

export function zoneErrors(path: string, zone: string | undefined): FieldError[] {
  return zone === undefined || IANAZone.isValidZone(zone) ? [] : [{ path, message: `"${zone}" is not an IANA time zone (e.g. UTC, Europe/Berlin)` }];
}

/** The cron macros and the expressions they stand for (read in schedule.timeZone like any other). */
export const CRON_MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** A cron expression as fields: a macro is replaced by the expression it stands for, anything else is trimmed. */
export function expandCron(expr: string): string {
  const trimmed = expr.trim();
  return CRON_MACROS[trimmed] ?? trimmed;
}

/** What each cron field accepts, in words, by node-cron's field name. */
const CRON_FIELDS: Readonly<Record<string, { name: string; allowed: string }>> = {
  second: { name: 'second', allowed: '0-59' },
  minute: { name: 'minute', allowed: '0-59' },
  hour: { name: 'hour', allowed: '0-23' },
  dayOfMonth: { name: 'day of month', allowed: '1-31' },
  month: { name: 'month', allowed: '1-12 or jan-dec' },
  dayOfWeek: { name: 'day of week', allowed: '0-7 or sun-sat, 0 and 7 both Sunday' },
};

const CRON_FORMS = `use 5 fields (minute hour day-of-month month day-of-week), 6 (a second first) or a macro (${Object.keys(CRON_MACROS).join(', ')})`;

/** Why `expr` is not a cron expression the scheduler accepts (empty when it is one); `path` names the field. */
export function cronErrors(expr: string, path: string): FieldError[] {
  const trimmed = expr.trim();
  if (trimmed.startsWith('@') && !(trimmed in CRON_MACROS)) return [{ path, message: `"${expr}" is not a cron macro; ${CRON_FORMS}` }];
  const fields = expandCron(expr).split(/\s+/).filter((f) => f !== '').length;
  if (fields !== 5 && fields !== 6) return [{ path, message: `"${expr}" has ${fields} field${fields === 1 ? '' : 's'}; ${CRON_FORMS}` }];
  const v = cron.validateDetailed(expandCron(expr));
  if (v.valid) return [];
  const reasons = v.errors.map((e) => {
    const f = CRON_FIELDS[e.field];
    return f ? `${f.name} "${e.value}" is not valid (${f.allowed})` : e.message.replace(/\ba invalid\b/g, 'an invalid');
  });
  return [{ path, message: `"${expr}" is not a valid cron expression: ${reasons.join('; ')}; a field is a value, *, a list a,b, a range a-b or a step */n (n at least 1)` }];
}

/** Cross-field rules of a schedule (cron XOR interval, a valid cron expression and time zone); `at` is its path. */
export function scheduleErrors(s: Schedule | undefined, at = 'schedule'): FieldError[] {
  if (!s) return [];
  const errors: FieldError[] = [];
  if ((s.cron === undefined) === (s.interval === undefined)) errors.push({ path: at, message: 'set exactly one of cron, interval' });
  if (s.cron !== undefined) errors.push(...cronErrors(s.cron, `${at}.cron`));
  if (s.interval !== undefined && (parseDuration(s.interval) ?? 0) < 1000) errors.push({ path: `${at}.interval`, message: 'must be at least 1s' });
  errors.push(...zoneErrors(`${at}.timeZone`, s.timeZone));
  return errors;
}

/** A location's age encryption: recipients or a passphrase (exactly one), each recipient an X25519 public key. */
export function encryptionErrors(at: string, age: AgeEncryption | undefined): FieldError[] {
  if (!age) return [];
  const errors: FieldError[] = [];
  if ((age.recipients === undefined) === (age.passphrase === undefined)) errors.push({ path: at, message: 'set exactly one of recipients, passphrase (age allows a passphrase only as the one recipient)' });
  errors.push(...recipientErrors(`${at}.recipients`, age.recipients));
  errors.push(...secretErrors(`${at}.passphrase`, age.passphrase));
  return errors;
}

/** Whether a server-side engine's database server may write a location: a type it can write, a filesystem one or one with serverAccess (encryption aside). */
export function serverWritable(definition: Pick<EngineDefinitionSpec, 'locationTypes'>, l: Pick<LocationConfig, 'type' | 'serverAccess'>): boolean {
  return serverLocationTypes(definition).includes(l.type) && (l.type === 'filesystem' || l.serverAccess !== undefined);
}

/**
 * A server-side engine's locations: the database server writes and reads its backups in the clear (no location
 * may encrypt), at least one location must be one it can write, and `serverAccess` needs what it names.
 */
function serverSideErrors(cfg: RunnerConfig): FieldError[] {
  const errors: FieldError[] = [];
  const definition = cfg.engine.command?.definition;
  const serverSide = definition !== undefined && isServerSide(definition);
  const writable = (l: LocationConfig): boolean => serverWritable(definition ?? {}, l);
  cfg.locations.forEach((loc, i) => {
    const at = `locations[${i}]`;
    if (serverSide && loc.encryption) {
      errors.push({ path: `${at}.encryption`, message: "must not be set with a server-side engine (engine.command.definition.output: location): the database server writes and reads its backups itself, in the clear; use the engine's own encryption setting instead" });
    }
    if (loc.serverAccess === undefined) return;
    if (loc.type === 'filesystem') errors.push({ path: `${at}.serverAccess`, message: "applies to s3 and gcs locations: a filesystem location is a directory of the runner's pod, which the tool writes itself" });
    if (loc.serverAccess === 'credentials' && loc.type === 's3' && loc.s3?.accessKeyId === undefined) errors.push({ path: `${at}.serverAccess`, message: 'credentials needs s3.accessKeyId and s3.secretAccessKey: the keys handed to the database server' });
    if (loc.serverAccess === 'credentials' && loc.type === 'gcs' && loc.gcs?.keyFile === undefined) errors.push({ path: `${at}.serverAccess`, message: 'credentials needs gcs.keyFile: the key handed to the database server' });
  });
  if (serverSide && cfg.locations.length > 0 && !cfg.locations.some(writable)) {
    errors.push({
      path: 'locations',
      message: `a server-side engine (engine.command.definition.output: location) needs a location its database server can write: ${serverLocationTypes(definition).map((t) => (t === 'filesystem' ? 'a filesystem location' : `serverAccess on ${t === 's3' ? 'an' : 'a'} ${t} location`)).join(', or ')}`,
    });
  }
  return errors;
}

function semanticErrors(cfg: RunnerConfig): FieldError[] {
  const errors: FieldError[] = [];
  errors.push(...scheduleErrors(cfg.schedule));
  errors.push(...zoneErrors('retention.timeZone', cfg.retention.timeZone));
  errors.push(...blockErrors('engine', cfg.engine.type, ENGINE_TYPES, cfg.engine));
  for (const type of ENGINE_TYPES) errors.push(...secretErrors(`engine.${type}.password`, cfg.engine[type]?.password));
  const pg = cfg.engine.postgresql;
  for (const field of ['globals', 'parallel'] as const) {
    if (pg?.[field] !== undefined && pg.databases === undefined) errors.push({ path: `engine.postgresql.${field}`, message: 'applies only with databases (a whole-server backup)' });
  }
  errors.push(...secretErrors('signing.key', cfg.signing?.key));
  cfg.signing?.verify?.forEach((v, i) => errors.push(...secretErrors(`signing.verify[${i}]`, v)));
  if (cfg.signing && !cfg.signing.key && !cfg.signing.verify) errors.push({ path: 'signing', message: 'set key, verify or both' });
  errors.push(...serverSideErrors(cfg));
  const seen = new Set<string>();
  cfg.locations.forEach((loc, i) => {
    const at = `locations[${i}]`;
    if (seen.has(loc.name)) errors.push({ path: `${at}.name`, message: `duplicate location name "${loc.name}"` });
    seen.add(loc.name);
    errors.push(...blockErrors(at, loc.type, LOCATION_TYPES, loc));
    errors.push(...prefixErrors(`${at}.prefix`, loc.prefix));
    errors.push(...encryptionErrors(`${at}.encryption.age`, loc.encryption?.age));
    if (loc.s3) {
      for (const k of ['accessKeyId', 'secretAccessKey', 'sessionToken'] as const) {
        errors.push(...secretErrors(`${at}.s3.${k}`, loc.s3[k]));
      }
      if ((loc.s3.accessKeyId === undefined) !== (loc.s3.secretAccessKey === undefined)) {
        errors.push({ path: `${at}.s3`, message: 'set both accessKeyId and secretAccessKey, or neither (default credential chain)' });
      }
    }
  });
  return errors;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/**
 * Validates once at the boundary, fills defaults, and freezes the result.
 * Every problem is reported together, each with its field path and rule.
 */
export function validateRunnerConfig(input: unknown): ValidationResult<Readonly<RunnerConfig>> {
  const withDefaults = Value.Default(RunnerConfig, Value.Clone(input ?? {}));
  const errors = structuralErrors(RunnerConfig, withDefaults);
  const cfg = withDefaults as RunnerConfig;
  try {
    for (const e of semanticErrors(cfg)) if (!errors.some((x) => x.path === e.path)) errors.push(e);
  } catch {
    // The shape is too broken for the cross-field rules; the structural errors say why.
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: deepFreeze(cfg) };
}
