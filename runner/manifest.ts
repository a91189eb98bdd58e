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
