/**
 * The PostgreSQL engine against a real server (testenv/postgres.ts). Without
 * PostgreSQL installed every test fails with the install hint.
 */
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PostgresqlConnection } from '../../api/index.js';
import { PostgresqlEngine, type PostgresqlEngineOptions } from '../../runner/engines/postgresql/index.js';
import { BackupError } from '../../runner/errors.js';
import { silentLogger } from '../../runner/logger.js';
import { run } from '../../runner/util/process.js';
import { findServerBinDir, startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich, tableChecksums } from '../../testenv/seed.js';
import { dumpTo, rejection, unusedPort } from '../engine-helpers.js';

let pg: PgInstance;
let work: string;
let dumpFile: string;
let sourceSums: Record<string, string>;

function engine(db = 'source', overrides: Partial<PostgresqlConnection> = {}, env: NodeJS.ProcessEnv = process.env, opts: PostgresqlEngineOptions = {}): PostgresqlEngine {
  return new PostgresqlEngine(Object.freeze(pg.connection(db, overrides)), silentLogger(), env, opts);
}

let setupError: Error | undefined;

beforeAll(async () => {
  try {
    work = await mkdtemp(join(tmpdir(), 'pg-engine-test-'));
    pg = await startPostgres();
    await seedRich(pg, 'source');
    sourceSums = await tableChecksums(pg, 'source');
    dumpFile = join(work, 'source.dump');
    await dumpTo(await engine().dump(), dumpFile);
  } catch (err) {
    setupError = err instanceof Error ? err : new Error(`setup failed: ${JSON.stringify(err)}`);
  }
});

// A failed setup (e.g. PostgreSQL not installed) fails every test with its message, rather than skipping them.
beforeEach(() => {
  if (setupError) throw setupError;
});

afterAll(async () => {
  await pg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('launcher', () => {
  it('says how to install PostgreSQL when its binaries are missing', () => {
    expect(() => findServerBinDir(join(tmpdir(), 'no-postgresql-here'))).toThrow(/apt-get install -y postgresql.*testenv\/install-deps\.sh/);
  });
});

describe('probe', () => {
  it('reports the server and pg_dump versions', async () => {
    const result = await engine().probe();
    expect(result.serverVersion).toMatch(new RegExp(`^${pg.major}\\.\\d+$`));
    expect(result.toolVersion).toMatch(new RegExp(`^${pg.major}\\.\\d+$`));
  });

  it('refuses a wrong password with DB_AUTH_FAILED, without echoing it', async () => {
    const err = await rejection(engine('source', { password: { value: 'not-the-password' } }).probe());
    expect(err.code).toBe('DB_AUTH_FAILED');
    expect(err.message).toContain('rejected the password');
    expect(JSON.stringify(err.toJSON())).not.toContain('not-the-password');
    expect((await rejection(engine('source', { password: { value: 'not-the-password' } }).dump())).code).toBe('DB_AUTH_FAILED');
  });

  it('reports a closed port as DB_UNREACHABLE (retryable)', async () => {
    const err = await rejection(engine('source', { port: await unusedPort() }).probe());
    expect(err.code).toBe('DB_UNREACHABLE');
    expect(err.retryable).toBe(true);
  });

  it('reports a missing configured database as DB_NOT_FOUND', async () => {
    const err = await rejection(engine('no_such_db').probe());
    expect(err.code).toBe('DB_NOT_FOUND');
    expect(err.message).toContain('"no_such_db"');
  });

  it('refuses extra arguments that break the pipeline contract when the engine is built', () => {
    expect(() => engine('source', { dumpArgs: ['-Fp'] })).toThrow(/engine\.postgresql\.dumpArgs/);
  });

  it('refuses a pg_dump older than the server with TOOL_TOO_OLD naming both versions', async () => {
    const bin = await fakeBinDir('9.6.24');
    const err = await rejection(engine('source', { binDir: bin }).probe());
    expect(err.code).toBe('TOOL_TOO_OLD');
    expect(err.message).toMatch(new RegExp(`pg_dump 9\\.6\\.24 .*PostgreSQL ${pg.major}\\.\\d+.*binDir`));
  });

  it('switches to a newer Debian-style install when the pg_dump on PATH is too old', async () => {
    const oldBin = await fakeBinDir('9.6.24');
    const root = join(work, 'debian-root');
    await mkdir(join(root, String(pg.major)), { recursive: true });
    await symlink(pg.binDir, join(root, String(pg.major), 'bin')).catch(() => undefined);
    const env = { ...process.env, PATH: `${oldBin}:${process.env.PATH}` };
    const e = new PostgresqlEngine(Object.freeze(pg.connection('source', { binDir: undefined })), silentLogger(), env, { debianRoot: root });
    expect((await e.probe()).toolVersion).toMatch(new RegExp(`^${pg.major}\\.`));
  });
});

/** A bin dir with the real psql and a pg_dump that waits a second before it starts. */
async function slowPgDumpBinDir(): Promise<string> {
  const bin = await mkdtemp(join(work, 'slow-'));
  await symlink(join(pg.binDir, 'psql'), join(bin, 'psql'));
  await writeFile(join(bin, 'pg_dump'), `#!/bin/sh\nsleep 1\nexec '${join(pg.binDir, 'pg_dump')}' "$@"\n`);
  await chmod(join(bin, 'pg_dump'), 0o755);
  return bin;
}

/** A bin dir with the real psql and a pg_dump that claims `version`. */
async function fakeBinDir(version: string): Promise<string> {
  const bin = await mkdtemp(join(work, 'bin-'));
  await symlink(join(pg.binDir, 'psql'), join(bin, 'psql'));
  await writeFile(join(bin, 'pg_dump'), `#!/bin/sh\necho "pg_dump (PostgreSQL) ${version}"\n`);
  await chmod(join(bin, 'pg_dump'), 0o755);
  return bin;
}

describe('dump', () => {
  it('describes an uncompressed custom-format archive', async () => {
    const head = (await readFile(dumpFile)).subarray(0, 5).toString('latin1');
    expect(head).toBe('PGDMP');
    const h = await engine().dump();
    expect({ format: h.format, extension: h.extension, compressed: h.compressed }).toEqual({ format: 'pg_dump-custom', extension: 'dump', compressed: false });
    await dumpTo(h, join(work, 'format.dump'));
  });

  /**
   * pg_dump starts 1 s late (a wrapper sleeps first), and a row is committed
   * in that second. With the exported snapshot the row is not in the dump;
   * the control run without one shows the row would otherwise be there.
   */
  it.each([
    [true, '0'],
    [false, '1'],
  ])('exportSnapshot=%s: a commit after the dump started is in the dump: %s', async (exportSnapshot, expected) => {
    const bin = await slowPgDumpBinDir();
    const started = new Date();
    const h = await engine('source', { binDir: bin }, process.env, { exportSnapshot }).dump();
    const id = exportSnapshot ? 99999998 : 99999999;
    await pg.psql(`INSERT INTO app.items (id, name) VALUES (${id}, 'committed after the dump started');`, 'source');
    try {
      const file = join(work, `snapshot-${exportSnapshot}.dump`);
      await dumpTo(h, file);
      const ended = new Date();
      const consistentAt = await h.consistentAt;
      expect(consistentAt.getTime()).toBeGreaterThanOrEqual(started.getTime());
      expect(consistentAt.getTime()).toBeLessThanOrEqual(ended.getTime());
      await engine().restore(createReadStream(file), { database: `snapshot_${exportSnapshot}`, force: false });
      expect(await pg.psql(`SELECT count(*) FROM app.items WHERE id = ${id};`, `snapshot_${exportSnapshot}`)).toBe(expected);
    } finally {
      await pg.psql(`DELETE FROM app.items WHERE id = ${id};`, 'source');
    }
  });

  it('without an exported snapshot, consistentAt is when pg_dump ended (an upper bound)', async () => {
    const started = new Date();
    const h = await engine('source', {}, process.env, { exportSnapshot: false }).dump();
    await dumpTo(h, join(work, 'plain.dump'));
    const ended = new Date();
    const at = await h.consistentAt;
    expect(at.getTime()).toBeGreaterThanOrEqual(started.getTime());
    expect(at.getTime()).toBeLessThanOrEqual(ended.getTime());
  });

  it('an already aborted signal starts nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(engine().dump({ signal: ac.signal }))).code).toBe('ABORTED');
    expect((await rejection(engine().restore(createReadStream(dumpFile), { database: 'aborted', force: false, signal: ac.signal }))).code).toBe('ABORTED');
  });

  it('aborting kills pg_dump and the snapshot session', async () => {
    const ac = new AbortController();
    const h = await engine().dump({ signal: ac.signal });
    await h.consistentAt;
    ac.abort();
    h.stream!.resume();
    expect((await rejection(h.done)).code).toBe('ABORTED');
    await expect.poll(() => pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'db-backup-runner';`), { timeout: 10_000 }).toBe('0');
  });
});

describe('inspectTarget', () => {
  it('tells missing, empty and non-empty databases apart (large objects count as data)', async () => {
    await pg.psql('CREATE DATABASE empty_db; CREATE DATABASE lo_only;');
    await pg.psql(`SELECT lo_from_bytea(0, 'x'::bytea);`, 'lo_only');
    const e = engine();
    expect(await e.inspectTarget('absent_db')).toEqual({ database: 'absent_db', exists: false, hasData: false });
    expect(await e.inspectTarget('empty_db')).toEqual({ database: 'empty_db', exists: true, hasData: false });
    expect(await e.inspectTarget('lo_only')).toEqual({ database: 'lo_only', exists: true, hasData: true });
    expect(await e.inspectTarget('source')).toEqual({ database: 'source', exists: true, hasData: true });
  });
});

describe('restore', () => {
  it('restores a dump into a new database with identical contents', async () => {
    await engine().restore(createReadStream(dumpFile), { database: 'restored', force: false });
    expect(await tableChecksums(pg, 'restored')).toEqual(sourceSums);
  });

  it('restores the whole output of a child process that already exited', async () => {
    const cat = run('cat', [dumpFile], { stdin: 'ignore' });
    // By now cat has exited or waits on backpressure; either way no byte may be discarded.
    await new Promise((r) => setTimeout(r, 300));
    await engine().restore(cat.stdout!, { database: 'restored_from_pipe', force: false });
    expect(await tableChecksums(pg, 'restored_from_pipe')).toEqual(sourceSums);
  });

  it('refuses a database that holds data without force, and leaves it untouched', async () => {
    await seedRich(pg, 'occupied', { rows: 500 });
    const before = await tableChecksums(pg, 'occupied');
    const err = await rejection(engine().restore(createReadStream(dumpFile), { database: 'occupied', force: false }));
    expect(err.code).toBe('TARGET_NOT_EMPTY');
    expect(err.message).toContain('--force');
    expect(await tableChecksums(pg, 'occupied')).toEqual(before);
  });

  it('with force replaces the objects the backup contains', async () => {
    await engine().restore(createReadStream(dumpFile), { database: 'occupied', force: true });
    const after = await tableChecksums(pg, 'occupied');
    for (const [key, sum] of Object.entries(sourceSums)) expect(after[key], key).toBe(sum);
    // Only objects the archive does not contain survive: here the target's own large objects.
    expect(Object.keys(after).filter((k) => !(k in sourceSums)).every((k) => k.startsWith('lo:'))).toBe(true);
  });

  it('a truncated dump fails and leaves an existing database exactly as it was', async () => {
    await seedRich(pg, 'kept', { rows: 500 });
    const before = await tableChecksums(pg, 'kept');
    const truncated = (await readFile(dumpFile)).subarray(0, Math.floor((await stat(dumpFile)).size * 0.6));
    const err = await rejection(engine().restore(Readable.from([truncated]), { database: 'kept', force: true }));
    expect(err.code).toBe('RESTORE_FAILED');
    expect(await tableChecksums(pg, 'kept')).toEqual(before);
  });

  it('a truncated dump into a new database does not leave the database behind', async () => {
    const truncated = (await readFile(dumpFile)).subarray(0, Math.floor((await stat(dumpFile)).size * 0.6));
    const e = engine();
    expect((await rejection(e.restore(Readable.from([truncated]), { database: 'never_made', force: false }))).code).toBe('RESTORE_FAILED');
    expect((await e.inspectTarget('never_made')).exists).toBe(false);
  });

  it('a failing input stream fails the restore with its own error and rolls back', async () => {
    const e = engine();
    async function* broken(): AsyncGenerator<Buffer> {
      const all = await readFile(dumpFile);
      yield all.subarray(0, Math.floor(all.length / 2));
      throw new BackupError('STORAGE_UNAVAILABLE', 'download interrupted');
    }
    const err = await rejection(e.restore(Readable.from(broken()), { database: 'broken_input', force: false }));
    expect(err.code).toBe('STORAGE_UNAVAILABLE');
    expect((await e.inspectTarget('broken_input')).exists).toBe(false);
  });
});
