import Fastify, { LogController } from 'fastify';
import type { Logger } from '../logger.js';
import type { RunnerMetrics } from './metrics.js';

export interface HealthChecks {
  /** Ready: the config was valid, the runtime built and the scheduler armed. */
  ready(): { ready: boolean; reason?: string };
}

/** /metrics, /healthz and /readyz on their own port, apart from the control socket. */
export async function startHealthServer(host: string, port: number, metrics: RunnerMetrics, checks: HealthChecks, logger: Logger): Promise<{ app: { close(): Promise<unknown> }; port: number }> {
  const app = Fastify({ loggerInstance: logger.child({ server: 'metrics' }), logController: new LogController({ disableRequestLogging: true }) });
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));
  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/readyz', (_req, reply) => {
    const r = checks.ready();
    return reply.status(r.ready ? 200 : 503).send(r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason });
  });
  await app.listen({ host, port });
  const address = app.server.address();
  return { app, port: typeof address === 'object' && address ? address.port : port };
}
