/**
 * Long-running child processes for the kube test environment: etcd,
 * kube-apiserver, kube-controller-manager.
 *
 * Invariants:
 * - A daemon's stdout and stderr go to one log file in the instance's temp
 *   dir; errors about it quote the tail of that file.
 * - `stop()` is idempotent: SIGTERM, then SIGKILL after a grace period; it
 *   resolves once the process has exited.
 * - Daemons still running when the Node process exits are killed (SIGKILL)
 *   by a synchronous exit hook, so no etcd or apiserver outlives a crashed
 *   test; directories registered with removeOnExit() are deleted after that.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { exec as execCommand, type ExecResult } from '../exec.js';
export { freePort } from '../net.js';

export interface Daemon {
  name: string;
  pid: number;
  logFile: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  hasExited(): boolean;
  /** Last `bytes` of the log file. */
  logTail(bytes?: number): string;
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
    for (const dir of dirs) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // A killed daemon may still be writing; the OS temp dir cleaner gets the rest.
      }
    }
  });
}

/** Deletes `dir` when the Node process exits, unless the returned function was called first. */
export function removeOnExit(dir: string): () => void {
  installExitHook();
  dirs.add(dir);
  return () => dirs.delete(dir);
}

export function startDaemon(name: string, command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): Daemon {
  installExitHook();
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['ignore', fd, fd], env });
  } finally {
    closeSync(fd);
  }
  live.add(child);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('error', (err) => {
      done = true;
      live.delete(child);
      resolve(`spawn error: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  let stopping: Promise<void> | undefined;
  const daemon: Daemon = {
    name,
    pid: child.pid ?? -1,
    logFile,
    exited,
    hasExited: () => done,
    logTail: (bytes = 3000) => tail(logFile, bytes),
    stop(graceMs = 10_000) {
      stopping ??= (async () => {
        if (done) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
  return daemon;
}

function tail(file: string, bytes: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.length > bytes ? `…${text.slice(-bytes)}` : text;
  } catch {
    return '';
  }
}

/**
 * Polls `probe` until it returns true. Fails early when the daemon exits, and
 * after `timeoutMs`; both errors carry the tail of the daemon's log.
 */
export async function waitUntil(daemon: Daemon, what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (daemon.hasExited()) {
      throw new Error(`${daemon.name} exited (${String(await daemon.exited)}) before ${what}; end of its log:\n${daemon.logTail()}`);
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${daemon.name} not ${what} after ${timeoutMs / 1000} s; end of its log:\n${daemon.logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Status code of an HTTPS GET (certificate not verified: used for readiness probes only). */
export function httpsStatus(url: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', rejectUnauthorized: false, timeout: 2000, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}

/** Status code of a plain HTTP GET. */
export async function httpStatus(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status;
}


/** True when a failed start was caused by a port someone else took between `freePort()` and bind. */
export function lostPortRace(daemon: Daemon): boolean {
  return daemon.hasExited() && /address already in use/i.test(daemon.logTail(20_000));
}

export type { ExecResult } from '../exec.js';

/** Runs a command to completion (60 s timeout unless given). */
export function exec(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return execCommand(cmd, args, { timeoutMs: 60_000, ...opts });
}
