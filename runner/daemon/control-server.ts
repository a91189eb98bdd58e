import { chmod, mkdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import Fastify, { LogController } from 'fastify';
import { BackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { OPERATIONS_PATH, OperationRequest, STATUS_PATH, type StreamLine } from './protocol.js';

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

/** Removes a socket file left by a daemon that died; refuses when one still answers there. */
async function claimSocket(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const existing = await stat(path).catch(() => undefined);
  if (!existing) return;
  if (await socketAlive(path)) {
    throw new BackupError('DAEMON_RUNNING', `another backup-runner daemon is serving ${path}; stop it first or set daemon.socket to another path`);
  }
  await rm(path, { force: true });
}

/**
 * The control API on a Unix socket: only processes in the pod (kubectl exec)
 * reach it, and the socket is private to the runner's user.
 */
export async function startControlServer(path: string, handlers: ControlHandlers, logger: Logger): Promise<{ close(): Promise<unknown> }> {
  await claimSocket(path);
  const app = Fastify({
    loggerInstance: logger.child({ server: 'control' }),
    logController: new LogController({ disableRequestLogging: true }),
    // The request is a union (anyOf): ajv must not strip fields while trying the other branches.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
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
