import { describe, expect, it } from 'vitest';
import { describeTargetOutcome } from '../../runner/engines/outcome.js';
import { BackupError } from '../../runner/errors.js';
import type { Manifest } from '../../runner/manifest.js';
import type { ListedBackup, Listing } from '../../runner/ops/list.js';
import { chooseBackup } from '../../runner/ops/restore.js';
import type { Selector } from '../../runner/ops/select.js';

function backup(id: string, consistentAt: string, locations = ['fs']): ListedBackup {
  const manifest = { id, consistentAt } as Manifest;
  return { id, locations, manifest, copies: locations.map((location) => ({ location, dir: `shop/orders/backups/${id}/`, manifest })) };
}

const older = backup('b1', '2026-11-20T10:00:00.000Z', ['fs', 's3']);
const newer = backup('b2', '2026-11-21T10:00:00.000Z', ['fs', 's3']);
const down = { location: 's3', error: new BackupError('STORAGE_UNAVAILABLE', 'cannot reach http://127.0.0.1:9000') };
const badManifest = { location: 'fs', key: 'shop/orders/b3/manifest.json', error: new BackupError('STORAGE_FAILED', 'read failed') };

const complete: Listing = { signatures: 'not checked', future: [], backups: [older, newer], problems: [] };
const incomplete: Listing = { signatures: 'not checked', future: [], backups: [older, newer], problems: [down] };

function refusal(listing: Listing, sel: Selector, allow = false): BackupError {
  try {
    chooseBackup(listing, sel, allow);
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    return err as BackupError;
  }
  throw new Error('expected a refusal');
}

describe('chooseBackup', () => {
  it.each<[string, Selector]>([
    ['--latest', { kind: 'latest' }],
    ['--to-time', { kind: 'time', at: new Date('2030-01-01T00:00:00Z') }],
    ['--backup of a listed id', { kind: 'id', id: 'b2' }],
  ])('%s with every location read: the selector\'s pick, nothing unreadable', (_n, sel) => {
    expect(chooseBackup(complete, sel, false)).toEqual({ backup: newer, unreadable: [] });
  });

  it.each<[string, Listing, Selector, RegExp]>([
    ['--latest with a location down', incomplete, { kind: 'latest' }, /^restore --latest refused: s3 could not be read \(s3: STORAGE_UNAVAILABLE: cannot reach .*\), so the backup asked for may be there and nothing was restored\. The newest readable backup is b2 \(consistent at 2026-11-21T10:00:00\.000Z, in fs, s3\)\. Re-run with --allow-incomplete-listing/],
    ['--latest with a manifest unreadable', { signatures: 'not checked', future: [], backups: [older, newer], problems: [badManifest] }, { kind: 'latest' }, /fs could not be read \(fs \(shop\/orders\/b3\/manifest\.json\): STORAGE_FAILED/],
    ['--to-time with a location down', incomplete, { kind: 'time', at: new Date('2026-11-20T12:00:00Z') }, /restore --to-time 2026-11-20T12:00:00\.000Z refused: .*newest readable backup consistent at or before 2026-11-20T12:00:00\.000Z is b1/],
    ['--backup of an id not found while a location is down', incomplete, { kind: 'id', id: 'b9' }, /restore --backup b9 refused: s3 could not be read .*backup b9 not found .* in the locations that could be read, but it may be in s3/],
    ['--latest with nothing readable at all', { signatures: 'not checked', future: [], backups: [], problems: [down] }, { kind: 'latest' }, /no backups exist in any location in the locations that could be read, but it may be in s3/],
  ])('%s: LISTING_INCOMPLETE (exit 3)', (_n, listing, sel, rule) => {
    const err = refusal(listing, sel);
    expect(err.code).toBe('LISTING_INCOMPLETE');
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(rule);
    expect((err.details.unreadable as { location: string; code: string }[]).map((u) => [u.location, u.code])).toEqual(listing.problems.map((p) => [p.location, p.error.code]));
  });

  it('a manifest read but lying where it does not belong (planted) blocks nothing: it hides no backup of this database', () => {
    const planted = { location: 's3', key: 'shop/orders/20990101T000000Z-beef/manifest.json', error: new BackupError('MANIFEST_MISPLACED', 'manifest names shop/other') };
    expect(chooseBackup({ signatures: 'not checked', future: [], backups: [older, newer], problems: [planted] }, { kind: 'latest' }, false)).toEqual({ backup: newer, unreadable: [] });
    // Next to a real read failure it is not named as unreadable either.
    expect((refusal({ signatures: 'not checked', future: [], backups: [older, newer], problems: [planted, down] }, { kind: 'latest' }).details.unreadable as { location: string }[]).map((u) => u.location)).toEqual(['s3']);
  });

  it('--backup of a future-dated id: MANIFEST_FUTURE (exit 6) saying why, not "not found"', () => {
    const planted = { ...backup('20990101T000000Z-beef', '2099-01-01T00:00:00.000Z', ['s3']), field: 'consistentAt', at: '2099-01-01T00:00:00.000Z' };
    const err = refusal({ signatures: 'not checked', backups: [older, newer], future: [planted], problems: [] }, { kind: 'id', id: planted.id });
    expect(err.code).toBe('MANIFEST_FUTURE');
    expect(err.exitCode).toBe(6);
    expect(err.message).toMatch(/^restore --backup 20990101T000000Z-beef refused: its manifest is dated in the future \(consistentAt 2099-01-01T00:00:00\.000Z, more than 5 min ahead of this clock, in s3\)/);
    // --latest never sees it.
    expect(chooseBackup({ signatures: 'not checked', backups: [older, newer], future: [planted], problems: [] }, { kind: 'latest' }, false).backup).toBe(newer);
  });

  it('names the backup that would be chosen in the details', () => {
    expect(refusal(incomplete, { kind: 'latest' }).details.newestReadable).toEqual({ id: 'b2', consistentAt: '2026-11-21T10:00:00.000Z', locations: ['fs', 's3'] });
  });

  it('--allow-incomplete-listing restores the newest readable backup and reports what was unreadable', () => {
    const r = chooseBackup(incomplete, { kind: 'latest' }, true);
    expect(r.backup).toBe(newer);
    expect(r.unreadable).toEqual([{ location: 's3', code: 'STORAGE_UNAVAILABLE', message: 'cannot reach http://127.0.0.1:9000' }]);
  });

  it('--allow-incomplete-listing does not invent an id that was not found', () => {
    expect(refusal(incomplete, { kind: 'id', id: 'b9' }, true).code).toBe('LISTING_INCOMPLETE');
  });

  it('--backup of an id that was found is restored even with a location down', () => {
    expect(chooseBackup(incomplete, { kind: 'id', id: 'b1' }, false).backup).toBe(older);
  });

  it('not-found errors stay themselves when every location was read', () => {
    expect(refusal(complete, { kind: 'id', id: 'b9' }).code).toBe('BACKUP_NOT_FOUND');
    expect(refusal({ signatures: 'not checked', future: [], backups: [], problems: [] }, { kind: 'latest' }).code).toBe('NO_BACKUPS');
  });
});

describe('describeTargetOutcome', () => {
  it.each([
    [{ database: 'shop', state: 'unchanged' as const, detail: 'nothing was committed: the restore runs in one transaction' }, 'database "shop" is unchanged (nothing was committed: the restore runs in one transaction)'],
    [{ database: 'shop', state: 'unchanged' as const }, 'database "shop" is unchanged'],
    [{ database: 'shop', state: 'emptied' as const }, 'database "shop" held no data before and what the failed restore wrote was removed: it is empty again'],
    [{ database: 'shop', state: 'partial' as const, detail: 'tables up to the failure were replaced' }, 'database "shop" is NOT as it was: tables up to the failure were replaced; restore a backup into it again with --force'],
    [{ database: 'copy', state: 'dropped' as const }, 'database "copy" was created for this restore and dropped again'],
    [
      { database: 'copy', state: 'left' as const, dropError: 'server gone', dropCommand: "psql -h db -p 5432 -U backup -d postgres -c 'DROP DATABASE IF EXISTS \"copy\";'" },
      'database "copy" was created for this restore and could NOT be dropped (server gone); drop it with: psql -h db -p 5432 -U backup -d postgres -c \'DROP DATABASE IF EXISTS "copy";\'',
    ],
  ])('%j', (outcome, text) => {
    expect(describeTargetOutcome(outcome)).toBe(text);
  });
});
