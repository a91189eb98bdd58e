import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupError, type ErrorCode } from '../errors.js';

/** Keeps the last `limit` bytes written to it: a bounded stderr tail. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit = 8192) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    // Drop whole chunks only while the rest still holds `limit` bytes.
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= this.limit) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8').trim();
  }
}

/**
 * What a child process may inherit from the runner's environment: where to
 * find programs and libraries, a home and temp directory, locale and time
 * zone. Never credentials (database passwords, cloud keys, tokens) or
 * variables that change a tool's behaviour (ZSTD_CLEVEL, PG*, LD_PRELOAD).
 */
export const CHILD_ENV_KEYS: readonly string[] = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'USER', 'LD_LIBRARY_PATH'];

/** Pure: the variables of `base` a child may inherit (CHILD_ENV_KEYS), nothing else. */
export function minimalEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of CHILD_ENV_KEYS) if (base[k] !== undefined) env[k] = base[k];
  return env;
}

export interface RunOptions {
  /** The child's whole environment; by default only minimalEnv(process.env). */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** What the child reads: 'pipe' (default), 'ignore', or a stream with a file descriptor. */
  stdin?: 'pipe' | 'ignore' | Readable;
  /** 'pipe' (default), 'ignore', or the write end of an OS pipe to write into directly. */
  stdout?: 'pipe' | 'ignore' | Writable;
  /** Error code used when the process exits non-zero. */
  errorCode?: ErrorCode;
  /** Maps a failure (exit code + stderr tail) to a more specific error, or undefined to keep the default. */
  classify?: (exitCode: number | null, stderr: string) => BackupError | undefined;
  /** Receives every stderr chunk (e.g. for progress parsing); the tail is kept anyway. */
  onStderr?: (chunk: Buffer) => void;
  /** The child's working directory (default: the runner's). */
  cwd?: string;
  /** Runs the child as this user and group (the runner running as root). */
  user?: { uid: number; gid: number };
  /** Opens file descriptor 3 of the child as a pipe it writes to (`RunningProcess.fd3`). */
  fd3?: boolean;
  /**
   * Runs the child as the leader of its own process group: an abort sends SIGTERM to the whole group (the
   * child and whatever it started), then SIGKILL after `graceMs`; and once the child has exited, its pipes
   * are closed after `graceMs` even when a process it left behind still holds them (the call ends).
   */
  group?: { graceMs: number };
}

export interface RunningProcess {
  child: ChildProcess;
  stdin: Writable | null;
  stdout: Readable | null;
  /** The child's descriptor 3 (with `fd3`), read here. */
  fd3?: Readable;
  /** Resolves on exit code 0; rejects with a BackupError carrying the exit code and a capped stderr tail. */
  exited: Promise<void>;
}

/**
 * Starts a process without a shell. The caller owns stdin/stdout; this owns
 * the exit status. Aborting `signal` kills the process (SIGTERM).
 */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): RunningProcess {
  const stdio: StdioOptions = [opts.stdin ?? 'pipe', opts.stdout ?? 'pipe', 'pipe', ...(opts.fd3 ? (['pipe'] as const) : [])];
  const child = spawn(command, args, {
    env: opts.env ?? minimalEnv(process.env),
    stdio,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
    ...(opts.group ? { detached: true } : { signal: opts.signal, killSignal: 'SIGTERM' as const }),
  });
  if (opts.group) superviseGroup(child, opts.group.graceMs, opts.signal);
  const tail = new TailBuffer();
  child.stderr?.on('data', (chunk: Buffer) => {
    tail.push(chunk);
    opts.onStderr?.(chunk);
  });
  const exited = new Promise<void>((resolve, reject) => {
    let spawnError: Error | undefined;
    child.on('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
      if (err.code === 'ENOENT') {
        reject(new BackupError('TOOL_MISSING', `${command} is not installed or not on PATH`, { cause: err, details: { command } }));
      }
    });
    // A child's stdin closed early (EPIPE) is reported through the exit status, not as a crash.
    child.stdin?.on('error', () => undefined);
    child.once('close', (code, signal) => {
      if (spawnError && (spawnError as NodeJS.ErrnoException).code === 'ENOENT') return;
      // A tool that finishes after it was told to stop has not done what the operation needed.
      if (code === 0 && !(opts.group && opts.signal?.aborted)) return resolve();
      const stderr = tail.toString();
      if (opts.signal?.aborted) {
        return reject(new BackupError('ABORTED', `${command} was stopped: operation aborted`, { cause: opts.signal.reason }));
      }
      const specific = opts.classify?.(code, stderr);
      if (specific) return reject(specific);
      const how = code === null ? `was killed by ${signal ?? 'a signal'}` : `exited with code ${code}`;
      reject(
        new BackupError(opts.errorCode ?? 'PROCESS_FAILED', `${command} ${how}${stderr ? `: ${stderr}` : ''}`, {
          details: { command, exitCode: code, signal, stderr },
        }),
      );
    });
  });
  // The exit promise is always observed by callers that care; avoid an unhandled rejection otherwise.
  exited.catch(() => undefined);
  const fd3 = opts.fd3 ? (child.stdio[3] as Readable | null) : null;
  return { child, stdin: child.stdin, stdout: child.stdout ? hold(child.stdout) : null, ...(fd3 ? { fd3 } : {}), exited };
}

/** Process groups started with `group` and not yet exited: killed when the runner exits. */
const liveGroups = new Set<number>();
let groupExitHook = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/** Abort: SIGTERM to the group, SIGKILL after the grace period. After the child's exit: its pipes closed after the grace period. */
function superviseGroup(child: ChildProcess, graceMs: number, signal: AbortSignal | undefined): void {
  const pid = child.pid;
  if (pid === undefined) return;
  liveGroups.add(pid);
  if (!groupExitHook) {
    groupExitHook = true;
    process.once('exit', () => liveGroups.forEach((g) => killGroup(g, 'SIGKILL')));
  }
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
    killTimer.unref();
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  child.once('exit', () => {
    signal?.removeEventListener('abort', onAbort);
    // What the child started and left running dies with the call.
    killGroup(pid, 'SIGKILL');
    liveGroups.delete(pid);
    if (killTimer) clearTimeout(killTimer);
    const closeTimer = setTimeout(() => {
      for (const s of child.stdio) if (s && !s.destroyed) s.destroy();
    }, graceMs);
    closeTimer.unref();
    child.once('close', () => clearTimeout(closeTimer));
  });
}

/**
 * Node discards the unread output of a child that exits while nobody listens
 * to its stdout (it resumes the stream on exit). Reading it into a buffer
 * from the start keeps every byte for a consumer that attaches later; the
 * buffer's limit still applies backpressure to the child.
 */
function hold(stdout: Readable): Readable {
  const held = new PassThrough({ highWaterMark: 1024 * 1024 });
  pipeline(stdout, held).catch(() => undefined); // an error destroys `held`, which its reader sees
  return held;
}

/** Runs a command to completion and returns its stdout as text. */
export async function capture(command: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const p = run(command, args, { ...opts, stdin: opts.stdin ?? 'ignore' });
  const out: Buffer[] = [];
  p.stdout?.on('data', (c: Buffer) => out.push(c));
  await p.exited;
  return Buffer.concat(out).toString('utf8');
}
