/** What `restore` prints for a backup of several streams (runner/render.ts), each stream's outcome on its own line. */
import { describe, expect, it } from 'vitest';
import type { RestoreResult } from '../../runner/ops/restore.js';
import { renderRestore } from '../../runner/render.js';

describe('the restore of a whole server, as text', () => {
  it('names every stream with what became of it, a database left out by the configuration too', () => {
    const r = {
      backup: { id: 'b1', manifest: { consistentAt: '2026-12-04T10:00:00.000Z' } },
      database: 'postgres',
      location: 'fs',
      skipped: [],
      unreadable: [],
      streams: [
        { stream: 'globals', kind: 'globals', status: 'restored', conflicts: ['role "postgres" exists: left as it is'] },
        { stream: 'shop', kind: 'database', database: 'shop_copy', status: 'restored' },
        { stream: 'crm', kind: 'database', database: 'crm', status: 'outside configuration' },
        { stream: 'globals', kind: 'globals', status: 'outside configuration' },
      ],
    } as unknown as RestoreResult;
    expect(renderRestore(r).split('\n')).toEqual([
      'restored backup b1 (consistent at 2026-12-04T10:00:00.000Z) from fs:',
      '  globals (roles, tablespaces): restored',
      '    role "postgres" exists: left as it is',
      '  database "shop" into "shop_copy": restored',
      '  database "crm": not restored: not in this configuration (restore it with --database)',
      '  globals (roles, tablespaces): not restored: this configuration backs up no globals',
    ]);
  });
});

describe('a data-directory restore recovered with --start, as text', () => {
  const base = {
    backup: { id: 'b2', manifest: { consistentAt: '2026-12-04T22:24:17.102Z', engine: { serverVersion: '15.10' } } },
    database: 'postgres',
    location: 's3',
    skipped: [],
    unreadable: [],
  };
  const dir = { dataDir: '/pgdata', files: 1291, bytes: 40_000_000, resumed: false, replaced: false, verified: 'pg_verifybackup', notes: [] };

  it('says the instant reached beside the one asked, the commit left out, the timeline, and that the server is stopped', () => {
    const r = {
      ...base,
      dataDirectory: {
        ...dir,
        recovery: { targetTime: '2026-12-04T22:24:21.400Z' },
        recovered: { promoted: true, segments: 4, lastTransactionAt: '2026-12-04T22:24:21.317652Z', firstExcludedAt: '2026-12-04T22:24:22.603112Z', timeline: 2, server: '15.10' },
      },
    } as unknown as RestoreResult;
    expect(renderRestore(r).split('\n')).toEqual([
      'restored base backup b2 (consistent at 2026-12-04T22:24:17.102Z) into data directory /pgdata from s3: 1291 files, 38.1 MiB, verified by pg_verifybackup',
      '  recovered by PostgreSQL 15.10: 4 WAL segments replayed, the last transaction replayed committed at 2026-12-04T22:24:21.317652Z (asked: 2026-12-04T22:24:21.400Z); the next one, committed at 2026-12-04T22:24:22.603112Z, is left out',
      "  promoted onto timeline 2 and shut down cleanly, the recovery settings removed: start PostgreSQL 15 on /pgdata (the database's own server)",
    ]);
  });

  it('says so when the archive ends before the target', () => {
    const r = {
      ...base,
      dataDirectory: { ...dir, recovery: { targetTime: '2026-12-04T23:00:00.000Z' }, recovered: { promoted: true, segments: 1, lastTransactionAt: '2026-12-04T22:24:21.317652Z', timeline: 2, archiveEndedBeforeTarget: true, server: '15.10' } },
    } as unknown as RestoreResult;
    expect(renderRestore(r)).toContain('(asked: 2026-12-04T23:00:00.000Z); the archive holds no commit after it, so its end is the state at 2026-12-04T23:00:00.000Z');
    expect(renderRestore(r)).toContain('1 WAL segment replayed');
  });
});
