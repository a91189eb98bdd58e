import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Passes bytes through unchanged while counting them and computing their sha256. */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private result: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = this.hash.digest('hex');
    callback();
  }

  /** Hex sha256 of everything that passed; only valid after the stream finished. */
  get sha256(): string {
    if (this.result === undefined) throw new Error('digest read before the stream finished');
    return this.result;
  }
}
