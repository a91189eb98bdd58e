import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Full key inside the location, relative to the backend's root (bucket or directory). */
  key: string;
  size: number;
  modifiedAt?: Date;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface PutResult {
  /** Bytes the backend stored. */
  size: number;
}

/** A multipart upload started and neither completed nor aborted (S3). */
export interface IncompleteUpload {
  key: string;
  uploadId: string;
  initiated?: Date;
}

/** The stored bytes a spliced object continues with: `source.key` from `offset` to its end (the object is `size` bytes). */
export interface SpliceSource {
  key: string;
  offset: number;
  size: number;
}

export interface GetOptions extends CallOptions {
  /** Inclusive byte range; `end` omitted means to the end of the object. */
  range?: { start: number; end?: number };
}

/**
 * One storage location. Every backend (filesystem, S3, GCS) implements this
 * and passes the same contract suite (test/integration/storage-contract.ts).
 *
 * Invariants every backend keeps:
 * - `put` is atomic: the object is visible under `key` only after the whole
 *   body was stored; on failure or abort nothing is visible and partial data
 *   (temp files, multipart uploads) is cleaned up before the promise rejects.
 * - `put` consumes `body` (a stream of unknown length, or a Buffer that may be
 *   sent again on retry) and never buffers the whole of a stream in memory.
 * - `delete` of a missing key succeeds (idempotent).
 * - Errors are BackupErrors with a STORAGE_* code: STORAGE_NOT_FOUND,
 *   STORAGE_BUCKET_MISSING, STORAGE_DENIED, STORAGE_NO_SPACE,
 *   STORAGE_UNAVAILABLE (retryable) or STORAGE_FAILED.
 */
export interface Storage {
  /** Human description for logs and errors, e.g. `s3://bucket/prefix`. */
  readonly description: string;
  put(key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult>;
  get(key: string, opts?: GetOptions): Promise<Readable>;
  list(prefix: string, opts?: CallOptions): AsyncIterable<ObjectInfo>;
  stat(key: string, opts?: CallOptions): Promise<ObjectInfo>;
  delete(key: string, opts?: CallOptions): Promise<void>;
  /**
   * Removes what interrupted puts left under `prefix` before `olderThan` and
   * that no listing shows (filesystem temp files). Returns how many. Backends
   * whose service expires such leftovers itself return 0: S3 incomplete
   * multipart uploads go through listIncompleteUploads (and a bucket
   * lifecycle rule where the server lacks it), GCS resumable sessions expire
   * in a week.
   */
  sweepIncomplete(prefix: string, olderThan: Date, opts?: CallOptions): Promise<number>;
  /**
   * Optional (S3): incomplete multipart uploads whose key starts with
   * `prefix` (ListMultipartUploads). Throws STORAGE_UNSUPPORTED when the
   * server does not implement that call. Which of them to abort is the
   * caller's decision (runner/retention/multipart.ts).
   */
  listIncompleteUploads?(prefix: string, opts?: CallOptions): AsyncIterable<IncompleteUpload>;
  /** Optional (S3): aborts one incomplete multipart upload; aborting one that is gone succeeds. */
  abortIncompleteUpload?(key: string, uploadId: string, opts?: CallOptions): Promise<void>;
  /**
   * Optional (S3): stores under `key` the bytes `head` followed by the bytes of the object `source.key`
   * from `source.offset` to its end (`source.size` bytes in all), copied by the server without passing
   * through this process (UploadPartCopy). Atomic like `put`. Throws STORAGE_UNSUPPORTED when the server
   * cannot (then `spliceObject` streams the bytes through put). Used by rekey: a new age header before the
   * payload as it is.
   */
  putSpliced?(key: string, head: Buffer, source: SpliceSource, opts?: CallOptions): Promise<PutResult>;
  /** Checks the location is reachable and writable enough to start a backup. */
  preflight(opts?: CallOptions): Promise<void>;
  close(): Promise<void>;
}
