/**
 * Running SQL through psql: one-shot queries, and the long-lived session that
 * exports the snapshot a dump reads.
 */
import { BackupError, toBackupError } from '../../errors.js';
import { run } from '../../util/process.js';
import { classifyFailure, type FailureContext } from './classify.js';
import type { CommandPlan } from './plan.js';
import { EXPORT_SNAPSHOT_SQL, SAFE_SEARCH_PATH_SQL, parseSnapshotLine, type ExportedSnapshot } from './sql.js';
import { withInstallHint } from './tools.js';

/** How long an ending session may take before it is killed. */
const CLOSE_TIMEOUT_MS = 10_000;

/**
 * Runs `sql` (sent on stdin, so psql variables work) and returns psql's stdout: in one transaction that sets
 * the safe search_path first (SET LOCAL: nothing is left on a pooled connection), unless `outsideTransaction`.
 */
export async function runPsql(plan: CommandPlan, sql: string, fail: FailureContext, signal?: AbortSignal, outsideTransaction = false): Promise<string> {
  const p = run(plan.command, plan.args, {
    env: plan.env,
    signal,
    stdin: 'pipe',
    classify: (code, stderr) => classifyFailure(stderr, code, fail),
  });
  const out: Buffer[] = [];
  p.stdout?.on('data', (c: Buffer) => out.push(c));
  // psql may exit before reading its input (e.g. it cannot connect): its exit status says why.
  p.stdin?.on('error', () => undefined);
  p.stdin?.end(outsideTransaction ? sql : `BEGIN;\n${SAFE_SEARCH_PATH_SQL}${sql}COMMIT;\n`);
  try {
    await p.exited;
  } catch (err) {
    throw withInstallHint(err, plan.command);
  }
  return Buffer.concat(out).toString('utf8');
}

export interface SnapshotSession extends ExportedSnapshot {
  /**
   * Ends the exporting transaction (psql reads end of input and exits). Call
   * only after every reader of the snapshot has imported it: here, when
   * pg_dump has exited. Idempotent; rejects only if psql had to be killed or
   * failed.
   */
  close(): Promise<void>;
}

/**
 * Opens a psql session, starts a REPEATABLE READ READ ONLY transaction and
 * exports its snapshot. The transaction stays open (psql's stdin is kept
 * open) until `close()`: a snapshot can be imported only while it is.
 */
export async function exportSnapshot(plan: CommandPlan, fail: FailureContext, signal?: AbortSignal): Promise<SnapshotSession> {
  const p = run(plan.command, plan.args, {
    env: plan.env,
    signal,
    stdin: 'pipe',
    classify: (code, stderr) => classifyFailure(stderr, code, fail),
  });
  const stdin = p.stdin!;
  const stdout = p.stdout!;
  stdin.on('error', () => undefined);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stdin.end();
      const timer = setTimeout(() => p.child.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
      try {
        await p.exited;
      } finally {
        clearTimeout(timer);
      }
    })();
    return closing;
  };

  const line = new Promise<string>((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      const end = buffered.indexOf('\n');
      if (end < 0) return;
      stdout.off('data', onData);
      stdout.resume(); // nothing more is expected; never let output back up into psql
      resolve(buffered.slice(0, end));
    };
    stdout.on('data', onData);
    p.exited.then(() => reject(new BackupError('DB_QUERY_FAILED', 'psql ended before exporting a snapshot')), reject);
  });
  stdin.write(EXPORT_SNAPSHOT_SQL);

  let text: string;
  try {
    text = await line;
  } catch (err) {
    await close().catch(() => undefined);
    throw toBackupError(withInstallHint(err, plan.command), 'DB_QUERY_FAILED');
  }
  const parsed = parseSnapshotLine(text);
  if (!parsed) {
    await close().catch(() => undefined);
    throw new BackupError('DB_QUERY_FAILED', `unexpected answer when exporting a snapshot: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return { ...parsed, close };
}
