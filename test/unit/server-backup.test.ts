/**
 * A server-side backup's read-back and copies (runner/ops/server-backup.ts), with a fake server-side engine
 * and in-memory locations: a read of the primary that fails or ends short fails the backup (never a copy
 * location), a copy location that fails drops out alone, and whatever the server wrote goes when the backup
 * fails, a manifest it planted included.
 */
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { validateRunnerConfig } from '../../api/index.js';
import type { Engine, ServerPlace } from '../../runner/engines/types.js';
import { silentLogger } from '../../runner/logger.js';
import { runBackup } from '../../runner/ops/backup.js';
import { listBackups } from '../../runner/ops/list.js';
import type { Runtime } from '../../runner/runtime.js';
import type { GetOptions, PutResult } from '../../runner/storage/types.js';
import { MemoryStorage } from '../../runner/storage/memory.js';

const OBJECTS: Record<string, Buffer> = { 'BACKUP_MANIFEST': Buffer.from('{"files":2}'), 'data/1.sst': Buffer.alloc(300_000, 1), 'data/2.sst': Buffer.alloc(70_000, 2) };

/** The fake server writes OBJECTS (and `extra`) below the place it is given, in the primary's store. */
function engine(primary: MemoryStorage, extra: Record<string, Buffer> = {}): Engine {
  return {
    name: 'fakeserver',
    database: 'fakeserver',
    dumpsIntoPipe: false,
    probe: () => Promise.resolve({ serverVersion: '1', toolVersion: '1' }),
    dump: () => Promise.reject(new Error('unused')),
    inspectTarget: () => Promise.reject(new Error('unused')),
    restore: () => Promise.reject(new Error('unused')),
    serverSide: {
      async backup(place: ServerPlace) {
        for (const [path, body] of Object.entries(OBJECTS)) await primary.put(`${place.destination.prefix!}${path}`, body);
        for (const [key, body] of Object.entries(extra)) await primary.put(key.replace('<dir>', place.destination.prefix!.replace(/server\/$/, '')), body);
        return { consistentAt: new Date(), format: 'fake-server' };
      },
      restore: () => Promise.reject(new Error('unused')),
    },
  };
}

function runtime(stores: MemoryStorage[], eng: Engine): Runtime {
  const cfg = validateRunnerConfig({
    namespace: 'data',
    name: 'crdb',
    engine: { type: 'command', command: { definition: { name: 'fakeserver', command: ['x'], verbs: ['probe', 'backup', 'restore'], formats: [{ format: 'fake-server', extension: 'fsb' }], output: 'location' } } },
    locations: stores.map((_, i) => ({ name: `l${i}`, type: 's3', s3: { bucket: 'bucket' }, serverAccess: 'server' })),
  });
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const scope = { prefix: '', namespace: 'data', name: 'crdb' };
  return { config: cfg.value, engine: eng, locations: stores.map((storage, i) => ({ name: `l${i}`, storage, scope })), logger: silentLogger(), clock: () => new Date(), runnerVersion: 'test' };
}

async function keys(s: MemoryStorage): Promise<string[]> {
  const out: string[] = [];
  for await (const o of s.list('')) out.push(o.key);
  return out.sort();
}

/** A store whose reads of `path` fail part way, or end short, the first `times` times. */
class Flaky extends MemoryStorage {
  constructor(
    private readonly path: string,
    private readonly how: 'fail' | 'short',
    private times = 1,
  ) {
    super('flaky');
  }

  override async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    const real = await super.get(key, opts);
    if (!key.endsWith(this.path) || this.times-- <= 0) return real;
    const bytes: Buffer[] = [];
    for await (const c of real) bytes.push(c as Buffer);
    const head = Buffer.concat(bytes).subarray(0, 1000);
    const how = this.how;
    let sent = false;
    return new Readable({
      read() {
        if (!sent) {
          sent = true;
          this.push(head);
        } else if (how === 'short') this.push(null);
        else this.destroy(new Error('connection reset by peer'));
      },
    });
  }
}

/** A store whose reads come through a PassThrough (which a failed consumer destroys with its own error). */
class Passing extends MemoryStorage {
  override async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    return (await super.get(key, opts)).pipe(new PassThrough());
  }
}

/** A store whose puts all fail. */
class Refusing extends MemoryStorage {
  override put(): Promise<PutResult> {
    return Promise.reject(new Error('access denied'));
  }
}

describe('a server-side backup, read back and copied', () => {
  it('reads every object back once: the same objects, sizes and digests in both locations', async () => {
    const stores = [new MemoryStorage('a'), new MemoryStorage('b')];
    const r = await runBackup(runtime(stores, engine(stores[0]!)), { trigger: 'manual' });
    expect(r.status).toBe('Succeeded');
    expect(r.manifest!.formatVersion).toBe(4);
    expect(r.manifest!.objects.map((o) => [o.name, o.size])).toEqual([
      ['server/BACKUP_MANIFEST', 11],
      ['server/data/1.sst', 300_000],
      ['server/data/2.sst', 70_000],
    ]);
    expect((await keys(stores[1]!)).filter((k) => k.includes('/server/'))).toEqual((await keys(stores[0]!)).filter((k) => k.includes('/server/')));
  });

  it.each(['fail', 'short'] as const)('a read of the primary that %ss fails the backup, drops no copy location by mistake, and leaves nothing', async (how) => {
    const primary = new Flaky('data/1.sst', how);
    const stores = [primary, new MemoryStorage('b')];
    const r = await runBackup(runtime(stores, engine(primary)), { trigger: 'manual' });
    expect(r.status).toBe('Failed');
    expect(r.error!.code).toBe(how === 'short' ? 'INTEGRITY' : 'STORAGE_FAILED');
    if (how === 'short') expect(r.error!.message).toMatch(/listed with 300000 bytes and read with 1000/);
    expect(await keys(primary)).toEqual([]);
    expect(await keys(stores[1]!)).toEqual([]);
  });

  it('a copy location that fails drops out alone: the backup is kept where the server wrote it', async () => {
    const stores = [new MemoryStorage('a'), new Refusing('b')];
    const r = await runBackup(runtime(stores, engine(stores[0]!)), { trigger: 'manual' });
    expect(r.status).toBe('PartiallySucceeded');
    expect(r.locations.map((l) => [l.location, l.status])).toEqual([
      ['l1', 'Failed'],
      ['l0', 'Succeeded'],
    ]);
    expect((await keys(stores[0]!)).some((k) => k.endsWith('/manifest.json'))).toBe(true);
  });

  it('a copy location that fails is never taken for a failed read of the primary, whatever stream the primary gives', async () => {
    const primary = new Passing('a');
    const r = await runBackup(runtime([primary, new Refusing('b')], engine(primary)), { trigger: 'manual' });
    expect(r.status).toBe('PartiallySucceeded');
    expect(r.locations.find((l) => l.location === 'l1')?.error?.message).toMatch(/access denied/);
  });

  it('a manifest the server planted fails the backup and goes with everything it wrote', async () => {
    const primary = new MemoryStorage('a');
    const r = await runBackup(runtime([primary], engine(primary, { '<dir>manifest.json': Buffer.from('{"formatVersion":2}') })), { trigger: 'manual' });
    expect(r.status).toBe('Failed');
    expect(r.error!.code).toBe('INTEGRITY');
    expect(await keys(primary)).toEqual([]);
  });

  it('a format 4 manifest in a layout 1 directory is not read as a backup (retention and the sweeper would not see its objects)', async () => {
    const store = new MemoryStorage('a');
    const rt = runtime([store], engine(store));
    const r = await runBackup(rt, { trigger: 'manual' });
    const all = await keys(store);
    const moved = (k: string) => k.replace('/backups/', '/');
    for (const k of all) {
      const body = await store.get(k);
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      await store.put(moved(k), Buffer.concat(chunks));
      await store.delete(k);
    }
    const listing = await listBackups(rt);
    expect(listing.backups).toEqual([]);
    expect(listing.problems.map((p) => [p.error.code, p.error.message])).toEqual([['MANIFEST_INVALID', expect.stringContaining(`object "server/BACKUP_MANIFEST" is not a data file the runner writes`) as string]]);
    expect(r.status).toBe('Succeeded');
  });
});
