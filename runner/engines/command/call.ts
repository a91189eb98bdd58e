/**
 * One call of a tool: `<command...> <verb> <workDir>/request.json`. The
 * request and the password are 0600 files in a private 0700 directory that
 * is removed once the tool has exited; the tool gets none of the runner's
 * environment beyond minimalEnv (never a location's credentials), its stderr
 * lines go to the log, and its result is read from descriptor 3.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { RESULT_MAX_BYTES, secretEncodings, type Destination, type ToolRequest, type ToolResult, type Verb } from '../../../api/engine-contract.js';
import type { CommandConnection } from '../../../api/index.js';
import { BackupError, isBackupError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { minimalEnv, run, type RunningProcess } from '../../util/process.js';
import { redact } from '../failure.js';
import type { ServerPlace } from '../types.js';
import { buildRequest, callFailure, parseFailure, parseResult, VERB_FAILURE } from './protocol.js';

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** What the tool reads on stdin (restore); default: nothing. */
  stdin?: 'pipe' | 'ignore';
  /** Where the tool writes stdout (backup): a pipe read here, or the write end of an OS pipe; default: ignored. */
  stdout?: 'pipe' | Writable;
  restore?: ToolRequest['restore'];
  /** A server-side engine's backup: the destination, and its credentials' content. */
  destination?: ServerPlace;
  /** A server-side engine's restore: the source copy, and its credentials' content. */
  source?: ServerPlace;
}

export interface ToolCall<V extends Verb> {
  process: RunningProcess;
  /** Settles once the tool exited and the directory is gone: its checked result (undefined when it wrote none), or its failure. */
  result: Promise<ToolResult<V> | undefined>;
}

export interface CallDeps {
  block: Readonly<CommandConnection>;
  /** The database password, written to a 0600 file for the tool. */
  password: string | undefined;
  logger: Logger;
  env: NodeJS.ProcessEnv;
}

/** How long a tool told to stop (SIGTERM to its process group) has before SIGKILL, and how long its pipes may outlive it. */
const GRACE_MS = 10_000;

/** Reads at most RESULT_MAX_BYTES from the tool's descriptor 3. */
function readResult(stream: Readable | undefined, tool: string, verb: Verb): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > RESULT_MAX_BYTES) {
        stream.destroy();
        reject(new BackupError(VERB_FAILURE[verb], `${tool} ${verb}: its result is larger than ${RESULT_MAX_BYTES} bytes`));
      } else chunks.push(c);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.once('error', reject);
  });
}

/** The fields of a credentials file that are secret: S3's keys, a GCS service account key's private key and its id. */
const SECRET_FIELDS = ['accessKeyId', 'secretAccessKey', 'sessionToken', 'private_key', 'private_key_id'];

/**
 * Every form in which a credentials file's secrets may appear in what a tool prints, to keep them out of logs
 * and errors: each secret value as it is, each of its lines (log lines are redacted one at a time, and a private
 * key spans many), JSON-escaped, URL-encoded and base64; the whole file too. Pure.
 */
export function secretWords(secret: string | undefined): string[] {
  if (secret === undefined) return [];
  let values: string[];
  try {
    const parsed = JSON.parse(secret) as Record<string, unknown>;
    values = SECRET_FIELDS.map((f) => parsed[f]).filter((v): v is string => typeof v === 'string' && v.length > 0);
  } catch {
    values = [];
  }
  const forms = (v: string): string[] => [...secretEncodings(v), ...v.split(/\r?\n/).filter((l) => l.trim().length >= 8)];
  // The whole file too, in every encoding (a tool may hand it on whole, e.g. base64 in a URL).
  const all = [...secretEncodings(secret), ...secret.split(/\r?\n/).filter((l) => SECRET_FIELDS.some((f) => l.includes(`"${f}"`))), ...values.flatMap(forms)];
  // Longest first: a secret that contains another is removed whole.
  return [...new Set(all)].sort((a, b) => b.length - a.length);
}

/** A server place as the request names it: its credentials, when there are any to hand over, in a 0600 file of the call's directory. */
async function placeIn(workDir: string, place: ServerPlace): Promise<Destination> {
  if (place.secret === undefined) return place.destination;
  const file = join(workDir, 'location-credentials');
  await writeFile(file, place.secret, { mode: 0o600, flag: 'wx' });
  return { ...place.destination, credentials: { source: 'file', file } };
}

/** Starts one call of the tool. */
export async function callTool<V extends Verb>(verb: V, deps: CallDeps, opts: CallOptions = {}): Promise<ToolCall<V>> {
  const { block, logger } = deps;
  const tool = block.definition.name;
  const workDir = await mkdtemp(join(deps.env.TMPDIR || tmpdir(), `tool-${tool}-`));
  const cleanup = (): Promise<void> => rm(workDir, { recursive: true, force: true }).catch((err: unknown) => logger.warn({ err, workDir }, 'could not remove the tool call directory'));
  let p: RunningProcess;
  let pending = '';
  // Nothing the tool prints or answers carries a secret it was handed: the password, a location's keys.
  const place = opts.destination ?? opts.source;
  const secrets = [deps.password, ...secretWords(place?.secret)];
  const logLine = (line: string): void => {
    if (line.trim()) logger.info({ tool, verb }, redact(line, ...secrets).slice(0, 2000));
  };
  const logLines = (chunk: Buffer): void => {
    const lines = (pending + chunk.toString('utf8')).split('\n');
    pending = lines.pop() ?? '';
    lines.forEach(logLine);
  };
  try {
    const passwordFile = deps.password !== undefined ? join(workDir, 'password') : undefined;
    if (passwordFile) await writeFile(passwordFile, deps.password!, { mode: 0o600, flag: 'wx' });
    const restore = opts.restore && opts.source ? { ...opts.restore, source: await placeIn(workDir, opts.source) } : opts.restore;
    const destination = opts.destination ? await placeIn(workDir, opts.destination) : undefined;
    const request = buildRequest(block, { verb, workDir, ...(passwordFile ? { passwordFile } : {}), ...(restore ? { restore } : {}), ...(destination ? { destination } : {}) });
    const requestFile = join(workDir, 'request.json');
    await writeFile(requestFile, `${JSON.stringify(request, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    const [command, ...first] = block.definition.command;
    const env = { ...minimalEnv(deps.env), HOME: workDir, TMPDIR: workDir };
    logger.debug({ command: block.definition.command, verb }, 'calling the engine tool');
    p = run(command!, [...first, verb, requestFile], {
      env,
      signal: opts.signal,
      stdin: opts.stdin ?? 'ignore',
      stdout: opts.stdout ?? 'ignore',
      fd3: true,
      cwd: workDir,
      group: { graceMs: GRACE_MS },
      onStderr: logLines,
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const text = readResult(p.fd3, tool, verb);
  text.catch(() => p.child.kill('SIGKILL')); // a result past the limit: the call fails, the tool's group goes with it
  const result = (async (): Promise<ToolResult<V> | undefined> => {
    try {
      const exit = await p.exited.then(
        () => undefined,
        (err: unknown) => err,
      );
      // The password never reaches a message, whatever the tool echoed.
      const said = redact(await text, ...secrets);
      if (exit === undefined) return parseResult(verb, said, tool);
      if (isBackupError(exit, 'ABORTED') || isBackupError(exit, 'TOOL_MISSING')) throw exit;
      // A failure result need not carry the verb's fields: only its error and target are read.
      const parsed = parseFailure(said);
      const details = (isBackupError(exit) ? exit.details : undefined) as { exitCode?: number | null; signal?: string | null; stderr?: string } | undefined;
      const how = details?.exitCode === null || details?.exitCode === undefined ? `was killed by ${details?.signal ?? 'a signal'}` : `exited with code ${details.exitCode}`;
      throw callFailure(verb, tool, how, redact(details?.stderr ?? '', ...secrets), parsed);
    } finally {
      logLine(pending); // a last line without a newline
      await cleanup();
    }
  })();
  result.catch(() => undefined); // observed by the caller
  return { process: p, result };
}
