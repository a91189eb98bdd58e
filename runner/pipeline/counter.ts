import { Transform, type TransformCallback, Writable } from 'node:stream';

/** Counts bytes passing through; read `bytes` at any time for progress. */
export class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** A sink that keeps nothing: the end of a pipeline read only for what the stages before it check or count. */
export function discard(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}
