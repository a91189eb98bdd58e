/**
 * Whole PostgreSQL servers through the CLI: every database of a real server
 * plus its globals (roles, memberships) in one backup of several streams
 * (format 3), restored into a second, fresh server: roles first, existing
 * roles left exactly as they are, every database identical. Also: choosing
 * databases, --target-database for one, --no-owner into a server without the
 * roles, each database's own settings, grants and comment given back to a
 * database the restore creates, and a planted globals dump that cannot run
 * commands in the runner.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PostgresqlEngine } from '../../runner/engines/postgresql/index.js';
import { silentLogger } from '../../runner/logger.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';
import { runCli } from '../cli.js';

interface Env {
  source: PgInstance;
  target: PgInstance;
  bare: PgInstance;
  dir: string;
  sourceCfg: string;
  targetCfg: string;
  bareCfg: string;
  sums: Record<string, Record<string, string>>;
}

let env: Env | undefined;
/** Where a database owner's trap would leave a file (world-writable: the server's OS user writes it). */
let traps = '';
let setupError: unknown;

function ready(): Env {
  if (setupError) throw setupError as Error;
  return env!;
}

const cli = runCli;

/** Logs in as `user` with `password` over TCP and returns current_user, or the error. */
function loginAs(pg: PgInstance, user: string, password: string): string {
  try {
    return execFileSync(join(pg.binDir, 'psql'), ['-X', '-A', '-t', '-w', '-c', 'SELECT current_user'], {
      env: { PATH: process.env.PATH, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: user, PGPASSWORD: password, PGDATABASE: 'postgres' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
      .toString()
      .trim();
  } catch (err) {
    return `failed: ${String((err as { stderr?: Buffer }).stderr ?? err)}`;
  }
}

const DBS = ['crm', 'postgres', 'shop'];

/** A database's settings, grants (grantee, privilege, grant option) and comment, as one comparable text. */
const properties = (pg: PgInstance, db: string): Promise<string> =>
  pg.psql(`SELECT (SELECT array_to_string(setconfig, ' | ') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0),
    (SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || ':' || a.privilege_type || ':' || a.is_grantable, ', ' ORDER BY 1) FROM aclexplode(d.datacl) a),
    shobj_description(d.oid, 'pg_database') FROM pg_database d WHERE datname = '${db}'`);

beforeAll(async () => {
  try {
    const [source, target, bare] = await Promise.all([startPostgres(), startPostgres(), startPostgres()]);
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-pg-server-'));
    await seedRich(source, 'shop', { rows: 2000 });
    // A database owner's trap: functions named like catalog ones, first on the database's search_path. The runner's
    // own sessions (the snapshot export among them) must never run them.
    // Each, run by a superuser session, would leave a file behind (COPY TO PROGRAM runs even in a read-only transaction).
    // (The server's OS user writes the file: a directory it may write to.)
    traps = await mkdtemp(join(tmpdir(), 'dbbc-pg-traps-'));
    await chmod(traps, 0o1777);
    const trap = (fn: string, returns: string, args = '') =>
      `CREATE FUNCTION evil.${fn}(${args}) RETURNS ${returns} LANGUAGE plpgsql AS $$ BEGIN EXECUTE pg_catalog.format('COPY (SELECT 1) TO PROGRAM %L', 'touch ${join(traps, 'hijacked')}-${fn}'); RETURN NULL; END $$;`;
    await source.psql(`CREATE SCHEMA evil; ${trap('clock_timestamp', 'timestamptz')} ${trap('pg_export_snapshot', 'text')} ${trap('current_setting', 'text', 'text')}`, 'shop');
    await source.psql('ALTER DATABASE shop SET search_path = evil, pg_catalog;');
    await source.psql(`CREATE ROLE app LOGIN PASSWORD 'app-pw-1'; CREATE ROLE readers NOLOGIN; GRANT readers TO app; COMMENT ON ROLE app IS 'the application';`);
    await source.psql('CREATE DATABASE crm OWNER app;');
    // The database's own settings (a list value with quoted elements, a custom one), grants and comment.
    await source.psql(`ALTER DATABASE crm SET search_path TO "$user", public, "Odd ""Schema"""; ALTER DATABASE crm SET app.tenant TO 'acme''; DROP TABLE x; --';
      ALTER DATABASE crm SET work_mem TO '8MB'; REVOKE CONNECT, TEMPORARY ON DATABASE crm FROM PUBLIC; GRANT CONNECT ON DATABASE crm TO readers;
      GRANT TEMPORARY ON DATABASE crm TO readers WITH GRANT OPTION; COMMENT ON DATABASE crm IS E'the CRM\\nit''s ours';`);
    // The owner gave up one of its own rights: a restore must not hand it back.
    await source.psql('SET ROLE app; REVOKE CREATE ON DATABASE crm FROM app;');
    await source.psql(`SET ROLE app; CREATE TABLE contacts (id int PRIMARY KEY, name text); INSERT INTO contacts SELECT g, 'c' || g FROM generate_series(1, 500) g; GRANT SELECT ON contacts TO readers;`, 'crm');
    // The target server has a role of the same name with another password: a restore must not change it.
    await target.psql(`CREATE ROLE readers NOLOGIN; CREATE ROLE app LOGIN PASSWORD 'target-own-pw';`);
    await target.psql('DROP ROLE app;');
    const config = (pg: PgInstance, extra: Record<string, unknown> = {}) =>
      stringify({
        namespace: 'data',
        name: 'cluster',
        engine: { type: 'postgresql', postgresql: { ...pg.connection('postgres'), ...extra } },
        locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }],
      });
    const sourceCfg = join(dir, 'source.yaml');
    await writeFile(sourceCfg, config(source, { databases: 'all' }));
    // The other servers read the same location: the same namespace and name, their own connection.
    const targetCfg = join(dir, 'target.yaml');
    await writeFile(targetCfg, config(target, { databases: 'all' }));
    const bareCfg = join(dir, 'bare.yaml');
    await writeFile(bareCfg, config(bare, { databases: 'all' }));
    const sums: Record<string, Record<string, string>> = {};
    for (const db of DBS) sums[db] = await tableChecksums(source, db);
    env = { source, target, bare, dir, sourceCfg, targetCfg, bareCfg, sums };
  } catch (err) {
    setupError = err;
  }
}, 240_000);

afterAll(async () => {
  await Promise.all([env?.source.stop(), env?.target.stop(), env?.bare.stop()]);
  if (env) await rm(env.dir, { recursive: true, force: true });
  if (traps) await rm(traps, { recursive: true, force: true });
});

describe('a whole PostgreSQL server', () => {
  let id = '';

  it('backs up the globals and every database as streams of one backup (format 3), each with its consistency instant', async () => {
    const r = await cli(ready().sourceCfg, ['backup']);
    expect(r.code, r.out).toBe(0);
    id = r.json.id as string;
    const m = r.json.manifest as { formatVersion: number; consistentAt: string; objects: { name: string; stream: { name: string; kind: string; format: string; consistentAt: string } }[] };
    expect(m.formatVersion).toBe(3);
    expect(m.objects.map((o) => [o.name.replace(/\.(zst|gz)$/, ''), o.stream.kind, o.stream.name, o.stream.format])).toEqual([
      ['data-001.sql', 'globals', 'globals', 'pg_dumpall-globals'],
      ['data-002.dump', 'database', 'crm', 'pg_dump-custom'],
      ['data-003.dump', 'database', 'postgres', 'pg_dump-custom'],
      ['data-004.dump', 'database', 'shop', 'pg_dump-custom'],
    ]);
    // The backup is consistent to the latest of its streams' instants.
    expect(m.consistentAt).toBe(m.objects.map((o) => o.stream.consistentAt).sort().at(-1));
    const files = await readdir(join(ready().dir, 'fs', 'data', 'cluster', 'backups', id));
    expect(files.sort()).toEqual([...m.objects.map((o) => o.name), 'manifest.json'].sort());
    // The database owner's functions on shop's search_path never ran in the runner's sessions.
    expect(await readdir(traps)).toEqual([]);
  });

  it('lists and verifies every stream, each against its own format', async () => {
    const v = await cli(ready().sourceCfg, ['verify']);
    expect(v.code, v.out).toBe(0);
    expect((v.json.checks as { status: string }[]).map((c) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  it('refuses to restore over databases that hold data, naming them all, and changes nothing', async () => {
    const r = await cli(ready().sourceCfg, ['restore', '--latest']);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY', message: expect.stringMatching(/database "crm", database "shop" already hold data; nothing was changed/) as string } });
  });

  it('restores into a fresh server: roles first (an existing role left as it is), then every database, identical', async () => {
    const { target, targetCfg, sums } = ready();
    const r = await cli(targetCfg, ['restore', '--latest', '--force']);
    expect(r.code, r.out).toBe(0);
    const streams = r.json.streams as { stream: string; status: string; conflicts?: string[] }[];
    expect(streams.map((s) => [s.stream, s.status])).toEqual([
      ['globals', 'restored'],
      ['crm', 'restored'],
      ['postgres', 'restored'],
      ['shop', 'restored'],
    ]);
    expect(streams[0]!.conflicts).toEqual(expect.arrayContaining(['role "postgres" exists: left as it is', 'role "readers" exists: left as it is']));
    // No password appears in what the restore says.
    expect(r.out).not.toMatch(/SCRAM-SHA-256|md5[0-9a-f]{32}/);
    for (const db of ['crm', 'shop']) expect(await tableChecksums(target, db)).toEqual(sums[db]);
    // app came with its password hash; the target's own superuser kept its password.
    expect(loginAs(target, 'app', 'app-pw-1')).toBe('app');
    expect(loginAs(target, target.user, target.password)).toBe(target.user);
    expect(await target.psql("SELECT pg_has_role('app', 'readers', 'member'), shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'app'")).toBe('t|the application');
    expect(await target.psql("SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'crm'")).toBe('app');
    // The database's own settings, grants and comment came back with it.
    const crm = await properties(ready().source, 'crm');
    expect(crm).toContain('search_path="$user", public, "Odd ""Schema"""');
    expect(crm).toContain('readers:CONNECT:false');
    expect(await properties(target, 'crm')).toBe(crm);
  });

  it('one database under another name; an unknown name is refused', async () => {
    const { source, sourceCfg, sums } = ready();
    const r = await cli(sourceCfg, ['restore', '--backup', id, '--database', 'shop', '--target-database', 'shop_copy', '--skip-globals']);
    expect(r.code, r.out).toBe(0);
    expect((r.json.streams as { stream: string; database: string }[]).map((s) => [s.stream, s.database])).toEqual([['shop', 'shop_copy']]);
    expect(await tableChecksums(source, 'shop_copy')).toEqual(sums.shop);
    const crm = await cli(sourceCfg, ['restore', '--backup', id, '--database', 'crm', '--target-database', 'crm_copy', '--skip-globals']);
    expect(crm.code, crm.out).toBe(0);
    expect(await properties(source, 'crm_copy')).toBe(await properties(source, 'crm'));
    const bad = await cli(sourceCfg, ['restore', '--latest', '--database', 'nope']);
    expect(bad.code).toBe(4);
    expect(bad.json).toMatchObject({ error: { code: 'BACKUP_NOT_FOUND', message: expect.stringMatching(/holds no database "nope" \(it holds crm, postgres, shop\)/) as string } });
    const two = await cli(sourceCfg, ['restore', '--latest', '--target-database', 'x']);
    expect(two.code).toBe(2);
  });

  it('--no-owner restores a database into a server without its roles; without it the restore fails and the database is dropped again', async () => {
    const { bare, bareCfg, sums } = ready();
    const failed = await cli(bareCfg, ['restore', '--latest', '--database', 'crm', '--skip-globals']);
    expect(failed.code).toBe(1);
    expect(failed.json).toMatchObject({ error: { message: expect.stringMatching(/role "app" does not exist[\s\S]*Restored before it: nothing; not attempted: nothing/) as string } });
    expect(await bare.psql("SELECT count(*) FROM pg_database WHERE datname = 'crm'")).toBe('0');
    const r = await cli(bareCfg, ['restore', '--latest', '--database', 'crm', '--skip-globals', '--no-owner']);
    expect(r.code, r.out).toBe(0);
    expect(await tableChecksums(bare, 'crm')).toEqual(sums.crm);
    // Without ownership and privileges: the settings and the comment, not the grants (their roles are not here).
    const p = await properties(bare, 'crm');
    expect(p).toContain('app.tenant=acme\'; DROP TABLE x; --');
    expect(p).toContain("the CRM\nit's ours");
    expect(p).not.toContain('readers');
    expect((r.json.streams as { conflicts?: string[] }[])[0]?.conflicts ?? []).toEqual([]);
  });
});

describe('a whole-server backup restored under a narrower configuration', () => {
  it('restores only the databases the configuration names, says which it left out, and restores another only when named', async () => {
    const { bare, dir, sums } = ready();
    const narrow = async (databases: string[]): Promise<string> => {
      const path = join(dir, `narrow-${databases.join('-')}.yaml`);
      await writeFile(
        path,
        stringify({
          namespace: 'data',
          name: 'cluster',
          engine: { type: 'postgresql', postgresql: { ...bare.connection('postgres'), databases } },
          locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }],
        }),
      );
      return path;
    };
    const r = await cli(await narrow(['shop']), ['restore', '--latest', '--skip-globals', '--no-owner']);
    expect(r.code, r.out).toBe(0);
    expect((r.json.streams as { stream: string; status: string }[]).map((x) => [x.stream, x.status])).toEqual([
      ['shop', 'restored'],
      ['crm', 'outside configuration'],
      ['postgres', 'outside configuration'],
    ]);
    expect(await tableChecksums(bare, 'shop')).toEqual(sums.shop);
    // A configuration of one database (no databases list) is bound to that one.
    const single = join(dir, 'single-crm.yaml');
    await writeFile(
      single,
      stringify({ namespace: 'data', name: 'cluster', engine: { type: 'postgresql', postgresql: bare.connection('crm') }, locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }] }),
    );
    // Nor does it restore the server's roles: it backs up none.
    const one = await cli(single, ['restore', '--latest', '--no-owner', '--force']);
    expect(one.code, one.out).toBe(0);
    expect((one.json.streams as { stream: string; status: string }[]).map((x) => [x.stream, x.status])).toEqual([
      ['crm', 'restored'],
      ['globals', 'outside configuration'],
      ['postgres', 'outside configuration'],
      ['shop', 'outside configuration'],
    ]);
    // None of the backup's databases in the configuration: refused, nothing changed.
    const none = await cli(await narrow(['elsewhere']), ['restore', '--latest']);
    expect(none.code).toBe(4);
    expect(none.json).toMatchObject({ error: { code: 'BACKUP_NOT_FOUND', message: expect.stringContaining('holds no database of this configuration') as string } });
  });
});

describe('globals from a planted dump', () => {
  it('replay only SQL: a psql command in it is refused (restricted mode) and reported', async () => {
    const { bare, dir } = ready();
    const marker = join(dir, 'pwned');
    const planted = ['--', '-- PostgreSQL database cluster dump', '--', `\\! touch ${marker}`, 'CREATE ROLE planted;', `SELECT 1; \\! touch ${marker}`, ''].join('\n');
    const engine = new PostgresqlEngine(Object.freeze(bare.connection('postgres')), silentLogger());
    const report = await engine.restore(Readable.from([planted]), { database: 'postgres', force: false, stream: { name: 'globals', kind: 'globals' } });
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    expect(report?.conflicts).toEqual(expect.arrayContaining(['line 4: not a statement pg_dumpall writes for roles: not restored', 'line 6: not a statement pg_dumpall writes for roles: not restored']));
    expect(await bare.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'planted'")).toBe('1');
  });

  it('a listed database that does not exist fails the backup before anything is dumped', async () => {
    const { source, dir } = ready();
    const cfg = join(dir, 'missing.yaml');
    await writeFile(cfg, stringify({ namespace: 'data', name: 'missing', engine: { type: 'postgresql', postgresql: { ...source.connection('postgres'), databases: ['shop', 'gone'] } }, locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }] }));
    const r = await cli(cfg, ['backup']);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ error: { code: 'DB_NOT_FOUND', message: expect.stringMatching(/engine.postgresql.databases: "gone" does not exist/) as string } });
    await expect(readdir(join(dir, 'fs', 'data', 'missing'))).rejects.toThrow(/ENOENT/);
  });
});
