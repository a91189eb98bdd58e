import { describe, expect, it } from 'vitest';
import type { PostgresqlConnection } from '../../api/index.js';
import { isBackupError } from '../../runner/errors.js';
import {
  checkConnectionArgs,
  dbnameArg,
  dropCommandFor,
  isToolTooOld,
  libpqEnv,
  parseToolVersion,
  pgDumpPlan,
  pgRestorePlan,
  psqlPlan,
  serverVersionFromNum,
  toolPaths,
  pgDumpallGlobalsPlan,
  globalsRestorePlan,
  psqlCanRestrict,
} from '../../runner/engines/postgresql/plan.js';
import { parseSnapshotLine } from '../../runner/engines/postgresql/sql.js';

const PASSWORD = 's3cr3t-P@ss word';
const conn: PostgresqlConnection = { host: 'db.prod.svc', port: 5433, database: 'shop', user: 'backup' };
const base = { PATH: '/usr/bin', HOME: '/home/runner', PGSERVICE: 'evil', PGOPTIONS: '-c x=y', AWS_SECRET_ACCESS_KEY: 'nope' };

describe('libpqEnv', () => {
  it('carries the connection in PG* variables and drops inherited PG* and unrelated secrets', () => {
    const env = libpqEnv(conn, { password: PASSWORD, base });
    expect(env).toEqual({
      PATH: '/usr/bin',
      HOME: '/home/runner',
      LC_MESSAGES: 'C',
      PGHOST: 'db.prod.svc',
      PGPORT: '5433',
      PGUSER: 'backup',
      PGDATABASE: 'shop',
      PGPASSWORD: PASSWORD,
      PGAPPNAME: 'db-backup-runner',
      PGCONNECT_TIMEOUT: '10',
    });
  });

  it('leaves PGPASSWORD unset when no password is configured', () => {
    expect(libpqEnv(conn)).not.toHaveProperty('PGPASSWORD');
  });

  it('connects to another database when asked', () => {
    expect(libpqEnv(conn, { database: 'postgres' }).PGDATABASE).toBe('postgres');
  });

  it.each(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'])('maps sslMode %s to PGSSLMODE', (mode) => {
    expect(libpqEnv({ ...conn, sslMode: mode }).PGSSLMODE).toBe(mode);
  });

  it('maps certificate paths and omits unset SSL settings', () => {
    const env = libpqEnv({ ...conn, sslMode: 'verify-full', sslRootCert: '/ca.pem', sslCert: '/c.pem', sslKey: '/k.pem' });
    expect(env).toMatchObject({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/ca.pem', PGSSLCERT: '/c.pem', PGSSLKEY: '/k.pem' });
    const plain = libpqEnv(conn);
    for (const k of ['PGSSLMODE', 'PGSSLROOTCERT', 'PGSSLCERT', 'PGSSLKEY']) expect(plain).not.toHaveProperty(k);
  });
});

describe('toolPaths', () => {
  it.each([
    [undefined, { psql: 'psql', pgDump: 'pg_dump', pgRestore: 'pg_restore', pgDumpall: 'pg_dumpall', pgBasebackup: 'pg_basebackup', pgVerifybackup: 'pg_verifybackup', pgReceivewal: 'pg_receivewal' }],
    [
      '/usr/lib/postgresql/16/bin',
      {
        psql: '/usr/lib/postgresql/16/bin/psql',
        pgDump: '/usr/lib/postgresql/16/bin/pg_dump',
        pgRestore: '/usr/lib/postgresql/16/bin/pg_restore',
        pgDumpall: '/usr/lib/postgresql/16/bin/pg_dumpall',
        pgBasebackup: '/usr/lib/postgresql/16/bin/pg_basebackup',
        pgVerifybackup: '/usr/lib/postgresql/16/bin/pg_verifybackup',
        pgReceivewal: '/usr/lib/postgresql/16/bin/pg_receivewal',
      },
    ],
  ])('binDir %s', (binDir, expected) => {
    expect(toolPaths(binDir)).toEqual(expected);
  });
});

describe('pgDumpPlan', () => {
  it.each([
    { name: 'plain', c: conn, snapshot: undefined, args: ['-Fc', '-Z0', '-w'] },
    { name: 'snapshot', c: conn, snapshot: '00000003-0000001B-1', args: ['-Fc', '-Z0', '-w', '--snapshot=00000003-0000001B-1'] },
    {
      name: 'extra args last',
      c: { ...conn, dumpArgs: ['--exclude-table=audit.*', '--no-comments'] },
      snapshot: 'S',
      args: ['-Fc', '-Z0', '-w', '--snapshot=S', '--exclude-table=audit.*', '--no-comments'],
    },
  ])('$name', ({ c, snapshot, args }) => {
    const plan = pgDumpPlan(c, { password: PASSWORD, snapshot });
    expect(plan.command).toBe('pg_dump');
    expect(plan.args).toEqual(args);
    expect(plan.env.PGPASSWORD).toBe(PASSWORD);
    expect(plan.env.PGDATABASE).toBe('shop');
  });

  it('uses binDir', () => {
    expect(pgDumpPlan({ ...conn, binDir: '/opt/pg/bin' }).command).toBe('/opt/pg/bin/pg_dump');
  });

  it.each([['-Fp'], ['--format=plain'], ['-f', 'x'], ['--file=/tmp/x'], ['-Z9'], ['--compress=zstd'], ['-j4'], ['--snapshot=x'], ['-h', 'other'], ['--dbname=x'], ['-W']])(
    'refuses dumpArgs %j that break the pipeline contract',
    (...bad) => {
      try {
        pgDumpPlan({ ...conn, dumpArgs: bad });
        expect.unreachable();
      } catch (err) {
        expect(isBackupError(err, 'CONFIG_INVALID')).toBe(true);
        expect((err as Error).message).toContain('engine.postgresql.dumpArgs');
      }
    },
  );
});

describe('pgRestorePlan', () => {
  it.each([
    { name: 'into an empty database', force: false, extra: undefined, args: ['-w', '--exit-on-error', '--single-transaction', '-d', 'restored'] },
    { name: 'forced over data', force: true, extra: undefined, args: ['-w', '--exit-on-error', '--single-transaction', '--clean', '--if-exists', '-d', 'restored'] },
    {
      name: 'with restoreArgs',
      force: true,
      extra: ['--no-owner', '--no-privileges'],
      args: ['-w', '--exit-on-error', '--single-transaction', '--clean', '--if-exists', '--no-owner', '--no-privileges', '-d', 'restored'],
    },
  ])('$name', ({ force, extra, args }) => {
    const plan = pgRestorePlan({ ...conn, restoreArgs: extra }, { password: PASSWORD, database: 'restored', force });
    expect(plan.command).toBe('pg_restore');
    expect(plan.args).toEqual(args);
    expect(plan.env.PGDATABASE).toBe('restored');
  });

  it.each([['-j2'], ['--jobs=2'], ['-C'], ['--create'], ['-d', 'x'], ['--dbname=x'], ['-f', 'x'], ['--list']])('refuses restoreArgs %j', (...bad) => {
    expect(() => pgRestorePlan({ ...conn, restoreArgs: bad }, { database: 'x', force: false })).toThrow(/engine\.postgresql\.restoreArgs/);
  });

  it.each([
    ['plain', 'plain'],
    ['a=b', "dbname='a=b'"],
    ["it's=x", "dbname='it\\'s=x'"],
    ['postgresql://h/db', "dbname='postgresql://h/db'"],
  ])('quotes database name %s when libpq would read it as a connection string', (name, arg) => {
    expect(dbnameArg(name)).toBe(arg);
  });
});

describe('psqlPlan', () => {
  it('reads SQL from stdin, stops on error, never prompts, passes variables', () => {
    const plan = psqlPlan(conn, { password: PASSWORD, database: 'postgres', vars: { db: "it's" } });
    expect(plan.args).toEqual(['-X', '-q', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1', '-F', '\x1f', '-v', "db=it's"]);
    expect(plan.env).toMatchObject({ PGDATABASE: 'postgres', PGCLIENTENCODING: 'UTF8', PGPASSWORD: PASSWORD });
  });
});

describe('the password never reaches argv', () => {
  const everything: PostgresqlConnection = { ...conn, password: { value: PASSWORD }, sslMode: 'require', dumpArgs: ['--no-comments'], restoreArgs: ['--no-owner'] };
  it.each([
    ['pg_dump', pgDumpPlan(everything, { password: PASSWORD, snapshot: 'S' })],
    ['pg_restore', pgRestorePlan(everything, { password: PASSWORD, database: 'x', force: true })],
    ['psql', psqlPlan(everything, { password: PASSWORD, vars: { db: 'x' } })],
  ])('%s', (_tool, plan) => {
    expect(JSON.stringify([plan.command, ...plan.args])).not.toContain(PASSWORD);
    expect(plan.env.PGPASSWORD).toBe(PASSWORD);
  });
});

describe('versions', () => {
  it.each([
    ['pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)', '15.18', 15],
    ['pg_dump (PostgreSQL) 16.4', '16.4', 16],
    ['pg_dump (PostgreSQL) 17beta1', '17beta1', 17],
    ['pg_dump (PostgreSQL) 9.6.24', '9.6.24', 9.6],
  ])('parses %s', (text, version, major) => {
    expect(parseToolVersion(text)).toEqual({ version, major });
  });

  it('rejects text without a version', () => {
    expect(() => parseToolVersion('command not found')).toThrow();
  });

  it.each([
    [150018, '15.18', 15],
    [170000, '17.0', 17],
    [90624, '9.6.24', 9.6],
  ])('server_version_num %d', (num, version, major) => {
    expect(serverVersionFromNum(num)).toEqual({ version, major });
  });

  it.each([
    [15, 15, false],
    [16, 15, false],
    [15, 16, true],
    [9.6, 10, true],
    [9.5, 9.6, true],
  ])('tool %d vs server %d: too old = %s', (tool, server, tooOld) => {
    expect(isToolTooOld({ version: '', major: tool }, { version: '', major: server })).toBe(tooOld);
  });
});

describe('parseSnapshotLine', () => {
  it('parses the id and rounds the instant UP to the millisecond (never before the snapshot)', () => {
    expect(parseSnapshotLine('00000003-0000001B-1\x1f2026-11-21T14:22:50.057689Z\n')).toEqual({
      snapshotId: '00000003-0000001B-1',
      consistentAt: new Date('2026-11-21T14:22:50.058Z'),
    });
    expect(parseSnapshotLine('00000003-0000001B-1\x1f2026-11-21T14:22:50.057000Z')?.consistentAt).toEqual(new Date('2026-11-21T14:22:50.057Z'));
    expect(parseSnapshotLine('00000003-0000001B-1\x1f2026-11-21T23:59:59.999999Z')?.consistentAt).toEqual(new Date('2026-11-22T00:00:00.000Z'));
  });

  it.each(['', 'ERROR', 'abc\x1f2026-11-21T14:22:50.057689Z', '00000003-0000001B-1\x1fyesterday'])('rejects %j', (line) => {
    expect(parseSnapshotLine(line)).toBeUndefined();
  });
});

describe('checkConnectionArgs', () => {
  it('accepts harmless extra arguments and names the field of a bad one', () => {
    expect(() => checkConnectionArgs({ ...conn, dumpArgs: ['--no-comments'], restoreArgs: ['--no-owner'] })).not.toThrow();
    expect(() => checkConnectionArgs({ ...conn, restoreArgs: ['--no-owner', '-j4'] })).toThrow(/engine\.postgresql\.restoreArgs\[1\]: "-j4": -j \(pg_restore reads it as --jobs\) is not allowed/);
  });
});

describe('dropCommandFor', () => {
  it.each([
    ['copy', `psql -h db.prod.svc -p 5433 -U backup -d postgres -c 'DROP DATABASE IF EXISTS "copy";'`],
    ['we"ird', `psql -h db.prod.svc -p 5433 -U backup -d postgres -c 'DROP DATABASE IF EXISTS "we""ird";'`],
    ["it's", `psql -h db.prod.svc -p 5433 -U backup -d postgres -c 'DROP DATABASE IF EXISTS "it'\\''s";'`],
  ])('%s: one shell word per argument, the name quoted as an identifier', (name, command) => {
    expect(dropCommandFor(conn, name)).toBe(command);
  });

  it('uses binDir and never holds the password', () => {
    const cmd = dropCommandFor({ ...conn, binDir: '/opt/pg/bin', password: { value: PASSWORD } } as PostgresqlConnection, 'x');
    expect(cmd.startsWith('/opt/pg/bin/psql ')).toBe(true);
    expect(cmd).not.toContain(PASSWORD);
  });
});

describe('whole servers', () => {
  it('pg_dumpall --globals-only connects to the configured database; without the right to read pg_authid, no role passwords', () => {
    expect(pgDumpallGlobalsPlan(conn, { rolePasswords: true }).args).toEqual(['--globals-only', '-w', '-l', 'shop']);
    expect(pgDumpallGlobalsPlan(conn, { rolePasswords: false }).args).toEqual(['--globals-only', '-w', '-l', 'shop', '--no-role-passwords']);
  });

  it('globals replay tries every statement and never echoes one (terse errors)', () => {
    expect(globalsRestorePlan(conn, { password: PASSWORD }).args).toEqual(['-X', '-q', '-w', '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=terse']);
  });

  it('--no-owner also leaves the privileges out (grants to roles the server lacks)', () => {
    expect(pgRestorePlan(conn, { database: 'shop', force: false, noOwner: true }).args).toEqual(['-w', '--exit-on-error', '--single-transaction', '--no-owner', '--no-privileges', '-d', 'shop']);
  });

  it.each([
    ['12.22', false],
    ['13.21', false],
    ['13.22', true],
    ['14.19', true],
    ['15.13', false],
    ['15.14', true],
    ['16.10', true],
    ['17.5', false],
    ['17.6', true],
    ['18.0', true],
  ])('psql %s can restrict its input: %s', (version, can) => {
    expect(psqlCanRestrict(parseToolVersion(`psql (PostgreSQL) ${version}`))).toBe(can);
  });
});
