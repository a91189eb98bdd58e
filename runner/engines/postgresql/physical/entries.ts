/**
 * Pure: which members of a base backup's tar may be laid into a data directory, and where. The tar is read
 * from storage, so it is checked before it is believed: nothing of it may land outside the directory.
 *
 * Invariants:
 * - Only regular files and directories; a link of any kind, a device or a FIFO refuses the whole tar.
 * - A name is relative, with no `..` or empty segment (`.` is the directory itself), no NUL, at most 32 segments of 255 bytes.
 * - A name appears once; the runner's own restore-state file (and its next version) is never a member.
 * - A member of an unknown type (tar-stream's null) is refused like a link.
 */

/** A tar member as the extractor sees it (tar-stream's header, long names and pax records already applied). */
export interface TarMember {
  name: string;
  type?: string | null;
  size?: number;
  mode?: number;
}

/** The runner's record of a data-directory restore in progress, inside that directory (runner/engines/postgresql/physical/restore.ts). */
export const RESTORE_STATE_FILE = '.backup-runner-restore.json';
/** The record's next version, written beside it and renamed over it. */
export const RESTORE_STATE_TMP = `${RESTORE_STATE_FILE}.tmp`;

const MAX_DEPTH = 32;
const MAX_SEGMENT_BYTES = 255;

/** Why a path's segments may not be written below the data directory, or undefined. */
function segmentsProblem(name: string, segments: readonly string[]): string | undefined {
  if (segments.length > MAX_DEPTH) return `"${printable(name)}" is more than ${MAX_DEPTH} directories deep`;
  for (const s of segments) {
    if (s === '' || s === '..') return `"${printable(name)}" has a "${s}" segment: a member must stay inside the data directory`;
    if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) return `"${printable(name)}" has a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  if (segments.length === 1 && (segments[0] === RESTORE_STATE_FILE || segments[0] === RESTORE_STATE_TMP)) return `"${segments[0]}" is the restore's own record, never a member of a base backup`;
  return undefined;
}

/** The member's path as segments (a directory's trailing slash dropped), or why it may not be written. */
export function memberPath(m: TarMember): { segments: string[]; directory: boolean } | { problem: string } {
  // tar-stream names every member it knows; an unknown type flag (a GNU volume header, a sparse file) comes as null.
  const type = m.type;
  if (type !== 'file' && type !== 'directory') return { problem: `"${printable(m.name)}" is a ${type ?? 'member of an unknown type'}: a base backup holds only files and directories` };
  if (m.name.includes('\0')) return { problem: 'a member name holds a NUL byte' };
  const name = type === 'directory' ? m.name.replace(/\/+$/, '') : m.name;
  if (name.length === 0) return { problem: 'a member has an empty name' };
  if (name.startsWith('/')) return { problem: `"${printable(name)}" is an absolute path` };
  // pg_basebackup names some members "./pg_wal/...": a "." segment is the directory itself.
  const segments = name.split('/').filter((s) => s !== '.');
  if (segments.length === 0) return type === 'directory' ? { segments, directory: true } : { problem: `"${printable(name)}" names the data directory itself` };
  const problem = segmentsProblem(name, segments);
  if (problem) return { problem };
  if (type === 'file' && (!Number.isSafeInteger(m.size ?? 0) || (m.size ?? 0) < 0)) return { problem: `"${printable(name)}" has no valid size` };
  return { segments, directory: type === 'directory' };
}

/** A directory's mode (PostgreSQL wants 0700, or 0750 with group access), from the member's own. */
export function directoryMode(mode: number | undefined): number {
  return 0o700 | ((mode ?? 0) & 0o050);
}

/** A file's mode (0600, or 0640 with group access), from the member's own. */
export function fileMode(mode: number | undefined): number {
  return 0o600 | ((mode ?? 0) & 0o040);
}

function printable(s: string): string {
  const shown = [...s].map((c) => (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? '?' : c)).join('');
  return shown.length > 200 ? `${shown.slice(0, 200)}...` : shown;
}
