/** The S3 backend's optional multipart calls, against a stub client (pages and errors as S3 and s3rver answer them). */
import type { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../runner/logger.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import { withRetry } from '../../runner/storage/retry.js';
import { S3Storage } from '../../runner/storage/s3.js';
import type { IncompleteUpload } from '../../runner/storage/types.js';

interface Sent {
  name: string;
  input: Record<string, unknown>;
}

/** A client whose `send` answers each command from `answer` and records it. */
function stub(answer: (c: Sent) => unknown): { client: S3Client; sent: Sent[] } {
  const sent: Sent[] = [];
  const client = {
    send: (cmd: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const c = { name: cmd.constructor.name, input: cmd.input };
      sent.push(c);
      try {
        return Promise.resolve(answer(c));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    destroy: () => undefined,
  } as unknown as S3Client;
  return { client, sent };
}

const s3 = (client: S3Client): S3Storage => new S3Storage(client, { bucket: 'shared', partSizeMiB: 8, queueSize: 2 }, { description: 's3://shared', logger: silentLogger() });

async function all(it: AsyncIterable<IncompleteUpload>): Promise<IncompleteUpload[]> {
  const out: IncompleteUpload[] = [];
  for await (const u of it) out.push(u);
  return out;
}

const sdkError = (name: string, status: number): Error => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

describe('S3Storage.listIncompleteUploads', () => {
  it('pages through ListMultipartUploads with the key and upload-id markers', async () => {
    const initiated = new Date('2026-11-20T00:00:00Z');
    const { client, sent } = stub((c) =>
      c.input.KeyMarker === undefined
        ? { IsTruncated: true, NextKeyMarker: 'shop/orders/b', NextUploadIdMarker: 'u2', Uploads: [{ Key: 'shop/orders/a', UploadId: 'u1', Initiated: initiated }, { Key: 'shop/orders/b', UploadId: 'u2' }] }
        : { IsTruncated: false, Uploads: [{ Key: 'shop/orders/c', UploadId: 'u3', Initiated: initiated }] },
    );
    expect(await all(s3(client).listIncompleteUploads('shop/orders/'))).toEqual([
      { key: 'shop/orders/a', uploadId: 'u1', initiated },
      { key: 'shop/orders/b', uploadId: 'u2' },
      { key: 'shop/orders/c', uploadId: 'u3', initiated },
    ]);
    expect(sent.map((c) => [c.name, c.input.Prefix, c.input.KeyMarker, c.input.UploadIdMarker])).toEqual([
      ['ListMultipartUploadsCommand', 'shop/orders/', undefined, undefined],
      ['ListMultipartUploadsCommand', 'shop/orders/', 'shop/orders/b', 'u2'],
    ]);
  });

  it.each([
    ['NotImplemented (s3rver)', sdkError('NotImplemented', 501)],
    ['MethodNotAllowed', sdkError('MethodNotAllowed', 405)],
  ])('%s is STORAGE_UNSUPPORTED, and is not retried', async (_what, err) => {
    const { client, sent } = stub(() => {
      throw err;
    });
    const storage = withRetry(s3(client), { attempts: 3, baseDelayMs: 1, maxDelayMs: 1, logger: silentLogger() });
    await expect(all(storage.listIncompleteUploads!('shop/orders/'))).rejects.toMatchObject({ code: 'STORAGE_UNSUPPORTED' });
    expect(sent).toHaveLength(1);
  });

  it('access denied stays STORAGE_DENIED', async () => {
    const { client } = stub(() => {
      throw sdkError('AccessDenied', 403);
    });
    await expect(all(s3(client).listIncompleteUploads('shop/orders/'))).rejects.toMatchObject({ code: 'STORAGE_DENIED' });
  });
});

describe('S3Storage.abortIncompleteUpload', () => {
  it('sends AbortMultipartUpload for the key and upload id; an upload already gone is fine', async () => {
    const { client, sent } = stub((c) => {
      if (c.input.UploadId === 'gone') throw sdkError('NoSuchUpload', 404);
      return {};
    });
    const storage = s3(client);
    await storage.abortIncompleteUpload('shop/orders/20261120T000000Z-aaaa/data.dump.zst', 'u1');
    await storage.abortIncompleteUpload('shop/orders/20261120T000000Z-aaaa/data.dump.zst', 'gone');
    expect(sent.map((c) => [c.name, c.input.Bucket, c.input.Key, c.input.UploadId])).toEqual([
      ['AbortMultipartUploadCommand', 'shared', 'shop/orders/20261120T000000Z-aaaa/data.dump.zst', 'u1'],
      ['AbortMultipartUploadCommand', 'shared', 'shop/orders/20261120T000000Z-aaaa/data.dump.zst', 'gone'],
    ]);
  });
});

describe('the retry wrapper and the optional calls', () => {
  it('has them exactly when the wrapped backend has them', () => {
    const opts = { attempts: 3, baseDelayMs: 1, maxDelayMs: 1, logger: silentLogger() };
    const withCalls = withRetry(s3(stub(() => ({})).client), opts);
    expect(typeof withCalls.listIncompleteUploads).toBe('function');
    expect(typeof withCalls.abortIncompleteUpload).toBe('function');
    const without = withRetry(new MemoryStorage(), opts);
    expect('listIncompleteUploads' in without && without.listIncompleteUploads !== undefined).toBe(false);
    expect('abortIncompleteUpload' in without && without.abortIncompleteUpload !== undefined).toBe(false);
  });
});
