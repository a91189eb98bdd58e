/** Helpers of the engine integration tests (PostgreSQL, MariaDB): a dump to a file, an expected rejection, a closed port. */
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { expect } from 'vitest';
import type { DumpHandle } from '../runner/engines/types.js';
import { BackupError } from '../runner/errors.js';

/** Writes a dump's stream to `path` and waits for the dump process too. */
export async function dumpTo(handle: DumpHandle, path: string): Promise<void> {
  await Promise.all([pipeline(handle.stream!, createWriteStream(path)), handle.done]);
}

/** The BackupError `p` rejects with; fails the test when it resolves. */
export async function rejection(p: Promise<unknown>): Promise<BackupError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    return err as BackupError;
  }
  throw new Error('expected a rejection');
}

/** A loopback port nothing listens on (just closed). */
export function unusedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
