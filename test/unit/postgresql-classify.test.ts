import { describe, expect, it } from 'vitest';
import { classifyFailure, type FailureContext } from '../../runner/engines/postgresql/classify.js';

const PASSWORD = 'hunter2-secret';
const ctx: FailureContext = { tool: 'pg_dump', host: '10.0.0.5', port: 5432, user: 'backup', database: 'shop', password: PASSWORD, fallback: 'DUMP_FAILED' };

// Real stderr of PostgreSQL 15 tools.
const cases: Array<[string, string, string, RegExp]> = [
  [
    'wrong password',
    'pg_dump: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  password authentication failed for user "backup"',
    'DB_AUTH_FAILED',
    /rejected the password for user "backup".*engine\.postgresql\.password/,
  ],
  [
    'no replication line in pg_hba',
    'pg_basebackup: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  no pg_hba.conf entry for replication connection from host "10.1.2.3", user "backup", no encryption',
    'DB_AUTH_FAILED',
    /replication connection from 10\.1\.2\.3: a physical backup needs a line like "host replication backup <address> scram-sha-256"/,
  ],
  [
    'no REPLICATION attribute (15)',
    'pg_basebackup: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  must be superuser or replication role to start walsender',
    'DB_AUTH_FAILED',
    /needs the REPLICATION attribute \(ALTER ROLE "backup" WITH REPLICATION\)/,
  ],
  [
    'no REPLICATION attribute (16)',
    'pg_basebackup: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  permission denied to start WAL sender\nDETAIL:  Only roles with the REPLICATION attribute may start a WAL sender process.',
    'DB_AUTH_FAILED',
    /needs the REPLICATION attribute/,
  ],
  [
    'no WAL sender free',
    'pg_basebackup: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  number of requested standby connections exceeds max_wal_senders (currently 0)',
    'DUMP_FAILED',
    /no WAL sender free .*max_wal_senders/,
  ],
  ['no password', 'psql: error: connection to server at "10.0.0.5", port 5432 failed: fe_sendauth: no password supplied', 'DB_AUTH_FAILED', /none is configured/],
  [
    'pg_hba',
    'pg_dump: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.1.2.3", user "backup", database "shop", no encryption',
    'DB_AUTH_FAILED',
    /pg_hba\.conf.*10\.1\.2\.3/,
  ],
  [
    'refused',
    'pg_dump: error: connection to server at "10.0.0.5", port 5432 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?',
    'DB_UNREACHABLE',
    /cannot reach PostgreSQL at 10\.0\.0\.5:5432: .*Connection refused/,
  ],
  ['timeout', 'psql: error: connection to server at "10.0.0.5", port 5432 failed: timeout expired', 'DB_UNREACHABLE', /timeout expired/],
  ['dns', 'psql: error: could not translate host name "db.nope" to address: Name or service not known', 'DB_UNREACHABLE', /db\.nope/],
  [
    'missing database',
    'pg_dump: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  database "shop" does not exist',
    'DB_NOT_FOUND',
    /database "shop" does not exist on PostgreSQL at 10\.0\.0\.5:5432/,
  ],
  [
    'version mismatch',
    'pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 16.2; pg_dump version: 15.18',
    'TOOL_TOO_OLD',
    /older than PostgreSQL.*16\.2.*15\.18/,
  ],
  [
    'missing role inside the archive is not an auth failure',
    'pg_restore: error: could not execute query: ERROR:  role "alice" does not exist\nCommand was: ALTER TABLE public.t OWNER TO alice;',
    'DUMP_FAILED',
    /--no-owner/,
  ],
  ['truncated archive', 'pg_restore: error: could not read from input file: end of file', 'DUMP_FAILED', /incomplete or damaged archive.*truncated or corrupt/],
  ['pooler', 'pg_dump: error: query failed: ERROR:  invalid snapshot identifier: "00000003-0000001B-1"', 'DUMP_FAILED', /pooler/],
  ['anything else keeps the fallback', 'pg_dump: error: query failed: ERROR:  permission denied for table secrets', 'DUMP_FAILED', /pg_dump exited with code 1: query failed: ERROR: permission denied for table secrets/],
];

describe('classifyFailure', () => {
  it.each(cases)('%s', (_name, stderr, code, message) => {
    const err = classifyFailure(stderr, 1, ctx);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('never lets the password into the message or details', () => {
    const stderr = `pg_dump: error: connection to server failed: FATAL: something echoed ${PASSWORD} back`;
    const err = classifyFailure(stderr, 1, ctx);
    expect(JSON.stringify({ m: err.message, d: err.details, j: err.toJSON() })).not.toContain(PASSWORD);
    expect(err.message).toContain('[redacted]');
  });

  it('says when the tool was killed', () => {
    expect(classifyFailure('', null, ctx).message).toBe('pg_dump was killed');
  });

  it('marks unreachable servers retryable, auth failures not', () => {
    expect(classifyFailure('Connection refused', 2, ctx).retryable).toBe(true);
    expect(classifyFailure('FATAL:  password authentication failed for user "x"', 2, ctx).retryable).toBe(false);
  });
});
