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
