import type { RunnerConfig } from '../../api/index.js';
import { createRuntime } from '../build-runtime.js';
import { Daemon, type DaemonOptions } from '../daemon/daemon.js';
import { EXIT, type ExitCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { retainAfterBackup } from '../ops/retention.js';
import { closeRuntime } from '../runtime.js';

/** Runs the daemon until SIGTERM or SIGINT, then shuts down gracefully. */
export async function serve(config: Readonly<RunnerConfig>, logger: Logger, env: NodeJS.ProcessEnv, opts: DaemonOptions = {}): Promise<ExitCode> {
  const rt = await createRuntime(config, logger, env);
  const daemon = new Daemon(rt, { afterBackup: retainAfterBackup, ...opts });
  try {
    await daemon.start();
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    logger.info({ signal }, 'shutting down');
    return EXIT.OK;
  } finally {
    await daemon.stop();
    await closeRuntime(rt);
  }
}
