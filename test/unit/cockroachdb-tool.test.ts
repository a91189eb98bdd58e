import { describe, expect, it } from 'vitest';
import type { Destination } from '../../api/engine-contract.js';
import {
  backupStatement,
  configOf,
  errorCode,
  ident,
  backupSubdir,
  cancelJobsStatement,
  dropStatement,
  existsStatement,
  renameStatement,
  tablesStatement,
  literal,
  positionOf,
  psqlVersionOf,
  redactAll,
  restoreStatement,
  scopeOfPosition,
  serverVersionOf,
  storageUrl,
} from '../../tools/cockroachdb/sql.js';

const s3: Destination = {
  location: 'offsite',
  type: 's3',
  url: 's3://team-a/db/shop/orders/backups/20261204T101500Z-3fa1/server/',
  bucket: 'team-a',
  prefix: 'db/shop/orders/backups/20261204T101500Z-3fa1/server/',
  region: 'eu-west-1',
  endpoint: 'https://s3.example',
  credentials: { source: 'file', file: '/tmp/x/location-credentials' },
};
const keys = { values: { accessKeyId: 'AKIA/1+2', secretAccessKey: "se'cr&et=/+", sessionToken: 'tok' } };
const cfg = configOf({});

describe('the CockroachDB tool: SQL and URLs', () => {
  it('quotes literals and identifiers, and refuses a NUL', () => {
    expect(literal("it's")).toBe("'it''s'");
    expect(ident('sh"op')).toBe('"sh""op"');
    expect(() => literal('a\0b')).toThrow(/NUL/);
  });

  it.each<[string, Destination, typeof keys | undefined, string]>([
    [
      's3 with the tenant\'s keys, every value URL-encoded',
      s3,
      keys,
      's3://team-a/db/shop/orders/backups/20261204T101500Z-3fa1/server?AUTH=specified&AWS_ACCESS_KEY_ID=AKIA%2F1%2B2&AWS_SECRET_ACCESS_KEY=se%27cr%26et%3D%2F%2B&AWS_SESSION_TOKEN=tok&AWS_REGION=eu-west-1&AWS_ENDPOINT=https%3A%2F%2Fs3.example',
    ],
    ['s3 with the nodes\' own identity', { ...s3, credentials: { source: 'server' }, endpoint: undefined }, undefined, 's3://team-a/db/shop/orders/backups/20261204T101500Z-3fa1/server?AUTH=implicit&AWS_REGION=eu-west-1'],
    ['gcs with a key', { ...s3, type: 'gcs', region: undefined, endpoint: undefined }, { values: { key: '{"k":1}' } } as never, `gs://team-a/db/shop/orders/backups/20261204T101500Z-3fa1/server?AUTH=specified&CREDENTIALS=${encodeURIComponent(Buffer.from('{"k":1}').toString('base64'))}`],
  ])('storageUrl: %s', (_what, dest, k, want) => {
    expect(storageUrl(dest, k)).toBe(want);
  });

  it('storageUrl refuses a filesystem destination and a destination without credentials', () => {
    expect(() => storageUrl({ location: 'fs', type: 'filesystem', url: 'file:///b/', path: '/b/' }, undefined)).toThrow(/no credentials/);
    expect(() => storageUrl({ location: 'fs', type: 'filesystem', url: 'file:///b/', path: '/b/', credentials: { source: 'server' } }, undefined)).toThrow(/S3 or GCS only/);
    expect(() => storageUrl({ ...s3, credentials: undefined }, undefined)).toThrow(/no credentials/);
  });

  it.each([
    ['a database, as of an HLC timestamp', backupStatement({ kind: 'database', name: 'shop' }, 's3://b/p?x=1', '1733307300123456789.0000000001', cfg, undefined), `BACKUP DATABASE "shop" INTO 's3://b/p?x=1' AS OF SYSTEM TIME '1733307300123456789.0000000001';`],
    ['the cluster, with revision history and a passphrase', backupStatement({ kind: 'cluster' }, 'gs://b/p', '1.0', { ...cfg, revisionHistory: true }, "pa'ss"), `BACKUP INTO 'gs://b/p' AS OF SYSTEM TIME '1.0' WITH revision_history, encryption_passphrase = 'pa''ss';`],
    ['a hostile database name stays one identifier', backupStatement({ kind: 'database', name: 'x"; DROP DATABASE y; --' }, 'u', '1', cfg, undefined), `BACKUP DATABASE "x""; DROP DATABASE y; --" INTO 'u' AS OF SYSTEM TIME '1';`],
    ['a restore of the backup\'s own subdirectory into a scratch name', restoreStatement({ kind: 'database', name: 'shop' }, 'u', '/2026/12/04-101500.00', 'copy_restore_1a2b', cfg, undefined), `RESTORE DATABASE "shop" FROM '/2026/12/04-101500.00' IN 'u' WITH new_db_name = 'copy_restore_1a2b';`],
    ['a cluster restore with a passphrase', restoreStatement({ kind: 'cluster' }, 'u', '/2026/12/04-101500.00', undefined, cfg, 'p'), `RESTORE FROM '/2026/12/04-101500.00' IN 'u' WITH encryption_passphrase = 'p';`],
    ['a rename', renameStatement('s"1', 's'), 'ALTER DATABASE "s""1" RENAME TO "s";'],
    ['a drop', dropStatement('s_previous_1'), 'DROP DATABASE IF EXISTS "s_previous_1" CASCADE;'],
    [
      'cancelling this backup\'s job only (LIKE wildcards in the directory escaped)',
      cancelJobsStatement('BACKUP', "p_1/%x'/backups/20261204T101500Z-3fa1/server/"),
      "CANCEL JOBS (SELECT job_id FROM [SHOW JOBS] WHERE job_type = 'BACKUP' AND status IN ('pending', 'running', 'paused') AND description LIKE '%p\\_1/\\%x''/backups/20261204T101500Z-3fa1/server%' ESCAPE '\\');",
    ],
  ])('%s', (_what, got, want) => {
    expect(got).toBe(want);
  });

  it('inspect asks whether the database exists, then counts its tables in its own information_schema', () => {
    expect(existsStatement({ kind: 'database', name: "o'x" })).toBe("SELECT count(*) > 0 FROM pg_catalog.pg_database WHERE datname = 'o''x';");
    expect(existsStatement({ kind: 'cluster' })).toContain("NOT IN ('defaultdb', 'postgres', 'system')");
    expect(tablesStatement('o"x')).toMatch(/^SELECT count\(\*\) FROM "o""x"\.information_schema\.tables WHERE/);
  });

  it('the backup subdirectory comes from the verified objects: one BACKUP_MANIFEST at <YYYY>/<MM>/<DD-HHMMSS.ss>/', () => {
    expect(backupSubdir([{ path: '2026/12/04-101500.00/BACKUP_MANIFEST' }, { path: '2026/12/04-101500.00/data/1.sst' }, { path: 'metadata/latest/LATEST-1' }])).toBe('/2026/12/04-101500.00');
    expect(backupSubdir([{ path: 'data/1.sst' }])).toBeUndefined();
    expect(backupSubdir([{ path: '2026/12/04-101500.00/BACKUP_MANIFEST' }, { path: '2026/12/05-101500.00/BACKUP_MANIFEST' }])).toBeUndefined();
    expect(backupSubdir([{ path: "2026/12/04-10'500.00/BACKUP_MANIFEST" }])).toBeUndefined();
  });

  it('records the scope in the position, and a restore reads it back over what is configured now', () => {
    expect(positionOf({ kind: 'database', name: 'shop' }, '812')).toEqual({ scope: 'database', database: 'shop', jobId: '812' });
    expect(scopeOfPosition({ scope: 'database', database: 'shop' }, { kind: 'cluster' })).toEqual({ kind: 'database', name: 'shop' });
    expect(scopeOfPosition({ scope: 'cluster' }, { kind: 'database', name: 'x' })).toEqual({ kind: 'cluster' });
    expect(scopeOfPosition(undefined, { kind: 'database', name: 'x' })).toEqual({ kind: 'database', name: 'x' });
  });

  it('reads versions and classifies psql errors', () => {
    expect(serverVersionOf('CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/10/02 15:12:11, go1.19.13)')).toBe('23.1.11');
    expect(() => serverVersionOf('PostgreSQL 15.8 on x86_64')).toThrow(/not CockroachDB/);
    expect(psqlVersionOf('psql (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)')).toBe('15.8');
    expect(errorCode('psql: error: connection to server at "crdb" (10.0.0.1), port 26257 failed: FATAL: password authentication failed for user "backup"')).toBe('DB_AUTH_FAILED');
    expect(errorCode('psql: error: connection to server at "crdb" (10.0.0.1), port 26257 failed: Connection refused')).toBe('DB_UNREACHABLE');
    expect(errorCode('ERROR: database "nope" does not exist')).toBe('DB_NOT_FOUND');
    expect(errorCode('ERROR: syntax error')).toBeUndefined();
    expect(redactAll('key AKIA/1+2 and AKIA%2F1%2B2', ['AKIA/1+2', 'AKIA%2F1%2B2'])).toBe('key [redacted] and [redacted]');
    // Cut where the known forms cannot match: what follows a key's name, and the passphrase option, still go.
    expect(redactAll("ERROR: at or near \"s3://b/p?AUTH=specified&AWS_SECRET_ACCESS_KEY=abc%2F", [])).toBe('ERROR: at or near "s3://b/p?AUTH=specified&AWS_SECRET_ACCESS_KEY=[redacted]');
    expect(redactAll("LINE 1: ... WITH encryption_passphrase = 'it''s sec", [])).toBe("LINE 1: ... WITH encryption_passphrase = '[redacted]'");
  });
});
