import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { BackupError } from './errors.js';

export const MANIFEST_FORMAT_VERSION = 1;

const IsoDate = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$', description: 'UTC timestamp, RFC 3339' });

export const ManifestObject = Type.Object({
  name: Type.String({ minLength: 1 }),
  size: Type.Integer({ minimum: 0 }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
});
export type ManifestObject = Static<typeof ManifestObject>;

/**
 * What one location holds of one backup. It is written last: a backup
 * without a manifest does not exist. `list` reads manifests, never object names.
 */
export const Manifest = Type.Object({
  formatVersion: Type.Literal(MANIFEST_FORMAT_VERSION),
  id: Type.String({ minLength: 1 }),
  namespace: Type.String(),
  name: Type.String(),
  database: Type.String(),
  engine: Type.Object({
    name: Type.String(),
    serverVersion: Type.String(),
    toolVersion: Type.String(),
    format: Type.String(),
  }),
  startedAt: IsoDate,
  /** The data is consistent to this instant or an earlier one, never a later one. */
  consistentAt: IsoDate,
  finishedAt: IsoDate,
  trigger: Type.Union([Type.Literal('schedule'), Type.Literal('manual'), Type.Literal('pre-restore')]),
  objects: Type.Array(ManifestObject, { minItems: 1 }),
  compression: Type.Object({ algorithm: Type.String(), level: Type.Optional(Type.Integer()) }),
  encryption: Type.Object({ scheme: Type.String(), keyId: Type.Optional(Type.String()) }),
  runnerVersion: Type.String(),
});
export type Manifest = Static<typeof Manifest>;

/** Parses and checks a stored manifest; `where` names its location and key for the error. */
export function parseManifest(text: string, where: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BackupError('MANIFEST_INVALID', `${where}: manifest is not valid JSON`, { cause: err });
  }
  if (!Value.Check(Manifest, data)) {
    const first = Value.Errors(Manifest, data).First();
    throw new BackupError('MANIFEST_INVALID', `${where}: manifest does not match format ${MANIFEST_FORMAT_VERSION}${first ? ` (${first.path || '/'}: ${first.message})` : ''}`);
  }
  return data;
}

export function serializeManifest(m: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 2)}\n`, 'utf8');
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
