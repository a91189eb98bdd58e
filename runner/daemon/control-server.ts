import { chmod, lstat, mkdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import Fastify, { LogController } from 'fastify';
import { BackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { socketDirProblems } from './socket-dir.js';
import { CONFIG_DIGEST_HEADER, OPERATIONS_PATH, OperationRequest, STATUS_PATH, type StreamLine } from './protocol.js';

export interface ControlHandlers {
  /** Runs (or queues) an operation, reporting every line; resolves when the last line was sent. */
  operate(req: OperationRequest, send: (line: StreamLine) => void, signal: AbortSignal): Promise<void>;
  status(): unknown;
}

/** Whether something answers on the socket (a daemon already running). */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The socket's directory must be the runner's alone: a directory that other
 * users can enter or write to would let them reach the control API or put
 * their own socket in its place. Created with mode 0700 when missing; an
 * existing one must be a real directory (not a symlink) owned by this uid
 * with mode 0700, else the daemon refuses to start.
 */
export async function claimSocketDir(dir: string, uid: number | undefined = process.getuid?.()): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  const problems = socketDirProblems(st, uid);
  if (problems.length > 0) {
    const mode = st.mode & 0o777;
    throw new BackupError(
      'SOCKET_DIR_UNSAFE',
      `refusing to serve the control socket in ${dir}: ${problems.join('; ')}. Other users could reach the control API or replace the socket. ` +
        `Use a directory only the runner owns (chown to uid ${uid ?? 'of the runner'} and chmod 0700), or set daemon.socket to a path in a directory that does not exist yet (it is created with mode 0700)`,
      { details: { directory: dir, uid: st.uid, mode: mode.toString(8) } },
    );
  }
}

/** Removes a socket file left by a daemon that died; refuses when one still answers there. */
async function claimSocket(path: string): Promise<void> {
  await claimSocketDir(dirname(path));
  const existing = await stat(path).catch(() => undefined);
  if (!existing) return;
  if (await socketAlive(path)) {
    throw new BackupError('DAEMON_RUNNING', `another backup-runner daemon is serving ${path}; stop it first or set daemon.socket to another path`);
  }
  await rm(path, { force: true });
}

/** The config the daemon runs, to refuse commands given another one. */
export interface ServedConfig {
  /** configDigest() of the daemon's config. */
  digest?: string;
  /** The file the daemon loaded it from. */
  path?: string;
}

/**
 * CONFIG_MISMATCH when a client sent the digest of its own config and it is
 * not the daemon's: the command would act on another database or bucket
 * than the user asked for. A request without the header (curl) is served.
 */
export function configMismatch(sent: string | string[] | undefined, socket: string, served: ServedConfig): BackupError | undefined {
  if (sent === undefined || served.digest === undefined || sent === served.digest) return undefined;
  const daemonPath = served.path ?? 'its own config file';
  return new BackupError(
    'CONFIG_MISMATCH',
    `the daemon serving ${socket} runs another configuration (loaded from ${daemonPath}) than the one this command was given; ` +
      `it would act on the daemon's database and locations, not on yours. Run the command with -c ${daemonPath} (the daemon's config), or with --local to run it in this process with your config`,
    { details: { socket, daemonConfig: daemonPath } },
  );
}

/**
 * The control API on a Unix socket: only processes in the pod (kubectl exec)
 * reach it, and the socket is private to the runner's user.
 */
export async function startControlServer(path: string, handlers: ControlHandlers, logger: Logger, config: ServedConfig = {}): Promise<{ close(): Promise<unknown> }> {
  await claimSocket(path);
  const app = Fastify({
    loggerInstance: logger.child({ server: 'control' }),
    logController: new LogController({ disableRequestLogging: true }),
    // The request is a union (anyOf): ajv must not strip fields while trying the other branches.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });
  app.addHook('onRequest', async (request, reply) => {
    const mismatch = configMismatch(request.headers[CONFIG_DIGEST_HEADER], path, config);
    if (mismatch) return reply.status(409).send({ event: 'error', error: { ...mismatch.toJSON(), exitCode: mismatch.exitCode } });
  });
  app.get(STATUS_PATH, () => handlers.status());
  app.post(OPERATIONS_PATH, { schema: { body: OperationRequest } }, (request, reply) => {
    const out = new PassThrough();
    const ac = new AbortController();
    // A client that goes away (Ctrl-C on kubectl exec) does not cancel the operation: it keeps running in the daemon.
    request.raw.on('close', () => ac.abort());
    const send = (line: StreamLine): void => {
      if (!out.destroyed) out.write(`${JSON.stringify(line)}\n`);
    };
    handlers
      .operate(request.body as OperationRequest, send, ac.signal)
      .catch((err: unknown) => {
        const e = toBackupError(err);
        send({ event: 'error', error: { ...e.toJSON(), code: e.code, message: e.message, exitCode: e.exitCode } });
      })
      .finally(() => out.end());
    void reply.type('application/x-ndjson').send(out);
  });
  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, _req, reply) => {
    const e = new BackupError(err.validation ? 'USAGE' : 'INTERNAL', err.message);
    void reply.status(err.statusCode ?? 500).send({ event: 'error', error: { ...e.toJSON(), exitCode: e.exitCode } });
  });
  await app.listen({ path });
  await chmod(path, 0o600);
  return app;
}
