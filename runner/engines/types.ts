import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../logger.js';
import type { CallOptions } from '../storage/types.js';
import type { DatabaseProperties } from '../manifest.js';
import type { Destination, SourceObject } from '../../api/engine-contract.js';

export interface ProbeResult {
  /** e.g. "15.18" */
  serverVersion: string;
  /** Version of the dump tool, e.g. "15.18". */
  toolVersion: string;
}

export interface DumpFormat {
  /** Stable name recorded in the manifest, e.g. "pg_dump-custom". */
  format: string;
  /** File extension of the uncompressed dump, e.g. "dump". */
  extension: string;
  /**
   * Whether the dump already compresses its output. Engines hand the
   * pipeline an uncompressed stream so compression happens once, in parallel.
   */
  compressed: boolean;
  /** Every uncompressed dump of this format starts with one of these (text, or bytes); stored objects are checked against them. */
  magic: readonly (string | Uint8Array)[];
  /**
   * What a dump of this format restores: a database (default), a server's globals (restored as that stream), or
   * a server's data directory (a physical base backup: restored into a directory, `Engine.restoreDataDirectory`).
   */
  holds?: 'globals' | 'data-directory';
  /** Contents of a file with this header that `import` refuses (checked in its first 64 KiB), and why. */
  refuse?: readonly { pattern: RegExp; why: string }[];
}

/** One stream of a backup of several (format 3): a database of a server, or the server's globals (roles, tablespaces). */
export interface StreamSpec {
  name: string;
  kind: 'database' | 'globals';
  /** A database's owner on the server it was dumped from (given back after a restore that created it). */
  owner?: string;
  /** A database's settings, grants and comment on the server it was dumped from (given back after a restore that created it). */
  properties?: DatabaseProperties;
}

export interface DumpOptions extends CallOptions {
  /** The stream to dump (an engine with `streams`); undefined: the configured database. */
  stream?: StreamSpec;
  /**
   * The write end of an OS pipe (e.g. a compressor's stdin): the dump process
   * writes there directly, no byte passing through this process. The caller
   * closes its own copy of the pipe once `dump` resolved.
   */
  output?: Writable;
}

export interface DumpHandle extends DumpFormat {
  /** The dump bytes, unless `output` was given. The engine owns the process; the caller only reads. */
  stream?: Readable;
  /**
   * Resolves to an instant at or after the one the dump is consistent to
   * (never before it), once that is known. Used for --to-time selection.
   */
  consistentAt: Promise<Date>;
  /** Settles when the dump process has exited: rejects with a BackupError if it failed. */
  done: Promise<void>;
  /**
   * Where a log replay starts from this dump (e.g. a binlog file, position and GTID set), recorded in the
   * manifest's engine block; resolves once the stream has ended, to undefined when the server keeps no such log.
   */
  position?: Promise<Record<string, string> | undefined>;
}

export interface TargetState {
  database: string;
  exists: boolean;
  /** True when the database holds any user table, view, sequence, function or large object. */
  hasData: boolean;
}

/**
 * What a failed restore left in the target, carried in the error's
 * `details.target`: `unchanged` (it existed; the transaction rolled back),
 * `dropped` (the restore created it and dropped it again), or `left` (the
 * restore created it and could not drop it: `dropCommand` does).
 */
/** What a restore that succeeded still has to say: e.g. roles that already existed and were left as they are. */
export interface RestoreReport {
  conflicts: string[];
}

export interface RestoreTargetOutcome {
  database: string;
  /**
   * Also `emptied` (it held no data; what the restore wrote was removed) and `partial` (it held data and the
   * engine cannot undo DDL: objects up to the failure were replaced, `detail` says which kind).
   */
  state: 'unchanged' | 'dropped' | 'left' | 'emptied' | 'partial';
  /** For `left`: the exact command that drops it. */
  dropCommand?: string;
  /** For `left`: why dropping failed. */
  dropError?: string;
  /** For `partial`: what the engine replaced and kept. */
  detail?: string;
}

export interface RestoreOptions extends CallOptions {
  /** The stream this input is (a backup of several streams); undefined: a database dump. */
  stream?: StreamSpec;
  /** PostgreSQL: restore without the dump's ownership (into a server that lacks its roles). */
  noOwner?: boolean;
  /** The input's dump format (the manifest's, or what import recognised); default: the engine's own. */
  format?: string;
  /** Database to restore into; defaults to the configured one. */
  database: string;
  /** The backup the input comes from, as its manifest says (an engine defined by a command hands it to its tool). */
  backup?: { id: string; consistentAt: string; engine: Record<string, unknown> };
  /** Allow replacing objects in a database that holds data. */
  force: boolean;
}

/** Who owns what a data-directory restore writes. */
export interface Owner {
  uid: number;
  gid: number;
}

/** WAL fetched ahead of a recovery restore --start runs: `primed` once the server may start (the list of held files and the first segment are in place), `done` with how many segments were fed. */
export interface WalFeed {
  primed: Promise<void>;
  done: Promise<number>;
  /** Once everything the feed runs (the list of held files it keeps fresh) stopped, after its signal aborted. */
  closed: Promise<void>;
}

/** A physical restore: a base backup laid into a server's data directory. */
export interface DataDirectoryOptions {
  /** Absolute path of the data directory (created when missing). */
  dataDir: string;
  /** Empty a directory that holds anything else than a restore of this backup. */
  force: boolean;
  /** Owner of what is written (when run as root); default: the directory's owner (or its parent's). */
  owner?: Owner;
  backup: { id: string; consistentAt: string; engine: Record<string, unknown> };
  signal?: AbortSignal;
  /**
   * Recover past the base backup from the WAL archive: the command that fetches WAL, the target (undefined: the
   * archive's end), the last segment of the archive's unbroken run, and (restore --start) a feed that fetches WAL
   * into wal-fetch's prefetch directory ahead of the server.
   */
  recovery?: { fetchCommand: string; targetTime?: Date; lastWal?: string; feed?: (dir: string, owner: Owner | undefined, signal: AbortSignal) => WalFeed };
  /** Start a server on the directory once it is laid in, follow its recovery to the promotion, and stop it cleanly (restore --start). */
  start?: boolean;
  /** The directory holds only what an attempt of this same restore left (it was empty before): emptied first, as --force would. */
  discard?: boolean;
}

/** What a recovery run by restore --start reached. */
export interface RecoveryOutcome {
  promoted: boolean;
  /** WAL segments the server fetched and replayed. */
  segments: number;
  /** When the last transaction replayed committed: the instant actually reached (RFC 3339, to the microsecond). */
  lastTransactionAt?: string;
  /** When the first commit left out (after the target) was made. */
  firstExcludedAt?: string;
  /** The timeline the server promoted onto. */
  timeline?: number;
  /** The archive holds no commit after the target: recovered to its end, which is the state at the target. */
  archiveEndedBeforeTarget?: boolean;
  /** The server's version. */
  server: string;
}

export interface DataDirectoryReport {
  dataDir: string;
  files: number;
  bytes: number;
  /** Continued a restore of the same backup that had stopped. */
  resumed: boolean;
  /** The directory held other data, removed (--force). */
  replaced: boolean;
  /** The recovery settings written: the target instant (absent: the archive's end). */
  recovery?: { targetTime?: string };
  /** restore --start: the recovery the server ran, to its promotion (the settings are then removed again). */
  recovered?: RecoveryOutcome;
  /** `pg_verifybackup`: checked against the backup's own manifest; `skipped` with the reason in `notes`. */
  verified: 'pg_verifybackup' | 'skipped';
  notes: string[];
}

/**
 * A long-running part of the daemon beside its scheduled operations (e.g. WAL archiving): started with the
 * daemon, restarted with backoff when `run` ends or fails (runner/daemon/supervisor.ts), stopped with it.
 */
export interface ServiceSpec {
  readonly name: string;
  /** Runs until `signal` aborts (then resolves) or it fails (rejects); `report` publishes what it wants shown in status and metrics. */
  run(signal: AbortSignal, report: (facts: Record<string, unknown>) => void): Promise<void>;
}

/** What a WAL store did with one file. */
export interface WalStored {
  /** The object's name in the locations (layout.ts walFileName, without the encryption suffix). */
  name: string;
  /** Locations that hold it now (stored, or held the same bytes already). */
  stored: string[];
  /** Locations that failed, with why. */
  failed: { location: string; code: string; message: string }[];
  /** Locations that hold another object for the same WAL file (different bytes): never overwritten, an alarm. */
  conflicts: { location: string; key: string }[];
}

/** Where a WAL archiver puts what it receives: every location, compressed and encrypted as each says (runner/ops/wal-store.ts). */
export interface WalStore {
  /** Stores the file at `path` as `wal` (a segment or history file name), or as the rolling copy of a segment still being written. */
  store(path: string, wal: string, opts: { partial: boolean; signal?: AbortSignal }): Promise<WalStored>;
  /**
   * The newest complete segment every location holds (each location's newest name `accept` takes, the oldest of
   * those), or undefined when a location holds none.
   */
  newest(accept: (name: string) => boolean, signal?: AbortSignal): Promise<string | undefined>;
}

/** What a daemon hands an engine's services. */
export interface ServiceDeps {
  walStore: WalStore;
  /** A directory of the runner's own (an emptyDir in a pod) for files in flight. */
  spool: string;
  logger: Logger;
  /** The DatabaseBackup the daemon serves (names what the services create on the server, e.g. a replication slot). */
  owner: { namespace: string; name: string };
}

/** What a daemon hands an engine's housekeeping. */
export type HousekeepingDeps = Pick<ServiceDeps, 'logger' | 'owner'>;

/** What a housekeeping task did: shown in `status` (`housekeeping`) and counted in the metrics by `outcome`. */
export interface HousekeepingReport {
  /** One short word, e.g. `dropped`, `absent`, `denied`. */
  outcome: string;
  /** What the task wants shown with it (e.g. the slot it looked at, the WAL it held). */
  facts?: Record<string, unknown>;
  /** Worth running again later: what stopped it may pass (a slot the previous pod still streams from during a rolling update, a server not up yet). */
  retry?: boolean;
}

/**
 * A one-shot task the daemon runs at start, in the background, beside its operations and services (never
 * before or in the way of a backup): e.g. dropping what an earlier configuration left on the server. It handles
 * its own failures (logs them, with the fix) and reports them in its outcome; one that throws is reported `failed`.
 * A report asking for a `retry` runs it again later, with growing delays, a few times.
 */
export interface HousekeepingTask {
  readonly name: string;
  run(signal: AbortSignal): Promise<HousekeepingReport>;
}

export interface Engine {
  readonly name: string;
  /**
   * Whether `dump` writes into `DumpOptions.output` itself (no byte through this process). An engine that
   * reads its own output (to find a position in it) returns `stream` and is never given `output`.
   */
  readonly dumpsIntoPipe: boolean;
  /** How many of its `streams` may be dumped at a time (each its own dump process, compressor and uploads); default 1. */
  readonly streamConcurrency?: number;
  /**
   * The databases this engine is configured to back up, when it backs up several: 'all', or their names. A
   * restore of several streams restores only these unless others are named; undefined: no such limit.
   */
  configuredDatabases?(): 'all' | readonly string[] | undefined;
  /** Whether this engine is configured to back up the server's globals (roles): a restore restores them only then. */
  configuredGlobals?(): boolean;
  /** Connects, reads the server and tool versions, and refuses incompatible tools. */
  probe(opts?: CallOptions): Promise<ProbeResult>;
  dump(opts?: DumpOptions): Promise<DumpHandle>;
  /**
   * The streams one backup consists of, in the order they are dumped and restored (globals first), when the
   * engine backs up more than its one configured database; undefined (or absent): one stream, format 2.
   */
  streams?(opts?: CallOptions): Promise<StreamSpec[] | undefined>;
  inspectTarget(database: string, opts?: CallOptions): Promise<TargetState>;
  /**
   * Restores an uncompressed dump read from `input`. Atomic where the engine
   * allows it: a failed restore leaves the target as it was (an engine that
   * created the database drops it again).
   */
  restore(input: Readable, opts: RestoreOptions): Promise<RestoreReport | void>;
  /** The configured database name. */
  readonly database: string;
  /** Formats known only once the engine is configured (an engine defined by a command declares its own). */
  readonly formats?: readonly DumpFormat[];
  /** Whether what `dump` writes is compressed already (its format says `compressed`): the pipeline then stores it as it is. */
  readonly dumpsCompressed?: boolean;
  /** Restores a dump whose format `holds: 'data-directory'` (a physical base backup) into a data directory. */
  restoreDataDirectory?(input: Readable, opts: DataDirectoryOptions): Promise<DataDirectoryReport>;
  /**
   * Refuses a data directory `restoreDataDirectory` would refuse, before anything is read or changed (as inspectTarget
   * for a database). `fresh`: the directory is missing or empty, so a restore into it can lose nothing.
   */
  checkDataDirectory?(opts: DataDirectoryOptions): Promise<{ fresh: boolean }>;
  /** The daemon's long-running services this engine's configuration asks for (PostgreSQL physical: WAL archiving). */
  services?(deps: ServiceDeps): ServiceSpec[];
  /** One-shot tasks the daemon runs at start for this configuration (PostgreSQL: dropping an archive slot it no longer uses). */
  housekeeping?(deps: HousekeepingDeps): HousekeepingTask[];
  /** A server-side engine: the database server writes its backups into a location itself (runner/ops/server-backup.ts), no stream. */
  readonly serverSide?: ServerSideEngine;
}

/**
 * One location's directory as a server-side engine's call is told it: the destination without its credentials
 * file, and the credentials' content (the tenant's own keys), written 0600 beside the request for that call only.
 */
export interface ServerPlace {
  destination: Omit<Destination, 'credentials'> & { credentials?: { source: 'server' } };
  secret?: string;
}

/** What a backup the database server wrote says of itself. */
export interface ServerBackup {
  consistentAt: Date;
  position?: Record<string, string>;
  /** The format recorded in the manifest (the definition's first). */
  format: string;
}

export interface ServerSideEngine {
  /** Has the database server write one backup below `place` (empty); resolves once it is complete. */
  backup(place: ServerPlace, opts?: CallOptions): Promise<ServerBackup>;
  /** Has the database server restore the backup below `place`, whose objects the runner verified just before. */
  restore(place: ServerPlace, objects: readonly SourceObject[], opts: RestoreOptions): Promise<RestoreReport | void>;
}

/**
 * One engine, as the runner registers it (runner/engines/registry.ts ENGINES): the config block it reads
 * (`engine.<type>`), the dump formats it writes (checked in stored objects by name and magic), and how it is
 * built. Adding an engine is its folder exporting one of these, and its line in ENGINES.
 */
export interface EngineDefinition<Block = unknown> {
  /** `engine.type` in the runner config, and the name of its config block. */
  readonly type: string;
  readonly formats: readonly DumpFormat[];
  create(block: Block, deps: { logger: Logger; env: NodeJS.ProcessEnv }): Promise<Engine>;
}
