/**
 * A new object made of some new bytes followed by the tail of a stored
 * object (rekey: a new age header before the payload as it is). Where the
 * backend copies server-side (S3 UploadPartCopy) the tail never passes
 * through this process; elsewhere it is streamed through `put`, one chunk
 * at a time.
 */
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isBackupError } from '../errors.js';
import type { CallOptions, PutResult, SpliceSource, Storage } from './types.js';

export interface SpliceResult extends PutResult {
  /** Whether the server copied the tail itself. */
  serverSide: boolean;
}

/** Stores `head` + the bytes of `source` from its offset under `key`; atomic like put. */
export async function spliceObject(storage: Storage, key: string, head: Buffer, source: SpliceSource, opts: CallOptions = {}): Promise<SpliceResult> {
  if (storage.putSpliced) {
    try {
      return { ...(await storage.putSpliced(key, head, source, opts)), serverSide: true };
    } catch (err) {
      if (!isBackupError(err, 'STORAGE_UNSUPPORTED')) throw err;
    }
  }
  const body = new PassThrough();
  body.write(head);
  const tail = source.offset < source.size ? await storage.get(source.key, { ...opts, range: { start: source.offset, end: source.size - 1 } }) : undefined;
  const flow = tail ? pipeline(tail, body) : Promise.resolve(body.end());
  flow.catch((err: unknown) => body.destroy(err instanceof Error ? err : new Error(String(err))));
  const r = await storage.put(key, body, opts);
  await flow;
  return { ...r, serverSide: false };
}
