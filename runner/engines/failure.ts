/** What every engine's error classification knows of a failed tool run. Pure. */
import type { ErrorCode } from '../errors.js';

export interface FailureContext {
  /** Tool that failed, e.g. "pg_dump". */
  tool: string;
  host: string;
  port: number;
  user: string;
  /** Database the tool connected to. */
  database: string;
  /** Removed from any text that reaches the error. */
  password?: string;
  /** Code for failures that are not about connecting, e.g. DUMP_FAILED. */
  fallback: ErrorCode;
}

/** `text` with every occurrence of each secret replaced by [redacted]. */
export function redact(text: string, ...secrets: (string | undefined)[]): string {
  return secrets.reduce<string>((t, secret) => (secret ? t.split(secret).join('[redacted]') : t), text);
}
