/**
 * One controller process: metrics/health server, leader election, and the
 * reconcile loop while leading. Standby instances keep their Lease attempts
 * going and answer probes; only the leader watches and writes.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { parseDuration } from '../api/duration.js';
import { Controller } from './controller.js';
import { DEFAULT_WATCH_FAILURE_TIMEOUT_MS, LIVE, firstFailing, leaderLiveness, leaderStallMs, logTransitions, type Liveness } from './health.js';
import { startControllerHttp, type ControllerHttpServer } from './http.js';
import { KubeAdapter, type WatchTimings } from './kube.js';
import { startLeaderElection, type LeaderElection, type StoppedReason } from './leader.js';
import { createControllerMetrics, type ControllerMetrics } from './metrics.js';
import type { ControllerSettings } from './settings.js';

export interface RunOptions {
  settings: ControllerSettings;
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Unique per process; default <hostname>-<random>. */
  identity?: string;
  /** Called when leadership is lost (the process must end: another instance leads now). */
  onLost?: () => void;
  /** Bounds of the caches' requests (tests shorten them); default kube.ts DEFAULT_WATCH_TIMINGS. */
  watchTimings?: Partial<WatchTimings>;
}

export interface RunningController {
  readonly identity: string;
  readonly metrics: ControllerMetrics;
  readonly httpPort: number;
  isLeader(): boolean;
  /** The reconcile loop while leading; undefined on a standby. */
  controller(): Controller | undefined;
  /** Stops the loop and hands the Lease over. */
  stop(): Promise<void>;
}

const ms = (d: string) => parseDuration(d) ?? 0;

export async function runController(opts: RunOptions): Promise<RunningController> {
  const { settings, logger } = opts;
  const identity = opts.identity ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  const metrics = createControllerMetrics();
  let controller: Controller | undefined;
  let leader: LeaderElection | undefined;
  let stopping = false;

  const lead = async (signal: AbortSignal) => {
    metrics.isLeader.set(1);
    logger.info({ identity }, 'leading: starting the reconcile loop');
    const kube = new KubeAdapter({ kubeConfig: opts.kubeConfig, logger, metrics, ...(opts.watchTimings ? { watchTimings: opts.watchTimings } : {}) });
    const c = new Controller({ kube, settings, logger, metrics, identity });
    controller = c;
    signal.addEventListener('abort', () => void c.stop());
    await c.start();
  };
  const stopped = async (reason: StoppedReason) => {
    metrics.isLeader.set(0);
    const c = controller;
    controller = undefined;
    await c?.stop();
    if (reason === 'lost' && !stopping) {
      logger.error({ identity }, 'leadership lost: stopping so that only one instance writes');
      opts.onLost?.();
    }
  };

  const le = settings.leaderElection;
  const allowanceMs = parseDuration(settings.liveness.watchFailureTimeout) ?? DEFAULT_WATCH_FAILURE_TIMEOUT_MS;
  const stallMs = leaderStallMs({ leaseDurationMs: ms(le.leaseDuration), retryPeriodMs: ms(le.retryPeriod) }, allowanceMs);
  // Stopping is live (the process is on its way out); else the election loop ticks and the caches are not stuck failing.
  const live = (): Liveness => {
    if (stopping) return LIVE;
    const now = new Date();
    return firstFailing([() => (leader ? leaderLiveness(leader.lastAttemptAt(), now, stallMs) : LIVE), () => controller?.health(now) ?? LIVE]);
  };

  const http: ControllerHttpServer = await startControllerHttp(settings.metricsHost, settings.metricsPort, {
    registry: metrics.registry,
    live: logTransitions(live, logger),
    // A standby is ready (it is healthy and waits); the leader once its caches have synced.
    ready: () => (controller ? controller.synced() : !settings.leaderElection.enabled ? false : true),
    logger,
  });

  if (le.enabled) {
    leader = startLeaderElection({
      kubeConfig: opts.kubeConfig,
      namespace: settings.namespace,
      name: le.leaseName,
      identity,
      leaseDurationMs: ms(le.leaseDuration),
      renewDeadlineMs: ms(le.renewDeadline),
      retryPeriodMs: ms(le.retryPeriod),
      logger,
      onStartedLeading: lead,
      onStoppedLeading: stopped,
    });
  } else {
    await lead(new AbortController().signal);
  }

  return {
    identity,
    metrics,
    httpPort: http.port,
    isLeader: () => controller !== undefined,
    controller: () => controller,
    async stop() {
      stopping = true;
      if (leader) await leader.stop();
      else await stopped('stopped');
      await http.close();
    },
  };
}
