import { describe, expect, it } from 'vitest';
import type { ListedBackup } from '../../runner/ops/list.js';
import { selectBackup } from '../../runner/ops/select.js';
import type { Manifest } from '../../runner/manifest.js';

function backup(id: string, consistentAt: string): ListedBackup {
  const manifest = { id, consistentAt } as Manifest;
  return { id, locations: ['a'], manifest, copies: [{ location: 'a', dir: `shop/orders/backups/${id}/`, manifest }] };
}

const backups = [backup('b1', '2026-11-20T10:00:00.000Z'), backup('b2', '2026-11-21T10:00:00.000Z'), backup('b3', '2026-11-22T10:00:00.000Z')];

describe('selectBackup', () => {
  it.each([
    ['exactly at a consistency instant', '2026-11-21T10:00:00Z', 'b2'],
    ['one millisecond before it takes the older one', '2026-11-21T09:59:59.999Z', 'b1'],
    ['between backups', '2026-11-21T23:00:00Z', 'b2'],
    ['after the newest', '2030-01-01T00:00:00Z', 'b3'],
    ['with a zone offset', '2026-11-21T12:00:00+02:00', 'b2'],
  ])('--to-time %s', (_what, at, want) => {
    expect(selectBackup(backups, { kind: 'time', at: new Date(at) }).id).toBe(want);
  });

  it('never picks a backup consistent after the requested time', () => {
    for (let h = 0; h < 72; h++) {
      const at = new Date(Date.parse('2026-11-20T00:00:00Z') + h * 3600_000 + 1234);
      try {
        const b = selectBackup(backups, { kind: 'time', at });
        expect(Date.parse(b.manifest.consistentAt)).toBeLessThanOrEqual(at.getTime());
      } catch (err) {
        expect((err as { code: string }).code).toBe('NO_BACKUP_BEFORE_TIME');
      }
    }
  });

  it('--to-time before the first backup names the earliest one', () => {
    expect(() => selectBackup(backups, { kind: 'time', at: new Date('2026-11-19T00:00:00Z') })).toThrowError(
      expect.objectContaining({ code: 'NO_BACKUP_BEFORE_TIME', message: expect.stringContaining('2026-11-20T10:00:00.000Z') }) as Error,
    );
  });

  it('--latest takes the newest', () => {
    expect(selectBackup(backups, { kind: 'latest' }).id).toBe('b3');
  });

  it('--backup finds by id, and an unknown id is BACKUP_NOT_FOUND', () => {
    expect(selectBackup(backups, { kind: 'id', id: 'b1' }).id).toBe('b1');
    expect(() => selectBackup(backups, { kind: 'id', id: 'nope' })).toThrowError(expect.objectContaining({ code: 'BACKUP_NOT_FOUND' }) as Error);
  });

  it('no backups at all is NO_BACKUPS', () => {
    expect(() => selectBackup([], { kind: 'latest' })).toThrowError(expect.objectContaining({ code: 'NO_BACKUPS' }) as Error);
  });
});
