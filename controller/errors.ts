/**
 * The controller's table of typed errors. Callers branch on `code`, never on
 * message text. Each code fixes the process exit code (when it ends the
 * controller) and whether a retry can help.
 */
import { ApiException } from '@kubernetes/client-node';
import { CodedError, statusBody, type CodedErrorOptions } from '../api/errors.js';

export const CONTROLLER_EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
} as const;

export type ControllerExitCode = (typeof CONTROLLER_EXIT)[keyof typeof CONTROLLER_EXIT];

const table = {
  CONFIG_INVALID: { exit: CONTROLLER_EXIT.USAGE, retryable: false },
  /** The API server refused the credentials or RBAC denies the call. */
  KUBE_FORBIDDEN: { exit: CONTROLLER_EXIT.FAILED, retryable: false },
  KUBE_NOT_FOUND: { exit: CONTROLLER_EXIT.FAILED, retryable: false },
  /** Optimistic concurrency: someone else wrote the object since it was read. */
  KUBE_CONFLICT: { exit: CONTROLLER_EXIT.FAILED, retryable: true },
  /** No answer, a 5xx or a 429: the API server may be back soon. */
  KUBE_UNAVAILABLE: { exit: CONTROLLER_EXIT.FAILED, retryable: true },
  KUBE_REQUEST_FAILED: { exit: CONTROLLER_EXIT.FAILED, retryable: false },
  /** The lease could not be renewed within renewDeadline; the process must stop its work. */
  LEADERSHIP_LOST: { exit: CONTROLLER_EXIT.FAILED, retryable: false },
  LISTEN_FAILED: { exit: CONTROLLER_EXIT.FAILED, retryable: false },
  INTERNAL: { exit: CONTROLLER_EXIT.FAILED, retryable: false },
} as const satisfies Record<string, { exit: ControllerExitCode; retryable: boolean }>;

export type ControllerErrorCode = keyof typeof table;

export type ControllerErrorOptions = CodedErrorOptions;

export class ControllerError extends CodedError<ControllerErrorCode, ControllerExitCode> {
  constructor(code: ControllerErrorCode, message: string, opts: ControllerErrorOptions = {}) {
    super('ControllerError', table[code], code, message, opts);
  }
}

export function isControllerError(err: unknown, code?: ControllerErrorCode): err is ControllerError {
  return err instanceof ControllerError && (code === undefined || err.code === code);
}

/** The HTTP status of a failed API call, or undefined when no response came (network, TLS, timeout). */
export function kubeStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/**
 * Classifies a failed Kubernetes API call by its HTTP status. `what` names the
 * call, e.g. "replace Lease kube-system/db-backup-controller".
 */
export function fromKubeError(err: unknown, what: string): ControllerError {
  if (err instanceof ControllerError) return err;
  const status = kubeStatus(err);
  const details = { status: status ?? 'no response' };
  const reason = err instanceof ApiException ? statusReason(err) : err instanceof Error ? err.message : String(err);
  const code: ControllerErrorCode =
    status === undefined || status === 429 || status >= 500
      ? 'KUBE_UNAVAILABLE'
      : status === 401 || status === 403
        ? 'KUBE_FORBIDDEN'
        : status === 404
          ? 'KUBE_NOT_FOUND'
          : status === 409
            ? 'KUBE_CONFLICT'
            : 'KUBE_REQUEST_FAILED';
  return new ControllerError(code, `${what} failed: ${reason}`, { cause: err, details });
}

/** "HTTP 409: <the Status message>": ApiException's own message carries the whole body and the response headers. */
function statusReason(err: ApiException<unknown>): string {
  const message = statusBody(err.body)?.message;
  return message ? `HTTP ${err.code}: ${message}` : `HTTP ${err.code}`;
}
