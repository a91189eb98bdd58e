/**
 * Pure: PostgreSQL's WAL positions and file names. An LSN is `hi/lo` (hex, 32 bits each); a segment is
 * `wal_segment_size` bytes (16 MiB by default, a power of two); a segment's file is named by its timeline
 * and number, `TTTTTTTTXXXXXXXXYYYYYYYY` (24 upper-case hex digits), so names sort in WAL order within a
 * timeline. A timeline's history file is `TTTTTTTT.history`.
 */

export const SEGMENT_NAME = /^[0-9A-F]{24}$/;
export const HISTORY_NAME = /^[0-9A-F]{8}\.history$/;

/** `0/2000028` -> 33554472n; undefined for anything else. */
export function parseLsn(lsn: string): bigint | undefined {
  const m = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(lsn);
  if (!m) return undefined;
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

function segmentsPerId(segmentSize: number): bigint {
  return 0x100000000n / BigInt(segmentSize);
}

const hex8 = (n: bigint): string => n.toString(16).toUpperCase().padStart(8, '0');

/** The file name of segment number `segno` on timeline `tli`. */
export function segmentName(tli: number, segno: bigint, segmentSize: number): string {
  const per = segmentsPerId(segmentSize);
  return `${hex8(BigInt(tli))}${hex8(segno / per)}${hex8(segno % per)}`;
}

/** The segment number an LSN lies in. */
export function segmentOf(lsn: bigint, segmentSize: number): bigint {
  return lsn / BigInt(segmentSize);
}

/** Timeline and segment number of a segment file name; undefined for another name. */
export function parseSegmentName(name: string, segmentSize: number): { tli: number; segno: bigint } | undefined {
  if (!SEGMENT_NAME.test(name)) return undefined;
  const tli = Number.parseInt(name.slice(0, 8), 16);
  const log = BigInt(`0x${name.slice(8, 16)}`);
  const seg = BigInt(`0x${name.slice(16, 24)}`);
  if (seg >= segmentsPerId(segmentSize)) return undefined;
  return { tli, segno: log * segmentsPerId(segmentSize) + seg };
}

/** The LSN just past the end of a segment: everything before it is in that segment or an earlier one. */
export function segmentEnd(segno: bigint, segmentSize: number): bigint {
  return (segno + 1n) * BigInt(segmentSize);
}

/** Whether `size` is a WAL segment size PostgreSQL allows (a power of two, 1 MiB to 1 GiB). */
export function isSegmentSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 << 20 && size <= 1 << 30 && (size & (size - 1)) === 0;
}
