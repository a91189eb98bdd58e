import { createServer } from 'node:net';
import { pino } from 'pino';
import { register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { isControllerError } from '../../controller/errors.js';
import type { Liveness } from '../../controller/health.js';
import { buildControllerHttp, startControllerHttp, type ControllerHttpServer } from '../../controller/http.js';
import { createControllerMetrics } from '../../controller/metrics.js';

const logger = pino({ level: 'silent' });

describe('controller metrics', () => {
  it('defines every metric on its own registry, with the default process metrics', async () => {
    const m = createControllerMetrics();
    m.reconcileTotal.inc({ result: 'success' });
    m.reconcileTotal.inc({ result: 'requeue' }, 2);
    m.reconcileDuration.observe(0.2);
    m.apiRequestsTotal.inc({ verb: 'patch', resource: 'deployments', code: '409' });
    m.queueDepth.set(3);
    m.isLeader.set(1);
    m.managedBackups.set(12);
    const text = await m.registry.metrics();
    expect(text).toContain('dbbackup_controller_reconcile_total{result="success"} 1');
    expect(text).toContain('dbbackup_controller_reconcile_total{result="requeue"} 2');
    // Results not seen yet are exported as zero.
    expect(text).toContain('dbbackup_controller_reconcile_total{result="error"} 0');
    expect(text).toContain('dbbackup_controller_reconcile_duration_seconds_bucket{le="0.25"} 1');
    expect(text).toContain('dbbackup_controller_api_requests_total{verb="patch",resource="deployments",code="409"} 1');
    expect(text).toContain('dbbackup_controller_queue_depth 3');
    expect(text).toContain('dbbackup_controller_is_leader 1');
    expect(text).toContain('dbbackup_controller_managed_backups 12');
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(await globalRegistry.metrics()).not.toContain('dbbackup_controller_');
  });

  it('two instances in one process do not collide (nothing global)', () => {
    const a = createControllerMetrics();
    const b = createControllerMetrics();
    a.queueDepth.set(1);
    expect(b.registry.getSingleMetric('dbbackup_controller_queue_depth')).toBe(b.queueDepth);
  });
});

describe('controller HTTP', () => {
  let live: Liveness = { ok: true };
  let ready = false;
  const metrics = createControllerMetrics();
  const app = buildControllerHttp({ registry: metrics.registry, live: () => live, ready: () => ready, logger });

  it('serves /metrics in the Prometheus text format', async () => {
    metrics.managedBackups.set(4);
    const r = await app.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/plain; version=0.0.4');
    expect(r.body).toContain('dbbackup_controller_managed_backups 4');
    expect(r.body).toContain('# TYPE dbbackup_controller_reconcile_duration_seconds histogram');
  });

  it('/readyz answers 503 with a reason until the informers have synced', async () => {
    ready = false;
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ status: 'not ready', reason: 'informers have not synced yet' });
    ready = true;
    const ok = await app.inject({ method: 'GET', url: '/readyz' });
    expect([ok.statusCode, ok.json()]).toEqual([200, { status: 'ready' }]);
  });

  it('/healthz answers 200 while the loops are alive, 503 with the reason otherwise', async () => {
    live = { ok: true };
    const ok = await app.inject({ method: 'GET', url: '/healthz' });
    expect([ok.statusCode, ok.json()]).toEqual([200, { status: 'ok' }]);
    live = { ok: false, reason: 'watch databasebackups failing since 2026-11-21T10:00:00Z: connect ECONNREFUSED 127.0.0.1:6443' };
    const r = await app.inject({ method: 'GET', url: '/healthz' });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ status: 'unhealthy', reason: 'watch databasebackups failing since 2026-11-21T10:00:00Z: connect ECONNREFUSED 127.0.0.1:6443' });
    live = { ok: false, reason: 'leader election loop has not run for 93 s' };
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'unhealthy', reason: 'leader election loop has not run for 93 s' });
  });

  it('/healthz names a generic reason when the check gives none', async () => {
    live = { ok: false };
    const r = await app.inject({ method: 'GET', url: '/healthz' });
    expect([r.statusCode, r.json()]).toEqual([503, { status: 'unhealthy', reason: 'a controller loop has stopped' }]);
    live = { ok: true };
  });

  it('answers 404 for other paths', async () => {
    expect((await app.inject({ method: 'GET', url: '/' })).statusCode).toBe(404);
  });
});

describe('startControllerHttp', () => {
  let server: ControllerHttpServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('binds a free port for port 0 and returns it', async () => {
    const m = createControllerMetrics();
    server = await startControllerHttp('127.0.0.1', 0, { registry: m.registry, live: () => ({ ok: true }), ready: () => true, logger });
    expect(server.port).toBeGreaterThan(0);
    const r = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    expect(r.status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text()).toContain('dbbackup_controller_is_leader 0');
  });

  it('fails with LISTEN_FAILED when the port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const m = createControllerMetrics();
      const err: unknown = await startControllerHttp('127.0.0.1', port, { registry: m.registry, live: () => ({ ok: true }), ready: () => true, logger }).catch((e: unknown) => e);
      expect(isControllerError(err, 'LISTEN_FAILED')).toBe(true);
      expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});
