/**
 * Continuous WAL archiving: a daemon service (ServiceSpec) that streams the server's WAL with pg_receivewal
 * into a spool directory and stores each finished segment and timeline history file in every location
 * (WalStore), and the segment still being written as a rolling partial every `partialIntervalMs`, so a server
 * that dies loses at most that long of committed work.
 *
 * Invariants:
 * - The slot advances only past segments every location holds: the server keeps the rest, and a restarted
 *   archiver (an empty spool) streams again from the slot, losing nothing.
 * - Where the slot lies beyond the newest stored segment plus one (the slot was lost, dropped or recreated),
 *   the WAL in between is gone: reported as a gap (`gaps`), never bridged.
 * - Per location, when it last stored a segment or partial and its last segment (`locations`): a location that
 *   fails falls behind the others there. The receive lag (`receiveLagBytes`) is the server's current position
 *   less what every location holds, read with the slot.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError, toBackupError } from '../../../errors.js';
import type { Logger } from '../../../logger.js';
import { setTimeout as delay } from 'node:timers/promises';
import type { ServiceSpec, WalStore, WalStored } from '../../types.js';
import type { SlotInfo, WalServer } from './wal-server.js';
import { HISTORY_NAME, SEGMENT_NAME, parseSegmentName, segmentEnd, segmentName, segmentOf } from './wal-names.js';

export interface ArchiverSettings {
  slot: string;
  /** How often the segment being written is stored as a partial (default 15 s). */
  partialIntervalMs: number;
  /** How often the spool is looked at for finished files. */
  pollMs?: number;
  /** Finished segments the spool may hold that some location has not taken (default: 1 GiB of them, at least 4). */
  spoolSegments?: number;
}

/** Pure: how many finished segments the spool holds at most before receiving stops (1 GiB of them, at least 4). */
export function spoolLimit(segmentSize: number, asked?: number): number {
  return asked ?? Math.max(4, Math.floor(2 ** 30 / segmentSize));
}

/** How often the slot is read while streaming (what it holds on the server, and whether it was lost). */
const SLOT_CHECK_MS = 10_000;

/** A stretch of WAL the archive lacks: segments `from` to `to` (names, inclusive). */
export interface WalGap {
  from: string;
  to: string;
  detectedAt: string;
  reason: string;
}

/**
 * Pure: the default slot of a DatabaseBackup's archive: `dbbackup_<namespace>_<name>` made of lower-case letters,
 * digits and underscores (cut to fit 63 characters), then a hash of the exact namespace and name, so two
 * DatabaseBackups of one server never share a slot (`a-b/c` and `a/b-c` read alike once cleaned).
 */
export function archiveSlotName(owner: { namespace: string; name: string }): string {
  const clean = `dbbackup_${owner.namespace}_${owner.name}`.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 50);
  return `${clean}_${createHash('sha256').update(`${owner.namespace}/${owner.name}`).digest('hex').slice(0, 12)}`;
}

/** Pure: the segments missing between the newest stored one and where streaming starts, or undefined when none is. */
export function gapBetween(newestStored: string | undefined, startSegment: string, segmentSize: number): { from: string; to: string } | undefined {
  if (newestStored === undefined) return undefined;
  const stored = parseSegmentName(newestStored, segmentSize);
  const start = parseSegmentName(startSegment, segmentSize);
  if (!stored || !start || start.segno <= stored.segno + 1n) return undefined;
  return { from: segmentName(start.tli, stored.segno + 1n, segmentSize), to: segmentName(start.tli, start.segno - 1n, segmentSize) };
}

/**
 * The block the written end of a zero-padded segment file is searched in: a multiple of every WAL page size
 * PostgreSQL builds with (XLOG_BLCKSZ, at most 64 KiB), so a block something was written into starts with a page
 * header (never zero) and the written blocks come before all the zero ones.
 */
const WRITTEN_BLOCK = 64 * 1024;

/** Pure: the length of `buf` up to its last non-zero byte (0 when all zero). */
export function nonZeroLength(buf: Uint8Array): number {
  for (let i = buf.length - 1; i >= 0; i--) if (buf[i] !== 0) return i + 1;
  return 0;
}

async function isZeroBlock(fh: FileHandle, index: number, buf: Buffer): Promise<boolean> {
  const { bytesRead } = await fh.read(buf, 0, buf.length, index * WRITTEN_BLOCK);
  return nonZeroLength(buf.subarray(0, bytesRead)) === 0;
}

/**
 * How much WAL a segment file pg_receivewal is writing holds: it is created zero-filled at its full size, so the
 * written part ends at its last non-zero byte, rounded up to the 8 bytes a WAL record starts on (the next record
 * lies past that). The first zero block is found by bisection (a few 64 KiB reads, whatever the segment size).
 */
export async function writtenLength(path: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(WRITTEN_BLOCK);
    let lo = 0;
    let hi = Math.ceil(size / WRITTEN_BLOCK);
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (await isZeroBlock(fh, mid, buf)) hi = mid;
      else lo = mid + 1;
    }
    if (lo === 0) return 0;
    const { bytesRead } = await fh.read(buf, 0, WRITTEN_BLOCK, (lo - 1) * WRITTEN_BLOCK);
    const end = (lo - 1) * WRITTEN_BLOCK + nonZeroLength(buf.subarray(0, bytesRead));
    return Math.min(size, Math.ceil(end / 8) * 8);
  } finally {
    await fh.close();
  }
}

/** Pure: which spool files are finished WAL (segments, history files) in the order they are stored, and the one partial. */
export function spoolFiles(names: readonly string[]): { finished: string[]; partial?: string } {
  const finished = names.filter((n) => SEGMENT_NAME.test(n) || HISTORY_NAME.test(n)).sort((a, b) => (HISTORY_NAME.test(a) === HISTORY_NAME.test(b) ? (a < b ? -1 : 1) : HISTORY_NAME.test(a) ? -1 : 1));
  const partials = names.filter((n) => n.endsWith('.partial') && SEGMENT_NAME.test(n.slice(0, -'.partial'.length))).sort();
  return { finished, ...(partials.length > 0 ? { partial: partials.at(-1)! } : {}) };
}

/** What one location holds of the archive, as this run stored it. */
interface LocationFacts {
  /** When a segment or partial was last stored there. */
  lastStoredAt?: string;
  /** The last finished segment stored there. */
  lastSegment?: string;
}

interface State {
  slot: string;
  timeline?: number;
  receiving: boolean;
  lastArchived?: string;
  lastArchivedAt?: string;
  lastPartial?: string;
  lastPartialAt?: string;
  segmentsArchived: number;
  gaps: WalGap[];
  /** The segment the archive begins at, when this run found it empty (archiving was just turned on, or its slot created). */
  archiveBegan?: string;
  /** WAL the slot holds on the server (its current position less the slot's restart point), in bytes. */
  slotRetainedBytes?: number;
  /** What the server may still write before it invalidates the slot; null: no limit (max_slot_wal_keep_size = -1). */
  slotSafeBytes?: number | null;
  /** Per location (by name), once a store was tried there. */
  locations: Record<string, LocationFacts>;
  /** WAL the server has written (its current position, read with the slot) that is not in every location yet, in bytes. */
  receiveLagBytes?: number;
  /** The latest objects found beside ours under the same WAL file name (at most 100). */
  conflicts: { location: string; key: string }[];
  failing?: { location: string; code: string; message: string }[];
}

/** Empties the spool unless it was filled from the server `systemId` names (recorded beside it), and records that server. */
async function dropForeignSpool(spoolRoot: string, dir: string, systemId: string, log: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const idFile = join(spoolRoot, 'system-identifier');
  const spooledFor = (await readFile(idFile, 'utf8').catch(() => '')).trim();
  if (spooledFor === systemId) return;
  const left = await readdir(dir);
  if (left.length > 0) log.warn({ files: left.length, spooledFor: spooledFor || 'unknown', server: systemId }, 'the spool holds WAL of another server (or of no known one): dropped, not stored');
  for (const f of left) await rm(join(dir, f), { recursive: true, force: true });
  await writeFile(idFile, `${systemId}\n`, { mode: 0o600 });
}

/** The WAL archiving service of one PostgreSQL server. */
export function walArchiver(server: WalServer, store: WalStore, settings: ArchiverSettings, spoolRoot: string, log: Logger): ServiceSpec {
  const state: State = { slot: settings.slot, receiving: false, segmentsArchived: 0, gaps: [], conflicts: [], locations: {} };
  const dir = join(spoolRoot, 'wal');
  return {
    name: 'wal-archiver',
    async run(signal, report) {
      const publish = (): void => report({ ...state, gaps: [...state.gaps], conflicts: [...state.conflicts], locations: { ...state.locations } });
      const ident = await server.identify(signal);
      const segmentSize = await server.segmentSize(signal);
      state.timeline = ident.timeline;
      const ours = (name: string): boolean => parseSegmentName(name, segmentSize)?.tli === ident.timeline;
      /** The WAL position every location holds up to (this run's): where the receive lag is counted from. */
      let storedLsn: bigint | undefined;
      const storedUpTo = (lsn: bigint): void => {
        if (storedLsn === undefined || lsn > storedLsn) storedLsn = lsn;
      };
      /** Which locations now hold a segment or a partial of one (`wal`), and which fell behind. */
      const noteStored = (r: WalStored, wal: string, partial: boolean): void => {
        const at = new Date().toISOString();
        for (const name of r.stored) {
          const before = state.locations[name];
          const lastSegment = !partial && (before?.lastSegment === undefined || wal > before.lastSegment) ? wal : before?.lastSegment;
          state.locations[name] = { lastStoredAt: at, ...(lastSegment ? { lastSegment } : {}) };
        }
        for (const f of r.failed) state.locations[f.location] ??= {};
      };

      /** Stores the finished files of the spool in order; the slot goes past each once every location holds it. */
      const storeFinished = async (): Promise<void> => {
        for (const name of spoolFiles(await readdir(dir)).finished) {
          const r = await store.store(join(dir, name), name, { partial: false, signal });
          const seg = parseSegmentName(name, segmentSize);
          if (seg) noteStored(r, name, false);
          // Another object under the same segment is an alarm, not a stop: ours has its own key and overwrote nothing.
          if (r.conflicts.length > 0) {
            state.conflicts = [...state.conflicts.filter((c) => !r.conflicts.some((k) => k.key === c.key)), ...r.conflicts].slice(-100);
            log.error({ wal: name, conflicts: r.conflicts }, 'a location holds another object for this WAL file: left as it is; this one is stored beside it');
          }
          if (r.failed.length > 0) {
            state.failing = r.failed;
            log.warn({ wal: name, failed: r.failed }, 'a WAL file is not in every location yet: kept here, the slot not advanced; trying again');
            return; // in order: nothing after it is stored before it
          }
          delete state.failing;
          await unlink(join(dir, name));
          if (seg) {
            storedUpTo(segmentEnd(seg.segno, segmentSize));
            await advance(segmentEnd(seg.segno, segmentSize));
            state.lastArchived = name;
            state.lastArchivedAt = new Date().toISOString();
            state.segmentsArchived++;
          }
        }
      };
      const advance = async (lsn: bigint): Promise<void> => {
        const slot = await checkSlot();
        if (slot?.restartLsn !== undefined && slot.restartLsn >= lsn) return;
        await server.advance(settings.slot, lsn, signal);
      };
      /** Reads the slot: lost stops the run (a restart recreates it); what it holds on the server goes into the facts. */
      let unlimitedSaid = false;
      const checkSlot = async (): Promise<SlotInfo | undefined> => {
        const slot = await server.slot(settings.slot, signal);
        if (slot?.walStatus === 'lost') throw new BackupError('DUMP_FAILED', `replication slot "${settings.slot}" was invalidated while archiving (max_slot_wal_keep_size)`);
        if (slot?.currentLsn !== undefined && slot.restartLsn !== undefined) state.slotRetainedBytes = Number(slot.currentLsn - slot.restartLsn);
        if (slot?.safeWalSize !== undefined) state.slotSafeBytes = slot.safeWalSize;
        if (slot?.currentLsn !== undefined && storedLsn !== undefined) state.receiveLagBytes = slot.currentLsn > storedLsn ? Number(slot.currentLsn - storedLsn) : 0;
        if (slot?.safeWalSize === null && !unlimitedSaid) {
          unlimitedSaid = true;
          log.warn({ slot: settings.slot }, 'max_slot_wal_keep_size is -1 on the server: while the archive cannot take WAL (the runner down, a location failing) the slot keeps it all, until the server\'s disk is full; set a limit (a long outage then costs a gap, not the server)');
        }
        return slot;
      };

      // What an earlier run received and did not store yet is stored first: it may be the only copy left. But only
      // an earlier run's against this same server: WAL another server wrote (the spool outlived a change of server) is dropped.
      await dropForeignSpool(spoolRoot, dir, ident.systemId, log);
      let slot = await server.slot(settings.slot, signal);
      if (slot?.walStatus === 'lost') {
        log.error({ slot: settings.slot }, 'the archive slot was invalidated (max_slot_wal_keep_size): the WAL it held is gone from the server; recreating it');
        await server.dropSlot(settings.slot, signal);
        slot = undefined;
      }
      if (!slot) {
        await server.createSlot(settings.slot, signal);
        log.info({ slot: settings.slot }, 'created the WAL archive slot');
      }
      await storeFinished();
      // A location still failing: nothing more is received (the spool stays as it is, bounded; the slot keeps the rest on
      // the server) until the restart after this one stores it.
      const limit = spoolLimit(segmentSize, settings.spoolSegments);
      const spoolFull = async (): Promise<void> => {
        const held = spoolFiles(await readdir(dir)).finished.length;
        if (state.failing && held >= limit) {
          throw new BackupError('STORAGE_UNAVAILABLE', `the spool holds ${held} WAL file(s) not in every location (${state.failing.map((f) => `${f.location}: ${f.code}`).join(', ')}): receiving stops until they are stored; the server keeps the rest for the slot`, {
            details: { held, limit, failing: state.failing },
          });
        }
      };
      await spoolFull();
      slot = await server.slot(settings.slot, signal);
      if (slot?.restartLsn === undefined) throw new BackupError('DB_QUERY_FAILED', `replication slot "${settings.slot}" reserves no WAL`);
      // The slot goes only past what every location holds: the archive holds everything before it (or begins there).
      storedUpTo(slot.restartLsn);
      const start = segmentName(ident.timeline, segmentOf(slot.restartLsn, segmentSize), segmentSize);
      const newest = await store.newest(ours, signal);
      if (newest === undefined) state.archiveBegan = start;
      const gap = gapBetween(newest, start, segmentSize);
      if (gap && !state.gaps.some((g) => g.from === gap.from && g.to === gap.to)) {
        state.gaps.push({ ...gap, detectedAt: new Date().toISOString(), reason: 'the slot lies past the newest segment every location holds (it was lost or recreated)' });
        log.error({ ...gap }, 'WAL gap: these segments are in no location and no longer on the server; point-in-time recovery cannot cross them');
      }
      // pg_receivewal resumes at the start of the newest .partial in its directory: a zero-filled one (its full size) names the slot's segment.
      for (const f of await readdir(dir)) await rm(join(dir, f), { recursive: true, force: true });
      const seedPath = join(dir, `${start}.partial`);
      const seed = await open(seedPath, 'w', 0o600);
      await seed.truncate(segmentSize);
      await seed.close();
      const seeded = await stat(seedPath);

      const stop = new AbortController();
      const onAbort = (): void => stop.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      state.receiving = true;
      publish();
      const receiving = server.receive(dir, stop.signal, (line) => log.debug({ line }, 'pg_receivewal'));
      let receiveError: unknown;
      receiving.catch((err: unknown) => {
        receiveError = err;
        stop.abort(err);
      });
      // The seed itself is never stored: only what pg_receivewal wrote.
      let partialSize = seeded.size;
      let partialMtime = seeded.mtimeMs;
      let partialAt = 0;
      const storePartial = async (): Promise<void> => {
        const partial = spoolFiles(await readdir(dir)).partial;
        if (!partial) return;
        const st = await stat(join(dir, partial)).catch(() => undefined);
        if (!st || (st.size === partialSize && st.mtimeMs === partialMtime)) return;
        const wal = partial.slice(0, -'.partial'.length);
        // Read before the store: the stored copy holds at least this much (pg_receivewal only adds to it).
        const written = await writtenLength(join(dir, partial)).catch(() => undefined);
        const r = await store.store(join(dir, partial), wal, { partial: true }).catch((err: unknown) => {
          log.warn({ wal, err: toBackupError(err, 'STORAGE_FAILED') }, 'the partial segment could not be stored; trying again');
          return undefined;
        });
        if (r) noteStored(r, wal, true);
        if (r && r.failed.length === 0) {
          const seg = parseSegmentName(wal, segmentSize);
          if (seg && written !== undefined) storedUpTo(seg.segno * BigInt(segmentSize) + BigInt(written));
          partialSize = st.size;
          partialMtime = st.mtimeMs;
          state.lastPartial = wal;
          state.lastPartialAt = new Date().toISOString();
        }
      };
      let slotAt = Date.now();
      try {
        while (!stop.signal.aborted) {
          await delay(settings.pollMs ?? 1000, undefined, { signal: stop.signal }).catch(() => undefined);
          if (Date.now() - slotAt >= SLOT_CHECK_MS && !stop.signal.aborted) {
            slotAt = Date.now();
            await checkSlot();
          }
          // The partial first: a queue of finished segments (a slow location) never holds back the recovery point.
          if (Date.now() - partialAt >= settings.partialIntervalMs && !stop.signal.aborted) {
            partialAt = Date.now();
            await storePartial();
          }
          await storeFinished();
          publish();
          await spoolFull();
        }
        // Stopping: what is finished is stored, and the segment in progress one last time.
        await storeFinished();
        await storePartial();
      } finally {
        signal.removeEventListener('abort', onAbort);
        stop.abort();
        await receiving.catch(() => undefined);
        state.receiving = false;
        publish();
      }
      if (receiveError !== undefined && !signal.aborted) throw toBackupError(receiveError, 'DUMP_FAILED');
    },
  };
}
