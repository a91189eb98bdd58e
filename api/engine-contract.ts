/**
 * The bring-your-own-tool engine contract: how an engine defined by a
 * command (a DatabaseBackupEngine resource, or a tool the runner image ships)
 * is described, called and answered. Shared by the runner (which calls the
 * tool), the controller (which checks a DatabaseBackup's `config` before
 * anything runs) and the tools themselves. Pure; docs/engines.md explains it
 * with a complete example.
 *
 * A call is `<command...> <verb> <request.json>`: the request is a 0600 file
 * in a private directory (secrets beside it, as files), the result is one
 * JSON object written to file descriptor 3, the dump travels on stdout
 * (backup) or stdin (restore), stderr lines go to the runner's log, and exit
 * status 0 means success.
 *
 * A server-side engine (`output: location`, e.g. CockroachDB `BACKUP INTO`,
 * Elasticsearch snapshots) has the database server write the backup itself:
 * its backup request names a destination (one location's directory for this
 * backup, and how the server may reach it) instead of a stdout, and its
 * restore request names the source copy and its objects instead of a stdin.
 * The runner lists and hashes what was written, copies it to the other
 * locations and writes the manifests last (runner/ops/server-backup.ts).
 */
import { Type, type Static } from '@sinclair/typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

/** The contract version a request carries; a tool refuses a higher one. */
export const CONTRACT_VERSION = 1;

/** The descriptor the result JSON is written to. */
export const RESULT_FD = 3;

/** A result larger than this is refused (the dump travels on stdout, not here). */
export const RESULT_MAX_BYTES = 64 * 1024;

const Token = (description: string) => Type.String({ pattern: '^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$', maxLength: 63, description });

export const VERBS = ['probe', 'backup', 'restore', 'inspect'] as const;

/** The location types a destination can be. */
export const DESTINATION_TYPES = ['filesystem', 's3', 'gcs'] as const;
export type DestinationType = (typeof DESTINATION_TYPES)[number];

/** How a tool's backups travel: its stdout and stdin (stream), or written by the database server into a location (location). */
export const OUTPUTS = ['stream', 'location'] as const;
export type Verb = (typeof VERBS)[number];

/** Extensions a format may not have (storage/layout.ts DATA_EXTENSION says the same). */
export const RESERVED_EXTENSIONS: readonly string[] = ['age', 'zst', 'gz', 'rekeyed', 'json'];

/** One dump format a tool writes. */
export const ToolFormat = Type.Object(
  {
    format: Token('name recorded in manifests, e.g. redis-rdb: lower-case letters, digits, -, . and _'),
    extension: Type.String({ pattern: '^[a-z0-9]{1,16}$', description: 'file extension of an uncompressed dump, e.g. rdb: 1 to 16 lower-case letters and digits, not age, zst, gz, rekeyed or json' }),
    compressed: Type.Boolean({ default: false, description: 'the tool compresses its output itself (the pipeline then stores it as it is)' }),
    magicHex: Type.Optional(
      Type.Array(Type.String({ pattern: '^([0-9a-f]{2}){1,32}$', description: 'lower-case hex bytes, 1 to 32' }), {
        minItems: 1,
        maxItems: 8,
        description: 'every dump of this format starts with one of these byte strings (hex); verify checks stored objects against them. Required unless output is location (what a database server writes has no one header)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ToolFormat = Static<typeof ToolFormat>;

/** What an engine defined by a command declares: the spec of a DatabaseBackupEngine, and the runner config's `engine.command.definition`. */
export const EngineDefinitionSpec = Type.Object(
  {
    name: Token('the engine name recorded in manifests, e.g. redis'),
    command: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
      minItems: 1,
      maxItems: 32,
      description: 'the program and its first arguments; the verb and the request file path are appended',
    }),
    verbs: Type.Array(Type.Union(VERBS.map((v) => Type.Literal(v))), {
      uniqueItems: true,
      description: 'the verbs the tool answers: probe, backup and restore always; inspect (is the target empty?) when it can tell',
    }),
    formats: Type.Array(ToolFormat, { minItems: 1, maxItems: 8, description: 'the dump formats the tool restores; backup writes the first' }),
    configSchema: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: "JSON Schema (draft-07) of the DatabaseBackup's config block, checked before anything runs" })),
    output: Type.Optional(
      Type.Union(OUTPUTS.map((o) => Type.Literal(o)), {
        description:
          'stream (when unset): backup writes the dump on stdout and restore reads it on stdin; location: the database server writes the backup into the destination the request names and reads it back from the source (magicHex is then not checked)',
      }),
    ),
    locationTypes: Type.Optional(
      Type.Array(Type.Union(DESTINATION_TYPES.map((t) => Type.Literal(t))), {
        minItems: 1,
        uniqueItems: true,
        description: 'output: location only: the location types its database server can write (default all); e.g. a server on other machines cannot write a filesystem location of the runner pod',
      }),
    ),
  },
  { additionalProperties: false },
);
export type EngineDefinitionSpec = Static<typeof EngineDefinitionSpec>;

/** The location types a server-side engine's database server can write (its definition's `locationTypes`, default all). */
export function serverLocationTypes(definition: Pick<EngineDefinitionSpec, 'locationTypes'>): readonly DestinationType[] {
  return definition.locationTypes ?? DESTINATION_TYPES;
}

/** Whether a definition's backups are written by the database server itself (`output: location`). */
export function isServerSide(definition: Pick<EngineDefinitionSpec, 'output'>): boolean {
  return definition.output === 'location';
}

/**
 * Where a server-side backup is written, or read back from: one location's directory for this backup. The
 * database server may write only below it. `credentials` says how it gets in: a 0600 file in the call's
 * directory (S3: {"accessKeyId", "secretAccessKey", "sessionToken"?} JSON; GCS: the service account key JSON)
 * holding the tenant's own keys, or `server`: with an identity of its own, nothing handed over. A filesystem
 * destination is a directory of the runner's pod and needs none.
 */
export interface Destination {
  /** The location's name in the runner's configuration. */
  location: string;
  type: DestinationType;
  /** `file:///dir/`, `s3://bucket/prefix/` or `gs://bucket/prefix/`, ending in `/`. */
  url: string;
  /** filesystem: the absolute directory (it exists and is empty for a backup). */
  path?: string;
  /** s3 and gcs: the bucket and the key prefix (ending in `/`) every object is written under. */
  bucket?: string;
  prefix?: string;
  /** s3: the region, the endpoint of an S3-compatible server, path-style addressing. */
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  credentials?: { source: 'file'; file: string } | { source: 'server' };
}

/**
 * Pure: the forms in which a secret may appear in what a tool prints, all of which the runner (and a tool that
 * hands it on) keeps out of logs and errors: as it is, JSON-escaped, URL-encoded (both ways), base64, and base64
 * URL-encoded (a key file handed on in a URL).
 */
export function secretEncodings(v: string): string[] {
  const b64 = Buffer.from(v, 'utf8').toString('base64');
  const query = (x: string): string => new URLSearchParams({ v: x }).toString().slice(2);
  return [...new Set([v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v), query(v), b64, encodeURIComponent(b64), query(b64)])];
}

/** One object of a server-side backup as a restore request lists it: its path below the source, size and sha256. */
export interface SourceObject {
  path: string;
  size: number;
  sha256: string;
}

/** Where the tool connects. Every field is optional: a tool uses what its database needs. */
export interface RequestTarget {
  host?: string;
  port?: number;
  user?: string;
  /** A 0600 file holding the password, never the password itself. */
  passwordFile?: string;
  database?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

/** The request file of one call. */
export interface ToolRequest {
  contract: typeof CONTRACT_VERSION;
  verb: Verb;
  /** The definition's name. */
  engine: string;
  target: RequestTarget;
  /** The DatabaseBackup's config, already checked against the definition's configSchema. */
  config: Record<string, unknown>;
  /** The descriptor to write the result JSON to. */
  resultFd: typeof RESULT_FD;
  /** A private, empty directory the tool may use for scratch files (removed after the call). */
  workDir: string;
  /** backup by a server-side engine (`output: location`): where the server writes this backup. */
  destination?: Destination;
  /** restore and inspect: what to restore into. */
  restore?: {
    /** The database (or keyspace, or whatever the tool calls its unit) to restore into. */
    database?: string;
    /** Replace data in a target that holds some. Without it a tool must refuse a non-empty target (error code TARGET_NOT_EMPTY). */
    force: boolean;
    /** The dump's format, one of the definition's. */
    format: string;
    /** The backup's manifest engine block (versions, position) as stored. */
    engine: Record<string, unknown>;
    consistentAt: string;
    /** A server-side engine: the copy to restore from, verified by the runner just before the call, and its objects. */
    source?: Destination;
    objects?: SourceObject[];
  };
}

/** Error codes a tool may report in its result; anything else becomes the verb's generic failure. */
export const TOOL_ERROR_CODES = ['TARGET_NOT_EMPTY', 'TOOL_INCOMPATIBLE', 'DB_UNREACHABLE', 'DB_AUTH_FAILED', 'DB_NOT_FOUND', 'CONFIG_INVALID'] as const;

const Version = Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Za-z][0-9A-Za-z.+_-]*$' });
export const ToolError = Type.Object({
  code: Type.String({ maxLength: 64 }),
  message: Type.String({ maxLength: 4096 }),
});
export const TargetOutcome = Type.Object({
  state: Type.Union(['unchanged', 'emptied', 'partial'].map((s) => Type.Literal(s))),
  detail: Type.Optional(Type.String({ maxLength: 4096 })),
});

/** The result JSON of each verb (all of them may carry `error` when the tool exits non-zero). */
export const RESULTS = {
  probe: Type.Object({ serverVersion: Version, toolVersion: Version, error: Type.Optional(ToolError) }),
  backup: Type.Object({
    consistentAt: Type.Optional(Type.String({ maxLength: 40, description: 'an instant at or after the one the dump is consistent to' })),
    position: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }), Type.String({ maxLength: 4096 }), { maxProperties: 16, additionalProperties: false })),
    error: Type.Optional(ToolError),
  }),
  restore: Type.Object({
    conflicts: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 1000 })),
    target: Type.Optional(TargetOutcome),
    error: Type.Optional(ToolError),
  }),
  inspect: Type.Object({ exists: Type.Boolean(), hasData: Type.Boolean(), error: Type.Optional(ToolError) }),
} as const;
export type ToolResult<V extends Verb> = Static<(typeof RESULTS)[V]>;

/** Compiled validators by the schema's text: a schema is compiled once however often it is read again (every reconcile). */
const compiled = new Map<string, ValidateFunction | Error>();
const MAX_COMPILED = 256;

/** The config validator of a schema, or an Error when it is not valid JSON Schema. */
function validatorOf(schema: Record<string, unknown>): ValidateFunction | Error {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    try {
      // One Ajv per schema: two engines whose schemas share an $id never meet in one registry.
      v = new Ajv({ allErrors: true, strict: false }).compile(schema);
    } catch (err) {
      v = err instanceof Error ? err : new Error(String(err));
    }
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, v);
  }
  return v;
}

/** Pure: why a configSchema is not valid JSON Schema (it does not compile), or undefined when it is. */
export function configSchemaError(configSchema: Record<string, unknown>): string | undefined {
  const v = validatorOf(configSchema);
  return v instanceof Error ? `is not a valid JSON Schema: ${v.message}` : undefined;
}

/** `/a/0/b` (a JSON pointer from ajv) -> `.a[0].b` */
function pointerSuffix(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg}`))
    .join('');
}

function ruleOf(e: ErrorObject): { suffix: string; message: string } {
  const suffix = pointerSuffix(e.instancePath);
  if (e.keyword === 'additionalProperties') return { suffix: `${suffix}.${String((e.params as { additionalProperty: string }).additionalProperty)}`, message: 'is not a setting of this engine' };
  if (e.keyword === 'required') return { suffix: `${suffix}.${String((e.params as { missingProperty: string }).missingProperty)}`, message: 'is required' };
  if (e.keyword === 'enum') return { suffix, message: `must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues).map((v) => JSON.stringify(v)).join(', ')}` };
  return { suffix, message: e.message ?? `breaks the ${e.keyword} rule` };
}

/**
 * Pure: the problems of a DatabaseBackup's `config` (at `at`, e.g. `spec.engine.command.config`) against
 * an engine definition's configSchema, one per path, each naming the field and the rule. A definition whose schema
 * is not valid JSON Schema is reported at `schemaAt`.
 */
export function toolConfigErrors(configSchema: Record<string, unknown> | undefined, config: unknown, at: string, schemaAt: string): { path: string; message: string }[] {
  if (!configSchema) {
    return config === undefined || (typeof config === 'object' && config !== null && Object.keys(config).length === 0) ? [] : [{ path: at, message: 'this engine takes no config (its definition declares no configSchema)' }];
  }
  const invalid = configSchemaError(configSchema);
  if (invalid) return [{ path: schemaAt, message: invalid }];
  const validate = validatorOf(configSchema) as ValidateFunction;
  if (validate(config ?? {})) return [];
  const errors: { path: string; message: string }[] = [];
  for (const e of validate.errors ?? []) {
    const { suffix, message } = ruleOf(e);
    const path = `${at}${suffix}`;
    if (!errors.some((x) => x.path === path)) errors.push({ path, message });
  }
  return errors;
}

/** Names an engine defined by a command may not take: the runner's own engines (manifests and imports tell engines apart by name). */
export const RESERVED_ENGINE_NAMES: readonly string[] = ['postgresql', 'mysql', 'command'];

/** Pure: the definition's rules beyond its shape: a name of its own, the verbs every tool answers, one format name once. */
export function definitionErrors(definition: EngineDefinitionSpec, at: string, nameAt = `${at}.name`): { path: string; message: string }[] {
  const errors: { path: string; message: string }[] = [];
  if (!/^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/.test(definition.name) || definition.name.length > 63) {
    errors.push({ path: nameAt, message: 'must be 1 to 63 lower-case letters, digits, -, . and _, starting and ending with a letter or digit' });
  }
  if (RESERVED_ENGINE_NAMES.includes(definition.name)) errors.push({ path: nameAt, message: `must not be ${RESERVED_ENGINE_NAMES.join(', ')}: the runner's own engines` });
  if (definition.locationTypes !== undefined && !isServerSide(definition)) errors.push({ path: `${at}.locationTypes`, message: 'applies only with output: location (a server-side engine)' });
  definition.formats.forEach((f, i) => {
    if (f.magicHex === undefined && !isServerSide(definition)) errors.push({ path: `${at}.formats[${i}].magicHex`, message: 'is required: verify checks every stored dump against it (only a server-side engine, output: location, has none)' });
  });
  for (const verb of ['probe', 'backup', 'restore'] as const) {
    if (!definition.verbs.includes(verb)) errors.push({ path: `${at}.verbs`, message: `must include ${verb}` });
  }
  const seen = new Set<string>();
  definition.formats.forEach((f, i) => {
    if (seen.has(f.format)) errors.push({ path: `${at}.formats[${i}].format`, message: `"${f.format}" is declared twice` });
    seen.add(f.format);
    // The words the rest of a stored object's name uses: with one of them as extension a name would parse two ways.
    if (RESERVED_EXTENSIONS.includes(f.extension)) errors.push({ path: `${at}.formats[${i}].extension`, message: `must not be ${RESERVED_EXTENSIONS.join(', ')}` });
  });
  return errors;
}
