/** Feeding an archive to pg_restore (the shared rules are in ../feed.ts). */
import type { Readable } from 'node:stream';
import { feedProcess } from '../feed.js';
import { classifyFailure, type FailureContext } from './classify.js';
import type { CommandPlan } from './plan.js';
import { withInstallHint } from './tools.js';

/** Runs pg_restore reading `input`; a failing input kills it before it can commit. */
export function runPgRestore(plan: CommandPlan, input: Readable, fail: FailureContext, signal?: AbortSignal): Promise<void> {
  return feedProcess(plan, input, { classify: (code, stderr) => classifyFailure(stderr, code, fail), explain: (err) => withInstallHint(err, plan.command), signal });
}
