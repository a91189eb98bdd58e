/**
 * The controller's HTTP port: /metrics (its own registry), /healthz (liveness:
 * the process's loops run; see health.ts) and /readyz (readiness: the
 * informers have synced). Probes answer 200, or 503 with a short JSON reason.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ControllerError } from './errors.js';
import type { Liveness } from './health.js';

export interface ControllerHttpOptions {
  /** Only the metrics registry is read, e.g. `createControllerMetrics().registry`. */
  registry: Registry;
  /** Ok while the controller's loops (informers, leader election) run; else why not (the 503 body's reason). */
  live(): Liveness;
  /** True once the informers have synced. */
  ready(): boolean;
  logger: Logger;
}

export interface ControllerHttpServer {
  /** The bound port (the one chosen by the system when 0 was asked). */
  port: number;
  close(): Promise<void>;
}

/** Builds the routes without listening (tests call `inject`). */
export function buildControllerHttp(opts: ControllerHttpOptions): FastifyInstance {
  const loggerInstance: FastifyBaseLogger = opts.logger.child({ server: 'metrics' });
  const app = Fastify({ loggerInstance, logController: new LogController({ disableRequestLogging: true }) });
  app.get('/metrics', async (_req, reply) => reply.type(opts.registry.contentType).send(await opts.registry.metrics()));
  app.get('/healthz', (_req, reply) => {
    const l = opts.live();
    return l.ok ? reply.send({ status: 'ok' }) : reply.status(503).send({ status: 'unhealthy', reason: l.reason ?? 'a controller loop has stopped' });
  });
  app.get('/readyz', (_req, reply) =>
    opts.ready() ? reply.send({ status: 'ready' }) : reply.status(503).send({ status: 'not ready', reason: 'informers have not synced yet' }),
  );
  return app;
}

/** Listens on host:port (0: a free port). Fails with LISTEN_FAILED when the address is taken or not available. */
export async function startControllerHttp(host: string, port: number, opts: ControllerHttpOptions): Promise<ControllerHttpServer> {
  const app = buildControllerHttp(opts);
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    throw new ControllerError('LISTEN_FAILED', `cannot listen on ${host}:${port}: ${err instanceof Error ? err.message : String(err)}`, { cause: err, details: { host, port } });
  }
  const address = app.server.address();
  return { port: typeof address === 'object' && address ? address.port : port, close: () => app.close() };
}
