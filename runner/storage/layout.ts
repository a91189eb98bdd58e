/**
 * Key naming for every backend, in one pure module:
 *   <prefix>/<namespace>/<name>/<backupId>/data.<ext><compression suffix>
 *   <prefix>/<namespace>/<name>/<backupId>/manifest.json
 *
 * Under a database prefix the runner accepts exactly these keys: a
 * well-formed backup id (runner/backup-id.ts) and a file name from
 * KNOWN_FILES. Anything else there is foreign (another runner whose prefix
 * nests inside this one, or an object someone planted): `classifyKey` says
 * so and why, and callers leave it alone.
 */
import { isBackupId } from '../backup-id.js';

export const MANIFEST_FILE = 'manifest.json';

/** Extensions of the engines' uncompressed dumps (DumpFormat.extension). */
export const DATA_EXTENSIONS = ['dump'] as const;
/** Suffixes of the compression algorithms (CompressionPlan.suffix). */
export const COMPRESSION_SUFFIXES = ['', '.zst', '.gz'] as const;

/** The data object's name: `data.<ext><suffix>`, e.g. `data.dump.zst`. */
export function dataFileName(extension: string, suffix: string): string {
  return `data.${extension}${suffix}`;
}

/** Every file name the runner writes into a backup directory: the one table. */
export const KNOWN_FILES: ReadonlySet<string> = new Set([
  MANIFEST_FILE,
  ...DATA_EXTENSIONS.flatMap((ext) => COMPRESSION_SUFFIXES.map((suffix) => dataFileName(ext, suffix))),
]);

export interface Scope {
  /** Location prefix inside the bucket or directory; may be empty. */
  prefix: string;
  namespace: string;
  name: string;
}

function join(...parts: string[]): string {
  return parts
    .map((p) => p.replace(/^\/+|\/+$/g, ''))
    .filter((p) => p.length > 0)
    .join('/');
}

/** Prefix (ending in `/`) under which all backups of one database live. */
export function databasePrefix(scope: Scope): string {
  return `${join(scope.prefix, scope.namespace, scope.name)}/`;
}

export function backupPrefix(scope: Scope, backupId: string): string {
  return `${databasePrefix(scope)}${backupId}/`;
}

export function objectKey(scope: Scope, backupId: string, file: string): string {
  return `${backupPrefix(scope, backupId)}${file}`;
}

export function manifestKey(scope: Scope, backupId: string): string {
  return objectKey(scope, backupId, MANIFEST_FILE);
}

export type KeyClass =
  /** Not under the database prefix at all: another database's business. */
  | { kind: 'outside' }
  /** Exactly `<backupId>/<known file>` under the database prefix. */
  | { kind: 'backup'; backupId: string; file: string }
  /**
   * Under the database prefix but not a key the runner writes. `group` is the
   * first path segment below the prefix when that is a well-formed backup id
   * (a nested key inside a backup directory), and `nestedManifest` tells
   * whether the key is a manifest at some deeper level.
   */
  | { kind: 'foreign'; reason: string; group?: string; nestedManifest: boolean };

/** Pure: what a listed key is, seen from one database's scope. */
export function classifyKey(scope: Scope, key: string): KeyClass {
  const base = databasePrefix(scope);
  if (!key.startsWith(base)) return { kind: 'outside' };
  const segments = key.slice(base.length).split('/');
  const first = segments[0]!;
  const nestedManifest = segments.length > 2 && segments[segments.length - 1] === MANIFEST_FILE;
  const group = isBackupId(first) ? { group: first } : {};
  if (segments.length === 1) return { kind: 'foreign', reason: 'not inside a backup directory', nestedManifest };
  if (!isBackupId(first)) return { kind: 'foreign', reason: `"${first}" is not a backup id`, nestedManifest };
  if (segments.length > 2) return { kind: 'foreign', reason: 'nested below a backup directory', ...group, nestedManifest };
  const file = segments[1]!;
  if (!KNOWN_FILES.has(file)) return { kind: 'foreign', reason: `"${file}" is not a file the runner writes`, ...group, nestedManifest };
  return { kind: 'backup', backupId: first, file };
}

/** Splits a key under `databasePrefix(scope)` into backup id and known file name; null for anything else. */
export function parseKey(scope: Scope, key: string): { backupId: string; file: string } | null {
  const c = classifyKey(scope, key);
  return c.kind === 'backup' ? { backupId: c.backupId, file: c.file } : null;
}
