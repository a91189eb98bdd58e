/**
 * Handing a child's stdout pipe to another process without losing bytes.
 *
 * Node starts reading a child's stdout as soon as it creates the stream,
 * buffering up to 64 KiB in this process. If that stream is later passed as
 * another child's stdin (a file descriptor), the buffered bytes never reach
 * it. `holdChildPipe` stops that early read; reading the stream normally
 * (pipeline, 'data') starts it again.
 */
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';

interface PipeInternals {
  _handle?: { reading?: boolean; readStop?: () => number } | null;
  _readableState?: { reading?: boolean };
}

/**
 * Call synchronously right after spawning, before any I/O callback ran. Uses
 * the same internal fields Node's child_process resets when it passes a
 * stream as stdio.
 */
export function holdChildPipe(stream: Readable): void {
  const s = stream as unknown as PipeInternals;
  const handle = s._handle;
  if (handle?.reading && typeof handle.readStop === 'function') {
    handle.reading = false;
    handle.readStop();
  }
  if (s._readableState) s._readableState.reading = false;
}

/**
 * True when `stream` can be given to a child as its stdin file descriptor with
 * nothing lost: an OS pipe or socket that nobody in this process is consuming
 * and that holds no buffered bytes. Check and spawn in the same tick.
 */
export function canPassAsStdio(stream: Readable): boolean {
  const s = stream as unknown as PipeInternals;
  return (
    stream instanceof Socket &&
    s._handle != null &&
    stream.readableLength === 0 &&
    stream.readableFlowing !== true &&
    !stream.readableEnded &&
    !stream.destroyed
  );
}
