/**
 * What a dump says about itself, read while it streams past: whether the
 * dump's snapshot has been taken (every line after the header is written
 * inside its transaction), and the binary log position of that snapshot.
 * The parsers are pure; `DumpWatcher` passes every byte through unchanged
 * and keeps only the first HEAD_BYTES and the last TAIL_BYTES.
 */
import { Transform, type TransformCallback } from 'node:stream';

/** Where a binlog replay starts from this dump. */
export interface BinlogPosition {
  binlogFile: string;
  binlogPosition: string;
  /** MariaDB's gtid_slave_pos or MySQL's gtid_purged of the snapshot. */
  gtid?: string;
}

export const HEAD_BYTES = 64 * 1024;
export const TAIL_BYTES = 8 * 1024;

/** Lines written only after the dump's transaction began (mysqldump.c writes its header before it). */
const SNAPSHOT_MARKERS = [
  /^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO /m,
  /^-- Table structure for table /m,
  /^-- Temporary (?:table|view) structure for view /m,
  /^-- Dumping (?:events|routines) for database /m,
  /^SET @@GLOBAL\.GTID_PURGED/m,
];

/** Whether `head` (the start of a dump) shows the snapshot was taken. */
export function snapshotTaken(head: string): boolean {
  return SNAPSHOT_MARKERS.some((m) => m.test(head));
}

/** The binlog file and position in the start of a dump (`--master-data=2` / `--source-data=2` comments). */
export function parseBinlogHead(head: string): { binlogFile: string; binlogPosition: string; gtid?: string } | undefined {
  const m = /^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^'\n]+)', (?:MASTER|SOURCE)_LOG_POS=(\d+);/m.exec(head);
  if (!m) return undefined;
  // MySQL writes the GTID set near the start, outside a comment: SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-...:1-5';
  const gtid = /^SET @@GLOBAL\.GTID_PURGED=(?:\/\*!\d+ '\+'\*\/ )?'([^'\n]*)';/m.exec(head)?.[1];
  return { binlogFile: m[1]!, binlogPosition: m[2]!, ...(gtid ? { gtid } : {}) };
}

/** MariaDB's GTID position, which `--gtid` writes near the end of the dump: `-- SET GLOBAL gtid_slave_pos='0-1-24';`. */
export function parseGtidTail(tail: string): string | undefined {
  const all = [...tail.matchAll(/^-- SET GLOBAL gtid_slave_pos='([^'\n]*)';/gm)];
  return all.at(-1)?.[1];
}

export interface DumpWatcherEvents {
  /** Called once, as soon as the head shows the snapshot was taken. */
  onSnapshot?: () => void;
}

/** A pass-through that remembers the head and the tail of the dump. */
export class DumpWatcher extends Transform {
  private head: Buffer = Buffer.alloc(0);
  private tail: Buffer = Buffer.alloc(0);
  private seen = false;

  constructor(private readonly events: DumpWatcherEvents = {}) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.head.length < HEAD_BYTES) {
      this.head = Buffer.concat([this.head, chunk.subarray(0, HEAD_BYTES - this.head.length)]);
      if (!this.seen && snapshotTaken(this.head.toString('utf8'))) {
        this.seen = true;
        this.events.onSnapshot?.();
      }
    }
    this.tail = chunk.length >= TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : Buffer.concat([this.tail, chunk]).subarray(-TAIL_BYTES);
    cb(null, chunk);
  }

  /** Whether the snapshot marker has been seen. */
  get snapshotSeen(): boolean {
    return this.seen;
  }

  /** The binlog position the dump recorded, once it has ended; undefined when the server writes no binlog. */
  position(): BinlogPosition | undefined {
    const head = parseBinlogHead(this.head.toString('utf8'));
    if (!head) return undefined;
    const gtid = head.gtid ?? parseGtidTail(this.tail.toString('utf8'));
    return { ...head, ...(gtid ? { gtid } : {}) };
  }
}
