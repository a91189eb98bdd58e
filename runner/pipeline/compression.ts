import { constants as zc, createGzip, createGunzip } from 'node:zlib';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Compression } from '../../api/index.js';
import { BackupError } from '../errors.js';
import { minimalEnv, run } from '../util/process.js';

export type Algorithm = 'zstd' | 'gzip' | 'none';

export interface CompressionPlan {
  algorithm: Algorithm;
  level: number | undefined;
  /** Suffix added to the data object's name: ".zst", ".gz" or "". */
  suffix: string;
}

const SUFFIX: Record<Algorithm, string> = { zstd: '.zst', gzip: '.gz', none: '' };
const DEFAULT_LEVEL: Record<Algorithm, number | undefined> = { zstd: 3, gzip: 6, none: undefined };

let zstdAvailable: Promise<boolean> | undefined;

/** Whether the zstd binary runs here; checked once per process. */
export function hasZstd(): Promise<boolean> {
  zstdAvailable ??= promisify(execFile)('zstd', ['--version'], { env: minimalEnv(process.env) }).then(
    () => true,
    () => false,
  );
  return zstdAvailable;
}

/** Pure: which algorithm and level a config asks for, given whether zstd exists. */
export function planCompression(cfg: Pick<Compression, 'algorithm' | 'level'>, zstd: boolean): CompressionPlan {
  const algorithm: Algorithm = cfg.algorithm === 'auto' ? (zstd ? 'zstd' : 'gzip') : cfg.algorithm;
  const level = algorithm === 'none' ? undefined : cfg.level ?? DEFAULT_LEVEL[algorithm];
  if (algorithm === 'gzip' && level !== undefined && level > 9) {
    return { algorithm, level: 9, suffix: SUFFIX.gzip };
  }
  return { algorithm, level, suffix: SUFFIX[algorithm] };
}

/** The algorithm a manifest names, when this runner knows it; MANIFEST_UNSUPPORTED otherwise (a later runner's). */
export function storedAlgorithm(name: string, where: string): Algorithm {
  if (Object.hasOwn(SUFFIX, name)) return name as Algorithm;
  throw new BackupError('MANIFEST_UNSUPPORTED', `${where}: compression "${name}" is not one this runner reads (${Object.keys(SUFFIX).join(', ')}); upgrade the runner to use this backup`, {
    details: { compression: name },
  });
}

export interface Stage {
  output: Readable;
  /** Settles when the stage has consumed its input and exited; rejects on failure. */
  done: Promise<void>;
}

/** A stage's failure also surfaces through its output stream; callers await `done` only when they need the cause. */
function observed(stage: Stage): Stage {
  stage.done.catch(() => undefined);
  return stage;
}

function zstdStage(input: Readable, args: string[], signal: AbortSignal | undefined): Stage {
  // zstd -T0 compresses on every core, outside Node's event loop. Like every
  // child that is not a database tool, it gets only minimalEnv (run's default).
  const p = run('zstd', args, { signal, errorCode: 'PROCESS_FAILED' });
  const feed = pipeline(input, p.stdin!, { signal }).catch((err: unknown) => {
    p.child.kill('SIGTERM');
    throw err;
  });
  return observed({ output: p.stdout!, done: Promise.all([feed, p.exited]).then(() => undefined) });
}

function zlibStage(input: Readable, transform: NodeJS.ReadWriteStream & Readable, signal: AbortSignal | undefined): Stage {
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  const done = pipeline(input, transform, out, { signal });
  return observed({ output: out, done });
}

export interface PipeCompressor {
  /** The compressor's stdin: the write end of an OS pipe, for a producer process to write into directly. */
  input: Writable;
  stage: Stage;
  /** Closes this process's copy of the pipe's write end, once the producer holds its own. */
  release(): void;
  /** Stops the compressor (the producer never started). */
  kill(): void;
}

/**
 * Starts zstd reading from an OS pipe that another process writes into:
 * the uncompressed bytes never pass through this process. Undefined when the
 * plan does not compress with zstd.
 */
export function pipeCompressor(plan: CompressionPlan, signal?: AbortSignal): PipeCompressor | undefined {
  if (plan.algorithm !== 'zstd') return undefined;
  const p = run('zstd', ['-q', '-c', '-T0', `-${plan.level ?? 3}`], { signal, errorCode: 'PROCESS_FAILED' });
  const input = p.stdin!;
  return {
    input,
    stage: observed({ output: p.stdout!, done: p.exited }),
    release: () => input.destroy(),
    kill: () => {
      input.destroy();
      p.child.kill('SIGTERM');
    },
  };
}

/** Compresses `input` once, in a stage whose failure rejects `done`. */
export function compress(input: Readable, plan: CompressionPlan, signal?: AbortSignal): Stage {
  switch (plan.algorithm) {
    case 'zstd':
      return zstdStage(input, ['-q', '-c', '-T0', `-${plan.level ?? 3}`], signal);
    case 'gzip':
      return zlibStage(input, createGzip({ level: plan.level ?? zc.Z_DEFAULT_COMPRESSION }), signal);
    case 'none':
      return { output: input, done: Promise.resolve() };
  }
}

export function decompress(input: Readable, algorithm: Algorithm, signal?: AbortSignal): Stage {
  switch (algorithm) {
    case 'zstd':
      return zstdStage(input, ['-q', '-d', '-c'], signal);
    case 'gzip':
      return zlibStage(input, createGunzip(), signal);
    case 'none':
      return { output: input, done: Promise.resolve() };
  }
}
