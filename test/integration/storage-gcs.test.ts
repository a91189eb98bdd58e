/** GCS behaviour beyond the contract, against the firebase-tools emulator started in this process: outages, paging. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../runner/logger.js';
import { createGcsStorage, type GcsStorage } from '../../runner/storage/gcs.js';
import { createStorage } from '../../runner/storage/registry.js';
import { withRetry } from '../../runner/storage/retry.js';
import { startFaultProxy, type FaultProxy } from '../../testenv/fault-proxy.js';
import { startGcsEmulator, type GcsEmulator } from '../../testenv/gcs.js';
import { MiB, expectCode, generated, listAll, readAll, sha256Of } from './storage-helpers.js';

describe('GCS backend against the emulator', () => {
  let gcs: GcsEmulator;
  let proxy: FaultProxy;
  let viaProxy: GcsStorage;

  beforeAll(async () => {
    gcs = await startGcsEmulator();
    proxy = await startFaultProxy({ port: gcs.port });
    viaProxy = await createGcsStorage(gcs.location('faults', { apiEndpoint: proxy.url }), { description: 'gs://faults/db', logger: silentLogger() });
  });
  afterAll(async () => {
    await proxy?.close();
    await gcs?.stop();
  });

  it('works through the registry, with the description naming bucket and prefix', async () => {
    const s = await createStorage({ name: 'cloud', type: 'gcs', prefix: '/db/', gcs: gcs.location('registry') }, { logger: silentLogger() });
    expect(s.description).toBe('gs://registry/db');
    await s.preflight();
    const body = generated(6 * MiB);
    await s.put('db/x/data', body.stream);
    expect(await sha256Of(await s.get('db/x/data'))).toEqual({ sha256: body.sha256(), size: 6 * MiB });
    await s.close();
  });

  it('lists across pages in key order', async () => {
    const s = await createGcsStorage(gcs.location('paged'), { description: 'gs://paged', logger: silentLogger(), pageSize: 2 });
    const keys = ['db/e', 'db/a', 'db/c/1', 'db/b', 'db/d'];
    for (const k of keys) await s.put(k, Buffer.from(k));
    expect((await listAll(s, 'db/')).map((o) => o.key)).toEqual([...keys].sort());
  });

  it('a server that cannot be reached fails with STORAGE_UNAVAILABLE (retryable)', async () => {
    proxy.down();
    try {
      for (const call of [() => viaProxy.preflight(), () => viaProxy.stat('db/x'), () => viaProxy.put('db/x', Buffer.from('x'))]) {
        const err = await expectCode(call(), 'STORAGE_UNAVAILABLE');
        expect(err.retryable).toBe(true);
        expect(err.message).toMatch(/^gs:\/\/faults\/db: /);
      }
    } finally {
      proxy.up();
    }
  });

  it('a server going down mid-upload fails the put, and nothing is visible once it is back', async () => {
    await viaProxy.put('db/outage/kept', Buffer.from('previous'));
    const body = generated(64 * MiB);
    void proxy.cutAfter(10 * MiB, { refuseMs: 60_000 });
    try {
      const err = await expectCode(viaProxy.put('db/outage/kept', body.stream), 'STORAGE_UNAVAILABLE');
      expect(err.message).toMatch(/^gs:\/\/faults\/db: put db\/outage\/kept failed/);
      expect(body.stream.destroyed).toBe(true);
      expect(body.produced()).toBeLessThan(40 * MiB);
    } finally {
      proxy.up();
    }
    // As in the runner, calls after an outage go through the retry wrapper (a pooled socket may still be dead).
    const s = withRetry(viaProxy, { attempts: 3, baseDelayMs: 50, maxDelayMs: 200, logger: silentLogger() });
    expect((await listAll(s, 'db/outage/')).map((o) => [o.key, o.size])).toEqual([['db/outage/kept', 8]]);
    expect((await readAll(await s.get('db/outage/kept'))).toString()).toBe('previous');
  });

  it('an aborted put closes its upload request instead of leaving it hanging', async () => {
    const own = await startFaultProxy({ port: gcs.port });
    try {
      const s = await createGcsStorage(gcs.location('faults', { apiEndpoint: own.url }), { description: 'gs://faults', logger: silentLogger() });
      const ac = new AbortController();
      const body = generated(64 * MiB, { onChunk: (n) => n === 6 * MiB && ac.abort() });
      await expectCode(s.put('db/hanging/data', body.stream, { signal: ac.signal }), 'ABORTED');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(own.connections).toBeGreaterThan(0);
      expect(own.openConnections).toBe(0);
    } finally {
      await own.close();
    }
  });
});
