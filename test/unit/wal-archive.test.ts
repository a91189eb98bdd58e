/** The pure parts of WAL archiving: positions and segment names, archive object names, the spool, gaps, the slot's name, service backoff. */
import { describe, expect, it } from 'vitest';
import { archiveSlotName, gapBetween, spoolFiles } from '../../runner/engines/postgresql/physical/archiver.js';
import { formatLsn, isSegmentSize, parseLsn, parseSegmentName, segmentEnd, segmentName, segmentOf } from '../../runner/engines/postgresql/physical/wal-names.js';
import { Supervisor, backoffMs } from '../../runner/daemon/supervisor.js';
import { pgTimestamp, recoverySettings, shellQuote } from '../../runner/engines/postgresql/physical/recovery.js';
import { reachFrom } from '../../runner/ops/wal-window.js';
import { obsoleteWal, walStarts } from '../../runner/retention/wal.js';
import { BackupError } from '../../runner/errors.js';
import { silentLogger } from '../../runner/logger.js';
import { eventually } from '../../testenv/eventually.js';
import { classifyKey, parseWalFile, walFileName, walPrefix } from '../../runner/storage/layout.js';

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
      `restore_command = '''/opt/my runner/backup-runner'' wal-fetch -c /etc/backup-runner/config.yaml %f %p'`,
      "recovery_target_timeline = 'latest'",
      "recovery_target_time = '2026-12-04 20:42:31.185+00'",
      'recovery_target_inclusive = on',
      "recovery_target_action = 'promote'",
      '',
    ]);
    expect(recoverySettings({ fetchCommand: 'backup-runner wal-fetch -c /c.yaml', backupId: 'x' })).not.toMatch(/recovery_target_time =/);
  });

  it('quote shell words only where needed, so no path can break out of the command', () => {
    expect(['/usr/bin/backup-runner', '/my dir/x', "it's", '$(rm -rf /)', 'a;b'].map(shellQuote)).toEqual(['/usr/bin/backup-runner', "'/my dir/x'", `'it'\\''s'`, "'$(rm -rf /)'", "'a;b'"]);
    expect(pgTimestamp(new Date('2026-01-02T03:04:05.000Z'))).toBe('2026-01-02 03:04:05.000+00');
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
