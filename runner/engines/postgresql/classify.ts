/**
 * Turns the stderr of psql, pg_dump or pg_restore into a typed error with a
 * message a user can act on. Pure.
 *
 * Invariants:
 * - The password never appears in a message or in details: every piece of
 *   tool output passes through `redact` first.
 * - Patterns match libpq's and the server's English messages (the engine runs
 *   the tools with LC_MESSAGES=C); anything unrecognised keeps the caller's
 *   fallback code and the tool's own words.
 */
import { BackupError, type ErrorCode } from '../../errors.js';
import { redact, type FailureContext } from '../failure.js';

export { redact, type FailureContext };

/** Drops the `pg_dump: error: ` style prefixes and blank lines; keeps the tool's words. */
function essence(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.replace(/^\s*(psql|pg_dump|pg_restore|pg_basebackup)(:[^:]*)?: (error|fatal|detail|hint): /i, '').trim())
    .filter((l) => l.length > 0 && !/^(pg_dump|pg_restore|psql): warning: errors ignored/i.test(l))
    .join(' ')
    .replace(/\s+/g, ' ')
    .slice(0, 600)
    .replace(/[\s.?!:;]+$/, ''); // messages append their own punctuation
}

interface Rule {
  test: RegExp;
  /** Omitted: the caller's fallback code. */
  code?: ErrorCode;
  message: (ctx: FailureContext, m: RegExpExecArray, detail: string) => string;
}

const where = (ctx: FailureContext): string => `PostgreSQL at ${ctx.host}:${ctx.port}`;
const credentialsHint = 'Check engine.postgresql.user and engine.postgresql.password.';
const reachHint = 'Check engine.postgresql.host and port, that the server is running, and that it accepts TCP connections from this pod.';

/** First match wins: authentication and missing databases are reported inside "connection ... failed" lines too. */
const RULES: Rule[] = [
  {
    test: /password authentication failed for user "([^"]*)"/,
    code: 'DB_AUTH_FAILED',
    message: (ctx, m) => `${where(ctx)} rejected the password for user "${m[1]}". ${credentialsHint}`,
  },
  {
    test: /no password supplied/,
    code: 'DB_AUTH_FAILED',
    message: (ctx) => `${where(ctx)} requires a password for user "${ctx.user}" and none is configured. Set engine.postgresql.password.`,
  },
  {
    test: /no pg_hba\.conf entry for replication connection from host "([^"]*)"/,
    code: 'DB_AUTH_FAILED',
    message: (ctx, m) =>
      `${where(ctx)} has no pg_hba.conf rule that lets user "${ctx.user}" open a replication connection from ${m[1]}: a physical backup needs a line like "host replication ${ctx.user} <address> scram-sha-256". Ask the database administrator to add it.`,
  },
  {
    test: /must be superuser or replication role to start walsender|permission denied to start WAL sender/,
    code: 'DB_AUTH_FAILED',
    message: (ctx) => `user "${ctx.user}" may not open a replication connection to ${where(ctx)}: a physical backup needs the REPLICATION attribute (ALTER ROLE "${ctx.user}" WITH REPLICATION) or a superuser.`,
  },
  {
    // PostgreSQL 16 and later say the first; earlier ones the second.
    test: /permission denied to use replication slots|must be superuser or replication role to use replication slots/,
    code: 'DB_AUTH_FAILED',
    message: (ctx) => `user "${ctx.user}" may not use replication slots on ${where(ctx)}: that needs the REPLICATION attribute (ALTER ROLE "${ctx.user}" WITH REPLICATION) or a superuser.`,
  },
  {
    test: /number of requested standby connections exceeds max_wal_senders|requested standby connections exceeds|all replication slots are in use/,
    message: (ctx, _m, detail) => `${where(ctx)} has no WAL sender free for the base backup (${detail}): raise max_wal_senders or end other replication connections.`,
  },
  {
    test: /no pg_hba\.conf entry for host "([^"]*)"/,
    code: 'DB_AUTH_FAILED',
    message: (ctx, m) => `${where(ctx)} has no pg_hba.conf rule that lets user "${ctx.user}" connect from ${m[1]} (with this SSL mode). Ask the database administrator to allow it, or change engine.postgresql.sslMode.`,
  },
  {
    test: /FATAL:\s+role "([^"]*)" does not exist/,
    code: 'DB_AUTH_FAILED',
    message: (ctx, m) => `${where(ctx)} has no role "${m[1]}". ${credentialsHint}`,
  },
  {
    test: /FATAL:\s+database "([^"]*)" does not exist/,
    code: 'DB_NOT_FOUND',
    message: (ctx, m) => `database "${m[1]}" does not exist on ${where(ctx)}. Check engine.postgresql.database.`,
  },
  {
    test: /aborting because of server version mismatch|server version: ([\d.]+\w*); (pg_dump|pg_restore) version: ([\d.]+\w*)/,
    code: 'TOOL_TOO_OLD',
    message: (ctx, _m, detail) => `${ctx.tool} is older than ${where(ctx)} (${detail}). Use client tools of the server's major version or newer: set engine.postgresql.binDir or use a newer runner image.`,
  },
  {
    test: /Connection refused|could not connect to server|No route to host|Network is unreachable|timeout expired|Connection timed out|could not translate host name|Name or service not known|server closed the connection unexpectedly|Connection reset by peer|the database system is (starting up|shutting down)/i,
    code: 'DB_UNREACHABLE',
    message: (ctx, _m, detail) => `cannot reach ${where(ctx)}: ${detail}. ${reachHint}`,
  },
  {
    test: /ERROR:\s+role "([^"]*)" does not exist/,
    message: (ctx, m, detail) =>
      `${ctx.tool} failed: the archive refers to role "${m[1]}", which does not exist on ${where(ctx)} (${detail}). Create the role, or add --no-owner and --no-privileges to engine.postgresql.restoreArgs.`,
  },
  {
    test: /could not read from input file: end of file|unexpected end of file|did not find magic string in file header|could not find block ID/,
    message: (ctx, _m, detail) => `${ctx.tool} read an incomplete or damaged archive (${detail}): the backup data is truncated or corrupt`,
  },
  {
    test: /invalid snapshot identifier|could not import the requested snapshot/,
    message: (ctx, _m, detail) =>
      `${ctx.tool} could not use the exported snapshot (${detail}). This happens behind a connection pooler in transaction mode: connect the runner to the server directly or through a session-mode pool.`,
  },
];

/** The error for a failed run; `exitCode` null means killed by a signal. */
export function classifyFailure(stderr: string, exitCode: number | null, ctx: FailureContext): BackupError {
  const clean = redact(stderr, ctx.password);
  const detail = essence(clean);
  const details = { tool: ctx.tool, host: ctx.host, port: ctx.port, database: ctx.database, exitCode, stderr: clean.slice(-2000) };
  for (const rule of RULES) {
    const m = rule.test.exec(clean);
    if (m) return new BackupError(rule.code ?? ctx.fallback, rule.message(ctx, m, detail), { details });
  }
  const how = exitCode === null ? 'was killed' : `exited with code ${exitCode}`;
  return new BackupError(ctx.fallback, `${ctx.tool} ${how}${detail ? `: ${detail}` : ''}`, { details });
}

/** Codes that mean the server cannot be used at all: no fallback strategy helps. */
export function isConnectionFailure(err: BackupError): boolean {
  return ['DB_UNREACHABLE', 'DB_AUTH_FAILED', 'DB_NOT_FOUND', 'TOOL_MISSING', 'TOOL_TOO_OLD', 'ABORTED'].includes(err.code);
}
