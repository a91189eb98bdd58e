/**
 * The controller's liveness (/healthz) against a real kube-apiserver 1.20,
 * reached through a TCP proxy on loopback that the tests cut (every
 * connection reset, new ones refused: the API server is gone) or freeze
 * (nothing forwarded, nothing closed: a connection gone silent, as behind a
 * dead NAT or load balancer).
 */
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { KubeAdapter } from '../../controller/kube.js';
import { createControllerMetrics, type ControllerMetrics } from '../../controller/metrics.js';
import { runController, type RunningController } from '../../controller/run.js';
import { validateSettings } from '../../controller/settings.js';
import { applyCrds, controllerIdentity } from '../../testenv/controller.js';
import { eventually } from '../../testenv/eventually.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { CONTROLLER_NAMESPACE, renderSettings } from '../controller-fixtures.js';

type Mode = 'up' | 'down' | 'frozen';

interface Proxy {
  url: string;
  /** up: forwards; down: resets every connection and refuses new ones; frozen: forwards nothing (no FIN either) and holds new ones. */
  set(mode: Mode): void;
  close(): Promise<void>;
}

/** A TCP proxy to 127.0.0.1:`port`. Leaving `frozen` resets the connections it held, as a network that comes back finds them dead. */
async function startProxy(port: number): Promise<Proxy> {
  let mode: Mode = 'up';
  const open = new Set<Socket>();
  const server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    if (mode === 'down') return void client.resetAndDestroy();
    if (mode === 'frozen') return; // accepted, never answered
    const upstream = connect({ host: '127.0.0.1', port });
    open.add(upstream);
    upstream.on('close', () => open.delete(upstream));
    upstream.on('error', () => undefined);
    const live = () => mode === 'up';
    client.on('data', (d) => void (live() && upstream.write(d)));
    upstream.on('data', (d) => void (live() && client.write(d)));
    client.on('end', () => void (live() && upstream.end()));
    upstream.on('end', () => void (live() && client.end()));
    client.on('close', () => void (live() && upstream.destroy()));
    upstream.on('close', () => void (live() && client.destroy()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const resetAll = () => {
    for (const s of open) s.resetAndDestroy();
    open.clear();
  };
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    set(next) {
      if (next === 'down' || (mode === 'frozen' && next === 'up')) resetAll();
      mode = next;
    },
    close: () => {
      resetAll();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** `kc` with its server replaced by `server`. */
function via(kc: KubeConfig, server: string): KubeConfig {
  const out = new KubeConfig();
  out.loadFromOptions({ clusters: kc.clusters.map((c) => ({ ...c, server })), users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext });
  return out;
}

async function watchCount(metrics: ControllerMetrics, resource: string, code: string): Promise<number> {
  const v = (await metrics.apiRequestsTotal.get()).values.find((x) => x.labels.verb === 'watch' && x.labels.resource === resource && x.labels.code === code);
  return v?.value ?? 0;
}

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let kube: KubeInstance;
let identity: KubeConfig;

beforeAll(async () => {
  kubeBinaries(); // fails with the build hint when kube-apiserver is missing
  kube = await startKube({ controllerManager: false });
  await applyCrds(kube);
  identity = (await controllerIdentity(kube, CONTROLLER_NAMESPACE)).kubeConfig;
}, 180_000);

afterAll(async () => {
  await kube?.stop();
});

describe('/healthz of a running controller', () => {
  let proxy: Proxy;
  let running: RunningController | undefined;

  afterAll(async () => {
    await running?.stop();
    await proxy?.close();
  });

  it('is 200 while the watches run, 503 naming the watch once the API server has been gone longer than watchFailureTimeout, 200 again after', async () => {
    proxy = await startProxy(Number(new URL(kube.server).port));
    const settings = validateSettings({
      namespace: CONTROLLER_NAMESPACE,
      runnerImages: renderSettings().runnerImages,
      resyncPeriod: '1h',
      metricsHost: '127.0.0.1',
      metricsPort: 0,
      leaderElection: { enabled: false },
      liveness: { watchFailureTimeout: '2s' },
    });
    if (!settings.ok) throw new Error(JSON.stringify(settings.errors));
    running = await runController({ settings: settings.value, kubeConfig: via(identity, proxy.url), logger });
    const healthz = async () => {
      const r = await fetch(`http://127.0.0.1:${running!.httpPort}/healthz`);
      return { status: r.status, body: (await r.json()) as { status: string; reason?: string } };
    };
    expect(await healthz()).toEqual({ status: 200, body: { status: 'ok' } });

    const cut = Date.now();
    proxy.set('down');
    // A hiccup shorter than the timeout keeps the pod: still live right after the cut.
    await new Promise((r) => setTimeout(r, 300));
    expect((await healthz()).status).toBe(200);
    const down = await eventually('/healthz to answer 503', async () => {
      const h = await healthz();
      return h.status === 503 ? h : undefined;
    }, 30_000, 100);
    const detectedMs = Date.now() - cut;
    expect(down.body.status).toBe('unhealthy');
    expect(down.body.reason).toMatch(/^watch (databasebackups|databasebackupstorageclasses|secrets|persistentvolumeclaims|deployments|services|serviceaccounts|roles|rolebindings) failing since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: \S/);
    expect(detectedMs).toBeGreaterThanOrEqual(2_000);
    // The readiness view is unchanged: the caches have synced once and still serve their last state.
    expect((await fetch(`http://127.0.0.1:${running.httpPort}/readyz`)).status).toBe(200);
    expect(await watchCount(running.metrics, 'databasebackups', '200')).toBeGreaterThanOrEqual(1);

    proxy.set('up');
    const back = Date.now();
    await eventually('/healthz to answer 200 again', async () => (await healthz()).status === 200, 60_000, 100);
    console.info(`[measure] /healthz 503 ${detectedMs} ms after the cut (watchFailureTimeout 2s), 200 again ${Date.now() - back} ms after the API server came back; reason: ${down.body.reason}`);
  });
});

describe('a cache behind a connection gone silent', () => {
  let proxy: Proxy;
  let kubeAdapter: KubeAdapter | undefined;

  afterAll(async () => {
    await kubeAdapter?.stop();
    await proxy?.close();
  });

  it('re-watches a watch the server ended without counting a failure; aborts one that went silent, reports it, and recovers', async () => {
    proxy = await startProxy(Number(new URL(kube.server).port));
    const metrics = createControllerMetrics();
    // Watches the server ends after 1-2 s; one still open 1 s later is presumed dead; connects and lists get 2 s.
    kubeAdapter = new KubeAdapter({ kubeConfig: via(identity, proxy.url), logger, metrics, watchTimings: { timeoutSeconds: 1, graceMs: 1_000, requestTimeoutMs: 2_000 } });
    const cache = kubeAdapter.cache(kubeAdapter.sources(CONTROLLER_NAMESPACE).secrets, () => undefined);
    await cache.start();
    const secret = (name: string) => kube.kubectlOk(['apply', '-f', '-'], { input: stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: CONTROLLER_NAMESPACE }, stringData: { k: 'v' } }) });

    // Server-side ends (timeoutSeconds) are clean closes: watched again from the last resourceVersion, no failure.
    await eventually('three watches ended by the server and watched again', async () => (await watchCount(metrics, 'secrets', '200')) >= 3, 20_000, 100);
    expect(cache.health()).toEqual({ resource: 'secrets', failures: 0 });
    await secret('before-freeze');
    await eventually('the cache to see a Secret created after the re-watches', () => Promise.resolve(cache.get('before-freeze', CONTROLLER_NAMESPACE) !== undefined));

    const frozen = Date.now();
    proxy.set('frozen');
    const failing = await eventually('the cache to report the silent watch', () => Promise.resolve(cache.health().failingSince ? cache.health() : undefined), 30_000, 100);
    const detectedMs = Date.now() - frozen;
    expect(failing.lastError).toMatch(/was not ended .* s after it started .*presumed dead|network timeout|no answer within/);
    await secret('during-freeze');
    // Later attempts cannot connect either (held without an answer): still failing, since the same time.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(cache.health().failingSince).toEqual(failing.failingSince);
    expect(cache.health().failures).toBeGreaterThanOrEqual(2);
    expect(cache.health().lastError).toMatch(/network timeout|no answer within/);
    expect(await watchCount(metrics, 'secrets', 'error')).toBeGreaterThanOrEqual(1);

    proxy.set('up');
    const thawed = Date.now();
    await eventually('the cache to watch again and see the Secret created meanwhile', () => Promise.resolve(cache.health().failures === 0 && cache.get('during-freeze', CONTROLLER_NAMESPACE) !== undefined), 60_000, 100);
    console.info(`[measure] silent watch reported ${detectedMs} ms after the freeze (timeoutSeconds 1-2 s + grace 1 s): ${failing.lastError}; watching again ${Date.now() - thawed} ms after the thaw`);
  });
});
