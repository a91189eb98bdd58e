import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../runner/cli/args.js';
import { walFetchArgs } from '../../runner/ops/wal-prefetch.js';

describe('parseCommand', () => {
  it('defaults the config path from the environment', () => {
    expect(parseCommand(['list'], { BACKUP_RUNNER_CONFIG: '/x.yaml' })).toMatchObject({ name: 'list', config: '/x.yaml', output: 'text' });
    expect(parseCommand(['list'], {})).toMatchObject({ config: '/etc/backup-runner/config.yaml' });
  });

  it.each([
    [['restore', '--latest'], { kind: 'latest' }],
    [['restore', '--backup', '20261121T101500Z-3fa1'], { kind: 'id', id: '20261121T101500Z-3fa1' }],
    [['restore', '--to-time', '2026-11-21T10:00:00Z'], { kind: 'time', at: new Date('2026-11-21T10:00:00Z') }],
    [['restore', '--to-time', '2026-11-21T12:00:00+02:00'], { kind: 'time', at: new Date('2026-11-21T10:00:00Z') }],
  ])('restore %j', (argv, selector) => {
    expect(parseCommand(argv)).toMatchObject({ name: 'restore', selector, force: false, allowIncompleteListing: false });
  });

  it('--allow-incomplete-listing is a restore option', () => {
    expect(parseCommand(['restore', '--latest', '--allow-incomplete-listing'])).toMatchObject({ allowIncompleteListing: true });
    expect(() => parseCommand(['list', '--allow-incomplete-listing'])).toThrowError(/--allow-incomplete-listing is an option of restore/);
  });

  it('restore options', () => {
    expect(parseCommand(['restore', '--latest', '--force', '--target-database', 'copy', '-o', 'json', '-c', 'c.yaml'])).toMatchObject({
      force: true,
      targetDatabase: 'copy',
      output: 'json',
      config: 'c.yaml',
    });
  });

  it('--data-dir is made absolute; --owner is UID or UID:GID, only with it', () => {
    expect(parseCommand(['restore', '--latest', '--data-dir', 'pgdata'])).toMatchObject({ dataDir: resolve('pgdata') });
    expect(parseCommand(['restore', '--latest', '--data-dir', '/d', '--owner', '999'])).toMatchObject({ dataDir: '/d', owner: { uid: 999, gid: 999 } });
    expect(parseCommand(['restore', '--latest', '--data-dir', '/d', '--owner', '26:0', '--force'])).toMatchObject({ owner: { uid: 26, gid: 0 }, force: true });
    expect(parseCommand(['restore', '--latest'])).not.toHaveProperty('dataDir');
    expect(parseCommand(['restore', '--latest', '--data-dir', '/d', '--start'])).toMatchObject({ dataDir: '/d', start: true });
    expect(parseCommand(['restore', '--latest', '--data-dir', '/d'])).not.toHaveProperty('start');
  });

  it('wal-fetch takes the WAL file and where to write it (PostgreSQL\'s %f %p)', () => {
    expect(parseCommand(['wal-fetch', '-c', '/c.yaml', '000000010000000000000003', 'pg_wal/RECOVERYXLOG'])).toMatchObject({ name: 'wal-fetch', config: '/c.yaml', wal: '000000010000000000000003', dest: 'pg_wal/RECOVERYXLOG' });
    expect(() => parseCommand(['wal-fetch', '000000010000000000000003'])).toThrowError(/wal-fetch needs WALFILE and DEST/);
  });

  it.each([
    [['restore', '--latest', '--owner', '999'], '--owner applies only with --data-dir'],
    [['restore', '--latest', '--data-dir', '/d', '--owner', 'postgres'], 'is not UID or UID:GID'],
    [['restore', '--latest', '--data-dir', '/d', '--target-database', 'x'], '--target-database does not apply with --data-dir'],
    [['restore', '--latest', '--data-dir', '/d', '--database', 'x'], '--database does not apply with --data-dir'],
    [['restore', '--latest', '--data-dir', ''], '--data-dir needs a directory'],
    [['restore', '--latest', '--start'], '--start applies only with --data-dir'],
    [['backup', '--start'], 'option of restore'],
    [['verify', '--data-dir', '/d'], 'option of restore'],
    [['restore'], 'exactly one of'],
    [['restore', '--latest', '--backup', 'x'], 'exactly one of'],
    [['restore', '--to-time', '2026-11-21T10:00:00'], 'with a zone'],
    [['restore', '--to-time', 'yesterday'], 'RFC 3339'],
    [['list', '--force'], 'option of restore'],
    [['list', '--output', 'yaml'], '--output must be'],
    [['frobnicate'], 'unknown command'],
    [['list', 'extra'], 'unexpected argument'],
    [['backup', '--nope'], "Unknown option '--nope'"],
  ])('%j is a usage error mentioning %s', (argv, text) => {
    expect(() => parseCommand(argv)).toThrowError(expect.objectContaining({ code: 'USAGE', message: expect.stringContaining(text) }) as Error);
  });

  it('verify takes an optional id', () => {
    expect(parseCommand(['verify'])).toMatchObject({ name: 'verify' });
    expect(parseCommand(['verify', 'abc'])).toMatchObject({ name: 'verify', id: 'abc' });
  });

  it('help and version', () => {
    expect(parseCommand([])).toEqual({ name: 'help', topic: undefined });
    expect(parseCommand(['restore', '--help'])).toEqual({ name: 'help', topic: 'restore' });
    expect(parseCommand(['version'])).toEqual({ name: 'version' });
  });
});

describe('--identity', () => {
  it('is repeatable for restore and verify; - is standard input, once', () => {
    expect(parseCommand(['restore', '--latest', '--identity', 'a.txt', '--identity', '-'])).toMatchObject({ name: 'restore', identityFiles: ['a.txt', '-'] });
    expect(parseCommand(['verify', 'x', '--identity', 'k'])).toMatchObject({ name: 'verify', id: 'x', identityFiles: ['k'] });
    expect(parseCommand(['verify'])).toMatchObject({ identityFiles: [] });
    expect(() => parseCommand(['restore', '--latest', '--identity', '-', '--identity', '-'])).toThrow(/standard input\) may be given once/);
  });

  it.each(['backup', 'list', 'retention', 'status'])('is refused for %s', (name) => {
    expect(() => parseCommand([name, '--identity', 'k'])).toThrow(/--identity is an option of restore, verify, mirror and rekey, not of/);
  });
});

describe('mirror', () => {
  it('takes --to, --from, --dry-run and --identity; each location flag is optional', () => {
    expect(parseCommand(['mirror', '--to', 'b', '--from', 'a', '--dry-run', '--identity', 'k'])).toMatchObject({ name: 'mirror', to: 'b', from: 'a', dryRun: true, identityFiles: ['k'] });
    expect(parseCommand(['mirror'])).toMatchObject({ name: 'mirror', dryRun: false, identityFiles: [] });
    expect(parseCommand(['mirror'])).not.toHaveProperty('to');
  });

  it('refuses an empty location name, and --to/--from on other commands', () => {
    expect(() => parseCommand(['mirror', '--to', ''])).toThrow(/--to needs a location name/);
    expect(() => parseCommand(['backup', '--to', 'b'])).toThrow(/--to is an option of mirror, not of backup/);
    expect(() => parseCommand(['verify', '--from', 'a'])).toThrow(/--from is an option of mirror and import, not of verify/);
  });
});

describe('import', () => {
  it('a file is made absolute (the daemon has another working directory); a location object is LOCATION:PATH', () => {
    expect(parseCommand(['import', 'dumps/orders.dump.gz', '--keep', '--force', '--target-database', 'copy'])).toMatchObject({
      name: 'import',
      source: { kind: 'file', path: resolve('dumps/orders.dump.gz') },
      keep: true,
      force: true,
      targetDatabase: 'copy',
    });
    expect(parseCommand(['import', '--from', 'offsite:imports/a:b.sql'])).toMatchObject({ source: { kind: 'location', location: 'offsite', key: 'imports/a:b.sql' }, keep: false, force: false });
  });

  it.each([
    [['import'], /exactly one of FILE, --from/],
    [['import', 'a.dump', '--from', 'x:y'], /exactly one of FILE, --from/],
    [['import', '--from', 'nocolon'], /is not LOCATION:PATH/],
    [['import', '--from', ':path'], /is not LOCATION:PATH/],
    [['import', '--from', 'loc:'], /is not LOCATION:PATH/],
    [['import', 'a', 'b'], /unexpected argument "b"/],
    [['import', 'a', '--latest'], /--latest is an option of restore, not of import/],
    [['restore', '--latest', '--keep'], /--keep is an option of import, not of restore/],
    [['backup', '--force'], /--force is an option of restore and import, not of backup/],
  ])('%j is refused', (argv, why) => {
    expect(() => parseCommand(argv)).toThrow(why);
  });
});

describe('wal-fetch fast path', () => {
  it.each([
    [['-c', '/c.yaml', '000000010000000000000003', 'pg_wal/RECOVERYXLOG'], { wal: '000000010000000000000003', dest: 'pg_wal/RECOVERYXLOG' }],
    [['000000010000000000000003', 'pg_wal/RECOVERYXLOG', '--log-level', 'debug'], { wal: '000000010000000000000003', dest: 'pg_wal/RECOVERYXLOG' }],
    [['-c', '/c.yaml', '00000002.history', 'pg_wal/RECOVERYHISTORY'], undefined],
    [['-c', '/c.yaml', '../../etc/passwd', 'x'], undefined],
    [['-c', '/c.yaml', '000000010000000000000003'], undefined],
  ])('%j', (args, expected) => {
    expect(walFetchArgs(args)).toEqual(expected);
  });
});
