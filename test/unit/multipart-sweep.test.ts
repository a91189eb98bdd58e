import { describe, expect, it } from 'vitest';
import { BackupError } from '../../runner/errors.js';
import { silentLogger } from '../../runner/logger.js';
import { abortStaleUploads } from '../../runner/retention/multipart.js';
import type { Location } from '../../runner/runtime.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import type { CallOptions, IncompleteUpload, Storage } from '../../runner/storage/types.js';

const scope = { prefix: '', namespace: 'shop', name: 'orders' };
const now = new Date('2026-11-21T12:00:00Z');
const hoursAgo = (h: number): Date => new Date(now.getTime() - h * 3_600_000);
const olderThan = hoursAgo(24);

/** A storage whose incomplete uploads are a list, filtered by prefix as S3 does; aborts are recorded. */
function withUploads(uploads: IncompleteUpload[], opts: { unsupported?: boolean; failAbort?: (key: string) => boolean } = {}): { storage: Storage; aborted: string[] } {
  const aborted: string[] = [];
  const storage = Object.assign(Object.create(new MemoryStorage()) as Storage, {
    async *listIncompleteUploads(prefix: string, _o?: CallOptions): AsyncIterable<IncompleteUpload> {
      await Promise.resolve();
      if (opts.unsupported) throw new BackupError('STORAGE_UNSUPPORTED', 's3://bucket: the server does not support listing incomplete multipart uploads (ListMultipartUploads): NotImplemented');
      for (const u of uploads) if (u.key.startsWith(prefix)) yield u;
    },
    abortIncompleteUpload(key: string, uploadId: string): Promise<void> {
      if (opts.failAbort?.(key)) return Promise.reject(new BackupError('STORAGE_FAILED', `cannot abort ${key}`));
      aborted.push(`${key}#${uploadId}`);
      return Promise.resolve();
    },
  });
  return { storage, aborted };
}

const own = (id: string, initiated?: Date): IncompleteUpload => ({ key: `shop/orders/${id}/data.dump.zst`, uploadId: `u-${id}`, ...(initiated ? { initiated } : {}) });
const uploads: IncompleteUpload[] = [
  own('20261119T030000Z-aaaa', hoursAgo(48)),
  own('20261120T110000Z-bbbb', hoursAgo(25)),
  own('20261121T110000Z-cccc', hoursAgo(1)),
  own('20261121T113000Z-dddd'),
  // exactly at the cutoff: not older, left alone
  own('20261120T120000Z-eeee', olderThan),
  // another runner (prefix "shop", DatabaseBackup orders/x) nests inside shop/orders/
  { key: 'shop/orders/x/20261101T000000Z-ffff/data.dump.zst', uploadId: 'u-foreign', initiated: hoursAgo(500) },
  // another database entirely
  { key: 'shop/billing/20261101T000000Z-9999/data.dump.zst', uploadId: 'u-billing', initiated: hoursAgo(500) },
];

describe('abortStaleUploads', () => {
  it('aborts only its own uploads (exact layout) initiated strictly before the grace period', async () => {
    const { storage, aborted } = withUploads(uploads);
    const loc: Location = { name: 's3', storage, scope };
    const r = await abortStaleUploads(loc, { olderThan, dryRun: false, logger: silentLogger() });
    expect(aborted.sort()).toEqual(['shop/orders/20261119T030000Z-aaaa/data.dump.zst#u-20261119T030000Z-aaaa', 'shop/orders/20261120T110000Z-bbbb/data.dump.zst#u-20261120T110000Z-bbbb']);
    expect(r).toEqual({ supported: true, aborted: 2, young: 3, foreign: 1, failed: [] });
  });

  it('a dry run aborts nothing and says what it would abort', async () => {
    const { storage, aborted } = withUploads(uploads);
    const r = await abortStaleUploads({ name: 's3', storage, scope }, { olderThan, dryRun: true, logger: silentLogger() });
    expect(aborted).toEqual([]);
    expect(r?.aborted).toBe(2);
  });

  it('reports a server without ListMultipartUploads as unsupported, with what to do instead', async () => {
    const { storage } = withUploads(uploads, { unsupported: true });
    const r = await abortStaleUploads({ name: 's3', storage, scope }, { olderThan, dryRun: false, logger: silentLogger() });
    expect(r).toMatchObject({ supported: false, aborted: 0, note: expect.stringContaining('lifecycle rule (AbortIncompleteMultipartUpload)') });
  });

  it('reports an abort that failed and goes on with the others', async () => {
    const { storage, aborted } = withUploads(uploads, { failAbort: (k) => k.includes('aaaa') });
    const r = await abortStaleUploads({ name: 's3', storage, scope }, { olderThan, dryRun: false, logger: silentLogger() });
    expect(aborted).toHaveLength(1);
    expect(r?.failed).toEqual([{ key: 'shop/orders/20261119T030000Z-aaaa/data.dump.zst', error: expect.objectContaining({ code: 'STORAGE_FAILED' }) }]);
  });

  it('has nothing to do for a backend without multipart uploads', async () => {
    expect(await abortStaleUploads({ name: 'mem', storage: new MemoryStorage(), scope }, { olderThan, dryRun: false, logger: silentLogger() })).toBeUndefined();
  });
});
