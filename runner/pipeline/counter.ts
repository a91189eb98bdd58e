import { Transform, type TransformCallback } from 'node:stream';

/** Counts bytes passing through; read `bytes` at any time for progress. */
export class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}
