import { Readable } from 'node:stream';

/**
 * Re-emits `source` with its errors mapped by `map` (e.g. a socket reset in
 * the middle of a download becomes STORAGE_UNAVAILABLE naming the location).
 * Destroying the result destroys `source`; backpressure is kept.
 */
export function mapStreamErrors(source: Readable, map: (err: unknown) => Error): Readable {
  async function* relay(): AsyncGenerator<Buffer> {
    const it = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await it.next();
      } catch (err) {
        throw map(err);
      }
      if (next.done) return;
      yield next.value;
    }
  }
  // Until the first read starts the relay, nothing else listens: an early error
  // would crash the process. It is kept by the stream and thrown by the iterator.
  source.on('error', () => undefined);
  const out = Readable.from(relay(), { objectMode: false, highWaterMark: 64 * 1024 });
  out.once('close', () => {
    if (!source.destroyed) source.destroy();
  });
  return out;
}
