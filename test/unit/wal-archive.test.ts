/** The pure parts of WAL archiving: positions and segment names, archive object names, the spool, gaps, the slot's name, service backoff. */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveSlotName, gapBetween, nonZeroLength, spoolFiles, spoolLimit, walArchiver, writtenLength } from '../../runner/engines/postgresql/physical/archiver.js';
import type { WalServer } from '../../runner/engines/postgresql/physical/wal-server.js';
import type { WalStore } from '../../runner/engines/types.js';
import { formatLsn, isSegmentSize, parseLsn, parseSegmentName, segmentEnd, segmentName, segmentOf } from '../../runner/engines/postgresql/physical/wal-names.js';
import { Supervisor, backoffMs } from '../../runner/daemon/supervisor.js';
import { pgTimestamp, recoverySettings, shellQuote } from '../../runner/engines/postgresql/physical/recovery.js';
import { SERVER_FILES, fromPgTimestamp, parseRecoveryLine, postgresArgs, withoutRecoverySettings } from '../../runner/engines/postgresql/physical/recover.js';
import { type RecoverableWindow, type WalObject, type WindowBackup, archiveWithoutBase, reachFrom, recoverableWindow, timelineWithoutBase } from '../../runner/ops/wal-window.js';
import { obsoleteWal, walStarts } from '../../runner/retention/wal.js';
import { PREFETCH_DIR } from '../../runner/ops/wal-prefetch.js';
import { dataDirectorySystem, ofSystem, segmentSystem } from '../../runner/ops/wal-fetch.js';
import { BackupError } from '../../runner/errors.js';
import { silentLogger } from '../../runner/logger.js';
import { eventually } from '../../testenv/eventually.js';
import { classifyKey, parseWalFile, walFileName, walPrefix } from '../../runner/storage/layout.js';
import { renderListing } from '../../runner/render.js';

const MiB16 = 16 * 1024 * 1024;
const SHA = 'ab'.repeat(32);

describe('WAL positions and segment names', () => {
  it.each([
    ['0/2000028', 0x2000028n],
    ['1A/FF000100', (0x1an << 32n) | 0xff000100n],
    ['FFFFFFFF/FFFFFFFF', 0xffffffffffffffffn],
  ])('%s is %s', (text, lsn) => {
    expect(parseLsn(text)).toBe(lsn);
    expect(formatLsn(lsn)).toBe(text);
  });

  it.each(['', '0', '0/', '/0', '0/2000028/1', 'G/0', '123456789/0'])('%j is no LSN', (text) => {
    expect(parseLsn(text)).toBeUndefined();
  });

  it.each([
    [1, 0x2000028n, MiB16, '000000010000000000000002'],
    [1, 0x1_00000000n, MiB16, '000000010000000100000000'],
    [2, 0x1_FF000000n, MiB16, '0000000200000001000000FF'],
    [1, 0x40000000n, 1 << 30, '000000010000000000000001'],
  ])('timeline %s, LSN %s, segments of %s bytes: %s', (tli, lsn, size, name) => {
    const segno = segmentOf(lsn, size);
    expect(segmentName(tli, segno, size)).toBe(name);
    expect(parseSegmentName(name, size)).toEqual({ tli, segno });
    expect(segmentEnd(segno, size) > lsn).toBe(true);
    expect(segmentEnd(segno, size) - lsn <= BigInt(size)).toBe(true);
  });

  it('refuses names that are not segments of the size', () => {
    expect(parseSegmentName('000000010000000000000100', MiB16)).toBeUndefined(); // 256 segments of 16 MiB per log id
    expect(parseSegmentName('00000001.history', MiB16)).toBeUndefined();
    expect([1 << 20, MiB16, 1 << 30, 3 << 20, 1 << 31, 0].map(isSegmentSize)).toEqual([true, true, true, false, false, false]);
  });
});

describe('WAL archive object names', () => {
  it.each([
    { wal: '000000010000000000000003', sha256: SHA, partial: false, compression: '.zst', encrypted: true },
    { wal: '000000010000000000000003', sha256: SHA, partial: true, compression: '.gz', encrypted: false },
    { wal: '00000002.history', sha256: SHA, partial: false, compression: '', encrypted: false },
  ])('%j round-trips', (f) => {
    expect(parseWalFile(walFileName(f))).toEqual(f);
  });

  it.each([
    `000000010000000000000003-${SHA}.rekeyed.age`,
    `000000010000000000000003-${SHA.toUpperCase()}.zst`,
    `00000002xhistory-${SHA}`,
    `000000010000000000000003-${SHA}xzst`,
    `000000010000000000000003.partial-${SHA}`,
    `00000001000000000000003-${SHA}`,
    `000000010000000000000003-${SHA}.zst/x`,
  ])('%s is no archive object', (name) => {
    expect(parseWalFile(name)).toBeUndefined();
  });

  it('keys under wal/ are the archive\'s (never an orphan of a backup), anything else there is foreign', () => {
    const scope = { prefix: 'db', namespace: 'shop', name: 'orders' };
    expect(walPrefix(scope)).toBe('db/shop/orders/wal/');
    expect(classifyKey(scope, `db/shop/orders/wal/000000010000000000000003-${SHA}.zst`)).toEqual({ kind: 'wal', file: `000000010000000000000003-${SHA}.zst` });
    expect(classifyKey(scope, 'db/shop/orders/wal/notes.txt')).toMatchObject({ kind: 'foreign' });
    expect(classifyKey(scope, `db/shop/orders/wal/sub/000000010000000000000003-${SHA}.zst`)).toMatchObject({ kind: 'foreign' });
  });
});

describe('the spool', () => {
  it('stores history files first, then segments in WAL order; the newest .partial is the open one', () => {
    expect(spoolFiles(['000000010000000000000005', '00000002.history', '000000010000000000000004', '000000010000000000000006.partial', 'junk', '000000010000000000000005.partial.tmp'])).toEqual({
      finished: ['00000002.history', '000000010000000000000004', '000000010000000000000005'],
      partial: '000000010000000000000006.partial',
    });
    expect(spoolFiles([])).toEqual({ finished: [] });
  });
});

describe('gapBetween', () => {
  it.each([
    [undefined, '000000010000000000000009', undefined],
    ['000000010000000000000008', '000000010000000000000009', undefined],
    ['000000010000000000000009', '000000010000000000000009', undefined],
    ['00000001000000000000000A', '000000010000000000000009', undefined],
    ['000000010000000000000005', '000000010000000000000009', { from: '000000010000000000000006', to: '000000010000000000000008' }],
    ['0000000100000000000000FF', '000000010000000100000001', { from: '000000010000000100000000', to: '000000010000000100000000' }],
  ])('newest stored %s, streaming from %s: %j', (stored, start, gap) => {
    expect(gapBetween(stored, start, MiB16)).toEqual(gap);
  });
});

describe('archiveSlotName', () => {
  it('is a valid slot name, unique per DatabaseBackup even where the cleaned names read alike', () => {
    const a = archiveSlotName({ namespace: 'a-b', name: 'c' });
    const b = archiveSlotName({ namespace: 'a', name: 'b-c' });
    expect(a).not.toBe(b);
    for (const n of [a, b, archiveSlotName({ namespace: 'n'.repeat(63), name: 'x'.repeat(253) })]) expect(n).toMatch(/^[a-z0-9_]{1,63}$/);
    expect(archiveSlotName({ namespace: 'shop', name: 'orders' })).toMatch(/^dbbackup_shop_orders_[0-9a-f]{12}$/);
  });
});

describe('service backoff', () => {
  it('doubles from 1 s to at most 60 s', () => {
    expect([0, 1, 2, 3, 6, 7, 20].map(backoffMs)).toEqual([1000, 1000, 2000, 4000, 32000, 60000, 60000]);
  });
});

describe('Supervisor', () => {
  it('restarts a failing service with backoff, shows its state and last error, and stops it', async () => {
    let attempts = 0;
    const spec = {
      name: 'flaky',
      run: async (signal: AbortSignal, report: (f: Record<string, unknown>) => void): Promise<void> => {
        attempts++;
        if (attempts <= 2) throw new BackupError('DB_UNREACHABLE', `attempt ${attempts} failed`);
        report({ attempts });
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      },
    };
    const changes: string[] = [];
    const sup = new Supervisor([spec], silentLogger(), () => changes.push(sup.statuses()[0]!.state));
    sup.start();
    await eventually('the third run', () => Promise.resolve(sup.statuses()[0]!.facts.attempts === 3), 10_000, 20);
    expect(sup.statuses()[0]).toMatchObject({ name: 'flaky', state: 'running', restarts: 2, lastError: { code: 'DB_UNREACHABLE', message: 'attempt 2 failed' } });
    expect(changes).toContain('backoff');
    await sup.stop(5000);
    expect(sup.statuses()[0]!.state).toBe('stopped');
    expect(attempts).toBe(3);
  }, 20_000);
});

describe('recovery settings', () => {
  it('append a restore_command quoted for postgresql.conf, the target, the latest timeline and promotion', () => {
    const text = recoverySettings({ fetchCommand: `'/opt/my runner/backup-runner' wal-fetch -c /etc/backup-runner/config.yaml`, targetTime: new Date('2026-12-04T20:42:31.185Z'), backupId: '20261204T200000Z-ab12' });
    expect(text.split('\n')).toEqual([
      '',
      '# Point-in-time recovery of backup 20261204T200000Z-ab12, written by backup-runner restore. Remove these lines once the server has promoted.',
      `restore_command = 'mv -f pg_wal/.backup-runner-prefetch/%f %p 2>/dev/null || cp pg_wal/.backup-runner-prefetch/.again/%f %p 2>/dev/null || { { test -z "$(find pg_wal/.backup-runner-prefetch/.held -mmin -1 2>/dev/null)" || grep -qxF %f pg_wal/.backup-runner-prefetch/.held; } && ''/opt/my runner/backup-runner'' wal-fetch -c /etc/backup-runner/config.yaml %f %p; }'`,
      "recovery_target_timeline = 'latest'",
      "recovery_target = ''",
      "recovery_target_lsn = ''",
      "recovery_target_name = ''",
      "recovery_target_xid = ''",
      "recovery_target_time = '2026-12-04 20:42:31.185+00'",
      'recovery_target_inclusive = on',
      "recovery_target_action = 'promote'",
      '',
    ]);
    expect(recoverySettings({ fetchCommand: 'backup-runner wal-fetch -c /c.yaml', backupId: 'x' })).toMatch(/^recovery_target_time = ''$/m);
    // The shell's fast path moves what wal-fetch fetched ahead, from where wal-fetch puts it.
    expect(text).toContain(`mv -f pg_wal/${PREFETCH_DIR}/%f %p 2>/dev/null || `);
  });

  it('give restore_command a fed file by moving it, a kept one by copying it, fail at once for a name the list of held files lacks, and fetch the rest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'restore-command-'));
    try {
      const prefetch = join(dir, 'pg_wal', PREFETCH_DIR);
      await mkdir(join(prefetch, '.again'), { recursive: true });
      const calls = join(dir, 'fetched');
      // The stand-in fetch command records its arguments and writes the file.
      const fetch = join(dir, 'fetch.sh');
      await writeFile(fetch, `#!/bin/sh\necho "$1" >> ${calls}\necho fetched > "$2"\n`, { mode: 0o755 });
      const setting = /^restore_command = '(.*)'$/m.exec(recoverySettings({ fetchCommand: fetch, backupId: 'b' }))![1]!.replace(/''/g, "'");
      const restore = (wal: string) =>
        new Promise<{ code: number | null; got?: string }>((resolve) => {
          const p = spawn('sh', ['-c', setting.replaceAll('%f', wal).replaceAll('%p', 'pg_wal/RECOVERYXLOG')], { cwd: dir, stdio: 'ignore' });
          p.on('close', (code) => {
            void (async () => {
              const got = await readFile(join(dir, 'pg_wal', 'RECOVERYXLOG'), 'utf8').catch(() => undefined);
              await rm(join(dir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
              resolve({ code, ...(got !== undefined ? { got } : {}) });
            })();
          });
        });
      const seg = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;
      // No list of held files (restore without --start): every name the prefetch directory lacks is fetched.
      expect(await restore(seg(1))).toEqual({ code: 0, got: 'fetched\n' });
      await writeFile(join(prefetch, seg(2)), 'fed');
      expect(await restore(seg(2))).toEqual({ code: 0, got: 'fed' });
      expect(await readdir(prefetch)).not.toContain(seg(2));
      await writeFile(join(prefetch, '.again', '00000002.history'), 'history');
      expect(await restore('00000002.history')).toEqual({ code: 0, got: 'history' });
      expect(await restore('00000002.history')).toEqual({ code: 0, got: 'history' });
      // With the list: a name it lacks fails without the fetch command; a name it holds that was not fed is fetched.
      await writeFile(join(prefetch, '.held'), `00000002.history\n${seg(3)}\n`);
      expect(await restore('00000003.history')).toEqual({ code: 1 });
      expect(await restore(seg(4))).toEqual({ code: 1 });
      expect(await restore(seg(3))).toEqual({ code: 0, got: 'fetched\n' });
      // A name that is a prefix of a held one is not held.
      expect(await restore(seg(3).slice(0, 23))).toEqual({ code: 1 });
      // A list older than a minute (its feed stopped or was killed) is not believed: the name is fetched.
      const old = new Date(Date.now() - 2 * 60_000);
      await utimes(join(prefetch, '.held'), old, old);
      expect(await restore(seg(4))).toEqual({ code: 0, got: 'fetched\n' });
      expect((await readFile(calls, 'utf8')).split('\n').filter(Boolean)).toEqual([seg(1), seg(3), seg(4)]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('quote shell words only where needed, so no path can break out of the command', () => {
    expect(['/usr/bin/backup-runner', '/my dir/x', "it's", '$(rm -rf /)', 'a;b'].map(shellQuote)).toEqual(['/usr/bin/backup-runner', "'/my dir/x'", `'it'\\''s'`, "'$(rm -rf /)'", "'a;b'"]);
    expect(pgTimestamp(new Date('2026-01-02T03:04:05.000Z'))).toBe('2026-01-02 03:04:05.000+00');
  });
});

describe('restore --start', () => {
  it('runs the server with its own configuration files, on a socket only, without archiving, commands, libraries or hot standby, its log plain, in English and UTC', () => {
    const args = postgresArgs('/data', '/tmp/s');
    expect(args.filter((_, i) => i % 2 === 0).every((a) => a === '-c')).toBe(true);
    const settings = args.filter((_, i) => i % 2 === 1);
    expect(settings).toEqual(
      expect.arrayContaining([
        'config_file=/tmp/s/postgresql.conf',
        'hba_file=/tmp/s/pg_hba.conf',
        'ident_file=/tmp/s/pg_ident.conf',
        'data_directory=/data',
        'listen_addresses=',
        'unix_socket_directories=/tmp/s',
        'fsync=on',
        'archive_mode=off',
        'archive_command=',
        'recovery_end_command=',
        'shared_preload_libraries=',
        'hot_standby=off',
        'log_line_prefix=',
        'log_error_verbosity=default',
        'log_min_messages=warning',
        'lc_messages=C',
        'logging_collector=off',
        'log_timezone=UTC',
      ]),
    );
    expect(SERVER_FILES['pg_hba.conf']).toMatch(/^local all all reject$/m);
  });

  it.each([
    ['LOG:  restored log file "000000010000000000000003" from archive', { kind: 'restored', file: '000000010000000000000003' }],
    ['LOG:  restored log file "00000002.history" from archive', { kind: 'restored', file: '00000002.history' }],
    ['LOG:  recovery stopping before commit of transaction 745, time 2026-12-04 22:24:16.123456+00', { kind: 'stopping', xid: '745', at: '2026-12-04T22:24:16.123456Z' }],
    ['LOG:  last completed transaction was at log time 2026-12-04 22:24:15.5+00', { kind: 'last-transaction', at: '2026-12-04T22:24:15.5Z' }],
    ['LOG:  last completed transaction was at log time 2026-12-04 23:24:15+01', { kind: 'last-transaction', at: '2026-12-04T23:24:15+01:00' }],
    ['LOG:  selected new timeline ID: 2', { kind: 'timeline', timeline: 2 }],
    ['LOG:  consistent recovery state reached at 0/3000100', { kind: 'consistent' }],
    ['LOG:  database system is ready to accept connections', { kind: 'ready' }],
    ['FATAL:  recovery ended before configured recovery target was reached', { kind: 'target-not-reached' }],
    ['FATAL:  could not access file "timescaledb": No such file or directory', { kind: 'fatal', message: 'could not access file "timescaledb": No such file or directory' }],
    ['LOG:  database system is ready to accept read-only connections', undefined],
    ['LOG:  00000: restored log file "000000010000000000000004" from archive', { kind: 'restored', file: '000000010000000000000004' }],
    ['LOG:  redo starts at 0/2000028', undefined],
    ['LOG:  last completed transaction was at log time yesterday', undefined],
  ])('reads %s', (line, event) => {
    expect(parseRecoveryLine(line)).toEqual(event);
  });

  it('removes exactly the block the restore appended to postgresql.auto.conf', () => {
    const own = '# Do not edit this file manually!\nwork_mem = \'64MB\'\n';
    const appended = own + recoverySettings({ fetchCommand: 'backup-runner wal-fetch -c /c.yaml', targetTime: new Date('2026-12-04T20:42:31Z'), backupId: 'b1' });
    expect(withoutRecoverySettings(appended)).toBe(own);
    expect(withoutRecoverySettings(own)).toBe(own);
    expect(withoutRecoverySettings(`${appended}max_connections = 50\n`)).toBe(`${own}max_connections = 50\n`);
    // A block an earlier restore left in the backup stays; the one appended last goes.
    const earlier = recoverySettings({ fetchCommand: 'old', backupId: 'b0' });
    expect(withoutRecoverySettings(appended.replace(own, own + earlier))).toBe(own + earlier);
    expect(fromPgTimestamp('2026-12-04 20:42:31+00')).toBe('2026-12-04T20:42:31Z');
  });
});

describe('reachFrom', () => {
  const at = (s: number): Date => new Date(Date.UTC(2026, 11, 4, 20, 0, s));
  const position = { stopLsn: '0/3000100', timeline: '1', walSegmentSize: String(MiB16) };
  const held = (entries: [string, { complete?: Date; partial?: Date }][]) => new Map(entries);

  it.each([
    ['nothing archived', held([]), undefined],
    ['the stop segment only as a partial', held([['000000010000000000000003', { partial: at(5) }]]), { lastWal: '000000010000000000000003', partial: true, until: at(5) }],
    [
      'an unbroken run ending in a partial',
      held([
        ['000000010000000000000003', { complete: at(1) }],
        ['000000010000000000000004', { complete: at(2), partial: at(1) }],
        ['000000010000000000000005', { partial: at(9) }],
      ]),
      { lastWal: '000000010000000000000005', partial: true, until: at(9) },
    ],
    [
      'a gap: the run ends before it',
      held([
        ['000000010000000000000003', { complete: at(1) }],
        ['000000010000000000000005', { complete: at(3) }],
      ]),
      { lastWal: '000000010000000000000003', partial: false, until: at(1), gapAt: '000000010000000000000004' },
    ],
    ['another timeline does not count', held([['000000020000000000000003', { complete: at(1) }]]), undefined],
  ])('%s', (_what, contents, reach) => {
    expect(reachFrom(position, contents)).toEqual(reach);
  });

  it('is undefined for a backup without a WAL position (a logical dump)', () => {
    expect(reachFrom(undefined, held([['000000010000000000000003', { complete: at(1) }]]))).toBeUndefined();
  });
});

describe('obsoleteWal', () => {
  const obj = (wal: string, partial = false): string => walFileName({ wal, sha256: SHA, partial, compression: '.zst', encrypted: false });
  const names = [
    obj('000000010000000000000003'),
    obj('000000010000000000000004'),
    obj('000000010000000000000004', true),
    obj('000000010000000000000005'),
    obj('000000010000000000000006', true),
    obj('00000002.history'),
    obj('000000020000000000000004'),
    'not-a-wal-object',
  ];

  it('removes the segments (and partials) before the oldest kept base backup\'s start, on its timeline or an earlier one, never a history file', () => {
    expect(obsoleteWal(names, [{ startWalFile: '000000010000000000000005', walSegmentSize: MiB16 }, { startWalFile: '000000010000000000000006', walSegmentSize: MiB16 }])).toEqual([
      obj('000000010000000000000003'),
      obj('000000010000000000000004'),
      obj('000000010000000000000004', true),
    ]);
    expect(obsoleteWal(names, [{ startWalFile: '000000020000000000000005', walSegmentSize: MiB16 }])).toEqual([
      obj('000000010000000000000003'),
      obj('000000010000000000000004'),
      obj('000000010000000000000004', true),
      obj('000000020000000000000004'),
    ]);
  });

  it('removes nothing without a start to go by', () => {
    expect(obsoleteWal(names, [])).toBeUndefined();
    expect(obsoleteWal(names, [{ startWalFile: 'garbage', walSegmentSize: MiB16 }])).toBeUndefined();
    expect(walStarts([{ startWalFile: '000000010000000000000005' }, undefined])).toBeUndefined();
    expect(walStarts([{ startWalFile: '000000010000000000000005', walSegmentSize: String(1 << 20) }])).toEqual([{ startWalFile: '000000010000000000000005', walSegmentSize: 1 << 20 }]);
  });
});

describe('recoverableWindow (one location)', () => {
  const at = (s: number): Date => new Date(Date.UTC(2026, 11, 4, 20, 0, s));
  const seg = (n: number, tli = 1): string => segmentName(tli, BigInt(n), MiB16);
  const c = (n: number, s: number, sha = SHA): WalObject => ({ wal: seg(n), partial: false, storedAt: at(s), sha256: sha });
  const p = (n: number, s: number): WalObject => ({ wal: seg(n), partial: true, storedAt: at(s), sha256: 'cd'.repeat(32) });
  /** A base backup consistent at second `s` whose WAL ends in segment `stop`. */
  const base = (id: string, s: number, stop: number): WindowBackup => ({ id, consistentAt: at(s).toISOString(), position: { stopLsn: `0/${stop.toString(16).toUpperCase()}000100`, timeline: '1', walSegmentSize: String(MiB16), startWalFile: seg(stop) } });

  it.each<[string, WalObject[], WindowBackup[], Partial<RecoverableWindow>]>([
    [
      'one base backup, an unbroken run to the partial being written',
      [c(3, 1), c(4, 2), p(4, 1), p(5, 9)],
      [base('b1', 0, 3)],
      { from: at(0), until: at(9), stretches: [{ from: at(0), until: at(9), backupId: 'b1', lastWal: seg(5), partial: true }], gaps: [], lastSegment: seg(5), lastPartial: true, timeline: 1 },
    ],
    [
      'no WAL past the base backup: only its own instant',
      [],
      [base('b1', 0, 3)],
      { from: at(0), until: at(0), stretches: [{ from: at(0), until: at(0), backupId: 'b1' }], gaps: [], timeline: 1, objects: 0 },
    ],
    [
      'a missing segment, then a base backup after it: two stretches and the gap between them, never bridged',
      [c(3, 1), c(4, 2), c(6, 15), c(7, 21), p(8, 30)],
      [base('b1', 0, 3), base('b2', 20, 7)],
      {
        from: at(0),
        until: at(30),
        stretches: [
          { from: at(0), until: at(2), backupId: 'b1', lastWal: seg(4), partial: false },
          { from: at(20), until: at(30), backupId: 'b2', lastWal: seg(8), partial: true },
        ],
        gaps: [{ at: seg(5), after: at(2), resumesAt: at(20) }],
      },
    ],
    [
      'a missing segment with no base backup after it: the window ends before it, the WAL after it is not recoverable',
      [c(3, 1), c(4, 2), c(6, 9)],
      [base('b1', 0, 3)],
      { from: at(0), until: at(2), gaps: [{ at: seg(5), after: at(2) }], lastSegment: seg(6), lastPartial: false },
    ],
    [
      'overlapping windows merge into one stretch, from the older base backup',
      [c(3, 1), c(4, 3), p(5, 9)],
      [base('b2', 2, 4), base('b1', 0, 3)],
      { from: at(0), until: at(9), stretches: [{ from: at(0), until: at(9), backupId: 'b1', lastWal: seg(5), partial: true }], gaps: [] },
    ],
    [
      'two different complete objects for a segment: this location is not believed for it, a gap',
      [c(3, 1), c(4, 2), c(4, 2, 'ef'.repeat(32)), c(5, 3)],
      [base('b1', 0, 3)],
      { until: at(1), stretches: [{ from: at(0), until: at(1), backupId: 'b1', lastWal: seg(3), partial: false }], gaps: [{ at: seg(4), after: at(1) }], lastSegment: seg(5) },
    ],
    [
      'two different complete objects for the newest segment: not its last segment, and a gap',
      [c(3, 1), c(4, 2), c(4, 2, 'ef'.repeat(32))],
      [base('b1', 0, 3)],
      { until: at(1), gaps: [{ at: seg(4), after: at(1) }], lastSegment: seg(3), lastPartial: false },
    ],
    [
      'the segment the base backup ends in is missing while later ones are held: a gap at once',
      [c(4, 1), c(5, 2)],
      [base('b1', 0, 3)],
      { from: at(0), until: at(0), stretches: [{ from: at(0), until: at(0), backupId: 'b1' }], gaps: [{ at: seg(3), after: at(0) }] },
    ],
    [
      'a segment held only as a partial while later ones are held: the run ends in it, a gap',
      [c(3, 1), p(4, 2), c(5, 3)],
      [base('b1', 0, 3)],
      { until: at(2), gaps: [{ at: seg(4), after: at(2) }] },
    ],
    [
      'WAL of a later timeline does not extend a run of an earlier one',
      [{ wal: seg(4, 2), partial: false, storedAt: at(5), sha256: SHA }],
      [base('b1', 0, 3)],
      { from: at(0), until: at(0), gaps: [], lastSegment: seg(4, 2), timeline: 2 },
    ],
    [
      'the run was stored before the base backup ended: the window is its own instant',
      [p(3, 0)],
      [base('b1', 5, 3)],
      { from: at(5), until: at(5), stretches: [{ from: at(5), until: at(5), backupId: 'b1', lastWal: seg(3), partial: true }], gaps: [] },
    ],
    ['no base backup: no window, only what the archive holds', [c(3, 1)], [], { stretches: [], gaps: [], lastSegment: seg(3), timeline: 1, objects: 1 }],
  ])('%s', (_what, objects, backups, expected) => {
    const w = recoverableWindow(objects, backups);
    expect(w).toMatchObject(expected);
    if (backups.length === 0) expect(w).not.toHaveProperty('from');
    // Every stretch lies inside one base backup's window, and no gap lies inside a stretch.
    for (const g of w.gaps) expect(w.stretches.some((s) => s.from < g.after && g.after < s.until)).toBe(false);
  });
});

describe('the written length of a segment pg_receivewal is writing', () => {
  it('is up to the last non-zero byte, rounded up to a record\'s 8-byte alignment', async () => {
    expect([[0, 0, 0], [1, 0, 0], [0, 0, 7, 0]].map((b) => nonZeroLength(Uint8Array.from(b)))).toEqual([0, 1, 3]);
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-written-'));
    try {
      for (const [written, expected] of [[0, 0], [5, 8], [8, 8], [65_536, 65_536], [70_001, 70_008], [1 << 20, 1 << 20]] as const) {
        const file = Buffer.alloc(1 << 20);
        // WAL as written: page headers and records, never a zero 64 KiB block before the end.
        for (let i = 0; i < written; i++) file[i] = (i % 251) + 1;
        await writeFile(join(dir, 'seg.partial'), file);
        expect(await writtenLength(join(dir, 'seg.partial')), `${written} bytes written`).toBe(expected);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('list: the recoverable window per location', () => {
  it('shows each location\'s window, last segment, timeline and gaps, and a location whose archive could not be listed', () => {
    const t = (m: number): Date => new Date(Date.UTC(2026, 11, 4, 20, m));
    const text = renderListing({
      backups: [],
      future: [],
      problems: [],
      signatures: 'not checked',
      recovery: [
        {
          location: 'fs',
          from: t(0),
          until: t(30),
          stretches: [],
          gaps: [{ at: '000000010000000000000005', after: t(2), resumesAt: t(20) }],
          lastSegment: '000000010000000000000008',
          lastPartial: true,
          timeline: 1,
          objects: 6,
        },
        { location: 's3', stretches: [], gaps: [], objects: 0, error: new BackupError('STORAGE_DENIED', 'access denied') },
      ],
    });
    expect(text).toMatch(/^LOCATION\s+RECOVERABLE FROM\s+RECOVERABLE UNTIL\s+LAST SEGMENT\s+TIMELINE\s+GAPS$/m);
    expect(text).toMatch(/^fs\s+2026-12-04T20:00:00.000Z\s+2026-12-04T20:30:00.000Z\s+000000010000000000000008 \(partial\)\s+1\s+1$/m);
    expect(text).toMatch(/^s3\s+-\s+-\s+not listed\s+-\s+-$/m);
    expect(text).toContain('gap in fs at segment 000000010000000000000005: nothing after 2026-12-04T20:02:00.000Z is recoverable before 2026-12-04T20:20:00.000Z (the next base backup)');
    expect(text).toContain('warning: s3: its WAL archive could not be listed: STORAGE_DENIED: access denied');
  });
});

describe('WAL of one database system', () => {
  /** A segment's first page: the 24-byte standard header, then the long header's system identifier. */
  const segment = (system: bigint): Buffer => {
    const b = Buffer.alloc(64);
    b.writeUInt16LE(0xd110, 0);
    b.writeBigUInt64LE(system, 24);
    return b;
  };

  it('reads the system identifier of a segment\'s long page header', () => {
    expect(segmentSystem(segment(7380516417263616981n))).toBe(7380516417263616981n);
    expect(segmentSystem(Buffer.alloc(16))).toBeUndefined();
  });

  it.each<[string, string, Buffer, bigint | undefined, boolean]>([
    ['a segment of the data directory\'s system', '000000010000000000000003', segment(42n), 42n, true],
    ['a segment of another system (a server initialised anew)', '000000010000000000000003', segment(43n), 42n, false],
    ['the data directory\'s system unknown', '000000010000000000000003', segment(43n), undefined, true],
    ['a history file (no page header)', '00000002.history', Buffer.from('1\t0/3000000\tno recovery target specified\n'), 42n, true],
  ])('%s', (_name, wal, plain, wanted, ok) => {
    expect(ofSystem(wal, plain, wanted)).toBe(ok);
  });

  it('takes the system identifier from the data directory pg_wal/ belongs to, or its prefetch folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dbbc-sysid-'));
    try {
      await mkdir(join(dir, 'global'));
      await mkdir(join(dir, 'pg_wal', '.backup-runner-prefetch'), { recursive: true });
      const control = Buffer.alloc(296);
      control.writeBigUInt64LE(7380516417263616981n, 0);
      await writeFile(join(dir, 'global', 'pg_control'), control);
      expect(await dataDirectorySystem(join(dir, 'pg_wal'))).toBe(7380516417263616981n);
      expect(await dataDirectorySystem(join(dir, 'pg_wal', '.backup-runner-prefetch'))).toBe(7380516417263616981n);
      expect(await dataDirectorySystem(join(dir, 'elsewhere'))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the spool, bounded while a location fails', () => {
  const SEG = 16 * 1024 * 1024;
  const names = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003'];

  it('holds at most 1 GiB of segments (at least 4) unless told', () => {
    expect(spoolLimit(SEG)).toBe(64);
    expect(spoolLimit(1024 * 1024 * 1024)).toBe(4);
    expect(spoolLimit(SEG, 2)).toBe(2);
  });

  it('stops receiving once it holds that many no location took, keeps them, and on restart receives nothing until they are stored', async () => {
    const root = await mkdtemp(join(tmpdir(), 'dbbc-spool-'));
    let receives = 0;
    const server: WalServer = {
      identify: () => Promise.resolve({ timeline: 1, position: BigInt(SEG), systemId: '7380516417263616981' }),
      segmentSize: () => Promise.resolve(SEG),
      slot: () => Promise.resolve({ restartLsn: BigInt(SEG), walStatus: 'reserved', active: false }),
      createSlot: () => Promise.resolve(),
      dropSlot: () => Promise.resolve(),
      advance: () => Promise.resolve(),
      // pg_receivewal finishing three segments, then streaming on until stopped.
      async receive(dir, signal) {
        receives++;
        for (const n of names) await writeFile(join(dir, n), 'wal');
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      },
    };
    const store: WalStore = {
      store: (_path, wal) => Promise.resolve({ name: wal, stored: [], failed: [{ location: 's3', code: 'STORAGE_UNAVAILABLE', message: 'down' }], conflicts: [] }),
      newest: () => Promise.resolve(undefined),
    };
    try {
      const service = walArchiver(server, store, { slot: 's', partialIntervalMs: 60_000, pollMs: 10, spoolSegments: 2 }, root, silentLogger());
      await expect(service.run(new AbortController().signal, () => undefined)).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', details: { held: 3, limit: 2 } });
      expect((await readdir(join(root, 'wal'))).filter((f) => names.includes(f))).toEqual(names);
      await expect(service.run(new AbortController().signal, () => undefined)).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
      expect(receives).toBe(1);
      expect((await readdir(join(root, 'wal'))).filter((f) => names.includes(f))).toEqual(names);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('archiveWithoutBase', () => {
  const ending = (stopLsn: string, walSegmentSize?: string) => ({ position: { stopLsn, timeline: '1', ...(walSegmentSize ? { walSegmentSize } : {}) } });
  it.each<[string, unknown, { position?: Record<string, string> }[], string | undefined]>([
    ['archiving turned on after every base backup', '000000010000000000000009', [ending('0/3000100'), ending('0/5000060')], '000000010000000000000009'],
    ['no base backup at all', '000000010000000000000009', [], '000000010000000000000009'],
    ['a base backup ends in the archive\'s first segment', '000000010000000000000009', [ending('0/3000100'), ending('0/9000060')], undefined],
    ['a base backup ends after it', '000000010000000000000009', [ending('0/C000060')], undefined],
    ['64 MiB segments: 0/24000060 is in segment 9', '000000010000000000000009', [ending('0/24000060', String(64 * 1024 * 1024))], undefined],
    ['a base backup without a recorded position', '000000010000000000000009', [{}], '000000010000000000000009'],
    ['the archive was not empty when the archiver started (no fact)', undefined, [], undefined],
    ['not a segment name', '../../etc', [], undefined],
  ])('%s', (_name, began, bases, expected) => {
    expect(archiveWithoutBase(began, bases)).toBe(expected);
  });
});

describe('timelineWithoutBase', () => {
  const base = (timeline: string) => ({ position: { timeline } });
  it.each<[string, unknown, { position?: Record<string, string> }[], number | undefined]>([
    ['promoted onto timeline 2, base backups of timeline 1 only', 2, [base('1'), base('1')], 2],
    ['a base backup of the new timeline exists', 2, [base('1'), base('2')], undefined],
    ['the same timeline', 1, [base('1')], undefined],
    ['no base backup at all (archiveWithoutBase takes the first)', 2, [], undefined],
    ['base backups without a recorded timeline', 2, [{}], undefined],
    ['the archiver has not said its timeline', undefined, [base('1')], undefined],
  ])('%s', (_name, archiving, bases, expected) => {
    expect(timelineWithoutBase(archiving, bases)).toBe(expected);
  });
});
