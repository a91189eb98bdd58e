import type { Logger } from '../logger.js';
import type { ProgressEvent } from '../runtime.js';
import { humanBytes } from '../render.js';

/**
 * Shows transfer progress: a live line on a terminal, or a log line every
 * `logEveryMs` otherwise (so container logs show a long backup is alive).
 */
export function progressReporter(stream: NodeJS.WriteStream, logger: Logger, logEveryMs = 10_000): { onProgress: (e: ProgressEvent) => void; done: () => void } {
  const started = Date.now();
  let lastLog = 0;
  let drawn = false;
  const onProgress = (e: ProgressEvent): void => {
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    const rate = `${humanBytes(e.bytesIn / secs)}/s`;
    const of = e.total ? ` of ${humanBytes(e.total)}` : '';
    const out = e.bytesOut !== undefined ? `, ${humanBytes(e.bytesOut)} stored` : '';
    const line = `${e.phase}: ${humanBytes(e.bytesIn)}${of}${out} at ${rate}${e.location ? ` (${e.location})` : ''}`;
    if (stream.isTTY) {
      stream.write(`\r\x1b[2K${line}`);
      drawn = true;
    } else if (Date.now() - lastLog >= logEveryMs) {
      lastLog = Date.now();
      logger.info({ phase: e.phase, bytes: e.bytesIn, bytesStored: e.bytesOut, total: e.total }, line);
    }
  };
  const done = (): void => {
    if (drawn) stream.write('\r\x1b[2K');
  };
  return { onProgress, done };
}
