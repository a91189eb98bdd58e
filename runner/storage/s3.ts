/**
 * S3 and S3-compatible servers (MinIO, Ceph, s3rver).
 *
 * Invariants:
 * - A stream put is a lib-storage multipart upload: at most about
 *   (queueSize + 1) * partSize bytes are held in memory, whatever the size.
 *   The object appears only when CompleteMultipartUpload succeeds.
 * - On a failed or aborted stream put the multipart upload is aborted on the
 *   server before the promise rejects (lib-storage with
 *   `leavePartsOnError: false`; an abort destroys the body, which makes
 *   lib-storage take that same path and await the abort). If the server
 *   cannot be reached to abort, the parts stay until a lifecycle rule
 *   (AbortIncompleteMultipartUpload) removes them; they are never visible.
 * - A Buffer put is one PutObject (atomic, cancellable, replayable).
 */
import { addAbortSignal, type Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Location } from '../../api/index.js';
import type { Logger } from '../logger.js';
import { PutBody } from './body.js';
import { isBackupError } from '../errors.js';
import { storageError, throwIfAborted, type CallContext } from './errors.js';
import { checkKey, checkPrefix } from './keys.js';
import { createS3Client } from './s3-client.js';
import { s3Error } from './s3-errors.js';
import { mapStreamErrors } from './streams.js';
import type { CallOptions, GetOptions, IncompleteUpload, ObjectInfo, PutResult, SpliceSource, Storage } from './types.js';

/** S3 error names (or HTTP statuses) of a server that lacks a call, as s3rver answers ListMultipartUploads. */
function isUnsupported(err: unknown): boolean {
  const e = (err ?? {}) as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? e.Code;
  return name === 'NotImplemented' || name === 'MethodNotAllowed' || e.$metadata?.httpStatusCode === 501 || e.$metadata?.httpStatusCode === 405;
}

const MiB = 1024 * 1024;
/** S3's smallest part but the last: the first part (the new head and the start of the tail) is this long. */
const MIN_PART = 5 * MiB;
/** Bytes per copied part (S3 allows up to 5 GiB). */
const COPY_PART = 1024 * MiB;

export interface S3StorageDeps {
  /** e.g. `s3://bucket/prefix` */
  description: string;
  /** Config path of the s3 block, for messages about secrets and files. */
  field: string;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** Keys per list page (S3's maximum and default is 1000). */
  pageSize?: number;
}

export async function createS3Storage(cfg: S3Location, deps: S3StorageDeps): Promise<S3Storage> {
  return new S3Storage(await createS3Client(cfg, deps), cfg, deps);
}

/** Pauses before each retry of an abort that lib-storage could not complete: about 8 s in all. */
const ABORT_RETRY_DELAYS_MS = [0, 250, 500, 1000, 2000, 4000];

export class S3Storage implements Storage {
  readonly description: string;
  private readonly bucket: string;
  private readonly logger: Logger;
  private readonly pageSize: number | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly cfg: Pick<S3Location, 'bucket' | 'partSizeMiB' | 'queueSize'>,
    deps: Pick<S3StorageDeps, 'description' | 'logger' | 'pageSize'>,
  ) {
    this.bucket = cfg.bucket;
    this.description = deps.description;
    this.logger = deps.logger;
    this.pageSize = deps.pageSize;
  }

  private ctx(op: CallContext['op'], key?: string): CallContext {
    return { location: this.description, op, key };
  }

  async put(key: string, body: Readable | Buffer, opts: CallOptions = {}): Promise<PutResult> {
    const ctx = this.ctx('put', key);
    if (Buffer.isBuffer(body)) {
      checkKey(key, ctx);
      throwIfAborted(opts.signal, ctx);
      try {
        const cmd = new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length });
        await this.client.send(cmd, { abortSignal: opts.signal });
        return { size: body.length };
      } catch (err) {
        throw s3Error(err, ctx, this.bucket);
      }
    }
    const source = new PutBody(body, opts.signal, ctx);
    let upload: Upload | undefined;
    try {
      checkKey(key, ctx);
      upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: source.stream },
        partSize: this.cfg.partSizeMiB * MiB,
        queueSize: this.cfg.queueSize,
        leavePartsOnError: false,
      });
      await upload.done();
      source.release();
      return { size: source.bytes };
    } catch (err) {
      if (upload) await this.ensureAborted(upload, ctx);
      throw source.failure(err, (e) => s3Error(e, ctx, this.bucket));
    }
  }

  /** Aborts a multipart upload of this class's own, retrying for a few seconds like ensureAborted, then reporting it. */
  private async abortUpload(uploadId: string, ctx: CallContext): Promise<void> {
    let last: unknown;
    for (const wait of ABORT_RETRY_DELAYS_MS) {
      await delay(wait);
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: ctx.key, UploadId: uploadId }));
        return;
      } catch (err) {
        last = err;
      }
    }
    this.logger.warn({ location: this.description, key: ctx.key, uploadId, err: s3Error(last, ctx, this.bucket) }, 'could not abort the multipart upload; its parts stay invisible until a lifecycle rule removes them');
  }

  /**
   * lib-storage aborts the multipart upload itself on failure; when that
   * abort failed too (server unreachable), it is tried again here for a few
   * seconds (a short outage must not leave parts behind) and, failing still,
   * reported so the parts can be found later.
   */
  private async ensureAborted(upload: Upload, ctx: CallContext): Promise<void> {
    // lib-storage keeps these fields private; pending means "created and not yet aborted or completed".
    const internals = upload as unknown as { uploadId?: string; abortMultipartUploadCommand: unknown };
    const uploadId = internals.uploadId;
    const pending = internals.abortMultipartUploadCommand !== null;
    if (uploadId === undefined || !pending) return;
    await this.abortUpload(uploadId, ctx);
  }

  /**
   * `head` + `source`'s bytes from its offset, as one multipart upload: part 1 is the head and the first
   * MIN_PART bytes of the tail (downloaded: S3 wants every part but the last to be at least 5 MiB), every
   * other part is copied by the server (UploadPartCopy, each pinned to the source's ETag, so a source
   * replaced meanwhile fails the copy instead of mixing two objects). A tail too short for that is
   * STORAGE_UNSUPPORTED (spliceObject streams it), as is a server without UploadPartCopy.
   */
  async putSpliced(key: string, head: Buffer, source: SpliceSource, opts: CallOptions = {}): Promise<PutResult> {
    const ctx = this.ctx('put', key);
    checkKey(key, ctx);
    checkKey(source.key, ctx);
    throwIfAborted(opts.signal, ctx);
    const tail = source.size - source.offset;
    if (tail <= MIN_PART) throw storageError('STORAGE_UNSUPPORTED', ctx, 'the copied tail is too short for a server-side copy');
    const signal = { abortSignal: opts.signal };
    let uploadId: string | undefined;
    try {
      const etag = (await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: source.key }), signal)).ETag;
      // Every copied part is pinned to this version of the source; a server that names none is not trusted to copy.
      if (!etag) throw storageError('STORAGE_UNSUPPORTED', ctx, 'the server gave the source object no ETag to pin the copy to');
      uploadId = (await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }), signal)).UploadId;
      const first = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: source.key, Range: `bytes=${source.offset}-${source.offset + MIN_PART - 1}`, IfMatch: etag }), signal);
      const firstBody = Buffer.concat([head, Buffer.from(await first.Body!.transformToByteArray())]);
      const parts = [{ PartNumber: 1, ETag: (await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: 1, Body: firstBody, ContentLength: firstBody.length }), signal)).ETag }];
      for (let start = source.offset + MIN_PART, n = 2; start < source.size; start += COPY_PART, n++) {
        const end = Math.min(source.size, start + COPY_PART) - 1;
        const copy = new UploadPartCopyCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: n,
          CopySource: `${this.bucket}/${source.key.split('/').map(encodeURIComponent).join('/')}`,
          CopySourceRange: `bytes=${start}-${end}`,
          CopySourceIfMatch: etag,
        });
        parts.push({ PartNumber: n, ETag: (await this.client.send(copy, signal)).CopyPartResult?.ETag });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }), signal);
      return { size: head.length + tail };
    } catch (err) {
      if (uploadId) await this.abortUpload(uploadId, ctx);
      if (isBackupError(err, 'STORAGE_UNSUPPORTED')) throw err;
      if (isUnsupported(err)) throw storageError('STORAGE_UNSUPPORTED', ctx, `the server does not copy parts (UploadPartCopy): ${(err as Error).name}`, err);
      throw s3Error(err, ctx, this.bucket);
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    const ctx = this.ctx('get', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    const range = opts.range ? `bytes=${opts.range.start}-${opts.range.end ?? ''}` : undefined;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }), { abortSignal: opts.signal });
      const body = mapStreamErrors(out.Body as Readable, (err) => s3Error(err, ctx, this.bucket));
      return opts.signal ? addAbortSignal(opts.signal, body) : body;
    } catch (err) {
      throw s3Error(err, ctx, this.bucket);
    }
  }

  async *list(prefix: string, opts: CallOptions = {}): AsyncIterable<ObjectInfo> {
    const ctx = this.ctx('list');
    checkPrefix(prefix, ctx);
    let token: string | undefined;
    do {
      throwIfAborted(opts.signal, ctx);
      let page;
      try {
        const cmd = new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: this.pageSize });
        page = await this.client.send(cmd, { abortSignal: opts.signal });
      } catch (err) {
        throw s3Error(err, ctx, this.bucket);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, modifiedAt: o.LastModified };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async stat(key: string, opts: CallOptions = {}): Promise<ObjectInfo> {
    const ctx = this.ctx('stat', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: opts.signal });
      return { key, size: head.ContentLength ?? 0, modifiedAt: head.LastModified };
    } catch (err) {
      const mapped = s3Error(err, ctx, this.bucket);
      // HEAD answers a bare 404 for a missing bucket too: tell the two apart.
      if (mapped.code === 'STORAGE_NOT_FOUND') await this.checkBucket(ctx, opts.signal);
      throw mapped;
    }
  }

  async delete(key: string, opts: CallOptions = {}): Promise<void> {
    const ctx = this.ctx('delete', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: opts.signal });
    } catch (err) {
      const mapped = s3Error(err, ctx, this.bucket);
      if (mapped.code !== 'STORAGE_NOT_FOUND') throw mapped;
    }
  }

  /** HeadBucket: the bucket exists and these credentials may use it. */

  /** Incomplete multipart uploads are listed by listIncompleteUploads (see Storage.sweepIncomplete). */
  sweepIncomplete(): Promise<number> {
    return Promise.resolve(0);
  }

  async *listIncompleteUploads(prefix: string, opts: CallOptions = {}): AsyncIterable<IncompleteUpload> {
    const ctx = this.ctx('list');
    checkPrefix(prefix, ctx);
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      throwIfAborted(opts.signal, ctx);
      let page;
      try {
        const cmd = new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker, MaxUploads: this.pageSize });
        page = await this.client.send(cmd, { abortSignal: opts.signal });
      } catch (err) {
        if (isUnsupported(err)) {
          throw storageError('STORAGE_UNSUPPORTED', ctx, `the server does not support listing incomplete multipart uploads (ListMultipartUploads): ${(err as Error).name}`, err);
        }
        throw s3Error(err, ctx, this.bucket);
      }
      for (const u of page.Uploads ?? []) {
        if (u.Key !== undefined && u.UploadId !== undefined) yield { key: u.Key, uploadId: u.UploadId, ...(u.Initiated ? { initiated: u.Initiated } : {}) };
      }
      if (!page.IsTruncated) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (keyMarker === undefined && uploadIdMarker === undefined) return;
    }
  }

  async abortIncompleteUpload(key: string, uploadId: string, opts: CallOptions = {}): Promise<void> {
    const ctx = this.ctx('delete', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal: opts.signal });
    } catch (err) {
      const mapped = s3Error(err, ctx, this.bucket);
      // NoSuchUpload: completed or aborted meanwhile.
      if (mapped.code !== 'STORAGE_NOT_FOUND' && (err as { name?: string }).name !== 'NoSuchUpload') throw mapped;
    }
  }

  async preflight(opts: CallOptions = {}): Promise<void> {
    const ctx = this.ctx('preflight');
    throwIfAborted(opts.signal, ctx);
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: opts.signal });
    } catch (err) {
      throw s3Error(err, ctx, this.bucket);
    }
  }

  /** Throws STORAGE_BUCKET_MISSING when the bucket is gone; other failures are left to the caller's error. */
  private async checkBucket(ctx: CallContext, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal });
    } catch (err) {
      if (s3Error(err, { ...ctx, op: 'preflight' }, this.bucket).code === 'STORAGE_BUCKET_MISSING') {
        throw storageError('STORAGE_BUCKET_MISSING', ctx, `bucket "${this.bucket}" does not exist`, err);
      }
    }
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }
}
