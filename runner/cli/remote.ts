import type { ExitCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { OperationRequest } from '../daemon/protocol.js';
import { internalFields, type Operation } from '../ops/perform.js';
import { type ClientOptions, getJson, requestOperation } from './client.js';
import { progressReporter } from './progress.js';
import { renderStatus, toJson } from '../render.js';

/** The wire form of an operation: its JSON (times as RFC 3339 strings) without the fields only the runner sets. */
export function toRequest(op: Operation): OperationRequest {
  const wire = JSON.parse(JSON.stringify(op)) as Record<string, unknown>;
  for (const field of Object.keys(internalFields(op.kind))) delete wire[field];
  return wire as OperationRequest;
}

/**
 * Runs a command through the daemon: the daemon does the work (one operation
 * at a time), this process shows its progress and result and exits with its
 * exit code. Interrupting this process does not stop the operation.
 */
export async function runRemote(socket: string, op: Operation, output: 'text' | 'json', out: (t: string) => void, logger: Logger, client: ClientOptions = {}): Promise<ExitCode> {
  const progress = output === 'text' ? progressReporter(process.stderr, logger) : undefined;
  try {
    const outcome = await requestOperation(socket, toRequest(op), (line) => {
      if (line.event === 'queued') {
        const r = line.running;
        process.stderr.write(`queued (position ${line.position})${r ? ` behind ${r.kind} (${r.source}) running since ${String(r.startedAt ?? r.submittedAt)}` : ''}\n`);
      } else if (line.event === 'progress') progress?.onProgress(line);
    }, client);
    progress?.done();
    out(output === 'json' ? toJson(outcome.json) : outcome.text);
    return outcome.exitCode;
  } finally {
    progress?.done();
  }
}

export async function showStatus(socket: string, output: 'text' | 'json', out: (t: string) => void, client: ClientOptions = {}): Promise<ExitCode> {
  const status = await getJson(socket, undefined, client);
  out(output === 'json' ? toJson(status) : renderStatus(status as Parameters<typeof renderStatus>[0]));
  return 0;
}
