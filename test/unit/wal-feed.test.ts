/** restore --start's WAL feed (ops/wal-fetch.ts feedWal), against archives in memory: what it writes where, in which order, and where it stops. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { segmentName } from '../../runner/engines/postgresql/physical/wal-names.js';
import { FED_AGAIN, HELD_LIST } from '../../runner/engines/postgresql/physical/recovery.js';
import { silentLogger } from '../../runner/logger.js';
import { feedLimits, feedWal } from '../../runner/ops/wal-fetch.js';
import type { Location, Runtime } from '../../runner/runtime.js';
import type { CallOptions, ObjectInfo } from '../../runner/storage/types.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import { walFileName, walPrefix } from '../../runner/storage/layout.js';
import { eventually } from '../../testenv/eventually.js';

const MiB16 = 16 * 1024 * 1024;
const SYSTEM = 7_345_000_000_000_000_001n;
const seg = (n: number, tli = 1): string => segmentName(tli, BigInt(n), MiB16);

/** A stand-in segment: the long page header's system identifier at byte 24, then `text`. */
function segment(text: string, system = SYSTEM): Buffer {
  const b = Buffer.alloc(32 + text.length);
  b.writeBigUInt64LE(system, 24);
  b.write(text, 32);
  return b;
}

const scope = { prefix: 'db', namespace: 'shop', name: 'orders' };

async function store(loc: Location, wal: string, bytes: Buffer, partial = false): Promise<void> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await loc.storage.put(`${walPrefix(loc.scope)}${walFileName({ wal, sha256, partial, compression: '', encrypted: false })}`, bytes);
}

class Unlistable extends MemoryStorage {
  override async *list(_prefix: string, _opts?: CallOptions): AsyncIterable<ObjectInfo> {
    yield* await Promise.reject<ObjectInfo[]>(new Error('listing refused'));
  }
}

const runtime = (locations: Location[]): Runtime => ({ locations, logger: silentLogger() }) as unknown as Runtime;

let dataDir: string;
let dir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'wal-feed-'));
  dir = join(dataDir, 'pg_wal', '.backup-runner-prefetch');
  await mkdir(dir, { recursive: true });
  await mkdir(join(dataDir, 'global'));
  const control = Buffer.alloc(16);
  control.writeBigUInt64LE(SYSTEM, 0);
  await writeFile(join(dataDir, 'global', 'pg_control'), control);
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function feed(rt: Runtime, from: string): Promise<number> {
  const ac = new AbortController();
  const f = feedWal(rt, { wal: from, segmentSize: MiB16 }, dir, { signal: ac.signal });
  await f.primed;
  const fed = await f.done;
  ac.abort();
  await f.closed;
  return fed;
}

describe('what a feed holds at once', () => {
  it.each([
    [MiB16, 16, 4],
    [1024 * 1024, 256, 64],
    [64 * 1024 * 1024, 4, 1],
    [1024 * 1024 * 1024, 2, 1],
  ])('segments of %i bytes: %i waiting, %i fetched at once', (size, ahead, batch) => {
    expect(feedLimits(size)).toEqual({ ahead, batch });
  });
});

describe('the WAL feed of restore --start', () => {
  it('writes the held names, every history file to give again, and the run of complete segments in order; never a partial (the archive may finish it)', async () => {
    const a: Location = { name: 'a', storage: new MemoryStorage(), scope };
    const rt = runtime([a]);
    for (const n of [3, 4, 5]) await store(a, seg(n), segment(`s${n}`));
    await store(a, seg(6), segment('s6 partial, older'), true);
    await new Promise((r) => setTimeout(r, 5));
    await store(a, seg(6), segment('s6 partial, newer'), true);
    await store(a, seg(8), segment('s8 after a gap'));
    await store(a, '00000002.history', Buffer.from('1\t0/7000000\tno recovery target specified\n'));
    expect(await feed(rt, seg(3))).toBe(3);
    expect((await readdir(dir)).sort()).toEqual([FED_AGAIN, HELD_LIST, seg(3), seg(4), seg(5)].sort());
    // The partial is held (wal-fetch gives it), and so is what lies after the gap.
    expect((await readFile(join(dir, HELD_LIST), 'utf8')).split('\n')).toEqual([seg(3), seg(4), seg(5), seg(6), seg(8), '00000002.history', '']);
    // The last two segments fed are kept to be given again, and the history file.
    expect((await readdir(join(dir, FED_AGAIN))).sort()).toEqual([seg(4), seg(5), '00000002.history']);
  });

  it('takes a complete object in any location over a partial, and passes over a location whose object is of another system or does not match its digest', async () => {
    const a: Location = { name: 'a', storage: new MemoryStorage(), scope };
    const b: Location = { name: 'b', storage: new MemoryStorage(), scope };
    const rt = runtime([a, b]);
    await store(a, seg(3), segment('foreign', 42n));
    await store(b, seg(3), segment('mine'));
    await store(a, seg(4), segment('partial in a'), true);
    await store(b, seg(4), segment('complete in b'));
    // A digest that does not match its bytes: not used.
    const lying = segment('tampered');
    await a.storage.put(`${walPrefix(scope)}${walFileName({ wal: seg(5), sha256: 'ab'.repeat(32), partial: false, compression: '', encrypted: false })}`, lying);
    await store(b, seg(5), segment('s5 from b'));
    expect(await feed(rt, seg(3))).toBe(3);
    expect((await readFile(join(dir, seg(3)))).subarray(32).toString()).toBe('mine');
    expect((await readFile(join(dir, seg(4)))).subarray(32).toString()).toBe('complete in b');
    expect((await readFile(join(dir, seg(5)))).subarray(32).toString()).toBe('s5 from b');
  });

  it('writes no list of held names when a location could not be listed (a name missing from it may be held there)', async () => {
    const a: Location = { name: 'a', storage: new MemoryStorage(), scope };
    const broken: Location = { name: 'broken', storage: new Unlistable(), scope };
    const rt = runtime([broken, a]);
    await store(a, seg(3), segment('s3'));
    expect(await feed(rt, seg(3))).toBe(1);
    expect(await readdir(dir)).not.toContain(HELD_LIST);
    expect(await readdir(dir)).toContain(seg(3));
  });

  it('keeps at most 16 segments waiting, and goes on as the server takes them', async () => {
    const a: Location = { name: 'a', storage: new MemoryStorage(), scope };
    const rt = runtime([a]);
    for (let n = 1; n <= 24; n++) await store(a, seg(n), segment(`s${n}`));
    const ac = new AbortController();
    const f = feedWal(rt, { wal: seg(1), segmentSize: MiB16 }, dir, { signal: ac.signal });
    await f.primed;
    const waiting = async () => (await readdir(dir)).filter((n) => /^[0-9A-F]{24}$/.test(n));
    await new Promise((r) => setTimeout(r, 200));
    expect(await waiting()).toHaveLength(16);
    for (let n = 1; n <= 8; n++) await rm(join(dir, seg(n)));
    expect(await f.done).toBe(24);
    expect(await waiting()).toHaveLength(16);
    ac.abort();
    await f.closed;
  });

  it('does not feed what the server restored already (it got ahead through wal-fetch), and drops such a copy left waiting', async () => {
    const a: Location = { name: 'a', storage: new MemoryStorage(), scope };
    const rt = runtime([a]);
    for (let n = 1; n <= 20; n++) await store(a, seg(n), segment(`s${n}`));
    // PostgreSQL keeps a restored file in pg_wal/ under its name; one left waiting in the feed's directory too.
    await writeFile(join(dataDir, 'pg_wal', seg(1)), 'restored');
    await writeFile(join(dataDir, 'pg_wal', seg(2)), 'restored');
    const ac = new AbortController();
    const f = feedWal(rt, { wal: seg(1), segmentSize: MiB16 }, dir, { signal: ac.signal });
    await f.primed;
    const waiting = async () => (await readdir(dir)).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    await eventually('sixteen waiting', async () => (await waiting()).length === 16, 5000);
    expect((await waiting())[0]).toBe(seg(3));
    // The server restores seg 3 by itself while it waits there: it is dropped, and the feed goes on.
    await writeFile(join(dataDir, 'pg_wal', seg(3)), 'restored');
    await eventually('seg 3 dropped, seg 19 fed', async () => !(await waiting()).includes(seg(3)) && (await waiting()).includes(seg(19)), 5000);
    ac.abort();
    await f.closed;
  });

  it('lists the archive again while it runs: a name stored since is in the list of held names', async () => {
    const a: Location = { name: 'a', storage: new MemoryStorage(), scope };
    const rt = runtime([a]);
    await store(a, seg(3), segment('s3'));
    const ac = new AbortController();
    const f = feedWal(rt, { wal: seg(3), segmentSize: MiB16 }, dir, { signal: ac.signal });
    expect(await f.done).toBe(1);
    await store(a, seg(4), segment('s4, stored after the first listing'));
    await eventually('the list rewritten', async () => (await readFile(join(dir, HELD_LIST), 'utf8')).includes(seg(4)), 15_000);
    ac.abort();
    await f.closed;
  }, 20_000);
});
