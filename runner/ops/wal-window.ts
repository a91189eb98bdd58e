/**
 * How far the WAL archive reaches past a base backup: from the segment its backup ends in, the unbroken run
 * of segments some location holds (a complete object, or for the last one a partial), and when the last of
 * them was stored. A point-in-time recovery from that base backup can reach at most that instant; a segment
 * missing from every location (a gap) ends the run.
 *
 * Per location (`recoverableWindow`, for `list`): the same runs in that location's archive alone, from every
 * base backup it holds, merged into the stretches of instants a recovery from that location reaches, with the
 * gaps between them.
 */
import { SEGMENT_NAME, parseLsn, parseSegmentName, segmentName, segmentOf } from '../engines/postgresql/physical/wal-names.js';
import { type BackupError, toBackupError } from '../errors.js';
import type { Location, Runtime } from '../runtime.js';
import { parseWalFile, walPrefix } from '../storage/layout.js';
import type { ListedBackup } from './list.js';

export interface ArchiveReach {
  /** The last segment of the unbroken run. */
  lastWal: string;
  /** Whether only a partial of it is stored (the segment the server was writing). */
  partial: boolean;
  /** When that object was stored: no commit after it can be in the archive. */
  until: Date;
  /** The first segment no location holds (where the run ends), when the archive goes on after it: a gap. */
  gapAt?: string;
}

/** What every location's archive holds: per WAL name, complete and partial objects' newest store time. */
export async function archiveContents(rt: Runtime, signal?: AbortSignal): Promise<Map<string, { complete?: Date; partial?: Date }>> {
  const held = new Map<string, { complete?: Date; partial?: Date }>();
  for (const loc of rt.locations) {
    const prefix = walPrefix(loc.scope);
    try {
      for await (const o of loc.storage.list(prefix, { ...(signal ? { signal } : {}) })) {
        const f = parseWalFile(o.key.slice(prefix.length));
        if (!f) continue;
        const at = o.modifiedAt ?? new Date(0);
        const h = held.get(f.wal) ?? {};
        const field = f.partial ? 'partial' : 'complete';
        if (!h[field] || at > h[field]) h[field] = at;
        held.set(f.wal, h);
      }
    } catch (err) {
      rt.logger.warn({ location: loc.name, err: toBackupError(err, 'STORAGE_FAILED') }, 'the WAL archive of this location could not be listed');
    }
  }
  return held;
}

/**
 * Pure: the run of archived segments from the one a base backup ends in (`position` of its manifest); undefined
 * when the archive does not hold that segment (then nothing past the base backup's end is reachable).
 */
export function reachFrom(position: Record<string, string> | undefined, held: ReadonlyMap<string, { complete?: Date; partial?: Date }>): ArchiveReach | undefined {
  const stop = parseLsn(position?.stopLsn ?? '');
  const tli = Number(position?.timeline);
  const size = Number(position?.walSegmentSize ?? 16 * 1024 * 1024);
  if (stop === undefined || !Number.isInteger(tli) || tli <= 0) return undefined;
  let segno = segmentOf(stop, size);
  let reach: ArchiveReach | undefined;
  for (;;) {
    const name = segmentName(tli, segno, size);
    const h = held.get(name);
    if (h?.complete) {
      reach = { lastWal: name, partial: false, until: h.complete };
      segno++;
      continue;
    }
    if (h?.partial) reach = { lastWal: name, partial: true, until: h.partial };
    else if (reach) {
      const later = [...held.keys()].some((k) => (parseSegmentName(k, size)?.segno ?? -1n) > segno && parseSegmentName(k, size)?.tli === tli);
      if (later) reach = { ...reach, gapAt: name };
    }
    return reach;
  }
}

/** One WAL archive object of a location, as listed: the WAL file it holds, whether a partial, when it was stored, its digest. */
export interface WalObject {
  wal: string;
  partial: boolean;
  storedAt: Date;
  sha256?: string;
}

/** A physical base backup a location holds, as its window needs it: its manifest's `consistentAt` and `engine.position`. */
export interface WindowBackup {
  id: string;
  consistentAt: string | Date;
  /** stopLsn, timeline, walSegmentSize (default 16 MiB), startWalFile. */
  position?: Record<string, string>;
}

/** An unbroken stretch of recoverable instants: from a base backup's consistent instant to where its WAL run ends. */
export interface RecoverableStretch {
  from: Date;
  until: Date;
  /** The base backup it starts from. */
  backupId: string;
  /** The last segment of its WAL run; absent when the location holds no WAL past that base backup (only its own instant is recoverable). */
  lastWal?: string;
  /** Whether only a partial of that segment is held (the segment the server was writing). */
  partial?: boolean;
}

/** Where the recoverable stretches break: a segment the location lacks, so no recovery crosses it. */
export interface WindowGap {
  /** The first segment missing (or held only as a partial while later ones are held): where the run before it ends. */
  at: string;
  /** The last recoverable instant before it. */
  after: Date;
  /** Where recovery starts again: the next base backup's consistent instant; absent while none follows the gap. */
  resumesAt?: Date;
}

/** One location's recoverable window: the union of its base backups' windows, with the gaps between them. */
export interface RecoverableWindow {
  /** The earliest recoverable instant: the oldest base backup's consistent instant. */
  from?: Date;
  /** The latest recoverable instant: when the last segment (or partial) of the newest unbroken run was stored. */
  until?: Date;
  /** Oldest first; instants between two stretches are not recoverable (see `gaps`). */
  stretches: RecoverableStretch[];
  gaps: WindowGap[];
  /** The newest segment the location holds (in WAL order), whatever the runs. */
  lastSegment?: string;
  /** Whether only a partial of it is held. */
  lastPartial?: boolean;
  /** The timeline of `lastSegment` (else of the newest base backup). */
  timeline?: number;
  /** WAL archive objects the location holds. */
  objects: number;
}

type Held = Map<string, { complete?: Date; partial?: Date }>;

/**
 * Pure: what one location holds per WAL file name, in archiveContents' form. A segment with two different complete
 * objects there counts as not held whole (wal-fetch does not believe that location for it).
 */
export function heldIn(objects: readonly WalObject[]): Held {
  const held: Held = new Map();
  const digests = new Map<string, Set<string>>();
  for (const o of objects) {
    const h = held.get(o.wal) ?? {};
    const field = o.partial ? 'partial' : 'complete';
    if (!h[field] || o.storedAt > h[field]) h[field] = o.storedAt;
    held.set(o.wal, h);
    if (!o.partial) digests.set(o.wal, (digests.get(o.wal) ?? new Set()).add(o.sha256 ?? ''));
  }
  for (const [wal, d] of digests) if (d.size > 1) delete held.get(wal)!.complete;
  return held;
}

/** A base backup's window before merging, and what ends it. */
interface Span extends RecoverableStretch {
  /** The first segment not held where its run ends. */
  next?: string;
  /** The location holds WAL of the same timeline past `next`: the run ends in a gap, not at the archive's end. */
  gapAfter: boolean;
}

/** Whether `held` has a segment of timeline `tli` past number `segno`. */
function heldPast(held: Held, tli: number, segno: bigint, size: number): boolean {
  for (const name of held.keys()) {
    const s = parseSegmentName(name, size);
    if (s && s.tli === tli && s.segno > segno) return true;
  }
  return false;
}

/** Whether the location holds objects for `name` and none it is believed for (two different complete ones). */
function unbelieved(held: Held, name: string): boolean {
  const h = held.get(name);
  return h !== undefined && !h.complete && !h.partial;
}

/** Pure: one base backup's window [consistentAt, end of its WAL run] in a location's archive. */
function spanOf(b: WindowBackup, held: Held): Span {
  const at = new Date(b.consistentAt);
  const stop = parseLsn(b.position?.stopLsn ?? '');
  const tli = Number(b.position?.timeline);
  const size = Number(b.position?.walSegmentSize ?? 16 * 1024 * 1024);
  const seg = { from: at, until: at, backupId: b.id };
  if (stop === undefined || !Number.isInteger(tli) || tli <= 0) return { ...seg, gapAfter: false };
  const reach = reachFrom(b.position, held);
  if (!reach) {
    const stopSeg = segmentOf(stop, size);
    const next = segmentName(tli, stopSeg, size);
    return { ...seg, next, gapAfter: unbelieved(held, next) || heldPast(held, tli, stopSeg, size) };
  }
  const last = parseSegmentName(reach.lastWal, size)!.segno;
  // A partial ends the run where it is: past it, the segment's rest is missing.
  const next = reach.partial ? reach.lastWal : (reach.gapAt ?? segmentName(tli, last + 1n, size));
  const gapAfter = reach.gapAt !== undefined || unbelieved(held, next) || (reach.partial && heldPast(held, tli, last, size));
  return { ...seg, until: reach.until > at ? reach.until : at, lastWal: reach.lastWal, partial: reach.partial, next, gapAfter };
}

/** The newest segment held whole or as a partial (names sort in WAL order: timeline, then position). */
function newestSegment(held: Held): string | undefined {
  let newest: string | undefined;
  for (const [name, h] of held) if (SEGMENT_NAME.test(name) && (h.complete || h.partial) && (newest === undefined || name > newest)) newest = name;
  return newest;
}

/**
 * Pure: a location's recoverable window, from its own WAL archive objects and the physical base backups it holds.
 * Each base backup B is recoverable from B.consistentAt to where its unbroken WAL run ends (reachFrom, in this
 * location only); the location's window is the union of those, as stretches oldest first. Between two stretches,
 * and after the last one when the location holds WAL past its end, lies a gap: named by its first missing
 * segment, never bridged (an instant is recoverable only inside one base backup's unbroken run).
 */
export function recoverableWindow(objects: readonly WalObject[], backups: readonly WindowBackup[]): RecoverableWindow {
  const held = heldIn(objects);
  const spans = backups.map((b) => spanOf(b, held)).sort((a, b) => a.from.getTime() - b.from.getTime() || a.until.getTime() - b.until.getTime());
  const merged: Span[] = [];
  for (const s of spans) {
    const cur = merged.at(-1);
    if (!cur || s.from > cur.until) merged.push({ ...s });
    else if (s.until > cur.until) merged[merged.length - 1] = { ...s, from: cur.from, backupId: cur.backupId };
  }
  const gaps: WindowGap[] = [];
  merged.forEach((s, i) => {
    const following = merged[i + 1];
    if (s.next && (following || s.gapAfter)) gaps.push({ at: s.next, after: s.until, ...(following ? { resumesAt: following.from } : {}) });
  });
  const stretches = merged.map(({ next: _next, gapAfter: _gap, ...s }) => s);
  const lastSegment = newestSegment(held);
  const newestBackup = [...backups].sort((a, b) => new Date(a.consistentAt).getTime() - new Date(b.consistentAt).getTime()).at(-1);
  const tli = lastSegment ? Number.parseInt(lastSegment.slice(0, 8), 16) : Number(newestBackup?.position?.timeline);
  return {
    ...(stretches.length > 0 ? { from: stretches[0]!.from, until: stretches.at(-1)!.until } : {}),
    stretches,
    gaps,
    ...(lastSegment ? { lastSegment, lastPartial: !held.get(lastSegment)!.complete } : {}),
    ...(Number.isInteger(tli) && tli > 0 ? { timeline: tli } : {}),
    objects: objects.length,
  };
}

/** One location's WAL archive objects, as listed (names that are no archive object left out). */
export async function walObjectsIn(loc: Location, signal?: AbortSignal): Promise<WalObject[]> {
  const prefix = walPrefix(loc.scope);
  const out: WalObject[] = [];
  for await (const o of loc.storage.list(prefix, { ...(signal ? { signal } : {}) })) {
    const f = parseWalFile(o.key.slice(prefix.length));
    if (f) out.push({ wal: f.wal, partial: f.partial, storedAt: o.modifiedAt ?? new Date(0), sha256: f.sha256 });
  }
  return out;
}

/** A location's recoverable window, or why its archive could not be listed. */
export interface LocationRecovery extends RecoverableWindow {
  location: string;
  error?: BackupError;
}

/**
 * Per location (config order): the recoverable window of the physical base backups it holds (`backups`, as
 * listed), from its own WAL archive. A location whose archive cannot be listed has an error and no window.
 */
export async function recoveryByLocation(rt: Runtime, backups: readonly ListedBackup[], signal?: AbortSignal): Promise<LocationRecovery[]> {
  return Promise.all(
    rt.locations.map(async (loc): Promise<LocationRecovery> => {
      const mine = backups.filter((b) => b.locations.includes(loc.name)).map((b) => ({ id: b.id, consistentAt: b.manifest.consistentAt, ...(b.manifest.engine.position ? { position: b.manifest.engine.position } : {}) }));
      try {
        return { location: loc.name, ...recoverableWindow(await walObjectsIn(loc, signal), mine) };
      } catch (err) {
        const error = toBackupError(err, 'STORAGE_FAILED');
        rt.logger.warn({ location: loc.name, err: error }, 'the WAL archive of this location could not be listed');
        return { location: loc.name, stretches: [], gaps: [], objects: 0, error };
      }
    }),
  );
}

/**
 * Pure: the segment the WAL archive began at (`began`, the archiver's fact when it found the archive empty), when no
 * listed base backup ends at or after it: archiving was turned on (or its slot created) after every base backup, or
 * before any, so no recovery window exists until a base backup is taken. Undefined otherwise.
 */
export function archiveWithoutBase(began: unknown, bases: readonly { position?: Record<string, string> }[]): string | undefined {
  if (typeof began !== 'string' || !SEGMENT_NAME.test(began)) return undefined;
  const reaches = bases.some((b) => {
    const size = Number(b.position?.walSegmentSize ?? 16 * 1024 * 1024);
    const stop = parseLsn(b.position?.stopLsn ?? '');
    const first = parseSegmentName(began, size);
    return stop !== undefined && first !== undefined && segmentOf(stop, size) >= first.segno;
  });
  return reaches ? undefined : began;
}

/**
 * Pure: the timeline the WAL archiver streams (`archiving`) when base backups are listed, none of them of that
 * timeline or a later one: the server was promoted (a point-in-time recovery, a failover), and no recovery
 * window reaches the new timeline until a base backup of it exists. Undefined otherwise (no base backup at all
 * is the schedule's to take).
 */
export function timelineWithoutBase(archiving: unknown, bases: readonly { position?: Record<string, string> }[]): number | undefined {
  if (typeof archiving !== 'number' || !Number.isInteger(archiving) || bases.length === 0) return undefined;
  const newest = Math.max(...bases.map((b) => Number(b.position?.timeline)).filter((t) => Number.isInteger(t)));
  return Number.isFinite(newest) && newest < archiving ? archiving : undefined;
}
