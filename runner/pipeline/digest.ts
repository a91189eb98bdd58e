import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BackupError } from '../errors.js';

export interface Expectation {
  size: number;
  sha256: string;
  /** Names the object in the error, e.g. `s3 (s3://bucket/…/data.dump.zst)`. */
  what: string;
}

/** Passes bytes through unchanged while counting them and computing their sha256. */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private result: string | undefined;

  /**
   * With `expect`, the stream fails with INTEGRITY at its end when size or
   * sha256 differ, so nothing downstream ever sees a clean end of a bad object;
   * an object longer than expected fails as soon as it is.
   */
  constructor(private readonly expect?: Expectation) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    const e = this.expect;
    if (e && this.bytes > e.size) {
      return callback(new BackupError('INTEGRITY', `${e.what}: more than the expected ${e.size} bytes`, { details: { expected: e, actual: { size: this.bytes } } }));
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = this.hash.digest('hex');
    const e = this.expect;
    if (e && (e.size !== this.bytes || e.sha256 !== this.result)) {
      const what = e.size !== this.bytes ? `size ${this.bytes} != expected ${e.size}` : `sha256 ${this.result} != expected ${e.sha256}`;
      return callback(new BackupError('INTEGRITY', `${e.what}: ${what}`, { details: { expected: e, actual: { size: this.bytes, sha256: this.result } } }));
    }
    callback();
  }

  /** Hex sha256 of everything that passed; only valid after the stream finished. */
  get sha256(): string {
    if (this.result === undefined) throw new Error('digest read before the stream finished');
    return this.result;
  }
}
