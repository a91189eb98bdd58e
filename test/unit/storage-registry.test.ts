import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { LocationConfig } from '../../api/index.js';
import { silentLogger } from '../../runner/logger.js';
import { createStorage, describeLocation } from '../../runner/storage/registry.js';

// Records when the cloud backends (and with them their SDKs) are first imported.
const loaded = vi.hoisted(() => ({ s3: false, gcs: false }));
vi.mock('../../runner/storage/s3.js', async (importOriginal) => {
  loaded.s3 = true;
  return importOriginal();
});
vi.mock('../../runner/storage/gcs.js', async (importOriginal) => {
  loaded.gcs = true;
  return importOriginal();
});

const s3Block = {
  bucket: 'backups',
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9',
  forcePathStyle: true,
  insecureSkipTLSVerify: false,
  accessKeyId: { value: 'k' },
  secretAccessKey: { value: 's' },
  partSizeMiB: 8,
  queueSize: 2,
};

describe('createStorage', () => {
  it('loads neither cloud SDK for a filesystem location, then only the one a location needs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-'));
    try {
      const fs = await createStorage({ name: 'local', type: 'filesystem', prefix: '', filesystem: { path: dir } }, { logger: silentLogger() });
      await fs.preflight();
      await fs.put('a/b', Buffer.from('x'));
      expect((await fs.stat('a/b')).size).toBe(1);
      expect(loaded).toEqual({ s3: false, gcs: false });

      const s3 = await createStorage({ name: 'remote', type: 's3', prefix: 'p', s3: s3Block }, { logger: silentLogger() });
      expect(s3.description).toBe('s3://backups/p');
      expect(loaded).toEqual({ s3: true, gcs: false });
      await s3.close();

      const gcs = await createStorage({ name: 'cloud', type: 'gcs', prefix: '', gcs: { bucket: 'b', apiEndpoint: 'http://127.0.0.1:9' } }, { logger: silentLogger() });
      expect(gcs.description).toBe('gs://b');
      expect(loaded).toEqual({ s3: true, gcs: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a location whose type block is missing', async () => {
    await expect(createStorage({ name: 'x', type: 's3', prefix: '' }, { logger: silentLogger() })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('resolves secrets and reports the missing one by field', async () => {
    const loc: LocationConfig = { name: 'remote', type: 's3', prefix: '', s3: { ...s3Block, secretAccessKey: { env: 'NOPE_SECRET' } } };
    const err = createStorage(loc, { logger: silentLogger(), env: {} });
    await expect(err).rejects.toMatchObject({ code: 'SECRET_UNREADABLE', message: expect.stringContaining('location "remote" s3.secretAccessKey') as unknown });
  });

  it('reports an unreadable CA file as a config error', async () => {
    const loc: LocationConfig = { name: 'remote', type: 's3', prefix: '', s3: { ...s3Block, caFile: '/nonexistent/ca.pem' } };
    await expect(createStorage(loc, { logger: silentLogger() })).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('caFile') as unknown });
  });
});

describe('describeLocation', () => {
  it.each([
    [{ name: 'a', type: 's3', prefix: '', s3: s3Block }, 's3://backups'],
    [{ name: 'a', type: 's3', prefix: '/team/db/', s3: s3Block }, 's3://backups/team/db'],
    [{ name: 'a', type: 'gcs', prefix: 'x', gcs: { bucket: 'g' } }, 'gs://g/x'],
    [{ name: 'a', type: 'filesystem', prefix: '', filesystem: { path: '/mnt/backups/' } }, 'file:///mnt/backups'],
    [{ name: 'a', type: 'filesystem', prefix: 'p', filesystem: { path: '/mnt' } }, 'file:///mnt/p'],
  ] as [LocationConfig, string][])('%j -> %s', (loc, expected) => {
    expect(describeLocation(loc)).toBe(expected);
  });
});
