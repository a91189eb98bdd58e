/**
 * Key naming for every backend, in one pure module. Format 2 (written now)
 * puts each kind of stored data in a folder of its own under the database
 * prefix, so later kinds (WAL, binlogs, exports) never collide with backup
 * ids:
 *   <prefix>/<namespace>/<name>/backups/<backupId>/data.<ext><compression suffix>[.age]
 *   <prefix>/<namespace>/<name>/backups/<backupId>/manifest.json
 * Format 1 (read, never written) kept backups directly under the prefix:
 *   <prefix>/<namespace>/<name>/<backupId>/data.<ext><compression suffix>
 *   <prefix>/<namespace>/<name>/<backupId>/manifest.json
 *
 * Under a database prefix the runner accepts exactly these keys: a
 * well-formed backup id (runner/backup-id.ts) and a file name from
 * KNOWN_FILES. Anything else there is foreign (another runner whose prefix
 * nests inside this one, an object someone planted, or a kind this runner
 * does not know yet): `classifyKey` says so and why, and callers leave it
 * alone. Every key of a backup is its directory (`dir`, ending in `/`) plus
 * a file name: callers keep the directory a listing found, and only a new
 * backup asks `backupPrefix` for one. A server-side backup (format 4) keeps
 * what the database server wrote in `server/` of its directory (SERVER_DIR).
 */
import { isBackupId } from '../backup-id.js';

export const MANIFEST_FILE = 'manifest.json';

/**
 * Extensions of the engines' uncompressed dumps (DumpFormat.extension): 1 to 16 lower-case letters and digits,
 * never a word the rest of a file name uses (so a name parses one way only). An engine defined by a command
 * declares its own (api/engine-contract.ts checks them with the same rule).
 */
const EXTENSION = '(?!(?:age|zst|gz|rekeyed|json)(?![a-z0-9]))[a-z0-9]{1,16}';
export const DATA_EXTENSION = new RegExp(`^${EXTENSION}$`);
/** Suffixes of the compression algorithms (CompressionPlan.suffix). */
export const COMPRESSION_SUFFIXES = ['', '.zst', '.gz'] as const;
/** The suffix of an object encrypted with age. */
export const AGE_FILE_SUFFIX = '.age';
/**
 * The suffix of an age object whose header `rekey` rewrote: the new object is written beside the old one
 * under the other name, the manifest is switched to it, then the old one is deleted, so the manifest
 * always names a whole object. A later rekey switches back to `.age`.
 */
export const REKEYED_FILE_SUFFIX = '.rekeyed.age';
/** Suffixes of the encryption schemes: none, and the age format (as written, and as rekeyed). */
export const ENCRYPTION_SUFFIXES = ['', AGE_FILE_SUFFIX, REKEYED_FILE_SUFFIX] as const;

/** The folder of each kind of stored data under a database prefix (format 2): the one table. */
export const KIND_FOLDERS = { backup: 'backups', wal: 'wal' } as const;
export type StoredKind = keyof typeof KIND_FOLDERS;

/** The layout a backup directory follows: 1 (`<id>/`), 2 (`backups/<id>/`). */
export type LayoutVersion = 1 | 2;

/**
 * The data object's name: `data.<ext><compression suffix><encryption suffix>`, e.g. `data.dump.zst.age`;
 * in a backup of several streams (format 3) the stream's number comes first: `data-001.dump.zst`.
 */
export function dataFileName(extension: string, suffix: string, encryptionSuffix = '', stream?: number): string {
  return `data${stream === undefined ? '' : `-${String(stream).padStart(3, '0')}`}.${extension}${suffix}${encryptionSuffix}`;
}

/** The most streams one backup may have (data-001 ... data-999). */
export const MAX_STREAMS = 999;

/** The data object's name in a location that does (or does not) encrypt: `.age` appended. */
export function storedFileName(plainName: string, encrypted: boolean): string {
  return encrypted ? `${plainName}${AGE_FILE_SUFFIX}` : plainName;
}

/** A data object's name without its encryption suffix: the name it has in a location that does not encrypt. */
export function plainFileName(name: string): string {
  for (const suffix of [REKEYED_FILE_SUFFIX, AGE_FILE_SUFFIX]) if (name.endsWith(suffix)) return name.slice(0, -suffix.length);
  return name;
}

/** The name `rekey` writes an age object's new version under: the other of `.age` and `.rekeyed.age`. */
export function rekeyedFileName(name: string): string {
  const plain = plainFileName(name);
  return name.endsWith(REKEYED_FILE_SUFFIX) ? `${plain}${AGE_FILE_SUFFIX}` : `${plain}${REKEYED_FILE_SUFFIX}`;
}

/**
 * Every file name the runner writes into a backup directory: the manifest, and
 * `data[-NNN].<extension>[<compression>][<encryption>]` (a stream's number from 001).
 */
const DATA_FILE = new RegExp(
  `^data(?:-(?!000)\\d{3})?\\.(${EXTENSION})(${COMPRESSION_SUFFIXES.filter(Boolean).map((s) => s.replace('.', '\\.')).join('|')})?(${ENCRYPTION_SUFFIXES.filter(Boolean).map((s) => s.replace(/\./g, '\\.')).join('|')})?$`,
);

/** The dump extension a data object's name carries (`data-001.rdb.zst.age` -> `rdb`), or undefined for another name. */
export function dataFileExtension(name: string): string | undefined {
  return DATA_FILE.exec(name)?.[1];
}

/**
 * The folder of a server-side backup's objects inside its backup directory (format 4): what the database server
 * wrote there itself, e.g. `server/data/812.sst`. Below it, a path of at most SERVER_PATH_DEPTH segments, each
 * 1 to 255 of `A-Z a-z 0-9 . _ = + , @ -`, starting with a letter or digit, and never `manifest.json` (a nested
 * manifest marks another runner's prefix).
 */
export const SERVER_DIR = 'server';
export const SERVER_PATH_DEPTH = 16;
const SERVER_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._=+,@-]{0,254}$/;

/** Pure: why `path` (relative to a backup's `server/` folder) is not a server object's path, or undefined when it is one. */
export function serverPathProblem(path: string): string | undefined {
  const segments = path.split('/');
  if (path.length > 1024) return 'is longer than 1024 characters';
  if (segments.length > SERVER_PATH_DEPTH) return `is nested more than ${SERVER_PATH_DEPTH} levels deep`;
  for (const s of segments) {
    if (!SERVER_SEGMENT.test(s)) return `has the segment ${JSON.stringify(s.slice(0, 64))}: segments are 1 to 255 of A-Z a-z 0-9 . _ = + , @ -, starting with a letter or digit`;
    if (s === MANIFEST_FILE) return `has a ${MANIFEST_FILE} segment (the name of a backup's manifest)`;
  }
  return undefined;
}

/** Whether a file name of a backup directory is a server-side backup's object (`server/<path>`). */
export function isServerFile(name: string): boolean {
  return name.startsWith(`${SERVER_DIR}/`) && serverPathProblem(name.slice(SERVER_DIR.length + 1)) === undefined;
}

/** Whether the runner writes a file of this name into a backup directory. */
export function isKnownFile(name: string): boolean {
  return name === MANIFEST_FILE || DATA_FILE.test(name) || isServerFile(name);
}

/** Whether `name` is a data object's name (a known file other than the manifest): what a manifest may name as its object. */
export function isDataFileName(name: string): boolean {
  return name !== MANIFEST_FILE && isKnownFile(name);
}

export interface Scope {
  /** Location prefix inside the bucket or directory; may be empty. */
  prefix: string;
  namespace: string;
  name: string;
}

function join(...parts: string[]): string {
  return parts
    .map((p) => p.replace(/^\/+|\/+$/g, ''))
    .filter((p) => p.length > 0)
    .join('/');
}

/** Prefix (ending in `/`) under which all data of one database lives. */
export function databasePrefix(scope: Scope): string {
  return `${join(scope.prefix, scope.namespace, scope.name)}/`;
}

/** The directory (ending in `/`) of one backup in the given layout; new backups use layout 2. */
export function backupPrefix(scope: Scope, backupId: string, layout: LayoutVersion = 2): string {
  return layout === 1 ? `${databasePrefix(scope)}${backupId}/` : `${databasePrefix(scope)}${KIND_FOLDERS.backup}/${backupId}/`;
}

/** The key of `file` in a backup directory. */
export function keyIn(dir: string, file: string): string {
  return `${dir}${file}`;
}

/** The key of `file` of a backup in the given layout (new backups: 2). */
export function objectKey(scope: Scope, backupId: string, file: string, layout: LayoutVersion = 2): string {
  return keyIn(backupPrefix(scope, backupId, layout), file);
}

/** The key of a backup's manifest in the given layout (new backups: 2). */
export function manifestKey(scope: Scope, backupId: string, layout: LayoutVersion = 2): string {
  return objectKey(scope, backupId, MANIFEST_FILE, layout);
}

/**
 * A WAL archive object (`wal/<name>`): a segment or timeline history file, the sha256 of its plain bytes, whether
 * it is the rolling copy of a segment still being written, and its compression and encryption:
 * `<segment>-<sha256>[.partial][.zst|.gz][.age]`, e.g. `000000010000000000000003-9f86...08.zst.age`. The digest
 * in the name makes an upload idempotent (the same name holds the same bytes) and lets a reader check what it
 * fetched; another digest for the same segment is another object, never an overwrite.
 */
const WAL_FILE = new RegExp(
  `^([0-9A-F]{24}|[0-9A-F]{8}\\.history)-([0-9a-f]{64})(\\.partial)?(${COMPRESSION_SUFFIXES.filter(Boolean).map((s) => s.replace('.', '\\.')).join('|')})?(${AGE_FILE_SUFFIX.replace('.', '\\.')})?$`,
);

export interface WalFile {
  /** The segment (24 hex digits) or history file (`TTTTTTTT.history`) it holds. */
  wal: string;
  sha256: string;
  partial: boolean;
  /** `.zst`, `.gz` or ''. */
  compression: string;
  encrypted: boolean;
}

/** Pure: a WAL archive object's name, parsed; undefined for any other name. */
export function parseWalFile(name: string): WalFile | undefined {
  const m = WAL_FILE.exec(name);
  if (!m) return undefined;
  return { wal: m[1]!, sha256: m[2]!, partial: m[3] !== undefined, compression: m[4] ?? '', encrypted: m[5] !== undefined };
}

/** The name of a WAL archive object (parseWalFile's inverse). */
export function walFileName(f: WalFile): string {
  return `${f.wal}-${f.sha256}${f.partial ? '.partial' : ''}${f.compression}${f.encrypted ? AGE_FILE_SUFFIX : ''}`;
}

/** The folder (ending in `/`) of a database's WAL archive. */
export function walPrefix(scope: Scope): string {
  return `${databasePrefix(scope)}${KIND_FOLDERS.wal}/`;
}

export type KeyClass =
  /** Not under the database prefix at all: another database's business. */
  | { kind: 'outside' }
  /** `wal/<WAL archive object>` under the database prefix. */
  | { kind: 'wal'; file: string }
  /** Exactly `[backups/]<backupId>/<known file>` under the database prefix. */
  | { kind: 'backup'; layout: LayoutVersion; backupId: string; dir: string; file: string }
  /**
   * Under the database prefix but not a key the runner writes. `group` is the
   * backup directory the key lies in when there is one (a nested or unknown
   * key inside a backup directory), and `nestedManifest` tells whether the
   * key is a manifest at some deeper level.
   */
  | { kind: 'foreign'; reason: string; group?: string; nestedManifest: boolean };

/** Pure: what a listed key is, seen from one database's scope. */
export function classifyKey(scope: Scope, key: string): KeyClass {
  const base = databasePrefix(scope);
  if (!key.startsWith(base)) return { kind: 'outside' };
  const all = key.slice(base.length).split('/');
  if (all[0] === KIND_FOLDERS.wal) {
    if (all.length === 2 && parseWalFile(all[1]!)) return { kind: 'wal', file: all[1]! };
    return { kind: 'foreign', reason: 'not a WAL archive object', nestedManifest: all.length > 2 && all[all.length - 1] === MANIFEST_FILE };
  }
  const layout: LayoutVersion = all[0] === KIND_FOLDERS.backup ? 2 : 1;
  // Below the kind folder, format 2 is format 1 shifted by one segment.
  const segments = layout === 2 ? all.slice(1) : all;
  const first = segments[0] ?? '';
  const nestedManifest = segments.length > 2 && segments[segments.length - 1] === MANIFEST_FILE;
  if (segments.length <= 1) return { kind: 'foreign', reason: 'not inside a backup directory', nestedManifest };
  if (!isBackupId(first)) return { kind: 'foreign', reason: `"${first}" is not a backup id`, nestedManifest };
  const dir = backupPrefix(scope, first, layout);
  if (segments.length > 2) {
    // A server-side backup's objects (layout 2 only) are the one nesting the runner writes.
    const file = segments.slice(1).join('/');
    if (layout === 2 && isServerFile(file)) return { kind: 'backup', layout, backupId: first, dir, file };
    return { kind: 'foreign', reason: 'nested below a backup directory', group: dir, nestedManifest };
  }
  const file = segments[1]!;
  if (!isKnownFile(file)) return { kind: 'foreign', reason: `"${file}" is not a file the runner writes`, group: dir, nestedManifest };
  return { kind: 'backup', layout, backupId: first, dir, file };
}

/** Splits a key under `databasePrefix(scope)` into backup id, directory and known file name; null for anything else. */
export function parseKey(scope: Scope, key: string): { backupId: string; dir: string; file: string } | null {
  const c = classifyKey(scope, key);
  return c.kind === 'backup' ? { backupId: c.backupId, dir: c.dir, file: c.file } : null;
}
