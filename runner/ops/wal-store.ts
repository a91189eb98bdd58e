/**
 * The WAL archive's store: a file a WAL archiver received, put into every location at once, compressed once,
 * encrypted per location, under a name that carries the sha256 of its plain bytes (layout.ts walFileName).
 *
 * Invariants:
 * - A complete file is never overwritten: a location that already holds the same name (the same bytes)
 *   counts as stored; another object for the same WAL file is a conflict, reported and left, and this one is
 *   stored beside it under its own name (a planted object never stops the archive).
 * - A partial (the rolling copy of a segment still being written) replaces the older partials of its segment
 *   only once it is stored; a complete segment, once stored, removes its partials.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { AgeEncrypt } from '../crypto/age.js';
import { toBackupError } from '../errors.js';
import type { WalStore, WalStored } from '../engines/types.js';
import type { Logger } from '../logger.js';
import { compress, hasZstd, planCompression } from '../pipeline/compression.js';
import type { Location, Runtime } from '../runtime.js';
import { parseWalFile, walFileName, walPrefix } from '../storage/layout.js';

/** The objects of one WAL file a location holds (by key). */
async function heldFor(loc: Location, wal: string, signal?: AbortSignal): Promise<{ key: string; partial: boolean; sha256: string }[]> {
  const out: { key: string; partial: boolean; sha256: string }[] = [];
  const prefix = walPrefix(loc.scope);
  for await (const o of loc.storage.list(`${prefix}${wal}-`, { ...(signal ? { signal } : {}) })) {
    const f = parseWalFile(o.key.slice(prefix.length));
    if (f && f.wal === wal) out.push({ key: o.key, partial: f.partial, sha256: f.sha256 });
  }
  return out;
}

async function storeIn(loc: Location, body: Buffer, name: string, opts: { partial: boolean; signal?: AbortSignal }, held: { key: string; partial: boolean; sha256: string }[]): Promise<'stored' | 'held'> {
  const key = `${walPrefix(loc.scope)}${name}${loc.crypto ? '.age' : ''}`;
  if (held.some((h) => h.key === key)) {
    // Held already: what it supersedes goes all the same (partials an earlier run left beside a finished segment).
    if (!opts.partial) for (const h of held) if (h.partial) await loc.storage.delete(h.key).catch(() => undefined);
    return 'held';
  }
  const input = loc.crypto ? Readable.from([body]).pipe(new AgeEncrypt(loc.crypto.to)) : body;
  await loc.storage.put(key, input, { ...(opts.signal ? { signal: opts.signal } : {}) });
  // What this object supersedes: older partials of the same segment (a complete one supersedes them all).
  for (const h of held) if (h.partial && h.key !== key) await loc.storage.delete(h.key).catch(() => undefined);
  return 'stored';
}

/** A WalStore over the runtime's locations. */
export function createWalStore(rt: Runtime, logger: Logger): WalStore {
  return {
    async store(path, wal, opts): Promise<WalStored> {
      const plain = await readFile(path);
      const sha256 = createHash('sha256').update(plain).digest('hex');
      const plan = planCompression(rt.config.compression, await hasZstd());
      const stage = compress(Readable.from([plain]), plan, opts.signal);
      const [body] = await Promise.all([buffer(stage.output), stage.done]);
      const name = walFileName({ wal, sha256, partial: opts.partial, compression: plan.suffix, encrypted: false });
      const result: WalStored = { name, stored: [], failed: [], conflicts: [] };
      await Promise.all(
        rt.locations.map(async (loc) => {
          try {
            const held = await heldFor(loc, wal, opts.signal);
            const other = opts.partial ? [] : held.filter((h) => !h.partial && h.sha256 !== sha256);
            if (other.length > 0) {
              result.conflicts.push(...other.map((o) => ({ location: loc.name, key: o.key })));
              logger.error({ location: loc.name, wal, keys: other.map((o) => o.key), sha256 }, 'the location holds another object for this WAL file: left as it is, never overwritten; this one is stored beside it');
            }
            await storeIn(loc, body, name, opts, held);
            result.stored.push(loc.name);
          } catch (err) {
            const e = toBackupError(err, 'STORAGE_FAILED');
            result.failed.push({ location: loc.name, code: e.code, message: e.message });
          }
        }),
      );
      return result;
    },

    async newest(accept, signal): Promise<string | undefined> {
      let oldest: string | undefined;
      for (const loc of rt.locations) {
        const prefix = walPrefix(loc.scope);
        let newest: string | undefined;
        try {
          for await (const o of loc.storage.list(prefix, { ...(signal ? { signal } : {}) })) {
            const f = parseWalFile(o.key.slice(prefix.length));
            if (f && !f.partial && accept(f.wal) && (newest === undefined || f.wal > newest)) newest = f.wal;
          }
        } catch (err) {
          logger.warn({ location: loc.name, err: toBackupError(err, 'STORAGE_FAILED') }, 'the WAL archive of this location could not be listed');
          continue;
        }
        if (newest === undefined) return undefined;
        if (oldest === undefined || newest < oldest) oldest = newest;
      }
      return oldest;
    },
  };
}
