import { text } from 'node:stream/consumers';
import { type BackupError, toBackupError } from '../errors.js';
import { type Manifest, parseManifest } from '../manifest.js';
import type { Location, Runtime } from '../runtime.js';
import { MANIFEST_FILE, databasePrefix, parseKey } from '../storage/layout.js';
import { mapLimit } from '../util/async.js';

export interface ListedBackup {
  id: string;
  /** The manifest as the first location (in config order) that holds the backup stored it. */
  manifest: Manifest;
  /** Names of the locations holding a manifest for this backup, in config order. */
  locations: string[];
}

export interface Listing {
  /** Oldest first. */
  backups: ListedBackup[];
  /** Locations that could not be listed, or whose manifests could not be read. */
  problems: { location: string; key?: string; error: BackupError }[];
}

async function listLocation(loc: Location, signal: AbortSignal | undefined, problems: Listing['problems'], cache?: Map<string, Manifest>): Promise<Manifest[]> {
  const keys: string[] = [];
  try {
    for await (const obj of loc.storage.list(databasePrefix(loc.scope), { signal })) {
      const parsed = parseKey(loc.scope, obj.key);
      if (parsed?.file === MANIFEST_FILE) keys.push(obj.key);
    }
  } catch (err) {
    problems.push({ location: loc.name, error: toBackupError(err, 'STORAGE_FAILED') });
    return [];
  }
  if (cache) {
    // Forget manifests of backups that are gone (retention, manual deletion).
    const present = new Set(keys);
    for (const k of cache.keys()) if (!present.has(k)) cache.delete(k);
  }
  const manifests = await mapLimit(keys, 8, async (key) => {
    const cached = cache?.get(key);
    if (cached) return cached;
    try {
      const body = await loc.storage.get(key, { signal });
      const m = parseManifest(await text(body), `${loc.name}: ${key}`);
      cache?.set(key, m);
      return m;
    } catch (err) {
      problems.push({ location: loc.name, key, error: toBackupError(err, 'STORAGE_FAILED') });
      return undefined;
    }
  });
  return manifests.filter((m): m is Manifest => m !== undefined);
}

/**
 * Reads every location's manifests and merges them by backup id. Only
 * manifests count: data without a manifest is an unfinished backup.
 */
export async function listBackups(rt: Runtime, opts: { signal?: AbortSignal } = {}): Promise<Listing> {
  const problems: Listing['problems'] = [];
  const cacheFor = (name: string): Map<string, Manifest> | undefined => {
    if (!rt.manifestCache) return undefined;
    let c = rt.manifestCache.get(name);
    if (!c) rt.manifestCache.set(name, (c = new Map<string, Manifest>()));
    return c;
  };
  const perLocation = await Promise.all(rt.locations.map((loc) => listLocation(loc, opts.signal, problems, cacheFor(loc.name))));
  const byId = new Map<string, ListedBackup>();
  rt.locations.forEach((loc, i) => {
    for (const m of perLocation[i]!) {
      const seen = byId.get(m.id);
      if (seen) seen.locations.push(loc.name);
      else byId.set(m.id, { id: m.id, manifest: m, locations: [loc.name] });
    }
  });
  const backups = [...byId.values()].sort((a, b) => a.manifest.consistentAt.localeCompare(b.manifest.consistentAt) || a.id.localeCompare(b.id));
  return { backups, problems };
}
