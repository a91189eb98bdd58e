/** The part of s3rver 3.x (no bundled types) that testenv/s3.ts uses. */
declare module 's3rver' {
  import type { Server } from 'node:http';

  interface S3rverOptions {
    address?: string;
    port?: number;
    directory?: string;
    silent?: boolean;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    /** With both, s3rver serves HTTPS. */
    key?: Buffer;
    cert?: Buffer;
    configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
  }

  interface KoaContext {
    method: string;
    path: string;
    query: Record<string, string | string[] | undefined>;
    status: number;
    body: unknown;
    /** Response content type. */
    type: string;
    headers: Record<string, string | string[] | undefined>;
  }

  type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

  class S3rver {
    constructor(options?: S3rverOptions);
    /** Koa's middleware stack; composed when the server starts listening. */
    middleware: Middleware[];
    httpServer?: Server;
    store: {
      putBucket(name: string): Promise<unknown>;
      getBucket(name: string): Promise<unknown>;
      getResourcePath(bucket: string, key: string | undefined, resource: string): string;
    };
    run(): Promise<{ address: string; port: number }>;
    close(): Promise<void>;
  }
  export default S3rver;
}
