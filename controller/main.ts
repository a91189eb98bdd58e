/**
 * `db-backup-controller`: reads its settings, connects to the cluster
 * (in-cluster ServiceAccount, or KUBECONFIG / --kubeconfig), and runs until
 * SIGTERM. Exit codes: 0 stopped, 1 failed (e.g. leadership lost), 2 bad
 * settings or arguments.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { pino, type DestinationStream, type Logger } from 'pino';
import { parse } from 'yaml';
import { CONTROLLER_EXIT, ControllerError, type ControllerExitCode } from './errors.js';
import { runController } from './run.js';
import { validateSettings, type ControllerSettings } from './settings.js';

const USAGE = `usage: db-backup-controller [options]
  -c, --config PATH      settings file (YAML; default $CONTROLLER_CONFIG, else built-in defaults)
      --kubeconfig PATH  cluster credentials (default: $KUBECONFIG, else in-cluster)
      --namespace NS     the controller's namespace (default: $POD_NAMESPACE, else the settings')
      --no-leader-elect  act at once, without a Lease (only one instance may run then)
      --log-level LEVEL  trace, debug, info (default), warn, error
  -h, --help`;

export async function loadSettings(path: string | undefined, env: NodeJS.ProcessEnv): Promise<ControllerSettings> {
  let raw: unknown = {};
  if (path) {
    try {
      raw = parse(await readFile(path, 'utf8')) ?? {};
    } catch (err) {
      throw new ControllerError('CONFIG_INVALID', `cannot read settings ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (env.POD_NAMESPACE && raw && typeof raw === 'object') (raw as Record<string, unknown>).namespace = env.POD_NAMESPACE;
  const r = validateSettings(raw);
  if (!r.ok) throw new ControllerError('CONFIG_INVALID', `invalid settings${path ? ` in ${path}` : ''}:\n${r.errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}`);
  return r.value;
}

/**
 * The controller's one logger: JSON lines with `component: "controller"`. Parts of the controller add
 * their own keys by child loggers (leader election: `subsystem`), never a second `component`.
 */
export function createControllerLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { component: 'controller' } };
  return destination ? pino(options, destination) : pino(options);
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, logger?: Logger): Promise<ControllerExitCode> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        kubeconfig: { type: 'string' },
        namespace: { type: 'string' },
        'no-leader-elect': { type: 'boolean' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return CONTROLLER_EXIT.USAGE;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return CONTROLLER_EXIT.OK;
  }
  const log = logger ?? createControllerLogger(args['log-level'] ?? env.LOG_LEVEL ?? 'info');
  try {
    const settings = await loadSettings(args.config ?? env.CONTROLLER_CONFIG, env);
    if (args.namespace) settings.namespace = args.namespace;
    if (args['no-leader-elect']) settings.leaderElection.enabled = false;
    const kubeConfig = new KubeConfig();
    if (args.kubeconfig) kubeConfig.loadFromFile(args.kubeconfig);
    else kubeConfig.loadFromDefault();
    const done = new Promise<ControllerExitCode>((resolve) => {
      let running: Awaited<ReturnType<typeof runController>> | undefined;
      const shutdown = (signal: string) => {
        log.info({ signal }, 'stopping');
        void (running?.stop() ?? Promise.resolve()).then(() => resolve(CONTROLLER_EXIT.OK));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      runController({ settings, kubeConfig, logger: log, onLost: () => resolve(CONTROLLER_EXIT.FAILED) }).then(
        (r) => {
          running = r;
          log.info({ identity: r.identity, namespace: settings.namespace, metricsPort: r.httpPort, leaderElection: settings.leaderElection.enabled }, 'controller running');
        },
        (err: unknown) => {
          log.error({ err }, 'controller failed to start');
          resolve(err instanceof ControllerError ? err.exitCode : CONTROLLER_EXIT.FAILED);
        },
      );
    });
    return await done;
  } catch (err) {
    if (err instanceof ControllerError) {
      process.stderr.write(`error: ${err.code}: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
