/**
 * Key naming for every backend, in one pure module:
 *   <prefix>/<namespace>/<name>/<backupId>/data.<ext>
 *   <prefix>/<namespace>/<name>/<backupId>/manifest.json
 */
export const MANIFEST_FILE = 'manifest.json';

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

/** Splits a key under `databasePrefix(scope)` into backup id and file name, or null. */
export function parseKey(scope: Scope, key: string): { backupId: string; file: string } | null {
  const base = databasePrefix(scope);
  if (!key.startsWith(base)) return null;
  const rest = key.slice(base.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return null;
  return { backupId: rest.slice(0, slash), file: rest.slice(slash + 1) };
}
