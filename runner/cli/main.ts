import { createRuntime } from '../build-runtime.js';
import { loadConfig } from '../config/load.js';
import { EXIT, type ExitCode, toBackupError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { runBackup } from '../ops/backup.js';
import { listBackups } from '../ops/list.js';
import { runRestore } from '../ops/restore.js';
import { verify } from '../ops/verify.js';
import { closeRuntime, type Runtime } from '../runtime.js';
import { runnerVersion } from '../version.js';
import { type Command, parseCommand, USAGE } from './args.js';
import { progressReporter } from './progress.js';
import { renderBackup, renderListing, renderRestore, renderVerify, toJson } from './render.js';

type RuntimeCommand = Exclude<Command, { name: 'help' } | { name: 'version' }>;

interface Io {
  out: (text: string) => void;
  logger: Logger;
  signal: AbortSignal;
}

async function execute(cmd: RuntimeCommand, rt: Runtime, io: Io): Promise<ExitCode> {
  const progress = cmd.output === 'text' ? progressReporter(process.stderr, io.logger) : undefined;
  const common = { signal: io.signal, ...(progress ? { onProgress: progress.onProgress } : {}) };
  const print = (json: unknown, text: () => string): void => io.out(cmd.output === 'json' ? toJson(json) : text());
  try {
    switch (cmd.name) {
      case 'backup': {
        const r = await runBackup(rt, { trigger: 'manual', ...common });
        progress?.done();
        print(r, () => renderBackup(r));
        if (r.status === 'Succeeded') return EXIT.OK;
        return r.status === 'PartiallySucceeded' ? EXIT.PARTIAL : (r.error?.exitCode ?? EXIT.FAILED);
      }
      case 'list': {
        const l = await listBackups(rt, common);
        print(l, () => renderListing(l));
        return l.problems.length > 0 ? EXIT.PARTIAL : EXIT.OK;
      }
      case 'restore': {
        const r = await runRestore(rt, { selector: cmd.selector, force: cmd.force, ...(cmd.targetDatabase ? { targetDatabase: cmd.targetDatabase } : {}), ...common });
        progress?.done();
        print(r, () => renderRestore(r));
        return EXIT.OK;
      }
      case 'verify': {
        const v = await verify(rt, { ...(cmd.id ? { id: cmd.id } : {}), ...common });
        progress?.done();
        print(v, () => renderVerify(v));
        return v.ok ? EXIT.OK : v.checks.some((c) => c.status === 'corrupt' || c.status === 'missing') ? EXIT.INTEGRITY : EXIT.FAILED;
      }
      default:
        return cmd satisfies never;
    }
  } finally {
    progress?.done();
  }
}

export interface MainIo {
  /** Receives the command's result (a table or JSON); logs go to stderr. */
  stdout?: (text: string) => void;
  logger?: Logger;
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
    return cmd.topic === undefined || ['backup', 'list', 'restore', 'verify', 'version', 'help'].includes(cmd.topic) ? EXIT.OK : EXIT.USAGE;
  }
  if (cmd.name === 'version') {
    out(runnerVersion());
    return EXIT.OK;
  }
  const logger = io.logger ?? createLogger({ ...(cmd.logLevel ? { level: cmd.logLevel } : {}) });
  const ac = new AbortController();
  const stop = (sig: NodeJS.Signals): void => {
    logger.warn({ signal: sig }, 'stopping: aborting the running operation');
    ac.abort(new Error(`received ${sig}`));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let rt: Runtime | undefined;
  try {
    const config = await loadConfig(cmd.config);
    rt = await createRuntime(config, logger, env);
    return await execute(cmd, rt, { out, logger, signal: ac.signal });
  } catch (err) {
    const e = toBackupError(err);
    if (cmd.output === 'json') out(toJson({ error: e }));
    else process.stderr.write(`error: ${e.code}: ${e.message}\n`);
    logger.debug({ err: e }, 'command failed');
    return e.exitCode;
  } finally {
    if (rt) await closeRuntime(rt);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
