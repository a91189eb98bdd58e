/**
 * Turns the stderr of mariadb, mariadb-dump, mysql or mysqldump into a typed
 * error with a message a user can act on. Pure.
 *
 * The tools print the server's error number either way
 * (`ERROR 1045 (28000): Access denied ...` from the client,
 * `mariadb-dump: Got error: 1045: "Access denied ..." when trying to connect`
 * from the dump), so rules match numbers, not sentences. The password is
 * removed from any text that reaches the error.
 */
import { BackupError, type ErrorCode } from '../../errors.js';
import { redact, type FailureContext } from '../failure.js';

export type { FailureContext };

/** The tool's words without its own prefixes, on one line. */
function essence(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.replace(/^\s*(mariadb-dump|mysqldump|mariadb|mysql):\s*/i, '').trim())
    .filter((l) => l.length > 0 && !/^Deprecated program name|^\[Warning\]|^Warning: /i.test(l))
    .join(' ')
    .replace(/\s+/g, ' ')
    .slice(0, 600)
    .replace(/[\s.?!:;]+$/, '');
}

const where = (ctx: FailureContext): string => `the MariaDB/MySQL server at ${ctx.host}:${ctx.port}`;

interface Rule {
  errno: readonly number[];
  code?: ErrorCode;
  retryable?: boolean;
  message: (ctx: FailureContext, detail: string) => string;
}

const RULES: readonly Rule[] = [
  {
    errno: [1045, 1698],
    code: 'DB_AUTH_FAILED',
    message: (ctx, d) => `${where(ctx)} refused user "${ctx.user}" (${d}). Check engine.mysql.user and engine.mysql.password.`,
  },
  {
    errno: [1044],
    code: 'DB_AUTH_FAILED',
    message: (ctx, d) => `user "${ctx.user}" may not use database "${ctx.database}" on ${where(ctx)} (${d}). Grant it the privileges docs/engines.md lists.`,
  },
  {
    errno: [1049],
    code: 'DB_NOT_FOUND',
    message: (ctx) => `database "${ctx.database}" does not exist on ${where(ctx)}. Check engine.mysql.database.`,
  },
  {
    errno: [2002, 2003, 2005, 2013, 2006],
    code: 'DB_UNREACHABLE',
    message: (ctx, d) => `cannot reach ${where(ctx)} (${d}). Check engine.mysql.host and port, that the server is running, and that it accepts TCP connections from this pod.`,
  },
  {
    errno: [2026],
    code: 'DB_UNREACHABLE',
    retryable: false,
    message: (ctx, d) => `the TLS connection to ${where(ctx)} failed (${d}). Check engine.mysql.sslMode and sslCa.`,
  },
];

/** The server or client error number in a tool's stderr. */
export function errorNumber(stderr: string): number | undefined {
  const m = /\bERROR (\d{4})\b|\bGot error: (\d{4})\b|\berror: (\d{4})\b/i.exec(stderr);
  const n = m?.[1] ?? m?.[2] ?? m?.[3];
  return n === undefined ? undefined : Number(n);
}

export function classifyFailure(stderr: string, exitCode: number | null, ctx: FailureContext): BackupError {
  const clean = redact(stderr, ctx.password);
  const detail = essence(clean) || `exit code ${exitCode ?? 'unknown'}`;
  const errno = errorNumber(clean);
  const rule = errno === undefined ? undefined : RULES.find((r) => r.errno.includes(errno));
  const details = { tool: ctx.tool, host: ctx.host, port: ctx.port, database: ctx.database, exitCode, ...(errno !== undefined ? { errno } : {}) };
  if (rule) return new BackupError(rule.code ?? ctx.fallback, rule.message(ctx, detail), { details, ...(rule.retryable !== undefined ? { retryable: rule.retryable } : {}) });
  return new BackupError(ctx.fallback, `${ctx.tool} failed: ${detail}`, { details });
}
