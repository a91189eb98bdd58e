/**
 * Feeding a dump to a restore process (pg_restore, mariadb, ...). The
 * transaction and refusal rules are each engine's; this only makes sure the
 * process sees exactly the input's bytes, and never commits when the input
 * failed.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { toBackupError, type BackupError } from '../errors.js';
import { run, type RunningProcess } from '../util/process.js';

export interface FeedPlan {
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
}

export interface FeedOptions {
  /** Maps the process's failure to a typed error. */
  classify: (code: number | null, stderr: string) => BackupError;
  /** Rewrites a failure to start the process (e.g. adds how to install it). */
  explain?: (err: unknown) => unknown;
  signal?: AbortSignal;
}

/**
 * Runs `plan` reading `input` on its stdin. When the input fails, the process
 * is killed before its stdin closes, so it cannot take the early end for a
 * complete dump and commit; the input's own error is reported.
 */
export async function feedProcess(plan: FeedPlan, input: Readable, opts: FeedOptions): Promise<void> {
  const p = run(plan.command, plan.args, { ...(plan.env ? { env: plan.env } : {}), signal: opts.signal, stdin: 'pipe', stdout: 'ignore', classify: opts.classify });
  await feedRunning(p, input, p.exited, opts.explain);
}

/**
 * Feeds `input` to a started process's stdin; `exited` settles with the process (its own failure, already
 * classified). The same rule as feedProcess: a failed input kills the process before its stdin closes.
 */
export async function feedRunning(p: RunningProcess, input: Readable, exited: Promise<unknown>, explain?: (err: unknown) => unknown): Promise<void> {
  let inputFailed: unknown;
  const onInputError = (err: Error): void => {
    inputFailed = err;
    p.child.kill('SIGTERM');
  };
  // Registered before pipeline's own handler, which closes the process's stdin.
  input.once('error', onInputError);
  const feeding = pipeline(input, p.stdin!).catch((err: unknown) => err);
  try {
    await exited;
  } catch (err) {
    await feeding;
    if (inputFailed !== undefined) throw toBackupError(inputFailed, 'RESTORE_FAILED');
    throw explain ? explain(err) : err;
  } finally {
    input.off('error', onInputError);
  }
  const fed = await feeding;
  // The process may stop reading before the last bytes (EPIPE) once it has everything: only an input error counts.
  if (inputFailed !== undefined && fed !== undefined) throw toBackupError(inputFailed, 'RESTORE_FAILED');
}
