import { scanLocation } from '../catalog.js';
import { type BackupError, toBackupError } from '../errors.js';
import type { Manifest } from '../manifest.js';
import type { Location, Runtime } from '../runtime.js';
import { formatNamed } from '../engines/registry.js';
import { type LocationRecovery, recoveryByLocation } from './wal-window.js';

/** One location's copy of a backup: its own manifest, and the directory its objects lie in. */
export interface BackupCopy {
  location: string;
  dir: string;
  manifest: Manifest;
}

export interface ListedBackup {
  id: string;
  /**
   * The manifest of the first copy (config order): what the backup is (its instants, engine, trigger).
   * Objects, sizes, digests and encryption are per copy: see `copies`.
   */
  manifest: Manifest;
  /** Names of the locations holding a manifest for this backup, in config order. */
  locations: string[];
  /** Each location's copy, in config order (one per location). */
  copies: BackupCopy[];
}

/** A backup whose manifest is dated in the future (beyond the clock-skew allowance): shown, never used. */
export interface FutureBackup extends ListedBackup {
  /** The first instant beyond the allowance, e.g. `consistentAt`, and its value. */
  field: string;
  at: string;
}

export interface Listing {
  /** Oldest first. Only these are backups: chosen by restore, planned by retention, counted in metrics and status. */
  backups: ListedBackup[];
  /** Future-dated manifests, oldest first; flagged by list and verify, never chosen, planned or counted. */
  future: FutureBackup[];
  /**
   * Locations that could not be listed (no key), or manifests that could not
   * be read, are invalid (MANIFEST_INVALID) or do not match where they lie
   * (MANIFEST_MISPLACED).
   */
  problems: { location: string; key?: string; error: BackupError }[];
  /** `verified`: every listed backup's manifest is signed by a verification key; `not checked`: none is configured. */
  signatures: 'verified' | 'not checked';
  /**
   * `list` of physical base backups (their format holds a data directory): per location, in config order, the
   * window a point-in-time recovery from its own WAL archive reaches. Absent otherwise (no WAL is listed).
   */
  recovery?: LocationRecovery[];
}

interface LocationView {
  entries: { manifest: Manifest; dir: string }[];
  future: { manifest: Manifest; dir: string; field: string; at: string }[];
}

async function listLocation(rt: Runtime, loc: Location, signal: AbortSignal | undefined, problems: Listing['problems'], cache?: Map<string, Manifest>): Promise<LocationView> {
  try {
    const c = await scanLocation(loc, {
      now: rt.clock(),
      logger: rt.logger.child({ location: loc.name }),
      ...(signal ? { signal } : {}),
      ...(cache ? { cache } : {}),
      ...(rt.foreign ? { foreign: rt.foreign } : {}),
      ...(rt.signing?.trust?.length ? { trust: rt.signing.trust } : {}),
    });
    for (const p of c.problems) problems.push({ location: loc.name, key: p.key, error: p.error });
    return c;
  } catch (err) {
    problems.push({ location: loc.name, error: toBackupError(err, 'STORAGE_FAILED') });
    return { entries: [], future: [] };
  }
}

type ViewEntry = LocationView['entries'][number];

function merge<T extends ListedBackup>(rt: Runtime, views: LocationView[], pick: (v: LocationView) => ViewEntry[], make: (m: Manifest, copy: BackupCopy, from: ViewEntry) => T): T[] {
  const byId = new Map<string, T>();
  rt.locations.forEach((loc, i) => {
    for (const e of pick(views[i]!)) {
      const copy: BackupCopy = { location: loc.name, dir: e.dir, manifest: e.manifest };
      const seen = byId.get(e.manifest.id);
      if (!seen) byId.set(e.manifest.id, make(e.manifest, copy, e));
      // One copy per location: a second directory with the same id (both layouts) is left out.
      else if (!seen.locations.includes(loc.name)) {
        seen.locations.push(loc.name);
        seen.copies.push(copy);
      }
    }
  });
  return [...byId.values()].sort((a, b) => a.manifest.consistentAt.localeCompare(b.manifest.consistentAt) || a.id.localeCompare(b.id));
}

/**
 * Reads every location's manifests and merges them by backup id. Only
 * manifests count: data without a manifest is an unfinished backup. A
 * manifest counts only where it matches its key and is not future-dated
 * (see runner/catalog.ts).
 */
export async function listBackups(rt: Runtime, opts: { signal?: AbortSignal } = {}): Promise<Listing> {
  const problems: Listing['problems'] = [];
  const cacheFor = (name: string): Map<string, Manifest> | undefined => {
    if (!rt.manifestCache) return undefined;
    let c = rt.manifestCache.get(name);
    if (!c) rt.manifestCache.set(name, (c = new Map<string, Manifest>()));
    return c;
  };
  const views = await Promise.all(rt.locations.map((loc) => listLocation(rt, loc, opts.signal, problems, cacheFor(loc.name))));
  const backups = merge(rt, views, (v) => v.entries, (m, copy) => ({ id: m.id, manifest: m, locations: [copy.location], copies: [copy] }));
  const future = merge(rt, views, (v) => v.future, (m, copy, from) => {
    const f = from as LocationView['future'][number];
    return { id: m.id, manifest: m, locations: [copy.location], copies: [copy], field: f.field, at: f.at };
  });
  // A backup id that is sound in one location and future-dated in another is not trusted anywhere.
  const futureIds = new Set(future.map((f) => f.id));
  return { backups: backups.filter((b) => !futureIds.has(b.id)), future, problems, signatures: rt.signing?.trust?.length ? 'verified' : 'not checked' };
}

/**
 * The listing with each location's recoverable window (`recovery`), when it holds physical base backups (a
 * format that holds a data directory); otherwise as it is, and no WAL archive is listed.
 */
export async function withRecovery(rt: Runtime, listing: Listing, opts: { signal?: AbortSignal } = {}): Promise<Listing> {
  const physical = listing.backups.filter((b) => formatNamed(b.manifest.engine.format, rt.engine.formats ?? [])?.holds === 'data-directory');
  if (physical.length === 0) return listing;
  return { ...listing, recovery: await recoveryByLocation(rt, physical, opts.signal) };
}
