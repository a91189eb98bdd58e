/**
 * What the runner's and the controller's typed errors share: a code from a
 * table that fixes the exit code and whether a retry can help, structured
 * details for logs, and the message of a Kubernetes Status body. Each side
 * keeps its own table and class (runner/errors.ts, controller/errors.ts).
 */

export interface ErrorRule<X extends number> {
  exit: X;
  retryable: boolean;
}

export interface CodedErrorOptions {
  cause?: unknown;
  /** Structured facts for logs and JSON output (never credentials). */
  details?: Record<string, unknown>;
  /** Override the table's retryable flag (e.g. a 503 vs a 403 from one call). */
  retryable?: boolean;
}

export abstract class CodedError<C extends string, X extends number> extends Error {
  readonly code: C;
  readonly retryable: boolean;
  readonly exitCode: X;
  readonly details: Record<string, unknown>;

  protected constructor(name: string, rule: ErrorRule<X>, code: C, message: string, opts: CodedErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = name;
    this.code = code;
    this.retryable = opts.retryable ?? rule.retryable;
    this.exitCode = rule.exit;
    this.details = opts.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, retryable: this.retryable, ...this.details };
  }
}

/** message and reason of a Kubernetes Status body (a string or parsed JSON); undefined when the body is no JSON. */
export function statusBody(body: unknown): { message?: string; reason?: string } | undefined {
  let s: unknown = body;
  if (typeof body === 'string') {
    try {
      s = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const o = (typeof s === 'object' && s !== null ? s : {}) as { message?: unknown; reason?: unknown };
  return { ...(typeof o.message === 'string' ? { message: o.message } : {}), ...(typeof o.reason === 'string' ? { reason: o.reason } : {}) };
}
