/**
 * A MariaDB backup written by the first release of the MariaDB/MySQL engine
 * (test/fixtures/format-2-mysql) stays listable, verifiable and restorable:
 * its engine block (format, binlog position) is read as written, and a
 * restore into a fresh MariaDB reproduces the fingerprint recorded with it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMariaDb, type MariaDbInstance } from '../../testenv/mariadb.js';
import { mariaFingerprint } from '../../testenv/mariadb-seed.js';
import type { CliResult } from '../cli.js';
import { compatFixture, type CompatFixture } from '../compat-fixture.js';

const ID = '20261204T034310Z-3fe2';

let m: MariaDbInstance | undefined;
let fx: CompatFixture | undefined;
let setupError: unknown;

function cli(args: string[]): Promise<CliResult> {
  if (setupError) throw setupError as Error;
  return fx!.cli(args);
}

beforeAll(async () => {
  try {
    m = await startMariaDb();
    fx = await compatFixture('format-2-mysql', { namespace: 'shop', name: 'orders' }, { type: 'mysql', mysql: { host: m.host, port: m.port, database: 'shop', user: m.user, password: { value: m.password } } });
  } catch (err) {
    setupError = err;
  }
}, 120_000);

afterAll(async () => {
  await m?.stop();
  await fx?.remove();
});

describe('a MariaDB backup of format 2', () => {
  it('lists with its engine block as written', async () => {
    const r = await cli(['list']);
    expect(r.code, r.out).toBe(0);
    const backups = r.json.backups as { id: string; manifest: { engine: unknown } }[];
    expect(backups.map((b) => b.id)).toEqual([ID]);
    expect(backups[0]!.manifest.engine).toEqual({
      name: 'mysql',
      serverVersion: '10.11.19-MariaDB-0+deb12u1-log',
      toolVersion: 'MariaDB 10.11.19',
      format: 'mysql-sql',
      position: { binlogFile: 'binlog.000001', binlogPosition: '41240', gtid: '0-1-16' },
    });
  });

  it('verifies, its header included', async () => {
    const r = await cli(['verify']);
    expect(r.code, r.out).toBe(0);
  });

  it('restores into a fresh server with the fingerprint recorded with it', async () => {
    const r = await cli(['restore', '--backup', ID]);
    expect(r.code, r.out).toBe(0);
    const want = JSON.parse(await readFile(join(fx!.fixtureDir, 'fingerprint.json'), 'utf8')) as Record<string, string>;
    expect(await mariaFingerprint(m!, 'shop')).toEqual(want);
  });
});
