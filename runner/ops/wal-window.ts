/**
 * How far the WAL archive reaches past a base backup: from the segment its backup ends in, the unbroken run
 * of segments some location holds (a complete object, or for the last one a partial), and when the last of
 * them was stored. A point-in-time recovery from that base backup can reach at most that instant; a segment
 * missing from every location (a gap) ends the run.
 */
import { parseLsn, parseSegmentName, segmentName, segmentOf } from '../engines/postgresql/physical/wal-names.js';
import { toBackupError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { parseWalFile, walPrefix } from '../storage/layout.js';

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
