import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type ReconcileResult = 'success' | 'error' | 'requeue';

export interface ControllerMetrics {
  /** Holds only the controller's metrics and the default process metrics; nothing goes to prom-client's global registry. */
  readonly registry: Registry;
  /** The prom-client Counter, with `result` narrowed to the three values. */
  readonly reconcileTotal: Omit<Counter<'result'>, 'inc'> & { inc(labels: { result: ReconcileResult }, value?: number): void };
  readonly reconcileDuration: Histogram;
  /** `verb`: get, list, watch, create, update, patch, delete; `code`: the HTTP status, or `error` when no response came. */
  readonly apiRequestsTotal: Counter<'verb' | 'resource' | 'code'>;
  readonly queueDepth: Gauge;
  readonly isLeader: Gauge;
  readonly managedBackups: Gauge;
  /** Per DatabaseBackup: 1 while its Ready condition is True, 0 otherwise; removed with the DatabaseBackup. */
  readonly backupReady: Gauge<'databasebackup_namespace' | 'databasebackup'>;
}

/** Creates the controller's registry and metrics; call once per process (or per test). */
export function createControllerMetrics(): ControllerMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  const reconcileTotal = new Counter({ name: 'dbbackup_controller_reconcile_total', help: 'Finished reconciles of a DatabaseBackup by result', labelNames: ['result'] as const, registers });
  // Every result is exported from the start, so rate() and alerts see a zero rather than no series.
  for (const result of ['success', 'error', 'requeue'] satisfies ReconcileResult[]) reconcileTotal.inc({ result }, 0);
  return {
    registry,
    reconcileTotal,
    reconcileDuration: new Histogram({
      name: 'dbbackup_controller_reconcile_duration_seconds',
      help: 'Duration of one reconcile of a DatabaseBackup',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    apiRequestsTotal: new Counter({ name: 'dbbackup_controller_api_requests_total', help: 'Kubernetes API requests by verb, resource and HTTP status', labelNames: ['verb', 'resource', 'code'] as const, registers }),
    queueDepth: new Gauge({ name: 'dbbackup_controller_queue_depth', help: 'DatabaseBackups waiting in the work queue', registers }),
    isLeader: new Gauge({ name: 'dbbackup_controller_is_leader', help: '1 while this instance holds the leader lease', registers }),
    managedBackups: new Gauge({ name: 'dbbackup_controller_managed_backups', help: 'DatabaseBackups this controller manages', registers }),
    // Not `namespace`: Prometheus sets that target label to the controller's namespace.
    backupReady: new Gauge({
      name: 'dbbackup_controller_backup_ready',
      help: 'Per DatabaseBackup: 1 while its Ready condition is True (its runner is available and runs the current spec), else 0',
      labelNames: ['databasebackup_namespace', 'databasebackup'] as const,
      registers,
    }),
  };
}
