/**
 * What one location holds of one database, read from its manifests: the one
 * function through which list, retention, verify and restore learn which
 * backups exist.
 *
 * Invariants:
 * - Only keys of the exact layout count (layout.ts classifyKey: format 2's
 *   `backups/<id>/`, format 1's `<id>/`); anything
 *   else under the database prefix is foreign: reported once (log line and
 *   metric, see storage/foreign.ts), never read as a backup.
 * - A manifest must match where it lies: its id, namespace and name equal the
 *   key path, or it is a MANIFEST_MISPLACED problem and not a backup.
 * - A manifest names only data files of the layout, each once (never a path,
 *   never the manifest), or it is MANIFEST_INVALID: no object a manifest
 *   names lies outside its own backup directory.
 * - With verification keys, a manifest must be signed by one of them, or it
 *   is a MANIFEST_UNSIGNED / MANIFEST_SIGNATURE_INVALID problem and not a
 *   backup.
 * - A manifest whose instants lie beyond now plus MAX_CLOCK_SKEW_MS is
 *   returned apart, in `future`: shown flagged, never chosen, never counted.
 * - A listing failure throws: callers never act on a partial view.
 */
import type { KeyObject } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { checkSignature } from './crypto/signing.js';
import { BackupError, toBackupError } from './errors.js';
import type { Logger } from './logger.js';
import { type Manifest, futureInstant, isServerObject, misplacement, parseManifest } from './manifest.js';
import type { Location } from './runtime.js';
import { type ForeignObjects, processForeignObjects } from './storage/foreign.js';
import { MANIFEST_FILE, classifyKey, databasePrefix, isDataFileName, plainFileName } from './storage/layout.js';
import { mapLimit } from './util/async.js';

export interface CatalogEntry {
  id: string;
  /** The manifest's key. */
  key: string;
  /** The backup directory the manifest lies in (ending in `/`): every object of the copy is a key in it. */
  dir: string;
  manifest: Manifest;
}

export interface FutureEntry extends CatalogEntry {
  /** The first instant beyond the allowance, e.g. `consistentAt`. */
  field: string;
  at: string;
}

export interface LocationCatalog {
  /** Manifests that match their key and are not future-dated, in listing order. */
  entries: CatalogEntry[];
  /** Future-dated manifests: flagged, never a backup to choose, plan or count. */
  future: FutureEntry[];
  /** Manifests that could not be read, are invalid or misplaced. */
  problems: { key: string; error: BackupError }[];
  /** Foreign keys seen in this listing. */
  foreign: number;
}

/** Manifests that were read but are not a backup of this database: never chosen, never removed, and they hide no backup (a listing with only these is complete). */
export const REJECTED_MANIFEST_CODES: ReadonlySet<string> = new Set(['MANIFEST_MISPLACED', 'MANIFEST_UNSIGNED', 'MANIFEST_SIGNATURE_INVALID']);

export interface ScanOptions {
  signal?: AbortSignal;
  /** Verification keys: with them, only a manifest signed by one of them is a backup (runner/crypto/signing.ts). */
  trust?: readonly KeyObject[];
  now: Date;
  logger: Logger;
  /** Parsed manifests by key (manifests never change once written). */
  cache?: Map<string, Manifest>;
  foreign?: ForeignObjects;
}

/** Reads and checks one manifest: parsed, placed where its key says. Throws MANIFEST_INVALID / MANIFEST_MISPLACED or the storage error. */
async function readManifest(loc: Location, id: string, key: string, opts: ScanOptions): Promise<Manifest> {
  let m = opts.cache?.get(key);
  if (!m) {
    const stored = await text(await loc.storage.get(key, { signal: opts.signal }));
    m = parseManifest(stored, `${loc.name}: ${key}`);
    if (opts.trust) {
      const c = checkSignature(JSON.parse(stored), opts.trust);
      if (!c.ok) throw new BackupError(c.code, `${loc.name}: ${key}: manifest is not a backup of this database: ${c.why}`, { details: { location: loc.name, key } });
    }
    opts.cache?.set(key, m);
  }
  // Objects a database server wrote (format 4) lie only in a layout 2 directory: in another, the sweeper and retention would not see them as the backup's.
  const layout2 = (() => {
    const c = classifyKey(loc.scope, key);
    return c.kind === 'backup' && c.layout === 2;
  })();
  const odd = m.objects.find((o) => !isDataFileName(o.name) || (isServerObject(o) && !layout2));
  // Unique also without the encryption suffix: a copy into a location that encrypts (or does not) renames them.
  if (odd || new Set(m.objects.map((o) => plainFileName(o.name))).size !== m.objects.length) {
    const why = odd ? `object "${odd.name}" is not a data file the runner writes` : 'it names an object twice (with or without an encryption suffix)';
    throw new BackupError('MANIFEST_INVALID', `${loc.name}: ${key}: ${why}; not read as a backup`, { details: { location: loc.name, key } });
  }
  const wrong = misplacement(m, { namespace: loc.scope.namespace, name: loc.scope.name, id });
  if (wrong) {
    throw new BackupError('MANIFEST_MISPLACED', `${loc.name}: ${key}: manifest does not match where it lies (${wrong}); not a backup of this database`, {
      details: { location: loc.name, key },
    });
  }
  return m;
}

export async function scanLocation(loc: Location, opts: ScanOptions): Promise<LocationCatalog> {
  const foreignTracker = opts.foreign ?? processForeignObjects;
  const keys: { id: string; key: string; dir: string }[] = [];
  let foreign = 0;
  for await (const obj of loc.storage.list(databasePrefix(loc.scope), { signal: opts.signal })) {
    const c = classifyKey(loc.scope, obj.key);
    if (c.kind === 'backup') {
      if (c.file === MANIFEST_FILE) keys.push({ id: c.backupId, key: obj.key, dir: c.dir });
    } else if (c.kind === 'foreign') {
      foreign++;
      foreignTracker.note(loc.name, obj.key, c.reason, opts.logger);
    }
  }
  if (opts.cache) {
    // Forget manifests of backups that are gone (retention, manual deletion).
    const present = new Set(keys.map((k) => k.key));
    for (const k of opts.cache.keys()) if (!present.has(k)) opts.cache.delete(k);
  }
  const catalog: LocationCatalog = { entries: [], future: [], problems: [], foreign };
  const read = await mapLimit(keys, 8, async ({ id, key, dir }) => {
    try {
      return { id, key, dir, manifest: await readManifest(loc, id, key, opts) };
    } catch (err) {
      catalog.problems.push({ key, error: toBackupError(err, 'STORAGE_FAILED') });
      return undefined;
    }
  });
  if (opts.signal?.aborted) throw new BackupError('ABORTED', `reading the manifests of ${loc.name} aborted`, { cause: opts.signal.reason });
  for (const e of read) {
    if (!e) continue;
    const ahead = futureInstant(e.manifest, opts.now);
    if (ahead) catalog.future.push({ ...e, ...ahead });
    else catalog.entries.push(e);
  }
  return catalog;
}
