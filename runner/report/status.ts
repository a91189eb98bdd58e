/**
 * The runner-owned part of a DatabaseBackup's status, built from what the
 * daemon knows (pure: no I/O, no clock).
 *
 * Invariants:
 * - The patch names only the fields the runner owns: lastBackup,
 *   lastSuccessAt, nextRunAt, locations and (with a WAL archiver) recovery. conditions and
 *   observedGeneration belong to the controller and are never named, so a
 *   JSON merge patch leaves them as they are.
 * - null removes a field (merge patch): finishedAt while a backup runs,
 *   lastBackup.message unless it failed or partially succeeded, nextRunAt
 *   when nothing is scheduled. A field the runner knows nothing
 *   about (lastBackup and lastSuccessAt right after a start with no backup
 *   anywhere) is left out, so what the API server holds stays.
 * - locations is a list, which a merge patch replaces whole: every
 *   configured location is in it, in config order.
 * - Counts and per-location success times come from the last listing of the
 *   manifests, never from guesses; a location whose listing failed has no
 *   count.
 */
import type { DatabaseBackupStatus } from '../../api/crds/database-backup.js';
import { REJECTED_MANIFEST_CODES } from '../catalog.js';

export type LastBackupStatus = NonNullable<DatabaseBackupStatus['lastBackup']>;
export type LocationStatus = NonNullable<DatabaseBackupStatus['locations']>[number];

/** What the runner writes into `status` (a JSON merge patch body is `{ status: RunnerStatusPatch }`). */
export interface RunnerStatusPatch {
  lastBackup?: Omit<LastBackupStatus, 'finishedAt' | 'message'> & { finishedAt: string | null; message: string | null };
  lastSuccessAt?: string;
  nextRunAt: string | null;
  locations: LocationStatus[];
  recovery?: NonNullable<DatabaseBackupStatus['recovery']>;
}

/** The WAL archiver as the daemon's supervisor sees it (structurally a ServiceStatus). */
export interface RecoveryFact {
  state: 'running' | 'backoff' | 'stopped';
  lastError?: { code: string; message: string };
  facts: Record<string, unknown>;
}

/** A problem as the runner's typed errors carry it. */
export interface ErrorFact {
  code: string;
  message: string;
}

/** A backup as listed from the manifests (structurally a ListedBackup). */
export interface ListedFact {
  id: string;
  manifest: { startedAt: string; consistentAt: string; finishedAt: string };
  /** Locations holding its manifest. */
  locations: readonly string[];
}

/** The last listing of every location (structurally a Listing). */
export interface ListingFact {
  backups: readonly ListedFact[];
  /** A problem without `key` means the location could not be listed at all. */
  problems: readonly { location: string; key?: string; error: ErrorFact }[];
  /** Manifests dated in the future: never counted, reported so someone looks. */
  future?: readonly { id: string; locations: readonly string[]; field: string; at: string }[];
}

/** A backup this process ran to its end (structurally a BackupResult). */
export interface FinishedFact {
  id: string;
  status: 'Succeeded' | 'PartiallySucceeded' | 'Failed';
  startedAt: Date;
  finishedAt: Date;
  locations: readonly { location: string; status: 'Succeeded' | 'Failed'; error?: ErrorFact }[];
  /** The cause when the whole backup failed (dump failed, no location usable). */
  error?: ErrorFact;
}

export interface ReportFacts {
  /** When this runner process started. */
  startedAt: Date;
  /** Configured location names, in config order. */
  locations: readonly string[];
  /** The backup running now, once its id is chosen. */
  running?: { id: string; startedAt: Date };
  /** The last backup this process finished. */
  finished?: FinishedFact;
  /** The last listing; undefined before the first one completed. */
  listing?: ListingFact;
  /** The WAL archiver, when the engine runs one. */
  recovery?: RecoveryFact;
  /** Next scheduled start; undefined when nothing is scheduled. */
  nextRunAt?: Date;
}

/** Longest location message written (the CRD allows 32 KiB). */
export const MESSAGE_LIMIT = 1024;

export interface StoredSummary {
  /** Complete backups (with a manifest) in the location. */
  backupsStored: number;
  /** Finish time of the newest of them. */
  lastSuccessAt?: string;
  /** Backups another location holds and this one lacks (it was down, or was added later). */
  backupsBehind: number;
  /** Consistency instant of the oldest of those. */
  behindSince?: string;
}

/** What one location holds according to a listing: how many backups, when the newest finished, and how many it lacks that others hold. */
export function storedIn(listing: ListingFact, location: string): StoredSummary {
  const mine = listing.backups.filter((b) => b.locations.includes(location));
  const missing = listing.backups.filter((b) => !b.locations.includes(location));
  const newest = latest(mine.map((b) => b.manifest.finishedAt));
  const since = missing.map((b) => b.manifest.consistentAt).sort((a, b) => Date.parse(a) - Date.parse(b))[0];
  return { backupsStored: mine.length, ...(newest ? { lastSuccessAt: newest } : {}), backupsBehind: missing.length, ...(since ? { behindSince: since } : {}) };
}

/** The latest of some RFC 3339 instants, as given; undefined for none. */
function latest(times: readonly (string | undefined)[]): string | undefined {
  let best: string | undefined;
  for (const t of times) if (t !== undefined && (best === undefined || Date.parse(t) > Date.parse(best))) best = t;
  return best;
}

const clip = (s: string): string => (s.length <= MESSAGE_LIMIT ? s : `${s.slice(0, MESSAGE_LIMIT - 1)}…`);

/** What is wrong with the manifests of one location: unreadable, misplaced (planted), dated in the future. */
function manifestMessages(listing: ListingFact | undefined, name: string): string[] {
  const messages: string[] = [];
  for (const p of listing?.problems ?? []) {
    if (p.location !== name || p.key === undefined) continue;
    messages.push(REJECTED_MANIFEST_CODES.has(p.error.code) ? `manifest ${p.key} does not belong to this database and is ignored: ${describe(p.error)}` : `manifest ${p.key} could not be read: ${describe(p.error)}`);
  }
  for (const f of listing?.future ?? []) {
    if (f.locations.includes(name)) messages.push(`manifest of backup ${f.id} is dated in the future (${f.field} ${f.at}) and is not counted`);
  }
  return messages;
}

function locationStatus(facts: ReportFacts, name: string): LocationStatus {
  const listing = facts.listing;
  const problems = listing?.problems.filter((p) => p.location === name) ?? [];
  const unlisted = problems.find((p) => p.key === undefined);
  const outcome = facts.finished?.locations.find((l) => l.location === name);
  const stored = listing && !unlisted ? storedIn(listing, name) : undefined;
  const messages: string[] = [];
  if (outcome?.status === 'Failed') messages.push(`last backup failed here: ${describe(outcome.error)}`);
  if (unlisted) messages.push(`could not be listed: ${describe(unlisted.error)}`);
  messages.push(...manifestMessages(listing, name));
  const known = outcome !== undefined || listing !== undefined;
  const lastSuccessAt = latest([stored?.lastSuccessAt, outcome?.status === 'Succeeded' ? facts.finished!.finishedAt.toISOString() : undefined]);
  return {
    name,
    state: messages.length > 0 ? 'Failing' : known ? 'Ready' : 'Unknown',
    ...(lastSuccessAt ? { lastSuccessAt } : {}),
    ...(stored ? { backupsStored: stored.backupsStored, backupsBehind: stored.backupsBehind } : {}),
    ...(stored?.behindSince ? { behindSince: stored.behindSince } : {}),
    ...(messages.length > 0 ? { message: clip(messages.join('; ')) } : {}),
  };
}

function describe(e: ErrorFact | undefined): string {
  return e ? `${e.code}: ${e.message}` : 'unknown error';
}

/**
 * A lastBackup the API server still shows as Running although this process
 * does not run it: its runner stopped mid-backup (SIGKILL, node failure). A
 * backup whose manifest is listed did finish; any other never will (a backup
 * without a manifest does not exist), so it is Failed, finished at the
 * latest when this process started. Undefined when nothing needs fixing or
 * the listing is not known yet.
 */
export function settleStaleRunning(observed: LastBackupStatus | undefined, facts: ReportFacts): RunnerStatusPatch['lastBackup'] {
  if (observed?.status !== 'Running' || facts.running?.id === observed.id || !facts.listing) return undefined;
  const listed = facts.listing.backups.find((b) => b.id === observed.id);
  if (!listed) {
    return {
      id: observed.id,
      status: 'Failed',
      ...(observed.startedAt ? { startedAt: observed.startedAt } : {}),
      finishedAt: facts.startedAt.toISOString(),
      message: 'the runner stopped while this backup ran (pod deleted, evicted or killed); nothing of it was kept',
    };
  }
  const readable = facts.locations.filter((l) => !facts.listing!.problems.some((p) => p.location === l && p.key === undefined));
  const missing = readable.filter((l) => !listed.locations.includes(l));
  return {
    id: listed.id,
    status: missing.length === 0 ? 'Succeeded' : 'PartiallySucceeded',
    startedAt: listed.manifest.startedAt,
    finishedAt: listed.manifest.finishedAt,
    message: missing.length === 0 ? null : `not stored in ${missing.join(', ')}`,
  };
}

/** Why a finished backup did not reach every location; null when it did. */
function finishedMessage(f: FinishedFact): string | null {
  if (f.status === 'Succeeded') return null;
  if (f.error) return clip(describe(f.error));
  const failed = f.locations.filter((l) => l.status === 'Failed').map((l) => `${l.location} (${describe(l.error)})`);
  if (failed.length === 0) return null;
  return clip(`${f.status === 'PartiallySucceeded' ? 'not stored in' : 'failed in every location:'} ${failed.join(', ')}`);
}

function lastBackup(facts: ReportFacts, observed: LastBackupStatus | undefined): RunnerStatusPatch['lastBackup'] {
  if (facts.running) return { id: facts.running.id, status: 'Running', startedAt: facts.running.startedAt.toISOString(), finishedAt: null, message: null };
  const f = facts.finished;
  if (f) return { id: f.id, status: f.status, startedAt: f.startedAt.toISOString(), finishedAt: f.finishedAt.toISOString(), message: finishedMessage(f) };
  return settleStaleRunning(observed, facts);
}

/**
 * The status patch for the facts. `observed` is the lastBackup the API
 * server held when the runner first read it (to settle a stale Running).
 */
export function buildStatusPatch(facts: ReportFacts, observed?: LastBackupStatus): RunnerStatusPatch {
  const last = lastBackup(facts, observed);
  const finishedOk = facts.finished && facts.finished.status !== 'Failed' ? facts.finished.finishedAt.toISOString() : undefined;
  const lastSuccessAt = latest([finishedOk, ...(facts.listing?.backups.map((b) => b.manifest.finishedAt) ?? [])]);
  return {
    ...(last ? { lastBackup: last } : {}),
    ...(lastSuccessAt ? { lastSuccessAt } : {}),
    nextRunAt: facts.nextRunAt ? facts.nextRunAt.toISOString() : null,
    locations: facts.locations.map((name) => locationStatus(facts, name)),
    ...(facts.recovery ? { recovery: recoveryStatus(facts.recovery, facts.listing, facts.locations) } : {}),
  };
}

const toMinute = (iso: string): string => `${iso.slice(0, 16)}:00Z`;

const MiB = 1024 * 1024;

type RecoveryLocation = NonNullable<NonNullable<RunnerStatusPatch['recovery']>['locations']>[number];

/**
 * Per configured location (config order), what the archiver stored there: when last (to the minute) and its last
 * segment; undefined before the archiver reported any location.
 */
function archiveLocations(facts: Record<string, unknown>, names: readonly string[]): RecoveryLocation[] | undefined {
  const reported = facts.locations;
  if (typeof reported !== 'object' || reported === null || Object.keys(reported).length === 0) return undefined;
  return names.map((name) => {
    const l = (reported as Record<string, { lastStoredAt?: unknown; lastSegment?: unknown } | undefined>)[name];
    return {
      name,
      ...(typeof l?.lastStoredAt === 'string' ? { lastStoredAt: toMinute(l.lastStoredAt) } : {}),
      ...(typeof l?.lastSegment === 'string' ? { lastSegment: l.lastSegment } : {}),
    };
  });
}

/**
 * The recoverable window: from the oldest base backup to when WAL was last stored in every location (a
 * finished segment or the partial of the one being written), to the minute so the status is not rewritten
 * at every partial (the metric has the second); per location, when the archiver last stored there (to the
 * minute too), and the receive lag rounded down to a MiB.
 */
function recoveryStatus(r: RecoveryFact, listing: ListingFact | undefined, names: readonly string[]): NonNullable<RunnerStatusPatch['recovery']> {
  const f = r.facts;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const until = latest([str(f.lastArchivedAt), str(f.lastPartialAt)]);
  const from = listing?.backups.map((b) => b.manifest.consistentAt).sort()[0];
  const gaps = Array.isArray(f.gaps) ? f.gaps.length : 0;
  const locations = archiveLocations(f, names);
  return {
    walArchiving: r.state === 'running' ? 'Streaming' : r.state === 'backoff' ? 'Restarting' : 'Stopped',
    ...(from ? { recoverableFrom: from } : {}),
    ...(until && from ? { recoverableUntil: toMinute(until) } : {}),
    ...(typeof f.timeline === 'number' ? { timeline: f.timeline } : {}),
    ...(str(f.lastArchived) ? { lastSegment: str(f.lastArchived)! } : {}),
    gaps,
    ...(typeof f.receiveLagBytes === 'number' && f.receiveLagBytes >= 0 ? { lagBytes: Math.floor(f.receiveLagBytes / MiB) * MiB } : {}),
    ...(locations ? { locations } : {}),
    ...(r.state === 'backoff' && r.lastError ? { message: `${r.lastError.code}: ${r.lastError.message}`.slice(0, 32768) } : {}),
  };
}
