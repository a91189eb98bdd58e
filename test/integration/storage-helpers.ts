/** Streams and assertions shared by the storage contract suite and the targeted storage tests. */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'vitest';
import { BackupError, type ErrorCode } from '../../runner/errors.js';
import type { ObjectInfo, Storage } from '../../runner/storage/types.js';

export const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

export interface Generated {
  /** A stream of unknown length (no size is known to the consumer up front). */
  stream: Readable;
  /** sha256 (hex) of the bytes produced so far; of the whole body once it ended. */
  sha256(): string;
  produced(): number;
}

export interface GenerateOptions {
  /** Fail the stream with an error once this many bytes were produced. */
  failAt?: number;
  /** Called after each chunk with the bytes produced so far. */
  onChunk?: (produced: number) => void;
}

/** Random bytes produced on demand (backpressure respected), hashed as they go. */
export function generated(bytes: number, opts: GenerateOptions = {}): Generated {
  const hash = createHash('sha256');
  let produced = 0;
  let digest: string | undefined;
  const stream = new Readable({
    highWaterMark: CHUNK,
    read() {
      if (opts.failAt !== undefined && produced >= opts.failAt) {
        this.destroy(new Error(`source failed after ${produced} bytes`));
        return;
      }
      if (produced >= bytes) {
        this.push(null);
        return;
      }
      const chunk = randomBytes(Math.min(CHUNK, bytes - produced));
      hash.update(chunk);
      produced += chunk.length;
      opts.onChunk?.(produced);
      this.push(chunk);
    },
  });
  return {
    stream,
    sha256: () => (digest ??= hash.digest('hex')),
    produced: () => produced,
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function sha256Of(stream: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    hash.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

export async function listAll(storage: Storage, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of storage.list(prefix)) out.push(o);
  return out;
}

/** Awaits `p`, expecting a BackupError with `code`; returns it for further checks. */
export async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<BackupError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a ${code} error`).toBeInstanceOf(BackupError);
  const err = caught as BackupError;
  expect(err.code, err.message).toBe(code);
  return err;
}

let gcFn: (() => void) | undefined;

/**
 * Two forced full GCs, so that memory samples show what is retained rather
 * than garbage: V8 releases ArrayBuffer backing stores on a background sweep,
 * which the second collection waits for.
 */
export function forceGc(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
}

/** JS heap plus Buffer memory: what a backend holding a body in memory would grow. */
export function heapAndBuffers(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
