/**
 * The tool side of the engine contract (api/engine-contract.ts), for tools
 * written in TypeScript: reads the request, answers on descriptor 3, logs to
 * stderr, and turns a ToolFailure into the error result and exit status 1.
 * A tool in another language does the same by hand (docs/engines.md).
 */
import { readFileSync, writeSync } from 'node:fs';
import { CONTRACT_VERSION, RESULT_FD, VERBS, type ToolRequest, type ToolResult, type Verb } from '../api/engine-contract.js';

/** A failure the tool reports with a code of the contract (TARGET_NOT_EMPTY, TOOL_INCOMPATIBLE, ...) and what it left. */
export class ToolFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly target?: { state: 'unchanged' | 'emptied' | 'partial'; detail?: string },
  ) {
    super(message);
    this.name = 'ToolFailure';
  }
}

/** What a verb's handler receives. */
export interface ToolContext {
  request: ToolRequest;
  /** The password from the request's passwordFile, if any. */
  password: string | undefined;
  /** One line to stderr (the runner's log). */
  log(message: string): void;
}

/**
 * Refuses a restore into anything but the configured target (a tool whose backup is a whole server or
 * keyspace): `restore.database` other than `target.database` (default: the engine name) is CONFIG_INVALID,
 * nothing changed. `what` says what the backup restores into, e.g. "the configured server as a whole".
 */
export function requireConfiguredTarget(ctx: ToolContext, backup: string, what: string): void {
  const configured = ctx.request.target.database ?? ctx.request.engine;
  const wanted = ctx.request.restore?.database ?? configured;
  if (wanted !== configured) {
    throw new ToolFailure('CONFIG_INVALID', `${backup} restores into ${what}, not into "${wanted}"; nothing was changed. To restore elsewhere, configure that as the target`, { state: 'unchanged' });
  }
}

export type Handlers = {
  [V in Verb]?: (ctx: ToolContext) => Promise<ToolResult<V>>;
};

function writeResult(value: unknown): void {
  const text = JSON.stringify(value);
  try {
    writeSync(RESULT_FD, text);
  } catch {
    process.stderr.write(`result (descriptor ${RESULT_FD} is not open): ${text}\n`);
  }
}

/** Runs the verb `argv` names with its request file; resolves to the exit status. */
export async function runTool(name: string, handlers: Handlers, argv: readonly string[]): Promise<number> {
  const log = (message: string): void => void process.stderr.write(`${message.replace(/\n/g, ' ')}\n`);
  const [verb, requestFile] = argv;
  if (!verb || !requestFile || !(VERBS as readonly string[]).includes(verb)) {
    log(`usage: ${name} <${VERBS.join('|')}> <request.json>`);
    return 2;
  }
  const handler = handlers[verb as Verb] as ((ctx: ToolContext) => Promise<unknown>) | undefined;
  try {
    if (!handler) throw new ToolFailure('CONFIG_INVALID', `${name} does not answer ${verb}`);
    const request = JSON.parse(readFileSync(requestFile, 'utf8')) as ToolRequest;
    const contract: unknown = request.contract;
    if (contract !== CONTRACT_VERSION) throw new ToolFailure('TOOL_INCOMPATIBLE', `${name} speaks contract ${CONTRACT_VERSION}, the request is contract ${JSON.stringify(contract)}`);
    if (request.verb !== verb) throw new ToolFailure('CONFIG_INVALID', `the request is for ${request.verb}, the command line says ${verb}`);
    const password = request.target.passwordFile ? readFileSync(request.target.passwordFile, 'utf8').replace(/\r?\n$/, '') : undefined;
    writeResult(await handler({ request, password, log }));
    return 0;
  } catch (err) {
    const failure = err instanceof ToolFailure ? err : new ToolFailure('FAILED', err instanceof Error ? err.message : String(err));
    log(`${name} ${verb} failed: ${failure.message}`);
    writeResult({ error: { code: failure.code, message: failure.message }, ...(failure.target ? { target: failure.target } : {}) });
    return 1;
  }
}
