/**
 * Google Cloud Storage (and its emulators, through `apiEndpoint`).
 *
 * Invariants:
 * - A stream put is one resumable upload sent as a single request (no
 *   `chunkSize`: the SDK then holds only the chunk in flight, and emulators
 *   accept it). GCS creates the object only when the upload completes, so a
 *   failed or aborted put leaves no object; the abandoned session expires on
 *   its own (GCS drops unfinished sessions after a week).
 * - Each stream put has its own HTTP agent, destroyed when the put settles:
 *   the SDK does not abort an upload request whose stream is destroyed, so
 *   without this a failed put would leave its request hanging open.
 * - A Buffer put is one simple (multipart) upload: atomic and replayable.
 * - The SDK's own retries are off: the retry wrapper decides, once.
 */
import { once } from 'node:events';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { addAbortSignal, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Bucket, File, Storage as GcsClient, StorageOptions } from '@google-cloud/storage';
import type { GcsLocation } from '../../api/index.js';
import type { Logger } from '../logger.js';
import { PutBody } from './body.js';
import { throwIfAborted, type CallContext } from './errors.js';
import { gcsError } from './gcs-errors.js';
import { checkKey, checkPrefix } from './keys.js';
import { mapStreamErrors } from './streams.js';
import type { CallOptions, GetOptions, ObjectInfo, PutResult, Storage } from './types.js';

const CONTENT_TYPE = 'application/octet-stream';

export interface GcsStorageDeps {
  /** e.g. `gs://bucket/prefix` */
  description: string;
  logger: Logger;
  /** Objects per list page (the API's maximum is 1000). */
  pageSize?: number;
}

/** Client options for one location: key file or default credentials; a custom endpoint authenticates only with a key file. */
export function gcsClientOptions(cfg: GcsLocation): StorageOptions {
  return {
    projectId: cfg.projectId,
    keyFilename: cfg.keyFile,
    apiEndpoint: cfg.apiEndpoint,
    useAuthWithCustomEndpoint: cfg.apiEndpoint !== undefined && cfg.keyFile !== undefined,
    retryOptions: { autoRetry: false },
  };
}

export async function createGcsStorage(cfg: GcsLocation, deps: GcsStorageDeps): Promise<GcsStorage> {
  const { Storage: Client } = await import('@google-cloud/storage');
  return new GcsStorage(new Client(gcsClientOptions(cfg)), cfg.bucket, deps);
}

export class GcsStorage implements Storage {
  readonly description: string;
  private readonly bucket: Bucket;
  private readonly pageSize: number;
  private readonly plainHttp: boolean;

  constructor(
    client: GcsClient,
    private readonly bucketName: string,
    deps: GcsStorageDeps,
  ) {
    this.bucket = client.bucket(bucketName);
    this.description = deps.description;
    this.pageSize = deps.pageSize ?? 1000;
    this.plainHttp = client.apiEndpoint.startsWith('http://');
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
        await this.bucket.file(key).save(body, { resumable: false, contentType: CONTENT_TYPE });
        return { size: body.length };
      } catch (err) {
        throw gcsError(err, ctx, this.bucketName);
      }
    }
    const source = new PutBody(body, opts.signal, ctx);
    const agent = this.plainHttp ? new HttpAgent() : new HttpsAgent();
    try {
      checkKey(key, ctx);
      const file = this.bucket.file(key);
      routeThrough(file, agent);
      await pipeline(source.stream, file.createWriteStream({ resumable: true, contentType: CONTENT_TYPE }));
      source.release();
      return { size: source.bytes };
    } catch (err) {
      throw source.failure(err, (e) => gcsError(e, ctx, this.bucketName));
    } finally {
      agent.destroy();
    }
  }

  /** Resolves once the response headers arrived, so a missing object rejects here rather than mid-stream. */
  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    const ctx = this.ctx('get', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    const stream = this.bucket.file(key).createReadStream(opts.range ? { start: opts.range.start, end: opts.range.end } : {});
    // The SDK sends the request on the first read; read(0) starts it without consuming data.
    stream.read(0);
    try {
      for (;;) {
        const [res] = (await once(stream, 'response', { signal: opts.signal })) as [{ statusCode?: number }];
        // An error status is followed by an 'error' event, which `once` turns into a rejection.
        if ((res.statusCode ?? 200) < 400) break;
      }
    } catch (err) {
      stream.destroy();
      throw gcsError(err, ctx, this.bucketName);
    }
    const mapped = mapStreamErrors(stream, (err) => gcsError(err, ctx, this.bucketName));
    return opts.signal ? addAbortSignal(opts.signal, mapped) : mapped;
  }

  async *list(prefix: string, opts: CallOptions = {}): AsyncIterable<ObjectInfo> {
    const ctx = this.ctx('list');
    checkPrefix(prefix, ctx);
    let pageToken: string | undefined;
    do {
      throwIfAborted(opts.signal, ctx);
      let page;
      try {
        page = await this.bucket.getFiles({ prefix, autoPaginate: false, maxResults: this.pageSize, pageToken });
      } catch (err) {
        throw gcsError(err, ctx, this.bucketName);
      }
      const [files, next] = page;
      for (const f of files) yield { key: f.name, size: Number(f.metadata.size ?? 0), modifiedAt: dateOf(f.metadata.updated) };
      pageToken = (next as { pageToken?: string } | null)?.pageToken;
    } while (pageToken !== undefined);
  }

  async stat(key: string, opts: CallOptions = {}): Promise<ObjectInfo> {
    const ctx = this.ctx('stat', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    try {
      const [meta] = await this.bucket.file(key).getMetadata();
      return { key, size: Number(meta.size ?? 0), modifiedAt: dateOf(meta.updated) };
    } catch (err) {
      throw gcsError(err, ctx, this.bucketName);
    }
  }

  async delete(key: string, opts: CallOptions = {}): Promise<void> {
    const ctx = this.ctx('delete', key);
    checkKey(key, ctx);
    throwIfAborted(opts.signal, ctx);
    try {
      await this.bucket.file(key).delete({ ignoreNotFound: true });
    } catch (err) {
      throw gcsError(err, ctx, this.bucketName);
    }
  }

  /** Lists at most one object: proves the bucket exists and may be listed with these credentials. */

  /** Nothing here outlives a failed put (see Storage.sweepIncomplete). */
  sweepIncomplete(): Promise<number> {
    return Promise.resolve(0);
  }
  async preflight(opts: CallOptions = {}): Promise<void> {
    const ctx = this.ctx('preflight');
    throwIfAborted(opts.signal, ctx);
    try {
      await this.bucket.getFiles({ autoPaginate: false, maxResults: 1 });
    } catch (err) {
      throw gcsError(err, ctx, this.bucketName);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Sends every request made for `file` (session creation and upload) through `agent`; gaxios honours a per-request agent. */
function routeThrough(file: File, agent: HttpAgent): void {
  type Interceptor = (typeof file.interceptors)[number];
  file.interceptors.push({ request: (reqOpts) => Object.assign(reqOpts, { agent }) as unknown as ReturnType<Interceptor['request']> });
}

function dateOf(v: unknown): Date | undefined {
  return typeof v === 'string' ? new Date(v) : undefined;
}
