/**
 * The MariaDB / MySQL engine against real MariaDB servers (testenv/mariadb.ts):
 * one without and one with a binary log. Without MariaDB installed every test
 * fails with the install hint.
 */
import { createReadStream } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MysqlConnection } from '../../api/index.js';
import { mysqlArgErrors } from '../../api/mysql-args.js';
import { MysqlEngine } from '../../runner/engines/mysql/index.js';
import { formatMismatch } from '../../runner/engines/registry.js';
import { BackupError } from '../../runner/errors.js';
import { silentLogger } from '../../runner/logger.js';
import { startMariaDb, type MariaDbInstance } from '../../testenv/mariadb.js';
import { mariaFingerprint, seedMariaRich } from '../../testenv/mariadb-seed.js';
import { dumpTo, rejection, unusedPort } from '../engine-helpers.js';

let plain: MariaDbInstance;
let logged: MariaDbInstance;
let work: string;
let dumpFile: string;
let source: Record<string, string>;

function connection(m: MariaDbInstance, database = 'shop', overrides: Partial<MysqlConnection> = {}): MysqlConnection {
  return { host: m.host, port: m.port, database, user: m.user, password: { value: m.password }, ...overrides };
}

function engine(m: MariaDbInstance = plain, database = 'shop', overrides: Partial<MysqlConnection> = {}, env: NodeJS.ProcessEnv = process.env): MysqlEngine {
  return new MysqlEngine(Object.freeze(connection(m, database, overrides)), silentLogger(), env);
}

/** The first `bytes` of the dump, as a stream: a dump cut off in the middle of the data. */
async function truncated(bytes: number): Promise<Readable> {
  return Readable.from([(await readFile(dumpFile)).subarray(0, bytes)]);
}

let setupError: Error | undefined;

beforeAll(async () => {
  try {
    work = await mkdtemp(join(tmpdir(), 'mysql-engine-test-'));
    [plain, logged] = await Promise.all([startMariaDb(), startMariaDb({ binlog: true })]);
    await Promise.all([seedMariaRich(plain, 'shop'), seedMariaRich(logged, 'shop', { rows: 200 })]);
    source = await mariaFingerprint(plain, 'shop');
    dumpFile = join(work, 'shop.sql');
    await dumpTo(await engine().dump(), dumpFile);
  } catch (err) {
    setupError = err instanceof Error ? err : new Error(`setup failed: ${JSON.stringify(err)}`);
  }
}, 180_000);

// A failed setup (e.g. MariaDB not installed) fails every test with its message, rather than skipping them.
beforeEach(() => {
  if (setupError) throw setupError;
});

afterAll(async () => {
  await Promise.all([plain?.stop(), logged?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('probe', () => {
  it('reports the server and dump tool versions', async () => {
    const p = await engine().probe();
    expect(p.serverVersion).toBe(plain.version);
    expect(p.toolVersion).toMatch(/^MariaDB \d+\.\d+\.\d+$/);
  });

  it('refuses a wrong password with DB_AUTH_FAILED, without echoing it', async () => {
    const err = await rejection(engine(plain, 'shop', { password: { value: 'not-the-password-xyz' } }).probe());
    expect(err.code).toBe('DB_AUTH_FAILED');
    expect(err.message).toMatch(/refused user "admin"/);
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toContain('not-the-password-xyz');
  });

  it('reports a closed port as DB_UNREACHABLE (retryable)', async () => {
    const err = await rejection(engine(plain, 'shop', { port: await unusedPort() }).probe());
    expect(err.code).toBe('DB_UNREACHABLE');
    expect(err.retryable).toBe(true);
  });

  it('reports a missing configured database as DB_NOT_FOUND', async () => {
    const err = await rejection(engine(plain, 'nope').probe());
    expect(err.code).toBe('DB_NOT_FOUND');
    expect(err.message).toMatch(/database "nope" does not exist/);
  });

  it.each([
    ['an older MariaDB dump tool', 'mariadb-dump  Ver 10.19 Distrib 10.5.1-MariaDB, for debian-linux-gnu (x86_64)', 'TOOL_TOO_OLD', /older than the server/],
    ['MySQL 8 mysqldump against MariaDB', 'mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)', 'TOOL_INCOMPATIBLE', /cannot dump a MariaDB/],
  ])('refuses %s, naming both versions', async (_what, versionLine, code, why) => {
    const bin = await mkdtemp(join(work, 'bin-'));
    await writeFile(join(bin, 'mariadb-dump'), `#!/bin/sh\necho '${versionLine}'\n`);
    await chmod(join(bin, 'mariadb-dump'), 0o755);
    await symlink('/usr/bin/mariadb', join(bin, 'mariadb'));
    const err = await rejection(engine(plain, 'shop', { binDir: bin }).probe());
    expect(err.code).toBe(code);
    expect(err.message).toMatch(why);
    expect(err.message).toContain(plain.version.split('-')[0]);
  });

  it('says how to install the client when no dump tool is found', async () => {
    const err = await rejection(engine(plain, 'shop', { binDir: join(work, 'empty-bin') }).probe());
    expect(err.code).toBe('TOOL_MISSING');
    expect(err.message).toMatch(/apt-get install mariadb-client/);
  });
});

describe('dump', () => {
  it('is SQL text a stored object is recognised by, with every object type of the database', async () => {
    const text = await readFile(dumpFile, 'utf8');
    expect(formatMismatch('mysql-sql', Buffer.from(text.slice(0, 64)))).toBeUndefined();
    for (const what of ['CREATE TABLE `blobs`', 'VIEW `paid_orders`', 'TRIGGER customers_audit', 'FUNCTION `order_count`', 'PROCEDURE `touch`', 'EVENT `nightly`', '0x00010203']) {
      expect(text).toContain(what);
    }
    expect(text).not.toMatch(/^USE |^CREATE DATABASE/m); // restorable under any name
  });

  it('consistentAt is the server clock after the snapshot: after the dump started, no later than it ended; no position without a binlog', async () => {
    const before = new Date();
    const handle = await engine().dump();
    await dumpTo(handle, join(work, 'again.sql'));
    const at = await handle.consistentAt;
    expect(at.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1000);
    expect(at.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(await handle.position).toBeUndefined();
  });

  it('with a binary log, records the binlog file, position and GTID of the snapshot', async () => {
    const e = engine(logged);
    const handle = await e.dump();
    await dumpTo(handle, join(work, 'logged.sql'));
    const status = (await logged.sql('SHOW MASTER STATUS')).split('\t');
    const gtid = await logged.sql('SELECT @@gtid_binlog_pos');
    // Nothing was written since the dump: its position is the server's current one.
    expect(await handle.position).toEqual({ binlogFile: status[0], binlogPosition: status[1], gtid });
  });

  it('the position is the snapshot\'s, not the end\'s: writes during the dump come after it', async () => {
    const e = engine(logged);
    const [before] = (await logged.sql('SHOW MASTER STATUS')).split('\t').slice(1);
    const handle = await e.dump();
    await logged.sql('INSERT INTO audit (what) VALUES (\'written during the dump\')', 'shop');
    await dumpTo(handle, join(work, 'logged2.sql'));
    const [after] = (await logged.sql('SHOW MASTER STATUS')).split('\t').slice(1);
    const position = await handle.position;
    expect(Number(position!.binlogPosition)).toBeGreaterThanOrEqual(Number(before));
    expect(Number(after)).toBeGreaterThan(Number(before));
    const dumped = await readFile(join(work, 'logged2.sql'), 'utf8');
    // Either the insert landed before the snapshot (and is in the dump, at or before the position) or after it.
    expect(dumped.includes('written during the dump')).toBe(Number(position!.binlogPosition) === Number(after));
  });

  it('an already aborted signal starts nothing', async () => {
    const err = await rejection(engine().dump({ signal: AbortSignal.abort() }));
    expect(err.code).toBe('ABORTED');
  });
});

describe('restore', () => {
  it('restores into a new database with identical tables, view, trigger, routines and event', async () => {
    await engine().restore(createReadStream(dumpFile), { database: 'copy1', force: false });
    expect(await mariaFingerprint(plain, 'copy1')).toEqual(source);
  });

  it('refuses a database that holds data without force, and leaves it untouched', async () => {
    const err = await rejection(engine().restore(createReadStream(dumpFile), { database: 'shop', force: false }));
    expect(err.code).toBe('TARGET_NOT_EMPTY');
    expect(await mariaFingerprint(plain, 'shop')).toEqual(source);
  });

  it('with force replaces the objects the backup holds and keeps the others', async () => {
    await engine().restore(createReadStream(dumpFile), { database: 'copy2', force: false });
    await plain.sql("UPDATE customers SET name = 'changed'; DROP VIEW paid_orders; CREATE TABLE extra (id INT);", 'copy2');
    await engine().restore(createReadStream(dumpFile), { database: 'copy2', force: true });
    const after = await mariaFingerprint(plain, 'copy2');
    expect(after['table extra']).toBeDefined();
    delete after['table extra'];
    expect(after).toEqual(source);
  });

  it('a truncated dump into a new database does not leave the database behind', async () => {
    const size = (await readFile(dumpFile)).length;
    const err = await rejection(engine().restore(await truncated(Math.floor(size / 2)), { database: 'cut1', force: false }));
    expect(err.code).toBe('RESTORE_FAILED');
    expect(err.details.target).toEqual({ database: 'cut1', state: 'dropped' });
    expect(await plain.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'cut1'")).toBe('0');
  });

  it('a truncated dump into an existing empty database leaves it empty, with its character set', async () => {
    await plain.sql('CREATE DATABASE cut2 CHARACTER SET latin1 COLLATE latin1_swedish_ci');
    const size = (await readFile(dumpFile)).length;
    const err = await rejection(engine().restore(await truncated(Math.floor(size / 2)), { database: 'cut2', force: false }));
    expect(err.details.target).toEqual({ database: 'cut2', state: 'emptied' });
    expect(err.message).toMatch(/it is empty again/);
    expect(await plain.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cut2'")).toBe('0');
    expect(await plain.sql("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'cut2'")).toBe('latin1');
  });

  it('a failed forced restore over data says the database is partly replaced', async () => {
    await engine().restore(createReadStream(dumpFile), { database: 'cut3', force: false });
    const size = (await readFile(dumpFile)).length;
    const err = await rejection(engine().restore(await truncated(Math.floor(size / 2)), { database: 'cut3', force: true }));
    expect(err.details.target).toMatchObject({ database: 'cut3', state: 'partial' });
    expect(err.message).toMatch(/is NOT as it was/);
  });

  it('a failing input stream fails the restore with its own error', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new BackupError('INTEGRITY', 'digest mismatch while reading'));
      },
    });
    const err = await rejection(engine().restore(failing, { database: 'cut4', force: false }));
    expect(err.code).toBe('INTEGRITY');
    expect(err.details.target).toEqual({ database: 'cut4', state: 'dropped' });
  });
});

describe('hostile names and secrets', () => {
  it('a password with quotes, #, backslash and spaces reaches the server intact and appears nowhere', async () => {
    const password = `p"a'ss #w\\o rd;--`;
    const literal = `'${password.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
    await plain.sql(`CREATE USER 'odd'@'127.0.0.1' IDENTIFIED BY ${literal}; GRANT ALL ON *.* TO 'odd'@'127.0.0.1';`);
    const e = new MysqlEngine(Object.freeze({ ...connection(plain), user: 'odd', password: { value: password } }), silentLogger());
    expect((await e.probe()).serverVersion).toBe(plain.version);
  });

  it('database names that look like options or hold quotes are only ever names', async () => {
    for (const name of ['--plugin-dir=/tmp', 'we`ird db-1']) {
      await engine().restore(createReadStream(dumpFile), { database: name, force: false });
      expect(await mariaFingerprint(plain, name)).toEqual(source);
      const handle = await engine(plain, name).dump();
      const out = join(work, 'odd.sql');
      await dumpTo(handle, out);
      expect(await readFile(out, 'utf8')).toContain('CREATE TABLE `blobs`');
    }
    await engine().restore(createReadStream(dumpFile), { database: "it's", force: false });
    expect(await mariaFingerprint(plain, "it's")).toEqual(source);
  });

  it('a configured database mariadb-dump cannot dump (a quote or backslash in its name) is refused at startup', () => {
    expect(() => engine(plain, "it's")).toThrow(/engine.mysql.database: "it's" holds ' or \\/);
  });

  it('a planted dump cannot run commands in the runner: client commands that reach the file system are refused (--binary-mode)', async () => {
    const marker = join(work, 'pwned');
    for (const command of [`\\! touch ${marker}`, `system touch ${marker}`, `\\. /etc/passwd`, `tee ${marker}`, "LOAD DATA LOCAL INFILE '/proc/self/environ' INTO TABLE t;"]) {
      const dump = `-- MariaDB dump 10.19\nCREATE TABLE t (id INT);\n${command}\nINSERT INTO t VALUES (1);\n`;
      const err = await rejection(engine().restore(Readable.from([dump]), { database: 'planted', force: false }));
      expect(err.code).toBe('RESTORE_FAILED');
      expect(err.details.target).toEqual({ database: 'planted', state: 'dropped' });
      await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    }
  });

  it('extra arguments outside the allowlist are refused with their path', () => {
    expect(mysqlArgErrors('engine.mysql', { dumpArgs: ['--ignore-table=shop.audit', '--plugin-dir=/tmp', '--result-file=/etc/x', '-r/x', '--ignore-tab=x', 'db2'], restoreArgs: ['--force'] }).map((e) => e.path)).toEqual([
      'engine.mysql.dumpArgs[1]',
      'engine.mysql.dumpArgs[2]',
      'engine.mysql.dumpArgs[3]',
      'engine.mysql.dumpArgs[4]',
      'engine.mysql.dumpArgs[5]',
      'engine.mysql.restoreArgs[0]',
    ]);
  });

  it('an allowed extra argument takes effect', async () => {
    const handle = await engine(plain, 'shop', { dumpArgs: ['--ignore-table=shop.audit'] }).dump();
    const out = join(work, 'ignored.sql');
    await dumpTo(handle, out);
    const text = await readFile(out, 'utf8');
    expect(text).not.toContain('CREATE TABLE `audit`');
    expect(text).toContain('CREATE TABLE `orders`');
  });
});

describe('least privilege', () => {
  it('a user with SELECT, SHOW VIEW, TRIGGER, EVENT and LOCK TABLES on the database (and BINLOG MONITOR) dumps a server with a binlog', async () => {
    await logged.sql(
      "CREATE USER 'backup'@'127.0.0.1' IDENTIFIED BY 'b4ckup'; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON shop.* TO 'backup'@'127.0.0.1'; GRANT BINLOG MONITOR ON *.* TO 'backup'@'127.0.0.1'; GRANT SELECT ON mysql.proc TO 'backup'@'127.0.0.1';",
    );
    const e = new MysqlEngine(Object.freeze({ ...connection(logged), user: 'backup', password: { value: 'b4ckup' } }), silentLogger());
    const handle = await e.dump();
    const out = join(work, 'least.sql');
    await dumpTo(handle, out);
    expect(await handle.position).toMatchObject({ binlogFile: expect.stringMatching(/\S/) as string });
    expect(await readFile(out, 'utf8')).toContain('PROCEDURE `touch`');
  });
});

