import { Readable } from 'node:stream';

/**
 * Reads the first `bytes` of `input` (fewer when it is shorter) and returns
 * them with a stream of the whole input, those bytes included: a format or a
 * compression can be recognised before anything consumes the data.
 */
export function peek(input: Readable, bytes: number): Promise<{ head: Buffer; stream: Readable }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const cleanup = (): void => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
    };
    const finish = (ended: boolean): void => {
      cleanup();
      const head = Buffer.concat(chunks);
      if (ended) return resolve({ head: head.subarray(0, bytes), stream: Readable.from(head.length > 0 ? [head] : []) });
      input.unshift(head);
      resolve({ head: head.subarray(0, bytes), stream: input });
    };
    function onReadable(): void {
      let c: Buffer | null;
      while ((c = input.read() as Buffer | null) !== null) {
        chunks.push(c);
        n += c.length;
        if (n >= bytes) return finish(false);
      }
    }
    function onEnd(): void {
      finish(true);
    }
    function onError(err: Error): void {
      cleanup();
      reject(err);
    }
    input.on('readable', onReadable);
    input.once('end', onEnd);
    input.once('error', onError);
  });
}
