/**
 * The MariaDB test server (testenv/mariadb.ts) is a real server: utf8mb4
 * round trips, a wrong password is refused, the binary log can be on, and
 * stop() leaves nothing behind; the dataset of testenv/mariadb-seed.ts
 * survives a dump and reload, and its fingerprint sees a changed byte.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../../testenv/exec.js';
import { startMariaDb, type MariaDbInstance } from '../../testenv/mariadb.js';
import { mariaFingerprint, seedMariaRich } from '../../testenv/mariadb-seed.js';

let db: MariaDbInstance;

beforeAll(async () => {
  db = await startMariaDb({ binlog: true });
}, 120_000);

afterAll(async () => {
  await db?.stop();
});

describe('the MariaDB test server', () => {
  it('is MariaDB 10.11 or later and keeps utf8mb4 (emoji) intact', async () => {
    expect(db.version).toMatch(/^1\d\.\d+\.\d+-MariaDB/);
    await db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (s VARCHAR(20)) CHARACTER SET utf8mb4; INSERT INTO shop.t VALUES ('caf\u00e9 \u{1F600}');");
    expect(await db.sql('SELECT s FROM t', 'shop')).toBe('caf\u00e9 \u{1F600}');
  });

  it('refuses a wrong password over TCP', async () => {
    const r = await exec('mariadb', ['--no-defaults', `--host=${db.host}`, `--port=${db.port}`, '--user=admin', '-e', 'SELECT 1'], { env: { PATH: process.env.PATH, MYSQL_PWD: 'wrong' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Access denied/);
  });

  it('has the binary log on when asked', async () => {
    expect(await db.sql("SELECT @@log_bin")).toBe('1');
    expect(await db.sql('SHOW MASTER STATUS')).toMatch(/^binlog\.\d+\t\d+/);
  });

  it('stop() removes its directory and is idempotent', async () => {
    const other = await startMariaDb();
    const dataDir = other.dataDir;
    expect(existsSync(dataDir)).toBe(true);
    await other.stop();
    await other.stop();
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('the MariaDB dataset and fingerprint', () => {
  it('a mariadb-dump | mariadb copy into another database has the same fingerprint; a changed row changes it', async () => {
    await seedMariaRich(db, 'rich', { rows: 500 });
    const original = await mariaFingerprint(db, 'rich');
    expect(Object.keys(original).sort()).toEqual(
      ['event nightly', 'function order_count', 'procedure touch', 'table audit', 'table blobs', 'table customers', 'table orders', 'trigger customers_audit', 'view paid_orders'].sort(),
    );
    const env = { PATH: process.env.PATH, MYSQL_PWD: db.password };
    const conn = ['--no-defaults', `--host=${db.host}`, `--port=${db.port}`, `--user=${db.user}`];
    const dump = await exec('mariadb-dump', [...conn, '--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', 'rich'], { env });
    expect(dump.code, dump.stderr).toBe(0);
    await db.sql('CREATE DATABASE rich_copy CHARACTER SET utf8mb4');
    const load = await exec('mariadb', [...conn, 'rich_copy'], { env, input: dump.stdout });
    expect(load.code, load.stderr).toBe(0);
    expect(await mariaFingerprint(db, 'rich_copy')).toEqual(original);
    await db.sql("UPDATE blobs SET data = CONCAT(data, 'x') WHERE id = 3", 'rich_copy');
    expect((await mariaFingerprint(db, 'rich_copy'))['table blobs']).not.toBe(original['table blobs']);
  });
});
