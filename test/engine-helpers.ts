/** Helpers of the engine integration tests (PostgreSQL, MariaDB): a dump to a file, an expected rejection, a closed port. */
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
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

const REPO = fileURLToPath(new URL('..', import.meta.url));

/**
 * The command of a shipped tool (`db-backup-tool <name>`) as the tests run it: from the sources, with tsx's
 * loader in the same process (the tsx command runs a child that would not inherit descriptor 3).
 */
export function shippedToolCommand(name: string): string[] {
  return [process.execPath, '--import', pathToFileURL(join(REPO, 'node_modules/tsx/dist/loader.mjs')).href, join(REPO, 'tools/main.ts'), name];
}
