import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStorage } from '../../runner/storage/filesystem.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
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
    memoryBudgetBytes: 16 * MiB,
    teardown: () => rm(root, { recursive: true, force: true }),
  };
});

storageContract('memory', () => Promise.resolve({ storage: new MemoryStorage() }));
