import { describe, expect, it } from 'vitest';
import { validateRunnerConfig } from '../../api/index.js';
import type { Engine } from '../../runner/engines/types.js';
import { silentLogger } from '../../runner/logger.js';
import { listBackups } from '../../runner/ops/list.js';
import type { Runtime } from '../../runner/runtime.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import type { GetOptions, Storage } from '../../runner/storage/types.js';
import { writeBackup } from '../retention-fixtures.js';

/** Counts the `get` calls that reach the storage. */
function counting(inner: Storage): { storage: Storage; gets: () => number } {
  let gets = 0;
  const storage = Object.assign(Object.create(inner) as Storage, {
    get: (key: string, opts?: GetOptions) => {
      gets++;
      return inner.get(key, opts);
    },
  });
  return { storage, gets: () => gets };
}

function runtime(storage: Storage, cache: boolean): Runtime {
  const cfg = validateRunnerConfig({
    name: 'orders',
    engine: { type: 'postgresql', postgresql: { host: 'h', database: 'd', user: 'u' } },
    locations: [{ name: 'mem', type: 'filesystem', filesystem: { path: '/unused' } }],
  });
  if (!cfg.ok) throw new Error('bad test config');
  return {
    config: cfg.value,
    engine: {} as Engine,
    locations: [{ name: 'mem', storage, scope: { prefix: '', namespace: 'default', name: 'orders' } }],
    logger: silentLogger(),
    clock: () => new Date(),
    runnerVersion: 'test',
    ...(cache ? { manifestCache: new Map() } : {}),
  };
}

describe('listing with the manifest cache', () => {
  it('reads each manifest once, and forgets backups that are gone', async () => {
    const mem = new MemoryStorage();
    const c = counting(mem);
    const rt = runtime(c.storage, true);
    for (let i = 0; i < 20; i++) await writeBackup(rt.locations[0]!, `20261121T10${String(i).padStart(2, '0')}00Z-aaaa`, new Date(Date.UTC(2026, 10, 21, 10, i)));

    expect((await listBackups(rt)).backups).toHaveLength(20);
    expect(c.gets()).toBe(20);
    expect((await listBackups(rt)).backups).toHaveLength(20);
    expect(c.gets()).toBe(20); // nothing read again

    await mem.delete('default/orders/backups/20261121T100000Z-aaaa/manifest.json');
    expect((await listBackups(rt)).backups).toHaveLength(19);
    expect(rt.manifestCache!.get('mem')!.size).toBe(19);

    await writeBackup(rt.locations[0]!, '20261121T110000Z-bbbb', new Date(Date.UTC(2026, 10, 21, 11)));
    expect((await listBackups(rt)).backups.at(-1)!.id).toBe('20261121T110000Z-bbbb');
    expect(c.gets()).toBe(21); // only the new manifest
  });

  it('without a cache (one-shot commands) every listing reads the manifests', async () => {
    const c = counting(new MemoryStorage());
    const rt = runtime(c.storage, false);
    await writeBackup(rt.locations[0]!, '20261121T100000Z-aaaa', new Date(Date.UTC(2026, 10, 21, 10)));
    await listBackups(rt);
    await listBackups(rt);
    expect(c.gets()).toBe(2);
  });
});
