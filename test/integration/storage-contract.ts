/**
 * The one contract every Storage backend passes (see runner/storage/types.ts
 * for the invariants). Register it with `storageContract(name, factory)`.
 * Every test works under its own random prefix, so the suite can share a
 * bucket or directory with other tests.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spliceObject } from '../../runner/storage/splice.js';
import type { Storage } from '../../runner/storage/types.js';
import { MiB, expectCode, forceGc, generated, heapAndBuffers, listAll, readAll, sha256Of } from './storage-helpers.js';

export interface ContractTarget {
  storage: Storage;
  /**
   * Partial data the backend keeps out of sight (temp files, open multipart
   * uploads), as a list of descriptions; must be empty after a failed put.
   */
  leftovers?: () => Promise<string[]>;
  /** Largest growth of JS heap + Buffers allowed while a 64 MiB stream is stored. */
  memoryBudgetBytes?: number;
  /** Called after the suite, after `storage.close()`. */
  teardown?: () => Promise<void>;
}

const BIG = 64 * MiB;

export function storageContract(name: string, factory: () => Promise<ContractTarget>): void {
  describe(`storage contract: ${name}`, () => {
    let target: ContractTarget;
    let s: Storage;
    const base = `contract-${randomBytes(4).toString('hex')}`;
    let n = 0;
    /** A fresh prefix (ending in `/`) for one test. */
    const fresh = (): string => `${base}/t${++n}/`;

    beforeAll(async () => {
      target = await factory();
      s = target.storage;
    });
    afterAll(async () => {
      await s?.close();
      await target?.teardown?.();
    });

    it('passes preflight', async () => {
      await s.preflight();
      expect(s.description).toMatch(/^[a-z0-9]+:\/\//);
    });

    it('stores a 64 MiB stream of unknown length and reads it back, with bounded memory', async () => {
      const key = `${fresh()}big/data.bin`;
      forceGc();
      const baseline = heapAndBuffers();
      let peak = 0;
      const body = generated(BIG, {
        onChunk: (produced) => {
          if (produced % (4 * MiB) === 0) {
            forceGc();
            peak = Math.max(peak, heapAndBuffers() - baseline);
          }
        },
      });
      const result = await s.put(key, body.stream);
      expect(result.size).toBe(BIG);
      if (target.memoryBudgetBytes !== undefined) {
        expect(peak, `memory grew by ${(peak / MiB).toFixed(1)} MiB while storing ${BIG / MiB} MiB`).toBeLessThan(target.memoryBudgetBytes);
      }
      const back = await sha256Of(await s.get(key));
      expect(back).toEqual({ sha256: body.sha256(), size: BIG });
      expect((await s.stat(key)).size).toBe(BIG);
    });

    it('stores an empty object from an empty stream', async () => {
      const key = `${fresh()}empty`;
      const body = generated(0);
      expect(await s.put(key, body.stream)).toEqual({ size: 0 });
      expect((await readAll(await s.get(key))).length).toBe(0);
      expect((await s.stat(key)).size).toBe(0);
    });

    it('stores a Buffer and an empty Buffer', async () => {
      const p = fresh();
      const data = Buffer.from('{"manifest":true}\n');
      expect(await s.put(`${p}manifest.json`, data)).toEqual({ size: data.length });
      expect(await readAll(await s.get(`${p}manifest.json`))).toEqual(data);
      await s.put(`${p}nothing`, Buffer.alloc(0));
      expect((await s.stat(`${p}nothing`)).size).toBe(0);
    });

    it('overwrites an object with a new whole one', async () => {
      const key = `${fresh()}obj`;
      await s.put(key, Buffer.from('first version, longer'));
      const second = generated(3 * MiB);
      await s.put(key, second.stream);
      expect(await sha256Of(await s.get(key))).toEqual({ sha256: second.sha256(), size: 3 * MiB });
      await s.put(key, Buffer.from('third'));
      expect((await readAll(await s.get(key))).toString()).toBe('third');
    });

    it('stat reports the key, size and modification time', async () => {
      const key = `${fresh()}sized`;
      const before = Date.now() - 60_000;
      await s.put(key, Buffer.alloc(12345, 7));
      const info = await s.stat(key);
      expect(info.key).toBe(key);
      expect(info.size).toBe(12345);
      if (info.modifiedAt) expect(info.modifiedAt.getTime()).toBeGreaterThan(before);
    });

    it('reads byte ranges (inclusive end, open end, end past the size)', async () => {
      const key = `${fresh()}ranged`;
      const data = Buffer.from('0123456789abcdefghij');
      await s.put(key, data);
      expect((await readAll(await s.get(key, { range: { start: 5, end: 9 } }))).toString()).toBe('56789');
      expect((await readAll(await s.get(key, { range: { start: 15 } }))).toString()).toBe('fghij');
      // A one-byte range (not 0-0: s3rver 3.7 reads `end: 0` as "to the end").
      expect((await readAll(await s.get(key, { range: { start: 3, end: 3 } }))).toString()).toBe('3');
      expect((await readAll(await s.get(key, { range: { start: 18, end: 1000 } }))).toString()).toBe('ij');
    });

    it.each([
      ['a short tail (streamed through put)', 64 * 1024],
      ['a tail longer than a part (copied by the server where it can)', 13 * MiB],
    ])('splices a new head before the tail of a stored object: %s', async (_what, size) => {
      const p = fresh();
      const original = randomBytes(size);
      await s.put(`${p}old`, original);
      const head = Buffer.from('a new head of another length\n');
      const r = await spliceObject(s, `${p}new`, head, { key: `${p}old`, offset: 100, size });
      expect(r.size).toBe(head.length + size - 100);
      expect(r.serverSide).toBe(s.putSpliced !== undefined && size > 5 * MiB);
      expect((await readAll(await s.get(`${p}new`))).equals(Buffer.concat([head, original.subarray(100)]))).toBe(true);
      expect((await readAll(await s.get(`${p}old`))).equals(original)).toBe(true);
      expect(await target.leftovers?.()).toEqual(target.leftovers ? [] : undefined);
    });

    it('lists by prefix: nested keys, sorted, other prefixes excluded, no temp objects', async () => {
      const p = fresh();
      const keys = [`${p}b/d`, `${p}a`, `${p}b/c/x`, `${p}b-e`, `${p}ab`, `${p}b/c/y`, `${p}z`];
      for (const k of keys) await s.put(k, Buffer.from(k));
      await s.put(`${p.slice(0, -1)}-other/a`, Buffer.from('elsewhere'));
      const all = await listAll(s, p);
      expect(all.map((o) => o.key)).toEqual([...keys].sort());
      expect(all.find((o) => o.key === `${p}b-e`)?.size).toBe(Buffer.byteLength(`${p}b-e`));
      expect((await listAll(s, `${p}b`)).map((o) => o.key)).toEqual([`${p}b-e`, `${p}b/c/x`, `${p}b/c/y`, `${p}b/d`]);
      expect((await listAll(s, `${p}b/`)).map((o) => o.key)).toEqual([`${p}b/c/x`, `${p}b/c/y`, `${p}b/d`]);
      expect((await listAll(s, `${p}b/c/x`)).map((o) => o.key)).toEqual([`${p}b/c/x`]);
      expect(await listAll(s, `${p}nothing/`)).toEqual([]);
    });

    it('deletes idempotently', async () => {
      const p = fresh();
      await s.put(`${p}x/one`, Buffer.from('1'));
      await s.put(`${p}x/two`, Buffer.from('2'));
      await s.delete(`${p}x/one`);
      await expectCode(s.stat(`${p}x/one`), 'STORAGE_NOT_FOUND');
      await s.delete(`${p}x/one`);
      await s.delete(`${p}never/was`);
      expect((await listAll(s, p)).map((o) => o.key)).toEqual([`${p}x/two`]);
      await s.delete(`${p}x/two`);
      expect(await listAll(s, p)).toEqual([]);
      await s.put(`${p}x/three`, Buffer.from('3'));
      expect((await s.stat(`${p}x/three`)).size).toBe(1);
    });

    it('get and stat of a missing key fail with STORAGE_NOT_FOUND', async () => {
      const key = `${fresh()}missing`;
      const err = await expectCode(s.get(key), 'STORAGE_NOT_FOUND');
      expect(err.message).toContain(s.description);
      await expectCode(s.stat(key), 'STORAGE_NOT_FOUND');
    });

    it('refuses keys that would escape the root or hide as temp files', async () => {
      for (const bad of ['../x', 'a/../../x', '/abs', 'a//b', 'a/./b', '.tmp-x', 'a/.tmp-y', '']) {
        await expectCode(s.put(bad, Buffer.from('x')), 'STORAGE_FAILED');
        await expectCode(s.get(bad), 'STORAGE_FAILED');
      }
    });

    it('a put whose body fails midway rejects and leaves nothing visible, keeping the previous object', async () => {
      const p = fresh();
      await s.put(`${p}kept`, Buffer.from('previous'));
      const failing = generated(64 * MiB, { failAt: 12 * MiB });
      await expect(s.put(`${p}new`, failing.stream)).rejects.toThrow(/source failed/);
      const over = generated(64 * MiB, { failAt: 12 * MiB });
      await expect(s.put(`${p}kept`, over.stream)).rejects.toThrow();
      expect(failing.stream.destroyed).toBe(true);
      await expectCode(s.stat(`${p}new`), 'STORAGE_NOT_FOUND');
      expect((await listAll(s, p)).map((o) => o.key)).toEqual([`${p}kept`]);
      expect((await readAll(await s.get(`${p}kept`))).toString()).toBe('previous');
      expect(await target.leftovers?.()).toEqual(target.leftovers ? [] : undefined);
    });

    it('a put aborted through its AbortSignal rejects with ABORTED and leaves nothing visible', async () => {
      const p = fresh();
      const ac = new AbortController();
      const body = generated(256 * MiB, { onChunk: (produced) => produced === 12 * MiB && ac.abort() });
      await expectCode(s.put(`${p}aborted`, body.stream, { signal: ac.signal }), 'ABORTED');
      expect(body.stream.destroyed).toBe(true);
      expect(body.produced()).toBeLessThan(64 * MiB);
      await expectCode(s.stat(`${p}aborted`), 'STORAGE_NOT_FOUND');
      expect(await listAll(s, p)).toEqual([]);
      expect(await target.leftovers?.()).toEqual(target.leftovers ? [] : undefined);
      await expectCode(s.put(`${p}pre-aborted`, Buffer.from('x'), { signal: AbortSignal.abort() }), 'ABORTED');
      await expectCode(s.stat(`${p}pre-aborted`), 'STORAGE_NOT_FOUND');
    });
  });
}
