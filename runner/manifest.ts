/**
 * The manifest: what one location holds of one backup, written last (a
 * backup without a manifest does not exist). `list` reads manifests, never
 * object names.
 *
 * Format 2 (written now) describes one copy: each object with its stored
 * size and sha256 (what this location holds), the size and sha256 of its
 * plain bytes (before this location's encryption: the compressed stream,
 * the same in every location), its compression and its encryption. Each
 * location has its own manifest, read and checked on its own.
 *
 * Compatibility: `formatVersion` is the major version. A reader accepts
 * every major it knows (1 and 2) and fields it does not know within a major
 * (a later minor release adds only optional fields); a higher major is
 * MANIFEST_UNSUPPORTED ("upgrade the runner"). Format 1 manifests (one
 * compression and encryption for the whole backup, no plain digest) are
 * read into the format 2 shape by `parseManifest`. Format 3 adds streams (a
 * whole server, one object per database); format 4 is a server-side backup
 * (SERVER_FORMAT_VERSION).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { BackupError } from './errors.js';

/** The format this runner writes for a backup of one stream (readable by every runner since format 2). */
export const MANIFEST_FORMAT_VERSION = 2;
/** The format of a backup of several streams: a runner that reads only format 2 would restore its first stream alone, so it must refuse it. */
export const MULTI_STREAM_FORMAT_VERSION = 3;
/**
 * The format of a server-side backup: objects the database server wrote itself (`server/<path>`, no stream, not
 * compressed or encrypted by the runner), which only an engine with server-side output restores. A runner that
 * reads only formats 1 to 3 must refuse it rather than stream its first object into a restore.
 */
export const SERVER_FORMAT_VERSION = 4;
/** The formats this runner reads. */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2, 3, 4];

/** Whether a manifest object is one the database server wrote (format 4): `server/<path>`. */
export function isServerObject(o: { name: string }): boolean {
  return o.name.startsWith('server/');
}

/** The format a manifest of these objects is written in: 4 when the database server wrote them, 3 when they are streams of one backup, else 2. */
export function formatFor(objects: readonly { name: string; stream?: unknown }[]): number {
  if (objects.some(isServerObject)) return SERVER_FORMAT_VERSION;
  return objects.some((o) => o.stream !== undefined) ? MULTI_STREAM_FORMAT_VERSION : MANIFEST_FORMAT_VERSION;
}

const IsoDate = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$', description: 'UTC timestamp, RFC 3339' });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Size = Type.Integer({ minimum: 0 });

const Compression = Type.Object({ algorithm: Type.String({ minLength: 1 }), level: Type.Optional(Type.Integer()) });

export const Encryption = Type.Union([
  Type.Object({ scheme: Type.Literal('none') }),
  Type.Object({
    scheme: Type.Literal('age'),
    /** Fingerprints of the recipients the file key was wrapped for (never a key). */
    recipients: Type.Array(Type.String({ minLength: 1 })),
  }),
]);
export type Encryption = Static<typeof Encryption>;

const Engine = Type.Object({
  name: Type.String(),
  serverVersion: Type.String(),
  toolVersion: Type.String(),
  format: Type.String(),
  /** Where a log replay starts from this backup (e.g. binlogFile, binlogPosition, gtid); absent when the server keeps no such log. */
  position: Type.Optional(Type.Record(Type.String(), Type.String())),
});

const Trigger = Type.Union([Type.Literal('schedule'), Type.Literal('manual'), Type.Literal('pre-restore')]);

/**
 * A database's own properties, which a dump of its contents does not hold (format 3, optional): its settings
 * (`name=value`, as the server stores them), its grants (absent: the server's default ones; grantee null:
 * PUBLIC) and its comment.
 */
export const DatabaseProperties = Type.Object({
  settings: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 65536 }), { maxItems: 1000 })),
  grants: Type.Optional(
    Type.Array(Type.Object({ grantee: Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Null()]), privilege: Type.String({ minLength: 1, maxLength: 64 }), grantable: Type.Boolean() }), { maxItems: 10000 }),
  ),
  comment: Type.Optional(Type.String({ maxLength: 1048576 })),
});
export type DatabaseProperties = Static<typeof DatabaseProperties>;

/** One stream of a backup of several (format 3): a database, or a server's globals (roles, tablespaces). */
export const ManifestStream = Type.Object({
  name: Type.String({ minLength: 1 }),
  kind: Type.Union([Type.Literal('database'), Type.Literal('globals')]),
  /** The stream's dump format (its header is checked against it). */
  format: Type.String({ minLength: 1 }),
  /** This stream is consistent to this instant or an earlier one. */
  consistentAt: IsoDate,
  /** A database's owner where it was dumped (PostgreSQL: the archive restores into a database the restore creates). */
  owner: Type.Optional(Type.String({ minLength: 1 })),
  /** A database's settings, grants and comment where it was dumped (given back to a database the restore creates). */
  properties: Type.Optional(DatabaseProperties),
});
export type ManifestStream = Static<typeof ManifestStream>;

/**
 * An object as an encrypted location's manifest records it: a database's settings (which may hold secrets) and
 * comment are left out, since a manifest is never encrypted; its grants (role names, like its owner) stay.
 */
export function withoutProperties(o: ManifestObject): ManifestObject {
  const p = o.stream?.properties;
  if (!p || (p.settings === undefined && p.comment === undefined)) return o;
  const { properties: _left, ...stream } = o.stream!;
  return { ...o, stream: { ...stream, ...(p.grants ? { properties: { grants: p.grants } } : {}) } };
}

export const ManifestObject = Type.Object({
  name: Type.String({ minLength: 1 }),
  /** Format 3: the stream this object holds. */
  stream: Type.Optional(ManifestStream),
  /** Bytes this location holds. */
  size: Size,
  /** sha256 of the bytes this location holds. */
  sha256: Sha256,
  /** The bytes before this location's encryption (the compressed stream): equal in every location. */
  plain: Type.Object({ size: Size, sha256: Sha256 }),
  compression: Compression,
  encryption: Encryption,
});
export type ManifestObject = Static<typeof ManifestObject>;

/** The kinds of stored data a manifest can describe; only backups are written today. */
export const ManifestKind = Type.Union([Type.Literal('backup')]);

/** What every format says of the backup itself. */
const BackupFields = {
  id: Type.String({ minLength: 1 }),
  namespace: Type.String(),
  name: Type.String(),
  database: Type.String(),
  engine: Engine,
  startedAt: IsoDate,
  /** The data is consistent to this instant or an earlier one, never a later one. */
  consistentAt: IsoDate,
  finishedAt: IsoDate,
  trigger: Trigger,
  runnerVersion: Type.String(),
  /** Where the data came from when this runner did not dump it (`backup-runner import --keep`); absent for its own dumps. */
  origin: Type.Optional(Type.Object({ kind: Type.Literal('imported'), source: Type.String() })),
};

/** Format 2, and the shape every format is read into. */
export const Manifest = Type.Object({
  formatVersion: Type.Integer({ minimum: 1 }),
  kind: ManifestKind,
  ...BackupFields,
  objects: Type.Array(ManifestObject, { minItems: 1 }),
  /** Ed25519 over the rest of the manifest (runner/crypto/signing.ts); checked only where verification keys are configured. */
  signature: Type.Optional(Type.Object({ keyId: Type.String(), value: Type.String() })),
});
export type Manifest = Static<typeof Manifest>;

/** Format 1, as release 0.1 wrote it: one compression and one encryption for the backup, no plain digest. */
const ManifestV1 = Type.Object({
  formatVersion: Type.Literal(1),
  ...BackupFields,
  objects: Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), size: Size, sha256: Sha256 }), { minItems: 1 }),
  compression: Compression,
  encryption: Type.Object({ scheme: Type.Literal('none'), keyId: Type.Optional(Type.String()) }),
});
type ManifestV1 = Static<typeof ManifestV1>;

function fromV1(m: ManifestV1): Manifest {
  const { compression, encryption: _none, objects, ...rest } = m;
  return {
    ...rest,
    kind: 'backup',
    objects: objects.map((o) => ({ ...o, plain: { size: o.size, sha256: o.sha256 }, compression, encryption: { scheme: 'none' } })),
  };
}

function check<T extends TSchema>(schema: T, data: unknown, where: string, version: number): Static<T> {
  if (Value.Check(schema, data)) return data;
  const first = Value.Errors(schema, data).First();
  throw new BackupError('MANIFEST_INVALID', `${where}: manifest does not match format ${version}${first ? ` (${first.path || '/'}: ${first.message})` : ''}`);
}

/** Parses and checks a stored manifest of any readable format; `where` names its location and key for the error. */
export function parseManifest(text: string, where: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BackupError('MANIFEST_INVALID', `${where}: manifest is not valid JSON`, { cause: err });
  }
  const version = data && typeof data === 'object' ? (data as { formatVersion?: unknown }).formatVersion : undefined;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw new BackupError('MANIFEST_INVALID', `${where}: manifest has no formatVersion (a positive integer)`);
  }
  if (!READABLE_FORMAT_VERSIONS.includes(version)) {
    throw new BackupError(
      'MANIFEST_UNSUPPORTED',
      `${where}: manifest format ${version} is newer than this runner reads (formats ${READABLE_FORMAT_VERSIONS.join(', ')}); upgrade the runner to use this backup`,
      { details: { formatVersion: version } },
    );
  }
  if (version === 1) return fromV1(check(ManifestV1, data, where, 1));
  const m = check(Manifest, data, where, version);
  const streams = m.objects.filter((o) => o.stream !== undefined);
  if (version === MULTI_STREAM_FORMAT_VERSION && (streams.length !== m.objects.length || new Set(streams.map((o) => `${o.stream!.kind}:${o.stream!.name}`)).size !== streams.length)) {
    throw new BackupError('MANIFEST_INVALID', `${where}: manifest does not match format 3 (every object must be a stream, each stream once)`);
  }
  if (version === MANIFEST_FORMAT_VERSION && streams.length > 0) {
    throw new BackupError('MANIFEST_INVALID', `${where}: manifest does not match format 2 (an object names a stream: streams are format 3)`);
  }
  const server = m.objects.filter(isServerObject).length;
  if (version === SERVER_FORMAT_VERSION ? server !== m.objects.length || streams.length > 0 : server > 0) {
    throw new BackupError('MANIFEST_INVALID', `${where}: manifest does not match format ${version} (${version === SERVER_FORMAT_VERSION ? 'every object must be one the database server wrote, server/<path>, and none a stream' : 'an object under server/ is format 4'})`);
  }
  return m;
}

export function serializeManifest(m: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 2)}\n`, 'utf8');
}

/** Bytes a location holds of a backup: the sum of its objects' stored sizes. */
export function storedBytes(m: Manifest): number {
  return m.objects.reduce((s, o) => s + o.size, 0);
}

/**
 * How far a manifest's instants may lie ahead of this process's clock before
 * the manifest counts as future-dated: the clock skew tolerated between the
 * runner that wrote it (or the database server that gave consistentAt) and
 * the one reading it.
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** Where a manifest lies: the namespace and name of its database prefix, and its backup directory. */
export interface ManifestPlace {
  namespace: string;
  name: string;
  id: string;
}

/** Pure: why a manifest does not belong where it lies (id, namespace or name differ from its key), or undefined. */
export function misplacement(m: Manifest, place: ManifestPlace): string | undefined {
  const wrong = (['id', 'namespace', 'name'] as const).filter((f) => m[f] !== place[f]);
  if (wrong.length === 0) return undefined;
  return wrong.map((f) => `${f} is ${JSON.stringify(m[f])}, the key says ${JSON.stringify(place[f])}`).join('; ');
}

export const MANIFEST_INSTANTS = ['startedAt', 'consistentAt', 'finishedAt'] as const;

/** Pure: the first instant of the manifest beyond `now` plus the skew allowance, or undefined. */
export function futureInstant(m: Manifest, now: Date, skewMs = MAX_CLOCK_SKEW_MS): { field: (typeof MANIFEST_INSTANTS)[number]; at: string } | undefined {
  const limit = now.getTime() + skewMs;
  for (const field of MANIFEST_INSTANTS) if (Date.parse(m[field]) > limit) return { field, at: m[field] };
  return undefined;
}
