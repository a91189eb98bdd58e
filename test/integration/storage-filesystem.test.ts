/**
 * Filesystem failures on real, tiny filesystems: a 2 MiB tmpfs (disk full)
 * and a read-only tmpfs. Mounting needs root (CAP_SYS_ADMIN), as in the CI
 * container; elsewhere these tests fail and say so.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilesystemStorage } from '../../runner/storage/filesystem.js';
import { MiB, expectCode, generated, listAll, readAll } from './storage-helpers.js';

const MOUNT_HINT = 'mounting a tmpfs needs root (CAP_SYS_ADMIN) and mount(8): run the integration tests as root, e.g. in the CI container';

function mountTmpfs(dir: string, options: string): void {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`${MOUNT_HINT} (${(err as Error).message.trim()})`, { cause: err });
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // not mounted
  }
}

async function tempFiles(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).filter((e) => e.split('/').pop()!.startsWith('.tmp-'));
}

describe('filesystem backend on a full disk and a read-only disk', () => {
  let base: string;
  let full: string;
  let readOnly: string;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'storage-fs-faults-'));
    full = join(base, 'full');
    readOnly = join(base, 'ro');
    execFileSync('mkdir', ['-p', full, readOnly]);
    mountTmpfs(full, 'size=2m');
    mountTmpfs(readOnly, 'size=1m,ro');
  });
  afterAll(async () => {
    if (!base) return;
    unmount(full);
    unmount(readOnly);
    await rm(base, { recursive: true, force: true });
  });

  it('a put larger than the free space fails with STORAGE_NO_SPACE, leaves no temp file and keeps the previous object', async () => {
    const s = new FilesystemStorage(full, { description: 'file:///mnt/backups/db' });
    await s.put('db/1/data', Buffer.from('previous'));
    const body = generated(8 * MiB);
    const err = await expectCode(s.put('db/1/data', body.stream), 'STORAGE_NO_SPACE');
    expect(err.message).toMatch(/^file:\/\/\/mnt\/backups\/db: the disk is full \(no space left on device\) during put db\/1\/data$/);
    expect(err.retryable).toBe(false);
    expect(body.stream.destroyed).toBe(true);
    expect(await tempFiles(full)).toEqual([]);
    expect((await readAll(await s.get('db/1/data'))).toString()).toBe('previous');
    expect((await listAll(s, 'db/')).map((o) => o.key)).toEqual(['db/1/data']);
    // The space of the failed put was given back: a put that fits still works.
    await s.put('db/2/data', generated(1 * MiB).stream);
    expect((await s.stat('db/2/data')).size).toBe(1 * MiB);
  });

  it('a Buffer put that does not fit fails the same way', async () => {
    const s = new FilesystemStorage(full);
    await expectCode(s.put('big.bin', Buffer.alloc(3 * MiB)), 'STORAGE_NO_SPACE');
    expect(await tempFiles(full)).toEqual([]);
  });

  it('a read-only filesystem fails puts and preflight with STORAGE_DENIED', async () => {
    const s = new FilesystemStorage(readOnly, { description: 'file:///ro' });
    const err = await expectCode(s.preflight(), 'STORAGE_DENIED');
    expect(err.message).toBe('file:///ro: the filesystem is read-only (preflight)');
    await expectCode(s.put('db/x', Buffer.from('x')), 'STORAGE_DENIED');
    await expectCode(s.put('db/y', generated(1024).stream), 'STORAGE_DENIED');
    expect(await listAll(s, '')).toEqual([]);
  });

  it('a root that cannot be created fails preflight with STORAGE_DENIED', async () => {
    const s = new FilesystemStorage(join(readOnly, 'missing', 'dir'));
    await expectCode(s.preflight(), 'STORAGE_DENIED');
  });
});
