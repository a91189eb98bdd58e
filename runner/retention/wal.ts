/**
 * Retention of the WAL archive: a location keeps exactly the WAL its retained base backups need to reach
 * every instant after them, i.e. every segment from the oldest retained base backup's first one on; older
 * segments (and their partials) go once no retained backup needs them. Timeline history files stay (a few
 * bytes each, and a recovery to the latest timeline reads them).
 *
 * Invariants:
 * - Nothing is removed without a retained base backup that records where its WAL starts: WAL is never
 *   removed on incomplete knowledge.
 * - Runs after the backups' own retention, in the same location, with the same listing.
 */
import { parseSegmentName } from '../engines/postgresql/physical/wal-names.js';
import type { Logger } from '../logger.js';
import type { Location } from '../runtime.js';
import { parseWalFile, walPrefix } from '../storage/layout.js';
import { deleteKeys } from './objects.js';

/** Where a retained base backup's WAL starts (its manifest's engine.position). */
export interface WalStart {
  startWalFile: string;
  walSegmentSize: number;
}

/**
 * Pure: the archive objects (names under `wal/`) no retained base backup needs: segments (complete or partial)
 * before the oldest start, on its timeline or an earlier one. Undefined when there is no start to go by.
 */
export function obsoleteWal(names: readonly string[], starts: readonly WalStart[]): string[] | undefined {
  const parsed = starts.map((s) => ({ size: s.walSegmentSize, seg: parseSegmentName(s.startWalFile, s.walSegmentSize) })).filter((s) => s.seg !== undefined);
  if (parsed.length === 0 || parsed.length !== starts.length) return undefined;
  const oldest = parsed.reduce((a, b) => (b.seg!.segno < a.seg!.segno || (b.seg!.segno === a.seg!.segno && b.seg!.tli < a.seg!.tli) ? b : a));
  return names.filter((n) => {
    const f = parseWalFile(n);
    if (!f) return false;
    const seg = parseSegmentName(f.wal, oldest.size);
    return seg !== undefined && seg.tli <= oldest.seg!.tli && seg.segno < oldest.seg!.segno;
  });
}

/** The base backups' WAL starts, from their manifests' positions (undefined entries: a backup that records none). */
export function walStarts(positions: readonly (Record<string, string> | undefined)[]): WalStart[] | undefined {
  const starts: WalStart[] = [];
  for (const p of positions) {
    if (!p?.startWalFile) return undefined;
    starts.push({ startWalFile: p.startWalFile, walSegmentSize: Number(p.walSegmentSize ?? 16 * 1024 * 1024) });
  }
  return starts;
}

/** Removes what `obsoleteWal` names in one location (or counts it, dry-run); returns how many objects and the keys that failed. */
export async function retainWal(loc: Location, starts: readonly WalStart[], opts: { dryRun: boolean; signal?: AbortSignal; logger: Logger }): Promise<{ removed: number; failed: string[] }> {
  const prefix = walPrefix(loc.scope);
  const names: string[] = [];
  for await (const o of loc.storage.list(prefix, { ...(opts.signal ? { signal: opts.signal } : {}) })) names.push(o.key.slice(prefix.length));
  const obsolete = obsoleteWal(names, starts) ?? [];
  if (obsolete.length === 0 || opts.dryRun) return { removed: opts.dryRun ? obsolete.length : 0, failed: [] };
  const failures = await deleteKeys(loc.storage, obsolete.map((n) => `${prefix}${n}`), opts.signal);
  opts.logger.info({ removed: obsolete.length - failures.length, failed: failures.length }, 'WAL no retained base backup needs removed');
  return { removed: obsolete.length - failures.length, failed: failures.map((f) => f.key) };
}
