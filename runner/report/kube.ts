/**
 * The DatabaseBackup's status subresource through @kubernetes/client-node.
 * Loaded with a dynamic import, only when the config has `report`: the
 * client library takes seconds to load.
 *
 * Credentials: KubeConfig.loadFromDefault(), i.e. $KUBECONFIG, else
 * ~/.kube/config, else the pod's ServiceAccount (token re-read as it rotates).
 */
import {
  ApiException,
  CustomObjectsApi,
  KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../api/crds/common.js';
import type { DatabaseBackupStatus } from '../../api/crds/database-backup.js';
import { statusBody } from '../../api/errors.js';
import type { Report } from '../../api/runner-config.js';
import { BackupError, isAbortError, type ErrorCode } from '../errors.js';
import type { StatusSink } from './reporter.js';

const PLURAL = 'databasebackups';
/** Shown in the object's managedFields as the writer of the runner's fields. */
export const FIELD_MANAGER = 'backup-runner';

export interface KubeSinkOptions {
  /** Per request (default 10 s). */
  timeoutMs?: number;
  /** Default: KubeConfig.loadFromDefault(). */
  kubeConfig?: KubeConfig;
}

type Target = Report['databaseBackup'];

/** A StatusSink for one DatabaseBackup. Throws REPORT_FAILED when no kubeconfig can be loaded. */
export function kubeStatusSink(target: Target, opts: KubeSinkOptions = {}): StatusSink {
  const kc = opts.kubeConfig ?? loadKubeConfig();
  const api = kc.makeApiClient(CustomObjectsApi);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: target.namespace, name: target.name };
  const call = async <T>(what: string, signal: AbortSignal, fn: (options: ConfigurationOptions<ObservableMiddleware>) => Promise<T>): Promise<T> => {
    const limited = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
    try {
      return await fn(withSignal(limited));
    } catch (err) {
      throw reportError(err, `${what} DatabaseBackup ${target.namespace}/${target.name} status`, timeoutMs);
    }
  };
  return {
    async read(signal) {
      const obj = (await call('read', signal, (o) => api.getNamespacedCustomObjectStatus(ref, o))) as { status?: DatabaseBackupStatus };
      return obj.status;
    },
    async patch(status, signal) {
      await call('patch', signal, (o) =>
        api.patchNamespacedCustomObjectStatus({ ...ref, body: { status }, fieldManager: FIELD_MANAGER }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch, o)),
      );
    },
  };
}

function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (err) {
    throw new BackupError('REPORT_FAILED', `cannot load Kubernetes credentials (KUBECONFIG, ~/.kube/config or the pod's ServiceAccount): ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) throw new BackupError('REPORT_FAILED', 'no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or the pod\'s ServiceAccount)');
  return kc;
}

/** Call options whose middleware gives the request an AbortSignal (the object API takes the client's own Observable middleware). */
function withSignal(signal: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
  const middleware: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (rsp) => new Observable(Promise.resolve(rsp)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/** Why the API server answered `code`, as a runner error code and a hint for the operator. */
export function classifyStatus(code: number): { code: ErrorCode; hint: string } {
  if (code === 401) return { code: 'REPORT_DENIED', hint: 'the API server did not accept the credentials (expired or revoked token?)' };
  if (code === 403) return { code: 'REPORT_DENIED', hint: "the runner's ServiceAccount needs get and patch on databasebackups/status for this name: check its Role and RoleBinding" };
  if (code === 404) return { code: 'REPORT_NOT_FOUND', hint: 'the DatabaseBackup does not exist (deleted?) or the CRD is not installed' };
  if (code === 408 || code === 429 || code >= 500) return { code: 'REPORT_UNAVAILABLE', hint: 'the API server is unavailable or overloaded' };
  if (code === 400 || code === 409 || code === 422) return { code: 'REPORT_REJECTED', hint: 'the API server rejected the status (a runner and CRD version mismatch?)' };
  return { code: 'REPORT_FAILED', hint: 'unexpected answer' };
}

/** The message of a Kubernetes Status body, else the start of the body itself. */
function apiMessage(body: unknown): { message?: string; reason?: string } {
  return statusBody(body) ?? (typeof body === 'string' && body ? { message: body.slice(0, 500) } : {});
}

function reportError(err: unknown, what: string, timeoutMs: number): BackupError {
  if (err instanceof BackupError) return err;
  if (err instanceof ApiException) {
    const status = err.code;
    const { code, hint } = classifyStatus(status);
    const api = apiMessage(err.body);
    const said = api.message ? `: ${api.message}` : '';
    // The exception's own message lists response headers; only the status and the server's message are kept.
    return new BackupError(code, `cannot ${what}: HTTP ${status}${said}; ${hint}`, { details: { httpStatus: status, ...(api.reason ? { reason: api.reason } : {}), ...(api.message ? { apiMessage: api.message } : {}) } });
  }
  if (isAbortError(err) || (err instanceof Error && err.name === 'TimeoutError')) {
    return new BackupError('REPORT_UNAVAILABLE', `cannot ${what}: no answer within ${timeoutMs} ms or stopped`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BackupError('REPORT_UNAVAILABLE', `cannot ${what}: ${message}`, { cause: err });
}
