/**
 * The pure core of the MariaDB / MySQL engine: tool and server versions, which
 * tool may dump which server, the option file and argv, the dump's own words
 * about its snapshot and binlog position, error classification, and the
 * allowlist of extra arguments.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { validateDatabaseBackup } from '../../api/crds/index.js';
import { mysqlArgErrors } from '../../api/mysql-args.js';
import { parseConfig } from '../../runner/config/load.js';
import { validBackup } from '../crd-fixtures.js';
import { classifyFailure, errorNumber } from '../../runner/engines/mysql/classify.js';
import { dumpPlan, ident, optionFile, parseServerVersion, parseToolVersion, queryPlan, restorePlan, text, toolProblem, withOptions, type MysqlVersion } from '../../runner/engines/mysql/plan.js';
import { DumpWatcher, parseBinlogHead, parseGtidTail, snapshotTaken } from '../../runner/engines/mysql/scan.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', 'mysql', name), 'utf8');
const v = (flavor: 'mariadb' | 'mysql', version: string): MysqlVersion => {
  const [major, minor] = version.split('.').map(Number);
  return { flavor, version, major: major!, minor: minor! };
};

describe('versions', () => {
  it.each([
    ['mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)', v('mariadb', '10.11.19')],
    ['mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)', v('mariadb', '11.4.2')],
    ['mysqldump  Ver 10.19 Distrib 10.6.18-MariaDB, for debian-linux-gnu (x86_64)', v('mariadb', '10.6.18')],
    ['mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)', v('mysql', '8.0.36')],
    ['mysqldump  Ver 8.4.0 for Linux on aarch64 (MySQL Community Server - GPL)', v('mysql', '8.4.0')],
    ['mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)', v('mysql', '5.7.44')],
  ])('tool: %s', (line, want) => {
    expect(parseToolVersion(line)).toEqual(want);
  });

  it('a tool that prints no version is undefined', () => {
    expect(parseToolVersion('command not found')).toBeUndefined();
  });

  it.each([
    ['10.11.19-MariaDB-0+deb12u1-log', v('mariadb', '10.11.19')],
    ['11.4.2-MariaDB', v('mariadb', '11.4.2')],
    ['8.0.36', v('mysql', '8.0.36')],
    ['5.7.44-log', v('mysql', '5.7.44')],
  ])('server: %s', (text, want) => {
    expect(parseServerVersion(text)).toEqual(want);
  });

  it.each([
    ['same MariaDB', v('mariadb', '10.11.19'), v('mariadb', '10.11.6'), undefined],
    ['newer MariaDB tool', v('mariadb', '11.4.2'), v('mariadb', '10.6.18'), undefined],
    ['older MariaDB tool', v('mariadb', '10.6.18'), v('mariadb', '10.11.6'), 'TOOL_TOO_OLD'],
    ['older MariaDB minor', v('mariadb', '11.2.1'), v('mariadb', '11.4.2'), 'TOOL_TOO_OLD'],
    ['MySQL 8.0 tool, 8.4 server', v('mysql', '8.0.36'), v('mysql', '8.4.0'), 'TOOL_TOO_OLD'],
    ['MySQL 8.4 tool, 8.0 server', v('mysql', '8.4.0'), v('mysql', '8.0.36'), undefined],
    ['MariaDB tool, MySQL 5.7', v('mariadb', '10.11.19'), v('mysql', '5.7.44'), undefined],
    ['MariaDB tool, MySQL 8', v('mariadb', '10.11.19'), v('mysql', '8.0.36'), 'TOOL_INCOMPATIBLE'],
    ['MySQL tool, MariaDB', v('mysql', '8.0.36'), v('mariadb', '10.11.6'), 'TOOL_INCOMPATIBLE'],
  ])('%s', (_what, tool, server, code) => {
    expect(toolProblem(tool, server)?.code).toBe(code);
  });
});

describe('plans', () => {
  const conn = { host: 'db.shop.svc', port: 3306, database: 'shop', user: 'backup', dumpArgs: ['--ignore-table=shop.sessions'], restoreArgs: ['--max-allowed-packet=1G'] };
  const tools = { dump: '/usr/bin/mariadb-dump', client: '/usr/bin/mariadb' };

  it('the option file quotes every value, so quotes, # and line breaks stay inside it', () => {
    expect(optionFile({ ...conn, user: 'we"ird#', sslMode: 'VERIFY_IDENTITY', sslCa: '/etc/ca.pem' }, 'mariadb', 'p"w\\#\nx')).toBe(
      [
        '[client]',
        'host="db.shop.svc"',
        'port=3306',
        'protocol=tcp',
        'user="we\\"ird#"',
        'password="p\\"w\\\\#\\nx"',
        'default-character-set=utf8mb4',
        'ssl',
        'ssl-ca="/etc/ca.pem"',
        'ssl-verify-server-cert',
        '[mysql]',
        'connect-timeout=10',
        'local-infile=0',
        '',
      ].join('\n'),
    );
  });

  it.each([
    ['mariadb', 'DISABLED', ['skip-ssl']],
    ['mariadb', 'REQUIRED', ['ssl']],
    ['mariadb', 'PREFERRED', []],
    ['mysql', 'VERIFY_CA', ['ssl-mode=VERIFY_CA']],
    ['mysql', undefined, []],
  ] as const)('TLS for %s %s', (flavor, sslMode, want) => {
    const file = optionFile({ ...conn, ...(sslMode ? { sslMode } : {}) }, flavor, undefined);
    const lines = file.split('\n').filter((l) => /ssl/.test(l));
    expect(lines).toEqual(want);
    expect(file).not.toMatch(/password/);
  });

  it('the dump: consistent, complete, positions only with a binlog, the database last after --', () => {
    expect(withOptions(dumpPlan(conn, tools, { tool: v('mariadb', '10.11.19'), binlog: true }), '/tmp/x/client.cnf')).toEqual({
      command: '/usr/bin/mariadb-dump',
      args: [
        '--defaults-file=/tmp/x/client.cnf',
        '--single-transaction',
        '--quick',
        '--routines',
        '--triggers',
        '--events',
        '--hex-blob',
        '--tz-utc',
        '--master-data=2',
        '--gtid',
        '--ignore-table=shop.sessions',
        '--',
        'shop',
      ],
    });
    expect(dumpPlan({ ...conn, dumpArgs: [] }, tools, { tool: v('mariadb', '10.11.19'), binlog: false }).args).not.toContain('--master-data=2');
    expect(dumpPlan(conn, tools, { tool: v('mysql', '8.0.36'), binlog: true }).args).toContain('--source-data=2');
    expect(dumpPlan(conn, tools, { tool: v('mysql', '8.0.20'), binlog: true }).args).toContain('--master-data=2');
    expect(dumpPlan({ ...conn, database: '--result-file=/etc/passwd' }, tools, { tool: v('mariadb', '10.11.19'), binlog: false }).args.slice(-2)).toEqual(['--', '--result-file=/etc/passwd']);
  });

  it('queries and restores read only the option file, and restores stop at the first error', () => {
    expect(queryPlan(tools, 'x').args).toEqual(['--defaults-file={OPTIONS}', '--batch', '--skip-column-names', '--raw', '--', 'x']);
    expect(restorePlan(conn, tools, '-x').args).toEqual(['--defaults-file={OPTIONS}', '--batch', '--binary-mode', '--max-allowed-packet=1G', '--', '-x']);
    expect(restorePlan(conn, tools, 'x').args).not.toContain('--force');
  });

  it('identifiers and strings are quoted so no name breaks out', () => {
    expect(ident('a`b')).toBe('`a``b`');
    expect(text("x'; DROP DATABASE y; --")).toBe(`CONVERT(X'${Buffer.from("x'; DROP DATABASE y; --").toString('hex')}' USING utf8mb4)`);
  });
});

describe('what the dump says', () => {
  const head = fixture('mariadb-10.11-binlog-head.sql');
  const tail = fixture('mariadb-10.11-binlog-tail.sql');

  it('reads the binlog position from a MariaDB 10.11 head and the GTID from its tail', () => {
    expect(parseBinlogHead(head)).toEqual({ binlogFile: 'binlog.000001', binlogPosition: '62705' });
    expect(parseGtidTail(tail)).toBe('0-1-24');
  });

  it('reads MySQL 8 comments and its GTID_PURGED line', () => {
    const mysql = [
      "SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5';",
      '',
      "-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000007', SOURCE_LOG_POS=157;",
    ].join('\n');
    expect(parseBinlogHead(mysql)).toEqual({ binlogFile: 'binlog.000007', binlogPosition: '157', gtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5' });
  });

  it('the header alone does not show a snapshot; the first line after it does', () => {
    const header = head.slice(0, head.indexOf('-- CHANGE MASTER'));
    expect(snapshotTaken(header)).toBe(false);
    expect(snapshotTaken(head)).toBe(true);
    expect(snapshotTaken(`${header}\n--\n-- Dumping routines for database 'shop'\n--\n`)).toBe(true);
  });

  it('the watcher passes every byte through in any chunking, and finds head and tail across chunks', async () => {
    const whole = Buffer.from(`${head}${'x'.repeat(200_000)}\n${tail}`);
    for (const size of [1, 7, 4096, whole.length]) {
      let snapshots = 0;
      const w = new DumpWatcher({ onSnapshot: () => snapshots++ });
      const out: Buffer[] = [];
      const chunks = size === 1 ? [whole.subarray(0, 3000), whole.subarray(3000)] : Array.from({ length: Math.ceil(whole.length / size) }, (_, i) => whole.subarray(i * size, (i + 1) * size));
      await pipeline(Readable.from(chunks), w, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
      expect(Buffer.concat(out).equals(whole)).toBe(true);
      expect(snapshots).toBe(1);
      expect(w.position()).toEqual({ binlogFile: 'binlog.000001', binlogPosition: '62705', gtid: '0-1-24' });
    }
  });
});

describe('failures', () => {
  const ctx = { tool: 'mariadb-dump', host: 'db', port: 3306, user: 'backup', database: 'shop', password: 's3cret', fallback: 'DUMP_FAILED' as const };

  it.each([
    ['ERROR 1045 (28000): Access denied for user \'backup\'@\'10.0.0.1\' (using password: YES)', 'DB_AUTH_FAILED', 1045],
    ['mariadb-dump: Got error: 1045: "Access denied for user \'backup\'@\'10.0.0.1\' (using password: YES)" when trying to connect', 'DB_AUTH_FAILED', 1045],
    ['mariadb-dump: Got error: 1049: "Unknown database \'shop\'" when selecting the database', 'DB_NOT_FOUND', 1049],
    ['ERROR 2002 (HY000): Can\'t connect to server on \'db\' (115)', 'DB_UNREACHABLE', 2002],
    ['mariadb-dump: Got error: 2005: "Unknown server host \'db\' (-2)" when trying to connect', 'DB_UNREACHABLE', 2005],
    ['ERROR 1227 (42000) at line 12: Access denied; you need (at least one of) the SUPER privilege(s) for this operation', 'DUMP_FAILED', 1227],
    ['mariadb-dump: unknown option \'--x\'', 'DUMP_FAILED', undefined],
  ])('%s', (stderr, code, errno) => {
    const err = classifyFailure(stderr, 2, ctx);
    expect(err.code).toBe(code);
    expect(errorNumber(stderr)).toBe(errno);
  });

  it('never repeats the password', () => {
    const err = classifyFailure('ERROR 1064 (42000): near \'s3cret\' at line 1', 1, ctx);
    expect(err.message).not.toContain('s3cret');
    expect(err.message).toContain('[redacted]');
  });

  it('a TLS failure is not retried', () => {
    expect(classifyFailure('ERROR 2026 (HY000): TLS/SSL error: certificate verify failed', 1, ctx)).toMatchObject({ code: 'DB_UNREACHABLE', retryable: false });
  });
});

describe('extra arguments', () => {
  it.each([
    ['--ignore-table=shop.sessions', true],
    ['--where=id > 10', true],
    ['--no-data', true],
    ['--skip-extended-insert', true],
    ['--no-data=1', false],
    ['--ignore-table', false],
    ['--ignore-tab=shop.x', false],
    ['--ignore_table=shop.x', false],
    ['--loose-ignore-table=shop.x', false],
    ['--plugin-dir=/tmp/evil', false],
    ['--defaults-extra-file=/tmp/x', false],
    ['--result-file=/etc/passwd', false],
    ['--tab=/tmp', false],
    ['-r/tmp/x', false],
    ['--compact', false],
    ['--skip-add-drop-table', false],
    ['otherdb', false],
    ['--', false],
  ])('dump %s allowed: %s', (arg, ok) => {
    expect(mysqlArgErrors('engine.mysql', { dumpArgs: [arg] }).length === 0).toBe(ok);
  });

  it('a DatabaseBackup and a runner config are refused with the field path, before any runner starts', () => {
    const b = validBackup();
    delete (b.spec as { runner?: unknown }).runner;
    (b.spec as { engine: unknown }).engine = { type: 'mysql', mysql: { host: 'db', database: "o'brien", user: 'u', dumpArgs: ['--plugin-dir=/tmp'] } };
    const r = validateDatabaseBackup(b);
    expect(r.ok ? [] : r.errors.map((e) => e.path)).toEqual(['spec.engine.mysql.dumpArgs[0]', 'spec.engine.mysql.database']);
    const cfg = { namespace: 'n', name: 'x', engine: { type: 'mysql', mysql: { host: 'db', database: 'shop', user: 'u', restoreArgs: ['--force'] } }, locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: '/b' } }] };
    expect(() => parseConfig(JSON.stringify(cfg), 'runner.yaml')).toThrow(/engine\.mysql\.restoreArgs\[0\]: "--force"/);
  });

  it('restore allows packet sizes only, never --force', () => {
    expect(mysqlArgErrors('spec.engine.mysql', { restoreArgs: ['--max-allowed-packet=1G', '--force', '--init-command=DROP DATABASE x'] })).toEqual([
      { path: 'spec.engine.mysql.restoreArgs[1]', message: expect.stringMatching(/^"--force": only these mariadb options/) as string },
      { path: 'spec.engine.mysql.restoreArgs[2]', message: expect.stringMatching(/^"--init-command=DROP DATABASE x": only these/) as string },
    ]);
  });
});
