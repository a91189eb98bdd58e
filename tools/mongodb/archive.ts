/**
 * Pure: the start of a mongodump archive (mongo-tools common/archive/spec.md), read without a MongoDB library.
 *
 *   archive  = magic-number, header, *collection-metadata, terminator, *(namespace segments)
 *   magic    = 6d e2 99 81 (0x8199e26d little-endian)
 *   header   = BSON { concurrent_collections: int32, version: "0.1", server_version, tool_version }
 *   metadata = BSON { db, collection, metadata (extended JSON), size, type } per collection or view
 *   terminator = ff ff ff ff (where the next document's length would be)
 *
 * mongodump writes this prelude, naming every namespace it is about to dump, before any document: the tool
 * reads it to learn what a target holds (probe, inspect) and what a backup holds (restore).
 */
import { MONGODUMP_ARCHIVE_MAGIC } from './definition.js';

/** One namespace the prelude announces. */
export interface Namespace {
  db: string;
  collection: string;
  /** collection, view, timeseries (absent in older archives: a collection). */
  type?: string;
}

export interface Prelude {
  /** The archive format version (only "0.1" exists). */
  formatVersion: string;
  /** What the dumped server said its version was ("unknown" when mongodump could not read it). */
  serverVersion: string;
  toolVersion: string;
  namespaces: Namespace[];
  /** Bytes of the archive the prelude takes, magic and terminator included. */
  bytes: number;
}

/** Preludes larger than this are refused (thousands of collections with their index definitions fit easily). */
export const MAX_PRELUDE_BYTES = 64 * 1024 * 1024;

const TERMINATOR = 0xffffffff;

/** Not a mongodump archive, or one this reader does not understand. */
export class ArchiveError extends Error {
  override readonly name = 'ArchiveError';
}

/**
 * The top-level string fields of the BSON document `doc` (a whole document: its length prefix to its final
 * NUL); other fields are skipped. Throws ArchiveError on a malformed document.
 */
export function bsonStrings(doc: Buffer): Record<string, string> {
  const bad = (why: string): ArchiveError => new ArchiveError(`malformed BSON document: ${why}`);
  if (doc.length < 5 || doc.readInt32LE(0) !== doc.length || doc[doc.length - 1] !== 0) throw bad('its length prefix does not match');
  const out: Record<string, string> = {};
  const end = doc.length - 1;
  let at = 4;
  const need = (n: number): void => {
    if (n < 0 || at + n > end) throw bad('a field runs past its end');
  };
  const cstring = (): string => {
    const nul = doc.indexOf(0, at);
    if (nul < 0 || nul >= end) throw bad('an unterminated name');
    const s = doc.toString('utf8', at, nul);
    at = nul + 1;
    return s;
  };
  const int32 = (): number => {
    need(4);
    return doc.readInt32LE(at);
  };
  const lengthPrefixed = (extra: number): void => {
    const n = int32();
    if (n < 0) throw bad('a negative length');
    need(4 + n + extra);
    at += 4 + n + extra;
  };
  while (at < end) {
    const type = doc[at++]!;
    const name = cstring();
    switch (type) {
      case 0x02: {
        // string: int32 length (with its NUL), UTF-8, NUL
        const n = int32();
        need(4 + n);
        if (n < 1 || doc[at + 4 + n - 1] !== 0) throw bad(`field ${name}: a string without its NUL`);
        out[name] = doc.toString('utf8', at + 4, at + 4 + n - 1);
        at += 4 + n;
        break;
      }
      case 0x0d: // JavaScript code
      case 0x0e: // symbol
        lengthPrefixed(0);
        break;
      case 0x0c: // DBPointer: string and ObjectId
        lengthPrefixed(12);
        break;
      case 0x03: // document
      case 0x04: // array
      case 0x0f: {
        // code with scope: the int32 counts itself
        const n = int32();
        if (n < 5) throw bad(`field ${name}: a nested length below 5`);
        need(n);
        at += n;
        break;
      }
      case 0x05: // binary: int32 length, subtype, bytes
        lengthPrefixed(1);
        break;
      case 0x0b: // regular expression: two cstrings
        cstring();
        cstring();
        break;
      default: {
        const size = FIXED_SIZES[type];
        if (size === undefined) throw bad(`field ${name}: unknown BSON type 0x${type.toString(16)}`);
        need(size);
        at += size;
      }
    }
  }
  return out;
}

/** Sizes of BSON types with a fixed-size value. */
const FIXED_SIZES: Readonly<Record<number, number>> = {
  0x01: 8, // double
  0x06: 0, // undefined
  0x07: 12, // ObjectId
  0x08: 1, // boolean
  0x09: 8, // UTC datetime
  0x0a: 0, // null
  0x10: 4, // int32
  0x11: 8, // timestamp
  0x12: 8, // int64
  0x13: 16, // decimal128
  0xff: 0, // min key
  0x7f: 0, // max key
};

/**
 * Reads an archive's prelude from its first chunks: push() each chunk as it arrives; it answers the prelude
 * once the terminator has arrived, undefined while more is needed, and throws ArchiveError for what is not a
 * mongodump archive (checked from the first 4 bytes on) or a prelude past `limit` bytes.
 */
export class PreludeReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Where the next unread document starts. */
  private at = 0;
  private header: Record<string, string> | undefined;
  private readonly namespaces: Namespace[] = [];
  private done: Prelude | undefined;

  constructor(private readonly limit = MAX_PRELUDE_BYTES) {}

  push(chunk: Buffer): Prelude | undefined {
    if (this.done) return this.done;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const magic = Buffer.from(MONGODUMP_ARCHIVE_MAGIC, 'hex');
    const seen = Math.min(this.buf.length, magic.length);
    if (!this.buf.subarray(0, seen).equals(magic.subarray(0, seen))) throw new ArchiveError('not a mongodump archive (no archive magic number 6de29981)');
    if (this.at === 0) {
      if (this.buf.length < magic.length) return undefined;
      this.at = magic.length;
    }
    for (;;) {
      if (this.buf.length - this.at < 4) return this.tooLarge();
      const length = this.buf.readUInt32LE(this.at);
      if (length === TERMINATOR) {
        if (!this.header) throw new ArchiveError('the archive has no header document');
        this.done = {
          formatVersion: this.header.version ?? '',
          serverVersion: this.header.server_version ?? '',
          toolVersion: this.header.tool_version ?? '',
          namespaces: this.namespaces,
          bytes: this.at + 4,
        };
        return this.done;
      }
      if (length < 5 || length > 16 * 1024 * 1024 + 16 * 1024) throw new ArchiveError(`a prelude document of ${length} bytes: not a mongodump archive`);
      if (this.buf.length - this.at < length) return this.tooLarge();
      const fields = bsonStrings(this.buf.subarray(this.at, this.at + length));
      this.at += length;
      if (!this.header) {
        this.header = fields;
        continue;
      }
      if (fields.db === undefined || fields.collection === undefined) throw new ArchiveError('a prelude entry without db and collection');
      this.namespaces.push({ db: fields.db, collection: fields.collection, ...(fields.type ? { type: fields.type } : {}) });
    }
  }

  private tooLarge(): undefined {
    if (this.buf.length > this.limit) throw new ArchiveError(`the archive's prelude is larger than ${this.limit} bytes`);
    return undefined;
  }
}

/** Databases that hold the server's own state, not an application's: admin's system collections, local, config. */
const SERVER_DATABASES: readonly string[] = ['local', 'config'];

/** Whether a namespace is the server's own rather than data someone stored: system.* collections, local, config, the oplog. */
export function isServerNamespace(ns: Namespace): boolean {
  return ns.db === '' || SERVER_DATABASES.includes(ns.db) || ns.collection.startsWith('system.');
}

/**
 * What a prelude of the target says about it (inspect): for one database, whether it exists (any namespace,
 * system ones too) and holds a collection or view of its own; for the whole server (`database` undefined),
 * whether any database holds one (admin's users and roles, local and config are the server's own).
 */
export function targetState(prelude: Prelude, database: string | undefined): { exists: boolean; hasData: boolean; holding: string[] } {
  const mine = database === undefined ? prelude.namespaces : prelude.namespaces.filter((ns) => ns.db === database);
  const holding = mine.filter((ns) => !isServerNamespace(ns)).map((ns) => `${ns.db}.${ns.collection}`);
  return { exists: database === undefined || mine.length > 0, hasData: holding.length > 0, holding };
}

/** Whether the archive carries an oplog (mongodump --oplog): its top-level "oplog" namespace. */
export function hasOplog(prelude: Prelude): boolean {
  return prelude.namespaces.some((ns) => ns.db === '' && ns.collection === 'oplog');
}

/** The databases the archive holds, the oplog's empty name left out. */
export function databasesOf(prelude: Prelude): string[] {
  return [...new Set(prelude.namespaces.map((ns) => ns.db).filter((db) => db !== ''))].sort();
}
