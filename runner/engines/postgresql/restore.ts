/**
 * Feeding an archive to pg_restore. The transaction and the refusal rules are
 * the engine's; this file only makes sure pg_restore sees exactly the input's
 * bytes, and never commits when the input failed.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { toBackupError, type BackupError } from '../../errors.js';
import { run } from '../../util/process.js';
import { classifyFailure, type FailureContext } from './classify.js';
import type { CommandPlan } from './plan.js';
import { withInstallHint } from './tools.js';

/**
 * Runs pg_restore reading `input`, piped in. When a piped input fails, pg_restore is killed before its stdin closes, so
 * it cannot take the early end for a complete archive and commit; the input's
 * own error is reported.
 */
export async function runPgRestore(plan: CommandPlan, input: Readable, fail: FailureContext, signal?: AbortSignal): Promise<void> {
  const classify = (code: number | null, stderr: string): BackupError => classifyFailure(stderr, code, fail);
  const p = run(plan.command, plan.args, { env: plan.env, signal, stdin: 'pipe', stdout: 'ignore', classify });
  let inputFailed: unknown;
  const onInputError = (err: Error): void => {
    inputFailed = err;
    p.child.kill('SIGTERM');
  };
  // Registered before pipeline's own handler, which closes pg_restore's stdin.
  input.once('error', onInputError);
  const feeding = pipeline(input, p.stdin!).catch((err: unknown) => err);
  try {
    await p.exited;
  } catch (err) {
    await feeding;
    if (inputFailed !== undefined) throw toBackupError(inputFailed, 'RESTORE_FAILED');
    throw withInstallHint(err, plan.command);
  } finally {
    input.off('error', onInputError);
  }
  const fed = await feeding;
  // pg_restore may stop reading before the last bytes (EPIPE) once it has everything: only an input error counts.
  if (inputFailed !== undefined && fed !== undefined) throw toBackupError(inputFailed, 'RESTORE_FAILED');
}
