/**
 * Starts a real S3 server (s3rver) for tests, demos and benchmarks.
 *
 * Invariants:
 * - Each instance owns one temp directory (unless `dir` is given) and one
 *   loopback port; `stop()` is idempotent, drops open keep-alive connections
 *   and removes the directory it created.
 * - Requests are authenticated by access key id: s3rver knows only
 *   `S3RVER`, so an unknown key id is refused with InvalidAccessKeyId (403).
 *   s3rver does not verify SigV4 signatures, so a wrong *secret* key is not
 *   detected here.
 * - s3rver 3.7 lacks AbortMultipartUpload (it answers 405); this adds it, after
 *   s3rver's own authentication and bucket checks, by removing the upload's
 *   parts directory, so tests can prove that failed uploads are aborted.
 * - s3rver 3.7 lacks UploadPartCopy (it answers NotImplemented); this adds it
 *   the same way, after s3rver's own checks: the source range (and its
 *   x-amz-copy-source-if-match ETag) is read from the store and stored as
 *   the part, so the runner's server-side splice (rekey) runs against it.
 * - s3rver 3.7 encrypts continuation tokens with single DES, which OpenSSL 3
 *   (Node 17+) refuses, so every truncated listing fails with a 500. The
 *   `des` cipher is provided as 3DES with three equal keys, which is DES.
 * - s3rver 3.7 lists keys in directory-walk order (`a/b/c` before `a/b-e`);
 *   S3 lists them in UTF-8 byte order, page after page. The store's listing
 *   is wrapped to sort and paginate as S3 does.
 *
 * `spawnS3Server` runs it in a child process, for memory measurements of a
 * client. As a process: `npx tsx testenv/s3.ts [--port N] [--dir D] [--bucket B]...`
 * prints one JSON line `{"endpoint": ..., "dir": ...}` and runs until SIGINT/SIGTERM.
 */
import crypto from 'node:crypto';
import { runAsProcess, spawnAsProcess } from './main.js';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type S3rver from 's3rver';
import type { S3Location } from '../api/index.js';
import { silentLogger } from '../runner/logger.js';
import { s3ClientConfig } from '../runner/storage/s3-client.js';
import { S3Storage } from '../runner/storage/s3.js';
import type { Storage } from '../runner/storage/types.js';

export const S3_INSTALL_HINT = 'The S3 test server needs the npm package s3rver (a devDependency): run `npm ci` in the repository root.';
export const S3RVER_KEY = 'S3RVER';

export interface S3Server {
  /** e.g. http://127.0.0.1:41234 */
  endpoint: string;
  port: number;
  /** Directory holding the buckets. */
  dir: string;
  createBucket(name: string): Promise<void>;
  /** A location block for this server: path style, static keys inline. */
  location(bucket: string, overrides?: Partial<S3Location>): S3Location;
  /** A Storage on `bucket` (no retry wrapper), for tests that inspect or tamper with stored objects. */
  storage(bucket: string, overrides?: Partial<S3Location>): Storage;
  /** Ids of multipart uploads still open in `bucket` (parts stored, neither completed nor aborted). */
  openUploads(bucket: string): Promise<string[]>;
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Kept on stop when given; a fresh temp directory (removed on stop) otherwise. */
  dir?: string;
  buckets?: string[];
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: Buffer; cert: Buffer };
}

async function loadS3rver(): Promise<typeof S3rver> {
  try {
    return (await import('s3rver')).default;
  } catch (err) {
    throw new Error(`${S3_INSTALL_HINT} (${(err as Error).message})`, { cause: err });
  }
}

/** Adds AbortMultipartUpload (DELETE /bucket/key?uploadId=...) to s3rver, which answers it with MethodNotAllowed. */
function abortMultipartMiddleware(server: S3rver): S3rver['middleware'][number] {
  return async (ctx, next) => {
    const uploadId = ctx.method === 'DELETE' ? ctx.query.uploadId : undefined;
    if (typeof uploadId !== 'string') return next();
    try {
      await next();
    } catch (err) {
      if ((err as { code?: string }).code !== 'MethodNotAllowed') throw err;
      const bucket = decodeURIComponent(ctx.path.split('/')[1] ?? '');
      if (!/^[0-9a-f]+$/i.test(uploadId)) throw err;
      const dir = join(server.store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
      if (!existsSync(dir)) {
        ctx.status = 404;
        ctx.body = { Error: { Code: 'NoSuchUpload', Message: 'The specified upload does not exist.' } };
        return;
      }
      await rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = null;
    }
  };
}

interface StoredObject {
  content: NodeJS.ReadableStream | null;
  metadata: Record<string, string>;
}
interface PartStore {
  getObject(bucket: string, key: string, range?: { start: number; end: number }): Promise<StoredObject | null>;
  putPart(bucket: string, uploadId: string, partNumber: number, content: NodeJS.ReadableStream): Promise<{ md5: string }>;
}

/** Adds UploadPartCopy (PUT /bucket/key?uploadId=...&partNumber=N with x-amz-copy-source) to s3rver, which answers it with NotImplemented. */
function uploadPartCopyMiddleware(server: S3rver): S3rver['middleware'][number] {
  const xml = (ctx: Parameters<S3rver['middleware'][number]>[0], status: number, body: string): void => {
    ctx.status = status;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  };
  return async (ctx, next) => {
    const uploadId = ctx.method === 'PUT' ? ctx.query.uploadId : undefined;
    const copySource = ctx.headers['x-amz-copy-source'];
    if (typeof uploadId !== 'string' || typeof copySource !== 'string') return next();
    try {
      await next();
    } catch (err) {
      if ((err as { code?: string }).code !== 'NotImplemented') throw err;
      const bucket = decodeURIComponent(ctx.path.split('/')[1] ?? '');
      const [srcBucket, ...srcKey] = decodeURIComponent(copySource.replace(/^\//, '')).split('/');
      const store = server.store as unknown as PartStore;
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(ctx.headers['x-amz-copy-source-range'] ?? ''));
      const source = await store.getObject(srcBucket!, srcKey.join('/'), range ? { start: Number(range[1]), end: Number(range[2]) } : undefined);
      if (!source?.content) return xml(ctx, 404, '<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>');
      const ifMatch = ctx.headers['x-amz-copy-source-if-match'];
      if (typeof ifMatch === 'string' && ifMatch.replace(/"/g, '') !== String(source.metadata.etag).replace(/"/g, '')) {
        (source.content as unknown as { destroy(): void }).destroy();
        return xml(ctx, 412, '<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>');
      }
      const { md5 } = await store.putPart(bucket, uploadId, Number(ctx.query.partNumber), source.content);
      xml(ctx, 200, `<CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>"${md5}"</ETag></CopyPartResult>`);
    }
  };
}

/** Makes `createCipheriv('des', k, iv)` work under OpenSSL 3: DES-EDE3 with K1 = K2 = K3 is single DES. */
function provideDes(): void {
  try {
    crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return;
  } catch {
    // not available: shim it below
  }
  const mutable = crypto as unknown as Record<'createCipheriv' | 'createDecipheriv', (alg: string, key: Buffer, iv: Buffer) => unknown>;
  for (const fn of ['createCipheriv', 'createDecipheriv'] as const) {
    const original = mutable[fn].bind(crypto);
    mutable[fn] = (alg, key, iv) => (alg === 'des' ? original('des-ede3-cbc', Buffer.concat([key, key, key]), iv) : original(alg, key, iv));
  }
}

type ListObjects = (bucket: string, options: { startAfter?: string; maxKeys?: number }) => Promise<{ objects: { key: string }[]; isTruncated: boolean }>;

/** Makes s3rver's listing sorted by UTF-8 bytes, with `startAfter`/`maxKeys` applied to that order. */
function sortListings(server: S3rver): void {
  const store = server.store as unknown as { listObjects: ListObjects };
  const original = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    const all = await original(bucket, { ...options, startAfter: '', maxKeys: Infinity });
    const after = options.startAfter ?? '';
    const sorted = all.objects
      .sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)))
      .filter((o) => after === '' || Buffer.compare(Buffer.from(o.key), Buffer.from(after)) > 0);
    const max = options.maxKeys ?? Infinity;
    return { ...all, objects: sorted.slice(0, max), isTruncated: sorted.length > max };
  };
}

/** Where s3rver keeps the parts of open multipart uploads of `bucket` (one directory per upload id). */
function uploadsDir(dir: string, bucket: string): string {
  const FilesystemStore = createRequire(import.meta.url)('s3rver/lib/stores/filesystem.js') as new (root: string) => S3rver['store'];
  return new FilesystemStore(dir).getResourcePath(bucket, undefined, 'uploads');
}

/** The client side of a server at `endpoint` storing into `dir`, in this process or another. */
function handle(endpoint: string, dir: string, ops: { createBucket: (name: string) => Promise<void>; stop: () => Promise<void> }): S3Server {
  let stopped = false;
  const clients: S3Client[] = [];
  const location = (bucket: string, overrides: Partial<S3Location> = {}): S3Location => ({
    bucket,
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    insecureSkipTLSVerify: false,
    accessKeyId: { value: S3RVER_KEY },
    secretAccessKey: { value: S3RVER_KEY },
    partSizeMiB: 5,
    queueSize: 2,
    ...overrides,
  });
  return {
    endpoint,
    port: Number(new URL(endpoint).port),
    dir,
    createBucket: ops.createBucket,
    location,
    storage: (bucket, overrides) => {
      const cfg = location(bucket, overrides);
      const client = new S3Client(s3ClientConfig(cfg, { credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY } }));
      clients.push(client);
      return new S3Storage(client, cfg, { description: `s3://${bucket}`, logger: silentLogger() });
    },
    openUploads: async (bucket) => {
      try {
        return await readdir(uploadsDir(dir, bucket));
      } catch {
        return [];
      }
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      for (const c of clients) c.destroy();
      await ops.stop();
    },
  };
}

export async function startS3Server(opts: S3ServerOptions = {}): Promise<S3Server> {
  const S3rverClass = await loadS3rver();
  provideDes();
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 's3rver-')));
  const server = new S3rverClass({ address: '127.0.0.1', port: opts.port ?? 0, directory: dir, silent: true, vhostBuckets: false, ...opts.tls });
  server.middleware.unshift(abortMultipartMiddleware(server), uploadPartCopyMiddleware(server));
  sortListings(server);
  const { port } = await server.run();
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  for (const b of opts.buckets ?? []) await server.store.putBucket(b);
  return handle(endpoint, dir, {
    createBucket: async (name) => {
      await server.store.putBucket(name);
    },
    stop: async () => {
      server.httpServer?.closeAllConnections();
      await server.close();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  });
}

/**
 * Starts s3rver as a child process (`tsx testenv/s3.ts`), so that its
 * buffering of request bodies does not count against this process's memory
 * (plain HTTP, a fresh directory removed on stop).
 */
export async function spawnS3Server(opts: Pick<S3ServerOptions, 'buckets'> = {}): Promise<S3Server> {
  const args = (opts.buckets ?? []).flatMap((b) => ['--bucket', b]);
  const { info, stop } = await spawnAsProcess<{ endpoint: string; dir: string }>('s3', args, S3_INSTALL_HINT);
  const admin = new S3Client({ endpoint: info.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY } });
  return handle(info.endpoint, info.dir, {
    createBucket: async (name) => {
      await admin.send(new CreateBucketCommand({ Bucket: name }));
    },
    stop: async () => {
      admin.destroy();
      await stop();
    },
  });
}

/** Alias of startS3Server. */
export const startS3 = startS3Server;

function parseArgs(argv: string[]): S3ServerOptions {
  const opts: S3ServerOptions = { buckets: [] };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--port') opts.port = Number(value);
    else if (flag === '--dir') opts.dir = value;
    else if (flag === '--bucket') opts.buckets!.push(value);
    else throw new Error(`unknown flag ${flag}; usage: s3.ts [--port N] [--dir D] [--bucket B]...`);
    i++;
  }
  return opts;
}

runAsProcess(import.meta.url, async () => {
  const s3 = await startS3Server(parseArgs(process.argv.slice(2)));
  return { info: { endpoint: s3.endpoint, dir: s3.dir, accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY }, stop: () => s3.stop() };
});
