import { resolve } from 'node:path';
import { text } from 'node:stream/consumers';
import { shellQuote } from '../engines/postgresql/physical/recovery.js';
import { createRuntime } from '../build-runtime.js';
import { parseIdentities, readIdentityFiles } from '../crypto/location.js';
import { configDigest, loadConfig } from '../config/load.js';
import { BackupError, EXIT, type ExitCode, toBackupError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { type Operation, perform } from '../ops/perform.js';
import { walFetch } from '../ops/wal-fetch.js';
import { closeRuntime, type Runtime } from '../runtime.js';
import { runnerVersion } from '../version.js';
import { type Command, parseCommand, USAGE } from './args.js';
import { daemonSocketExists } from './client.js';
import { progressReporter } from './progress.js';
import { runRemote, showStatus } from './remote.js';
import { toJson } from '../render.js';

type RuntimeCommand = Exclude<Command, { name: 'help' } | { name: 'version' } | { name: 'serve' } | { name: 'status' } | { name: 'wal-fetch' } | { name: 'wal-slot' }>;

interface Io {
  out: (text: string) => void;
  logger: Logger;
  signal: AbortSignal;
  stdin: () => Promise<string>;
}

/** The identities of --identity files (`-`: standard input), read here: the daemon gets the keys, never a path of this process. */
async function readIdentityArgs(files: readonly string[], stdin: () => Promise<string>): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) out.push(...(f === '-' ? parseIdentities(await stdin()) : await readIdentityFiles([f])));
  if (files.length > 0 && out.length === 0) throw new BackupError('USAGE', `--identity: no identity in ${files.join(', ')} (one AGE-SECRET-KEY-1... per line)`);
  return out;
}

/** `o` without its undefined fields. */
function given<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The operation a command asks for; `identities` are the keys read from its --identity files. */
export function operationOf(cmd: RuntimeCommand, identities: readonly string[] = []): Operation {
  const keys = identities.length > 0 ? { identities } : {};
  switch (cmd.name) {
    case 'backup':
      return { kind: 'backup', trigger: 'manual' };
    case 'list':
      return { kind: 'list' };
    case 'restore': {
      const { selector, force, targetDatabase, databases } = cmd;
      // Flags that are off stay off the wire, like fields never given.
      const on = (flag: boolean): true | undefined => (flag ? true : undefined);
      return {
        kind: 'restore',
        selector,
        force,
        ...given({ targetDatabase, databases, allowIncompleteListing: on(cmd.allowIncompleteListing), skipGlobals: on(cmd.skipGlobals), noOwner: on(cmd.noOwner), dataDir: cmd.dataDir, owner: cmd.owner, start: cmd.start }),
        ...keys,
      };
    }
    case 'verify':
      return { kind: 'verify', ...(cmd.id ? { id: cmd.id } : {}), ...keys };
    case 'retention':
      return { kind: 'retention', dryRun: cmd.dryRun };
    case 'mirror':
      return { kind: 'mirror', scope: 'all', dryRun: cmd.dryRun, ...(cmd.to ? { to: cmd.to } : {}), ...(cmd.from ? { from: cmd.from } : {}), ...keys };
    case 'rekey':
      return { kind: 'rekey', dryRun: cmd.dryRun, ...(cmd.location ? { location: cmd.location } : {}), ...(cmd.id ? { id: cmd.id } : {}), ...keys };
    case 'import':
      return { kind: 'import', source: cmd.source, force: cmd.force, keep: cmd.keep, ...(cmd.targetDatabase ? { targetDatabase: cmd.targetDatabase } : {}) };
  }
}

async function executeLocally(cmd: RuntimeCommand, op: Operation, rt: Runtime, io: Io): Promise<ExitCode> {
  const progress = cmd.output === 'text' ? progressReporter(process.stderr, io.logger) : undefined;
  try {
    const o = await perform(rt, op, { signal: io.signal, ...(progress ? { onProgress: progress.onProgress } : {}) });
    progress?.done();
    io.out(cmd.output === 'json' ? toJson(o.json) : o.text);
    return o.exitCode;
  } finally {
    progress?.done();
  }
}

export interface MainIo {
  /** Receives the command's result (a table or JSON); logs go to stderr. */
  stdout?: (text: string) => void;
  logger?: Logger;
  /** Standard input, for --identity - (default: the process's). */
  stdin?: () => Promise<string>;
}

const COMMANDS = ['backup', 'list', 'restore', 'verify', 'retention', 'mirror', 'rekey', 'import', 'status', 'serve', 'wal-fetch', 'wal-slot', 'version', 'help'];

async function dispatch(cmd: Exclude<Command, { name: 'help' } | { name: 'version' }>, env: NodeJS.ProcessEnv, io: Io): Promise<ExitCode> {
  const config = await loadConfig(cmd.config);
  // The daemon's modules (HTTP server, metrics) load only for `serve`: the other commands start faster.
  if (cmd.name === 'serve') return (await import('./serve.js')).serve(config, io.logger, env, { configPath: cmd.config });
  // PostgreSQL's restore_command: always here (the server's own process runs it), quiet on success.
  if (cmd.name === 'wal-fetch') {
    const rt = await createRuntime(config, io.logger, env);
    try {
      const r = await walFetch(rt, cmd.wal, cmd.dest, io.signal);
      io.logger.info({ wal: r.wal, location: r.location, partial: r.partial, bytes: r.bytes }, 'WAL file fetched');
      return EXIT.OK;
    } finally {
      await closeRuntime(rt);
    }
  }
  // The archive's replication slot: always here, never through the daemon (whose archiver streams through it).
  if (cmd.name === 'wal-slot') return (await import('./wal-slot.js')).walSlotDrop(config, { output: cmd.output, env, out: io.out, logger: io.logger, signal: io.signal });
  const socket = config.daemon.socket;
  // A data directory is this process's: its restore runs here (e.g. where the database's volume is mounted), never in the daemon.
  const here = cmd.local || (cmd.name === 'restore' && cmd.dataDir !== undefined);
  const viaDaemon = !here && (await daemonSocketExists(socket));
  // The daemon refuses a command given another config than its own (CONFIG_MISMATCH).
  const client = { configDigest: configDigest(config) };
  if (cmd.name === 'status') {
    if (!viaDaemon) throw new BackupError('DAEMON_UNREACHABLE', `no daemon serves ${socket}: status is the daemon's; start it with "backup-runner serve"`);
    return showStatus(socket, cmd.output, io.out, client);
  }
  const asked = operationOf(cmd, 'identityFiles' in cmd ? await readIdentityArgs(cmd.identityFiles, io.stdin) : []);
  // A point-in-time recovery's server fetches WAL with this runner and this config ($BACKUP_RUNNER_COMMAND: how to run it there).
  const op: Operation = asked.kind === 'restore' && asked.dataDir !== undefined ? { ...asked, walFetchCommand: `${shellQuote(env.BACKUP_RUNNER_COMMAND ?? 'backup-runner')} wal-fetch -c ${shellQuote(resolve(cmd.config))}` } : asked;
  if (viaDaemon) return runRemote(socket, op, cmd.output, io.out, io.logger, client);
  const rt = await createRuntime(config, io.logger, env);
  try {
    return await executeLocally(cmd, op, rt, io);
  } finally {
    await closeRuntime(rt);
  }
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, io: MainIo = {}): Promise<ExitCode> {
  const out = io.stdout ?? ((text: string): void => void process.stdout.write(`${text}\n`));
  let cmd: Command;
  try {
    cmd = parseCommand(argv, env);
  } catch (err) {
    process.stderr.write(`${toBackupError(err).message}\n`);
    return EXIT.USAGE;
  }
  if (cmd.name === 'help') {
    out(USAGE);
    return cmd.topic === undefined || COMMANDS.includes(cmd.topic) ? EXIT.OK : EXIT.USAGE;
  }
  if (cmd.name === 'version') {
    out(runnerVersion());
    return EXIT.OK;
  }
  const logger = io.logger ?? createLogger({ ...(cmd.logLevel ? { level: cmd.logLevel } : {}) });
  const ac = new AbortController();
  // `serve` handles its own signals (graceful shutdown); other commands abort what they run here.
  const stop = (sig: NodeJS.Signals): void => {
    logger.warn({ signal: sig }, 'stopping: aborting the running operation');
    ac.abort(new Error(`received ${sig}`));
  };
  if (cmd.name !== 'serve') {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  try {
    return await dispatch(cmd, env, { out, logger, signal: ac.signal, stdin: io.stdin ?? (() => text(process.stdin)) });
  } catch (err) {
    const e = toBackupError(err);
    if (cmd.output === 'json') out(toJson({ error: e }));
    else process.stderr.write(`error: ${e.code}: ${e.message}\n`);
    logger.debug({ err: e }, 'command failed');
    return e.exitCode;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
