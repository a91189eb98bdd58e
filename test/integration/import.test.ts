/**
 * `backup-runner import` through the CLI against real servers: a MariaDB dump
 * (gzip, from a file) and a PostgreSQL custom archive (zstd, from a location
 * object, kept as a backup), restored and compared; inputs that are not this
 * engine's dumps, and paths outside the DatabaseBackup's directory, refused
 * before the database is touched.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startMariaDb, type MariaDbInstance } from '../../testenv/mariadb.js';
import { mariaFingerprint, seedMariaRich } from '../../testenv/mariadb-seed.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';
import { runCli } from '../cli.js';

interface Env {
  maria: MariaDbInstance;
  pg: PgInstance;
  dir: string;
  mariaCfg: string;
  pgCfg: string;
  mariaDump: string;
  pgArchive: string;
  mariaSeeded: Record<string, string>;
  pgSeeded: Record<string, string>;
}

let env: Env | undefined;

/** libpq settings of a test server, for its own tools. */
const pgEnv = (pg: PgInstance): NodeJS.ProcessEnv => ({ ...process.env, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'postgres' });
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

const cli = runCli;

beforeAll(async () => {
  try {
    const [maria, pg] = await Promise.all([startMariaDb(), startPostgres()]);
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-import-'));
    await Promise.all([seedMariaRich(maria, 'shop'), seedRich(pg, 'shop')]);
    // Dumps as someone else made them, with the tools themselves.
    const cnf = join(dir, 'client.cnf');
    await writeFile(cnf, `[client]\nhost=${maria.host}\nport=${maria.port}\nprotocol=tcp\nuser=${maria.user}\npassword=${maria.password}\n`, { mode: 0o600 });
    const mariaDump = join(dir, 'shop.sql.gz');
    await writeFile(mariaDump, gzipSync(execFileSync('mariadb-dump', [`--defaults-file=${cnf}`, '--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', 'shop'], { maxBuffer: 1 << 30 })));
    const pgArchive = join(dir, 'shop.dump');
    execFileSync(join(pg.binDir, 'pg_dump'), ['-Fc', '-f', pgArchive, 'shop'], { env: pgEnv(pg) });
    // The PostgreSQL archive, zstd-compressed, placed in the DatabaseBackup's own directory of the filesystem location.
    const imports = join(dir, 'fs', 'shop', 'orders', 'imports');
    await mkdir(imports, { recursive: true });
    execFileSync('zstd', ['-q', '-o', join(imports, 'shop.dump.zst'), pgArchive]);
    const config = (engine: unknown) => stringify({ namespace: 'shop', name: 'orders', engine, locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }] });
    const mariaCfg = join(dir, 'maria.yaml');
    await writeFile(mariaCfg, config({ type: 'mysql', mysql: { host: maria.host, port: maria.port, database: 'shop', user: maria.user, password: { value: maria.password } } }));
    const pgCfg = join(dir, 'pg.yaml');
    await writeFile(pgCfg, config({ type: 'postgresql', postgresql: pg.connection('shop') }));
    env = { maria, pg, dir, mariaCfg, pgCfg, mariaDump, pgArchive, mariaSeeded: await mariaFingerprint(maria, 'shop'), pgSeeded: await tableChecksums(pg, 'shop') };
  } catch (err) {
    setupError = err;
  }
}, 240_000);

afterAll(async () => {
  await env?.maria.stop();
  await env?.pg.stop();
  if (env) await rm(env.dir, { recursive: true, force: true });
});

describe('import', () => {
  it('a gzip MariaDB dump from a file restores into a new database, identical', async () => {
    const { mariaCfg, mariaDump, maria, mariaSeeded } = ready();
    const r = await cli(mariaCfg, ['import', mariaDump, '--target-database', 'imported']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ compression: 'gzip', format: 'mysql-sql', database: 'imported', sourceServerVersion: maria.version });
    expect(await mariaFingerprint(maria, 'imported')).toEqual(mariaSeeded);
  });

  it('a gzip plain-format PostgreSQL dump restores into a new database, identical, in one transaction', async () => {
    const { pg, pgCfg, pgSeeded, dir } = ready();
    const plain = join(dir, 'shop-plain.sql.gz');
    await writeFile(plain, gzipSync(execFileSync(join(pg.binDir, 'pg_dump'), ['-Fp', 'shop'], { env: pgEnv(pg), maxBuffer: 1 << 30 })));
    const r = await cli(pgCfg, ['import', plain, '--target-database', 'from_plain']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ compression: 'gzip', format: 'pg_dump-plain' });
    expect(await tableChecksums(pg, 'from_plain')).toEqual(pgSeeded);
  });

  it('a planted plain dump cannot run psql commands in the runner: refused, rolled back, the new database dropped', async () => {
    const { pg, pgCfg, dir } = ready();
    const marker = join(dir, 'pwned');
    const planted = join(dir, 'planted.sql');
    await writeFile(planted, ['--', '-- PostgreSQL database dump', '--', 'CREATE TABLE t (id int);', `\\! touch ${marker}`, `SELECT 1; \\! touch ${marker}`, ''].join('\n'));
    const r = await cli(pgCfg, ['import', planted, '--target-database', 'planted']);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ error: { code: 'RESTORE_FAILED', target: { database: 'planted', state: 'dropped' } } });
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    expect(await pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'planted'")).toBe('0');
  });

  it('refuses a MariaDB dump of several databases (it would switch to them), before touching anything', async () => {
    const { maria, mariaCfg, dir } = ready();
    const cnf = join(dir, 'client.cnf');
    const file = join(dir, 'many.sql');
    await writeFile(file, execFileSync('mariadb-dump', [`--defaults-file=${cnf}`, '--databases', 'shop'], { maxBuffer: 1 << 30 }));
    const r = await cli(mariaCfg, ['import', file, '--target-database', 'never']);
    expect(r.code).toBe(6);
    expect(r.json).toMatchObject({ error: { code: 'FORMAT_MISMATCH', message: expect.stringMatching(/a dump of several databases/) as string } });
    expect(await maria.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'never'")).toBe('0');
  });

  it('--keep into a database that holds data, without --force, is refused before anything is stored', async () => {
    const { mariaCfg, mariaDump, dir } = ready();
    const r = await cli(mariaCfg, ['import', mariaDump, '--keep']);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY', message: expect.stringMatching(/nothing was imported or kept/) as string } });
    await expect(readdir(join(dir, 'fs', 'shop', 'orders', 'backups'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a database that holds data without --force, changing nothing', async () => {
    const { mariaCfg, mariaDump, maria, mariaSeeded } = ready();
    const r = await cli(mariaCfg, ['import', mariaDump]);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(await mariaFingerprint(maria, 'shop')).toEqual(mariaSeeded);
  });

  it('with --keep, a zstd PostgreSQL archive from a location is stored as a backup, then that backup is restored', async () => {
    const { pgCfg, pg, pgSeeded } = ready();
    const r = await cli(pgCfg, ['import', '--from', 'fs:imports/shop.dump.zst', '--keep', '--target-database', 'imported']);
    expect(r.code, r.out).toBe(0);
    expect(r.json).toMatchObject({ compression: 'zstd', format: 'pg_dump-custom', kept: { status: 'Succeeded', locations: ['fs'] } });
    expect(await tableChecksums(pg, 'imported')).toEqual(pgSeeded);
    const list = await cli(pgCfg, ['list']);
    const backups = list.json.backups as { id: string; manifest: { origin?: unknown; engine: { format: string } } }[];
    expect(backups.map((b) => b.id)).toEqual([(r.json.kept as { id: string }).id]);
    expect(backups[0]!.manifest).toMatchObject({ origin: { kind: 'imported', source: 'fs:imports/shop.dump.zst' }, engine: { format: 'pg_dump-custom', toolVersion: 'import' } });
    const v = await cli(pgCfg, ['verify']);
    expect(v.code, v.out).toBe(0);
  });

  it.each([
    ['a PostgreSQL archive into the MariaDB runner', () => ready().pgArchive, 'mariaCfg', /it is a pg_dump-custom dump, which the postgresql engine restores; this runner's engine \(mysql\) restores mysql-sql/],
    ['a MariaDB dump into the PostgreSQL runner', () => ready().mariaDump, 'pgCfg', /it is a mysql-sql dump, which the mysql engine restores/],
    ['random bytes', () => join(ready().dir, 'random.bin'), 'mariaCfg', /not a dump this runner knows/],
    ['SQL without a dump header', () => join(ready().dir, 'plain.sql'), 'pgCfg', /not a dump this runner knows \(it starts with "CREATE TABLE x \(/],
  ] as const)('refuses %s before touching the database', async (_what, file, cfg, why) => {
    const e = ready();
    await writeFile(join(e.dir, 'random.bin'), gzipSync(randomBytes(4096)));
    await writeFile(join(e.dir, 'plain.sql'), 'CREATE TABLE x (id int);\n');
    const r = await cli(e[cfg], ['import', file(), '--target-database', 'never']);
    expect(r.code).toBe(6);
    expect(r.json).toMatchObject({ error: { code: 'FORMAT_MISMATCH', message: expect.stringMatching(why) as string } });
    expect(await e.maria.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'never'")).toBe('0');
    expect(await e.pg.psql("SELECT COUNT(*) FROM pg_database WHERE datname = 'never'", 'postgres')).toBe('0');
  });

  it('a location path may not leave the DatabaseBackup\'s directory', async () => {
    const e = ready();
    await mkdir(join(e.dir, 'fs', 'shop', 'other'), { recursive: true });
    await writeFile(join(e.dir, 'fs', 'shop', 'other', 'secret.sql'), await readFile(e.mariaDump));
    const r = await cli(e.mariaCfg, ['import', '--from', 'fs:../other/secret.sql', '--target-database', 'never']);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ error: { code: 'USAGE', message: expect.stringMatching(/must be a relative path inside this DatabaseBackup's directory \(shop\/orders\/\)/) as string } });
  });
});
