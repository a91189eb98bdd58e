import { parseDuration } from '../../api/index.js';
import { toBackupError, type BackupError } from '../errors.js';
import { applyRetention, sweepOrphans } from '../retention/apply.js';
import { abortStaleUploads, type MultipartSweep } from '../retention/multipart.js';
import { planRetention, type RetentionPlan } from '../retention/policy.js';
import type { Location, Runtime } from '../runtime.js';
import { databasePrefix } from '../storage/layout.js';
import type { BackupResult } from './backup.js';
import { REJECTED_MANIFEST_CODES } from '../catalog.js';
import { listBackups, type Listing } from './list.js';
import { retainWal, walStarts } from '../retention/wal.js';
import type { Logger } from '../logger.js';

export interface LocationRetention {
  location: string;
  plan?: RetentionPlan;
  /** Ids whose removal failed (their manifest is kept, so they still exist). */
  failed: string[];
  /** Leftovers of unfinished backups removed: backups whose data has no manifest (older than the grace period), and temp files. */
  orphansRemoved: number;
  /** Incomplete multipart uploads (S3); absent for backends without them. */
  multipart?: MultipartSweep;
  /** WAL archive objects no retained base backup needs, removed (dry-run: that would be); absent without a WAL archive. */
  walRemoved?: number;
  error?: BackupError;
}

export interface RetentionResult {
  dryRun: boolean;
  locations: LocationRetention[];
}

/** The plan over the copies this location holds, each dated by its own manifest, and their directories. */
function planFor(rt: Runtime, listing: Listing, loc: Location): { plan: RetentionPlan; dirs: Map<string, string> } {
  const copies = listing.backups.flatMap((b) => b.copies.filter((c) => c.location === loc.name));
  const candidates = copies.map((c) => ({ id: c.manifest.id, time: new Date(c.manifest.consistentAt) }));
  const timeZone = rt.config.retention.timeZone ?? rt.config.schedule?.timeZone;
  return { plan: planRetention(candidates, rt.config.retention, rt.clock(), timeZone ? { timeZone } : {}), dirs: new Map(copies.map((c) => [c.manifest.id, c.dir])) };
}

/**
 * Applies the retention policy to each given location: plans over the
 * backups that location holds, removes (manifest first, then data) what the
 * plan does not keep, and sweeps orphaned data older than the grace period.
 * A location whose listing failed is left alone: nothing is removed on
 * incomplete knowledge.
 */
export async function runRetention(rt: Runtime, opts: { dryRun: boolean; only?: readonly string[]; signal?: AbortSignal }): Promise<RetentionResult> {
  const listing = await listBackups(rt, opts);
  // A misplaced or unsigned manifest was read (it is simply not this database's): it blocks nothing, and is never a candidate.
  const unreadable = new Set(listing.problems.filter((p) => !REJECTED_MANIFEST_CODES.has(p.error.code)).map((p) => p.location));
  const grace = parseDuration(rt.config.retention.orphanGracePeriod) ?? 86_400_000;
  const locations = rt.locations.filter((l) => !opts.only || opts.only.includes(l.name));
  const results: LocationRetention[] = [];
  for (const loc of locations) {
    const log = rt.logger.child({ op: 'retention', location: loc.name });
    if (unreadable.has(loc.name)) {
      const error = listing.problems.find((p) => p.location === loc.name && !REJECTED_MANIFEST_CODES.has(p.error.code))!.error;
      log.warn({ err: error }, 'location could not be read completely; nothing removed there');
      results.push({ location: loc.name, failed: [], orphansRemoved: 0, error });
      continue;
    }
    try {
      const { plan, dirs } = planFor(rt, listing, loc);
      const applied = await applyRetention(loc, plan, { dryRun: opts.dryRun, dirs, signal: opts.signal, logger: log });
      const now = rt.clock();
      const swept = await sweepOrphans(loc, { gracePeriodMs: grace, now, dryRun: opts.dryRun, signal: opts.signal, logger: log, ...(rt.foreign ? { foreign: rt.foreign } : {}) });
      const olderThan = new Date(now.getTime() - grace);
      const incomplete = opts.dryRun ? 0 : await loc.storage.sweepIncomplete(databasePrefix(loc.scope), olderThan, { signal: opts.signal });
      const multipart = await abortStaleUploads(loc, { olderThan, dryRun: opts.dryRun, logger: log, ...(opts.signal ? { signal: opts.signal } : {}) });
      const wal = await walRetention(rt, listing, loc, plan, applied.failed, { dryRun: opts.dryRun, ...(opts.signal ? { signal: opts.signal } : {}), logger: log });
      results.push({ location: loc.name, plan, failed: [...applied.failed, ...(wal?.failed ?? [])], orphansRemoved: swept.removed.length + incomplete, ...(multipart ? { multipart } : {}), ...(wal ? { walRemoved: wal.removed } : {}) });
    } catch (err) {
      const error = toBackupError(err, 'STORAGE_FAILED');
      log.error({ err: error }, 'retention failed in this location');
      results.push({ location: loc.name, failed: [], orphansRemoved: 0, error });
    }
  }
  return { dryRun: opts.dryRun, locations: results };
}

/**
 * A physical configuration's WAL archive in one location: what the base backups it keeps (and those whose
 * removal failed) no longer need. Nothing without a kept base backup that records where its WAL starts.
 */
async function walRetention(rt: Runtime, listing: Listing, loc: Location, plan: RetentionPlan, notRemoved: readonly string[], opts: { dryRun: boolean; signal?: AbortSignal; logger: Logger }) {
  if (rt.config.engine.postgresql?.mode !== 'physical') return undefined;
  const kept = new Set([...plan.keep.map((k) => k.id), ...notRemoved]);
  const positions = listing.backups.filter((b) => kept.has(b.id)).flatMap((b) => b.copies.filter((c) => c.location === loc.name)).map((c) => c.manifest.engine.position);
  const starts = positions.length > 0 ? walStarts(positions) : undefined;
  if (!starts) return undefined;
  return retainWal(loc, starts, opts);
}

/** After a backup: retention runs only in the locations that stored it, never after a failed backup. */
export async function retainAfterBackup(rt: Runtime, result: BackupResult, signal: AbortSignal): Promise<RetentionResult | undefined> {
  const stored = result.locations.filter((l) => l.status === 'Succeeded').map((l) => l.location);
  if (result.status === 'Failed' || stored.length === 0) return undefined;
  return runRetention(rt, { dryRun: false, only: stored, signal });
}
