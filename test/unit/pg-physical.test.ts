/**
 * PostgreSQL physical backups, the pure parts and the extractor: the pg_basebackup command, what its output
 * says of itself, which tar members may be laid into a data directory, and hostile tars laid into a real
 * temporary directory (nothing may land outside it).
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack, type Header } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostgresqlConnection } from '../../api/index.js';
import { isBackupError } from '../../runner/errors.js';
import { RESTORE_STATE_FILE, directoryMode, fileMode, memberPath } from '../../runner/engines/postgresql/physical/entries.js';
import { extractTar } from '../../runner/engines/postgresql/physical/extract.js';
import { restoreDataDirectory } from '../../runner/engines/postgresql/physical/restore.js';
import { silentLogger } from '../../runner/logger.js';
import { BACKUP_LABEL, BASEBACKUP_FORMAT, parseWalPoints, pgBasebackupPlan, readBackupLabel } from '../../runner/engines/postgresql/physical/plan.js';
import { modeProblems } from '../../runner/engines/postgresql/plan.js';
import { formatMismatch } from '../../runner/engines/registry.js';

const conn: PostgresqlConnection = { host: 'db.shop', port: 5432, database: 'postgres', user: 'backup', password: { value: 's3cret' } };

const LABEL_TEXT = [
  'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)',
  'CHECKPOINT LOCATION: 0/2000060',
  'BACKUP METHOD: streamed',
  'BACKUP FROM: primary',
  'START TIME: 2026-12-04 19:52:00 UTC',
  `LABEL: ${BACKUP_LABEL}`,
  'START TIMELINE: 1',
  '',
].join('\n');

type Member = Partial<Header> & { name: string; body?: string };

/** A tar of `members`, as bytes. */
async function tarOf(members: readonly Member[]): Promise<Buffer> {
  const p = pack();
  for (const m of members) {
    const { body, ...header } = m;
    if (body !== undefined) p.entry({ ...header, size: Buffer.byteLength(body) }, body);
    else p.entry(header);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

describe('pgBasebackupPlan', () => {
  it('writes one tar with its WAL to stdout, verbose, never prompting, the password only in the environment', () => {
    const plan = pgBasebackupPlan(conn, { password: 's3cret', base: { PATH: '/bin', PGSERVICE: 'evil' } });
    expect(plan.command).toBe('pg_basebackup');
    expect(plan.args).toEqual(['-D', '-', '-Ft', '-X', 'fetch', '-v', '-w', '--checkpoint=fast', '-l', BACKUP_LABEL]);
    expect(plan.args.join(' ')).not.toContain('s3cret');
    expect(plan.env).toMatchObject({ PGHOST: 'db.shop', PGPORT: '5432', PGUSER: 'backup', PGPASSWORD: 's3cret', PATH: '/bin' });
    expect(plan.env).not.toHaveProperty('PGSERVICE');
  });

  it('takes a spread checkpoint and the tools of binDir when configured', () => {
    const plan = pgBasebackupPlan({ ...conn, mode: 'physical', checkpoint: 'spread', binDir: '/usr/lib/postgresql/16/bin' });
    expect(plan.command).toBe('/usr/lib/postgresql/16/bin/pg_basebackup');
    expect(plan.args).toContain('--checkpoint=spread');
  });
});

describe('modeProblems', () => {
  it.each([
    [{}, []],
    [{ mode: 'logical' as const, databases: 'all' as const }, []],
    [{ mode: 'physical' as const }, []],
    [{ mode: 'physical' as const, checkpoint: 'spread' as const }, []],
    [{ checkpoint: 'fast' as const }, ['engine.postgresql.checkpoint']],
    [{ mode: 'physical' as const, databases: ['a'], parallel: 2, dumpArgs: ['--no-comments'] }, ['engine.postgresql.databases', 'engine.postgresql.parallel', 'engine.postgresql.dumpArgs']],
    [{ mode: 'physical' as const, globals: false, restoreArgs: [] }, ['engine.postgresql.globals', 'engine.postgresql.restoreArgs']],
  ])('%j', (extra, paths) => {
    expect(modeProblems({ ...conn, ...extra }).map((p) => p.path)).toEqual(paths);
  });
});

describe('parseWalPoints', () => {
  const stderr = [
    'pg_basebackup: initiating base backup, waiting for checkpoint to complete',
    'pg_basebackup: checkpoint completed',
    'pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1',
    'pg_basebackup: write-ahead log end point: 1A/FF000100',
    'pg_basebackup: base backup completed',
  ].join('\n');

  it('reads the start point, timeline and end point', () => {
    expect(parseWalPoints(stderr)).toEqual({ startLsn: '0/2000028', timeline: '1', stopLsn: '1A/FF000100' });
  });

  it('is undefined when either point is missing (a run that failed half way)', () => {
    expect(parseWalPoints(stderr.split('\n').slice(0, 3).join('\n'))).toBeUndefined();
    expect(parseWalPoints('')).toBeUndefined();
  });
});

describe('readBackupLabel and the format header', () => {
  it("reads PostgreSQL's backup_label from the tar's first member, whose header is the format's magic", async () => {
    const tar = await tarOf([{ name: 'backup_label', body: LABEL_TEXT }, { name: 'PG_VERSION', body: '15\n' }]);
    expect(readBackupLabel(tar.subarray(0, 4096))).toEqual({ startLsn: '0/2000028', startWalFile: '000000010000000000000002', checkpointLsn: '0/2000060', timeline: '1', label: BACKUP_LABEL });
    expect(formatMismatch(BASEBACKUP_FORMAT.format, tar.subarray(0, 64))).toBeUndefined();
  });

  it.each([
    ['another first member', [{ name: 'PG_VERSION', body: '15\n' }], /first member is "PG_VERSION"/],
    ['a label without its WAL location', [{ name: 'backup_label', body: 'LABEL: x\n' }], /lacks the START WAL LOCATION/],
  ])('refuses %s', async (_what, members, problem) => {
    const tar = await tarOf(members);
    expect(readBackupLabel(tar.subarray(0, 4096))).toEqual({ problem: expect.stringMatching(problem) as unknown });
    if (members[0]!.name !== 'backup_label') expect(formatMismatch(BASEBACKUP_FORMAT.format, tar.subarray(0, 64))).toMatch(/does not start with/);
  });

  it('refuses a tar shorter than one header', () => {
    expect(readBackupLabel(Buffer.alloc(100))).toEqual({ problem: expect.stringMatching(/shorter than one header/) as unknown });
  });
});

describe('memberPath', () => {
  it.each([
    [{ name: 'base/1/1259', type: 'file', size: 8192 }, ['base', '1', '1259']],
    [{ name: './pg_wal/archive_status/', type: 'directory' }, ['pg_wal', 'archive_status']],
    [{ name: 'global/', type: 'directory' }, ['global']],
    [{ name: 'backup_label', type: 'file' }, ['backup_label']],
  ])('lays %j at %j', (m, segments) => {
    expect(memberPath(m)).toMatchObject({ segments });
  });

  it.each([
    [{ name: '../escape', type: 'file' }, /"\.\." segment/],
    [{ name: 'base/../../escape', type: 'file' }, /"\.\." segment/],
    [{ name: '/etc/passwd', type: 'file' }, /absolute path/],
    [{ name: 'base//x', type: 'file' }, /"" segment/],
    [{ name: 'pg_wal', type: 'symlink' }, /is a symlink/],
    [{ name: 'global/pg_control', type: 'link' }, /is a link/],
    [{ name: 'dev', type: 'character-device' }, /character-device/],
    [{ name: 'f', type: 'fifo' }, /fifo/],
    [{ name: 'a\0b', type: 'file' }, /NUL/],
    [{ name: RESTORE_STATE_FILE, type: 'file' }, /restore's own record/],
    [{ name: `${'d/'.repeat(40)}f`, type: 'file' }, /directories deep/],
    [{ name: `${'x'.repeat(300)}`, type: 'file' }, /longer than 255 bytes/],
    [{ name: '.', type: 'file' }, /data directory itself/],
    [{ name: 'volume-header', type: null }, /member of an unknown type/],
    [{ name: `${RESTORE_STATE_FILE}.tmp`, type: 'file' }, /restore's own record/],
  ])('refuses %j', (m, problem) => {
    expect(memberPath(m)).toEqual({ problem: expect.stringMatching(problem) as unknown });
  });

  it('gives directories 0700 and files 0600, or 0750 and 0640 with group access', () => {
    expect([directoryMode(0o755), directoryMode(0o700), fileMode(0o644), fileMode(0o600), fileMode(0o4777)]).toEqual([0o750, 0o700, 0o640, 0o600, 0o640]);
  });
});

describe('extractTar into a real directory', () => {
  let root: string;
  let dir: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgx-'));
    dir = join(root, 'data');
    await mkdir(dir);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('lays files and directories with PostgreSQL modes, members in any order', async () => {
    const tar = await tarOf([
      { name: 'backup_label', body: LABEL_TEXT, mode: 0o644 },
      { name: 'base/1/1259', body: 'page', mode: 0o600 },
      { name: 'base/', type: 'directory', mode: 0o755 },
      { name: './pg_wal/', type: 'directory', mode: 0o700 },
    ]);
    const r = await extractTar(Readable.from([tar]), { dir });
    expect(r).toMatchObject({ entries: 4, files: 2, skipped: 0 });
    expect(await readFile(join(dir, 'base/1/1259'), 'utf8')).toBe('page');
    expect((await lstat(join(dir, 'backup_label'))).mode & 0o777).toBe(0o640);
    expect((await lstat(join(dir, 'base'))).mode & 0o777).toBe(0o750);
    expect((await lstat(join(dir, 'base/1'))).mode & 0o777).toBe(0o700);
    expect((await readdir(dir)).sort()).toEqual(['backup_label', 'base', 'pg_wal']);
  });

  it.each([
    ['a path climbing out', [{ name: 'ok', body: 'x' }, { name: '../outside', body: 'pwned' }]],
    ['an absolute path', [{ name: `/${'tmp'}/pgx-absolute-victim`, body: 'pwned' }]],
    ['a symbolic link, then a file through it', [{ name: 'wal', type: 'symlink' as const, linkname: '..' }, { name: 'wal/outside', body: 'pwned' }]],
    ['a hard link to a file outside', [{ name: 'pw', type: 'link' as const, linkname: '/etc/passwd' }]],
    ['a name given twice', [{ name: 'PG_VERSION', body: '15' }, { name: 'PG_VERSION', body: '16' }]],
    ['a forged restore record', [{ name: RESTORE_STATE_FILE, body: '{"backupId":"x","entries":1e9,"bytes":0}' }]],
  ])('refuses %s (INTEGRITY) and writes nothing outside the directory', async (_what, members) => {
    const tar = await tarOf(members);
    const err = await extractTar(Readable.from([tar]), { dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBackupError(err, 'INTEGRITY'), String(err)).toBe(true);
    expect(await readdir(root)).toEqual(['data']);
    expect(existsSync('/tmp/pgx-absolute-victim')).toBe(false);
  });

  it('refuses a file where the tar put a directory an earlier run left as a file', async () => {
    await writeFile(join(dir, 'base'), 'not a directory');
    const tar = await tarOf([{ name: 'base/1/1259', body: 'page' }]);
    await expect(extractTar(Readable.from([tar]), { dir })).rejects.toMatchObject({ code: 'INTEGRITY' });
  });

  it('resumes: members an earlier run finished are kept only when they are byte for byte the backup\'s', async () => {
    const tar = await tarOf([
      { name: 'a', body: 'aaaa' },
      { name: 'b', body: 'bbbb' },
      { name: 'c', body: 'cccc' },
      { name: 'd', body: 'dddd' },
    ]);
    await writeFile(join(dir, 'a'), 'aaaa'); // whole and right: kept
    await writeFile(join(dir, 'b'), 'bb'); // cut short: written again
    await writeFile(join(dir, 'c'), 'cXcc'); // the right size, other bytes (a forged or torn file): written again
    const r = await extractTar(Readable.from([tar]), { dir, skip: 3 });
    expect(r).toMatchObject({ entries: 4, files: 4, skipped: 1 });
    expect(await Promise.all(['a', 'b', 'c', 'd'].map((f) => readFile(join(dir, f), 'utf8')))).toEqual(['aaaa', 'bbbb', 'cccc', 'dddd']);
  });

  it('stops (INTEGRITY) when a link stands where a member goes, never writing through it', async () => {
    await mkdir(join(root, 'outside'));
    await symlink(join(root, 'outside'), join(dir, 'base'));
    const tar = await tarOf([{ name: 'base/1/1259', body: 'page' }]);
    await expect(extractTar(Readable.from([tar]), { dir })).rejects.toMatchObject({ code: 'INTEGRITY' });
    expect(await readdir(join(root, 'outside'))).toEqual([]);
    await symlink('/etc/passwd', join(dir, 'PG_VERSION'));
    await expect(extractTar(Readable.from([await tarOf([{ name: 'PG_VERSION', body: '15' }])]), { dir })).rejects.toMatchObject({ code: 'INTEGRITY' });
  });

  it('never writes its record through a link planted in the directory', async () => {
    const victim = join(root, 'victim');
    await writeFile(victim, 'precious');
    await writeFile(join(dir, RESTORE_STATE_FILE), JSON.stringify({ backupId: 'B1', entries: 0, bytes: 0 }));
    await symlink(victim, join(dir, `${RESTORE_STATE_FILE}.tmp`));
    const tar = await tarOf([{ name: 'backup_label', body: LABEL_TEXT }, { name: 'PG_VERSION', body: '15\n' }]);
    const r = await restoreDataDirectory(Readable.from([tar]), { dataDir: dir, force: false, backup: { id: 'B1', consistentAt: '2026-12-04T00:00:00Z', engine: {} } }, { pgVerifybackup: '/nonexistent/pg_verifybackup', env: process.env, log: silentLogger() });
    expect(r).toMatchObject({ resumed: true, verified: 'skipped', files: 2 });
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await readdir(dir)).sort()).toEqual(['PG_VERSION', 'backup_label']);
  });

  it('fails on a truncated tar', async () => {
    const tar = await tarOf([{ name: 'big', body: 'x'.repeat(100_000) }]);
    await expect(extractTar(Readable.from([tar.subarray(0, 20_000)]), { dir })).rejects.toBeDefined();
  });
});
