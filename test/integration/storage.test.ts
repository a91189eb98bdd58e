import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../runner/logger.js';
import { FilesystemStorage } from '../../runner/storage/filesystem.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import { createS3Storage } from '../../runner/storage/s3.js';
import { createGcsStorage } from '../../runner/storage/gcs.js';
import { spawnGcsEmulator } from '../../testenv/gcs.js';
import { spawnS3Server } from '../../testenv/s3.js';
import { storageContract } from './storage-contract.js';
import { MiB } from './storage-helpers.js';

/** Temp files anywhere under `root`. */
async function tempFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true });
  return entries.filter((e) => e.split('/').pop()!.startsWith('.tmp-'));
}

storageContract('filesystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'storage-fs-'));
  return {
    storage: new FilesystemStorage(join(root, 'backups')),
    leftovers: () => tempFiles(root),
    memoryBudgetBytes: 8 * MiB,
    teardown: () => rm(root, { recursive: true, force: true }),
  };
});

storageContract('memory', () => Promise.resolve({ storage: new MemoryStorage() }));

storageContract('s3 (s3rver)', async () => {
  // In its own process: only the client's memory is measured here.
  const s3 = await spawnS3Server({ buckets: ['contract'] });
  const storage = await createS3Storage(s3.location('contract'), { description: 's3://contract', field: 's3', logger: silentLogger() });
  return {
    storage,
    leftovers: () => s3.openUploads('contract'),
    // partSizeMiB 5, queueSize 2: two parts in flight and one being filled.
    memoryBudgetBytes: 24 * MiB,
    teardown: () => s3.stop(),
  };
});

storageContract('gcs (firebase storage emulator)', async () => {
  const gcs = await spawnGcsEmulator();
  return {
    storage: await createGcsStorage(gcs.location('contract'), { description: 'gs://contract', logger: silentLogger() }),
    // The emulator runs in its own process: only the client's memory is measured here.
    memoryBudgetBytes: 16 * MiB,
    teardown: () => gcs.stop(),
  };
});
