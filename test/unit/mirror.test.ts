/**
 * Mirroring between locations, on in-memory storage: which backups a target
 * lacks and where each comes from (pure plan), how each object travels
 * (as stored, encrypted, decrypted, re-encrypted), the order of writes (data
 * first, manifest last), a corrupt source, and manifests that name objects
 * outside their directory. The same paths against the S3 server, the GCS
 * emulator and the filesystem: test/integration/mirror.test.ts.
 */
import { createHash } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, it } from 'vitest';
import { AgeDecrypt, fingerprints } from '../../runner/crypto/age.js';
import { parseManifest, serializeManifest, type Manifest } from '../../runner/manifest.js';
import { listBackups, type Listing } from '../../runner/ops/list.js';
import { copyMode, planMirror, runMirror } from '../../runner/ops/mirror.js';
import type { Location } from '../../runner/runtime.js';
import { manifestKey, objectKey } from '../../runner/storage/layout.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import type { CallOptions, PutResult, Storage } from '../../runner/storage/types.js';
import { allKeys as listKeys, locationsRuntime, manifestFor, writeBackup } from '../retention-fixtures.js';
import type { Readable } from 'node:stream';

const scope = (prefix: string) => ({ prefix, namespace: 'shop', name: 'orders' });
let alice: { identity: string; recipient: string };
let bob: { identity: string; recipient: string };

beforeAll(async () => {
  for (const who of ['alice', 'bob'] as const) {
    const identity = await generateX25519Identity();
    const k = { identity, recipient: await identityToRecipient(identity) };
    if (who === 'alice') alice = k;
    else bob = k;
  }
});

/** A storage that records each completed put's key, in order. */
function putLog(inner: Storage): { storage: Storage; puts: string[] } {
  const puts: string[] = [];
  const storage = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'put') {
        return async (key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult> => {
          const r = await target.put(key, body, opts);
          puts.push(key);
          return r;
        };
      }
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { storage, puts };
}

function location(name: string, storage: Storage, recipients?: string[], identityFiles: string[] = []): Location {
  const to = recipients ? { recipients } : undefined;
  return { name, storage, scope: scope(name), ...(to ? { crypto: { to, encryption: { scheme: 'age' as const, recipients: fingerprints(to) }, identityFiles } } : {}) };
}


const at = (minute: number) => new Date(Date.UTC(2026, 10, 21, 10, minute));
const id = (minute: number) => `20261121T10${String(minute).padStart(2, '0')}00Z-aaaa`;

async function manifestIn(loc: Location, backupId: string): Promise<Manifest> {
  return parseManifest((await buffer(await loc.storage.get(manifestKey(loc.scope, backupId)))).toString(), loc.name);
}

describe('copyMode', () => {
  const plain = { name: 'data.dump.zst', size: 1, sha256: '0'.repeat(64), plain: { size: 1, sha256: '0'.repeat(64) }, compression: { algorithm: 'zstd' } };
  const forRecipients = (r: string[]) => ({ scheme: 'age' as const, recipients: fingerprints({ recipients: r }) });
  it.each([
    ['plain to plain', 'none', undefined, 'as stored'],
    ['plain to encrypted', 'none', ['a'], 'encrypt'],
    ['encrypted to plain', ['a'], undefined, 'decrypt'],
    ['encrypted to the same recipients', ['a', 'b'], ['b', 'a'], 'as stored'],
    ['encrypted to other recipients', ['a'], ['b'], 're-encrypt'],
    ['encrypted to fewer recipients', ['a', 'b'], ['a'], 're-encrypt'],
  ] as const)('%s: %s', (_what, has, want, mode) => {
    const names = { a: 'age1a', b: 'age1b' } as Record<string, string>;
    const object = { ...plain, encryption: has === 'none' ? { scheme: 'none' as const } : forRecipients(has.map((h) => names[h]!)) };
    const src = location('src', new MemoryStorage());
    const dst = location('dst', new MemoryStorage(), want?.map((w) => names[w]!));
    expect(copyMode(object, src, dst)).toBe(mode);
  });

  it('a passphrase is copied as stored only when both locations use the same one', () => {
    const object = { ...plain, encryption: { scheme: 'age' as const, recipients: ['passphrase'] } };
    const withPass = (name: string, passphrase: string): Location => ({ name, storage: new MemoryStorage(), scope: scope(name), crypto: { to: { passphrase }, encryption: { scheme: 'age', recipients: ['passphrase'] }, identityFiles: [] } });
    expect(copyMode(object, withPass('a', 'one'), withPass('b', 'one'))).toBe('as stored');
    expect(copyMode(object, withPass('a', 'one'), withPass('b', 'two'))).toBe('re-encrypt');
  });
});

describe('planMirror', () => {
  /** A listing: `held[location]` = minutes of the backups it holds. */
  function listing(held: Record<string, number[]>, problems: Listing['problems'] = []): { listing: Listing; locations: Location[] } {
    const locations = Object.keys(held).map((n) => location(n, new MemoryStorage()));
    const minutes = [...new Set(Object.values(held).flat())].sort((a, b) => a - b);
    const backups = minutes.map((m) => {
      const where = Object.keys(held).filter((n) => held[n]!.includes(m));
      const manifest = manifestFor(scope(''), id(m), at(m), { 'data.dump.zst': Buffer.from('x') });
      return { id: id(m), manifest, locations: where, copies: where.map((w) => ({ location: w, dir: `${w}/shop/orders/backups/${id(m)}/`, manifest })) };
    });
    return { listing: { backups, future: [], problems, signatures: 'not checked' }, locations };
  }
  const ids = (p: { planned: { id: string }[] }) => p.planned.map((x) => x.id);

  it('all: every backup the others hold, newest first; missed: only those newer than the oldest the target holds', () => {
    const { listing: l, locations } = listing({ a: [1, 2, 3, 4, 5], b: [3, 5] });
    const b = locations[1]!;
    expect(ids(planMirror(l, locations, b, { scope: 'all' }))).toEqual([id(4), id(2), id(1)]);
    expect(ids(planMirror(l, locations, b, { scope: 'missed' }))).toEqual([id(4)]);
    expect(ids(planMirror(l, locations, locations[0]!, { scope: 'all' }))).toEqual([]);
  });

  it('missed: a location holding nothing gets nothing until asked (a new location is filled on request)', () => {
    const { listing: l, locations } = listing({ a: [1, 2], b: [] });
    expect(ids(planMirror(l, locations, locations[1]!, { scope: 'missed' }))).toEqual([]);
    expect(ids(planMirror(l, locations, locations[1]!, { scope: 'all' }))).toEqual([id(2), id(1)]);
  });

  it('from: only backups that location holds', () => {
    const { listing: l, locations } = listing({ a: [1], b: [2], c: [] });
    expect(ids(planMirror(l, locations, locations[2]!, { scope: 'all', from: 'b' }))).toEqual([id(2)]);
  });

  it('a backup whose manifest in the target could not be read is skipped, never overwritten', () => {
    const key = `c/shop/orders/backups/${id(1)}/manifest.json`;
    const { listing: l, locations } = listing({ a: [1, 2], c: [] }, [{ location: 'c', key, error: { code: 'STORAGE_UNAVAILABLE', message: 'timeout' } as never }]);
    const plan = planMirror(l, locations, locations[1]!, { scope: 'all' });
    expect(ids(plan)).toEqual([id(2)]);
    expect(plan.skipped).toEqual([{ id: id(1), reason: expect.stringContaining('STORAGE_UNAVAILABLE') as string }]);
  });

  it('prefers a source it can copy as stored over one it would have to decrypt', () => {
    const { listing: l } = listing({ enc: [1], plain: [1], dst: [] });
    const locs = [location('enc', new MemoryStorage(), ['age1x']), location('plain', new MemoryStorage()), location('dst', new MemoryStorage())];
    l.backups[0]!.copies[0]!.manifest = { ...l.backups[0]!.manifest, objects: [{ ...l.backups[0]!.manifest.objects[0]!, encryption: { scheme: 'age', recipients: fingerprints({ recipients: ['age1x'] }) } }] };
    expect(planMirror(l, locs, locs[2]!, { scope: 'all' }).planned[0]!.sources.map((s) => [s.location, s.mode])).toEqual([
      ['plain', 'as stored'],
      ['enc', 'decrypt'],
    ]);
  });
});

describe('runMirror', () => {
  it('copies data first and the manifest last, keeps an unchanged manifest as it is, and is idempotent', async () => {
    const a = location('a', new MemoryStorage());
    const log = putLog(new MemoryStorage());
    const b = location('b', log.storage);
    const rt = locationsRuntime([a, b]);
    for (const m of [1, 2, 3]) await writeBackup(a, id(m), at(m));
    const r = await runMirror(rt, { to: 'b', scope: 'all', dryRun: false });
    expect(r.locations[0]!.copied.map((c) => [c.id, c.mode])).toEqual([
      [id(3), 'as stored'],
      [id(2), 'as stored'],
      [id(1), 'as stored'],
    ]);
    expect(log.puts).toEqual([3, 2, 1].flatMap((m) => [objectKey(b.scope, id(m), 'data.dump.zst'), manifestKey(b.scope, id(m))]));
    expect(await manifestIn(b, id(2))).toEqual(await manifestIn(a, id(2)));
    expect((await listBackups(rt)).backups.map((x) => x.locations)).toEqual([['a', 'b'], ['a', 'b'], ['a', 'b']]);

    const again = await runMirror(rt, { to: 'b', scope: 'all', dryRun: false });
    expect(again.locations[0]!.planned).toEqual([]);
    expect(log.puts).toHaveLength(6);
  });

  it('a dry run plans and writes nothing', async () => {
    const a = location('a', new MemoryStorage());
    const log = putLog(new MemoryStorage());
    const rt = locationsRuntime([a, location('b', log.storage)]);
    await writeBackup(a, id(1), at(1));
    const r = await runMirror(rt, { to: 'b', scope: 'all', dryRun: true });
    expect(r.locations[0]!.planned).toEqual([{ id: id(1), from: 'a', mode: 'as stored' }]);
    expect(log.puts).toEqual([]);
  });

  it('encrypts for the target, decrypts with an identity, and re-encrypts for other recipients; the plain bytes stay the same', async () => {
    const plain = location('plain', new MemoryStorage());
    const enc = location('enc', new MemoryStorage(), [alice.recipient]);
    const other = location('other', new MemoryStorage(), [bob.recipient]);
    const back = location('back', new MemoryStorage());
    const rt = locationsRuntime([plain, enc, other, back]);
    await writeBackup(plain, id(1), at(1));
    const original = await manifestIn(plain, id(1));

    expect((await runMirror(rt, { to: 'enc', scope: 'all', dryRun: false })).locations[0]!.copied[0]!.mode).toBe('encrypt');
    const m = await manifestIn(enc, id(1));
    expect(m.objects[0]).toMatchObject({ name: 'data.dump.zst.age', plain: original.objects[0]!.plain, encryption: { scheme: 'age', recipients: fingerprints({ recipients: [alice.recipient] }) } });
    const stored = await buffer(await enc.storage.get(objectKey(enc.scope, id(1), 'data.dump.zst.age')));
    expect(createHash('sha256').update(stored).digest('hex')).toBe(m.objects[0]!.sha256);

    // From `enc` only: without a key it cannot be read, with one it is re-encrypted for bob.
    const noKey = await runMirror(rt, { to: 'other', from: 'enc', scope: 'all', dryRun: false });
    expect(noKey.locations[0]!.failed[0]!.error.code).toBe('NO_MATCHING_IDENTITY');
    expect((await listBackups(rt)).backups[0]!.locations).not.toContain('other');
    const withKey = await runMirror(rt, { to: 'other', from: 'enc', scope: 'all', dryRun: false, identities: [alice.identity] });
    expect(withKey.locations[0]!.copied[0]!.mode).toBe('re-encrypt');
    const decrypted = await buffer((await other.storage.get(objectKey(other.scope, id(1), 'data.dump.zst.age'))).pipe(new AgeDecrypt({ identities: [bob.identity] }, 'test')));
    expect(decrypted.toString()).toBe(`${id(1)}/data.dump.zst\n`);

    const r = await runMirror(rt, { to: 'back', from: 'other', scope: 'all', dryRun: false, identities: [bob.identity] });
    expect(r.locations[0]!.copied[0]!.mode).toBe('decrypt');
    expect((await manifestIn(back, id(1))).objects).toEqual(original.objects);
  });

  it('a source copy that does not match its manifest is never propagated: the next location holding it is used', async () => {
    const bad = location('bad', new MemoryStorage());
    const good = location('good', new MemoryStorage());
    const log = putLog(new MemoryStorage());
    const dst = location('dst', log.storage);
    const rt = locationsRuntime([bad, good, dst]);
    await writeBackup(bad, id(1), at(1));
    await writeBackup(good, id(1), at(1));
    await bad.storage.put(objectKey(bad.scope, id(1), 'data.dump.zst'), Buffer.from(`${id(1)}/data.dump.zsT\n`)); // same size, one byte flipped

    const onlyBad = await runMirror(rt, { to: 'dst', from: 'bad', scope: 'all', dryRun: false });
    expect(onlyBad.locations[0]!.failed[0]!.error.code).toBe('INTEGRITY');
    expect(log.puts).toEqual([]);

    const r = await runMirror(rt, { to: 'dst', scope: 'all', dryRun: false });
    expect(r.locations[0]!.copied).toMatchObject([{ id: id(1), from: 'good' }]);
  });

  it('stops for a target that fails, and reports it', async () => {
    const a = location('a', new MemoryStorage());
    const broken = new MemoryStorage();
    broken.put = () => Promise.reject(Object.assign(new Error('disk on fire'), { code: 'EIO' }));
    const rt = locationsRuntime([a, location('b', broken)]);
    for (const m of [1, 2]) await writeBackup(a, id(m), at(m));
    const r = await runMirror(rt, { to: 'b', scope: 'all', dryRun: false });
    expect(r.locations[0]!.failed).toHaveLength(1);
    expect(r.locations[0]!.error).toBeDefined();
  });

  it('healing (every location, missed backups) passes over a location with heal: false; asked for by name, it is filled', async () => {
    const a = location('a', new MemoryStorage());
    const b = { ...location('b', new MemoryStorage()), heal: false };
    const rt = locationsRuntime([a, b]);
    for (const m of [1, 2]) await writeBackup(a, id(m), at(m));
    await writeBackup(b, id(1), at(1));
    expect((await runMirror(rt, { scope: 'missed', dryRun: false })).locations.map((l) => l.location)).toEqual(['a']);
    expect((await runMirror(rt, { to: 'b', scope: 'missed', dryRun: false })).locations[0]!.copied.map((c) => c.id)).toEqual([id(2)]);
  });

  it('a manifest write that failed but landed counts as copied; one that did not land takes its data with it', async () => {
    const a = location('a', new MemoryStorage());
    const inner = new MemoryStorage();
    let landed = true;
    const flaky = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'put') {
          return async (key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult> => {
            if (!key.endsWith('manifest.json')) return target.put(key, body, opts);
            if (landed) await target.put(key, body, opts);
            throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
          };
        }
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
      },
    });
    const b = location('b', flaky);
    const rt = locationsRuntime([a, b]);
    await writeBackup(a, id(1), at(1));
    expect((await runMirror(rt, { to: 'b', scope: 'all', dryRun: false })).locations[0]!.copied.map((c) => c.id)).toEqual([id(1)]);
    expect((await listBackups(rt)).backups[0]!.locations).toEqual(['a', 'b']);

    landed = false;
    await writeBackup(a, id(2), at(2));
    const r = await runMirror(rt, { to: 'b', scope: 'all', dryRun: false });
    expect(r.locations[0]!.failed.map((f) => f.id)).toEqual([id(2)]);
    expect((await listKeys(inner)).filter((k) => k.includes(id(2)))).toEqual([]);
  });

  it('gives way between backups when asked (healing, with a backup waiting)', async () => {
    const a = location('a', new MemoryStorage());
    const rt = locationsRuntime([a, location('b', new MemoryStorage())]);
    for (const m of [1, 2, 3]) await writeBackup(a, id(m), at(m));
    let asked = 0;
    const r = await runMirror(rt, { to: 'b', scope: 'all', dryRun: false, yieldIf: () => ++asked > 1 });
    expect(r.locations[0]).toMatchObject({ yielded: true, copied: [{ id: id(3) }] });
  });

  it('names unknown locations, and refuses to fill a location from itself', async () => {
    const rt = locationsRuntime([location('a', new MemoryStorage()), location('b', new MemoryStorage())]);
    await expect(runMirror(rt, { to: 'c', scope: 'all', dryRun: false })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('--to c: no such location') as string });
    await expect(runMirror(rt, { to: 'a', from: 'a', scope: 'all', dryRun: false })).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('a manifest naming objects outside its directory', () => {
  it.each(['../../other/backups/x/data.dump.zst', 'manifest.json', 'data.dump.zst/../../x', 'notes.txt'])('%s: not a backup, never read or copied', async (name) => {
    const a = location('a', new MemoryStorage());
    const log = putLog(new MemoryStorage());
    const rt = locationsRuntime([a, location('b', log.storage)]);
    const m = manifestFor(a.scope, id(1), at(1), { 'data.dump.zst': Buffer.from('x') });
    m.objects[0]!.name = name;
    await a.storage.put(manifestKey(a.scope, id(1)), serializeManifest(m));
    const l = await listBackups(rt);
    expect(l.backups).toEqual([]);
    expect(l.problems[0]!.error.code).toBe('MANIFEST_INVALID');
    await runMirror(rt, { to: 'b', scope: 'all', dryRun: false });
    expect(log.puts).toEqual([]);
  });
});

describe('a manifest naming the same object with and without the encryption suffix', () => {
  it('is not a backup (a copy into another location would merge the two)', async () => {
    const a = location('a', new MemoryStorage());
    const m = manifestFor(a.scope, id(1), at(1), { 'data.dump.zst': Buffer.from('x'), 'data.dump.zst.age': Buffer.from('y') });
    await a.storage.put(manifestKey(a.scope, id(1)), serializeManifest(m));
    const l = await listBackups(locationsRuntime([a]));
    expect(l.backups).toEqual([]);
    expect(l.problems[0]!.error).toMatchObject({ code: 'MANIFEST_INVALID', message: expect.stringContaining('names an object twice') as string });
  });
});

describe('signed manifests', () => {
  it('a copy that changes the manifest is refused where manifests must be signed and no signing key is configured', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { signManifest } = await import('../../runner/crypto/signing.js');
    const keys = generateKeyPairSync('ed25519');
    const a = location('a', new MemoryStorage());
    const b = location('b', new MemoryStorage(), [alice.recipient]);
    const rt = { ...locationsRuntime([a, b]), signing: { trust: [keys.publicKey] } };
    const m = manifestFor(a.scope, id(1), at(1), { 'data.dump.zst': Buffer.from(`${id(1)}/data.dump.zst\n`) });
    await a.storage.put(objectKey(a.scope, id(1), 'data.dump.zst'), Buffer.from(`${id(1)}/data.dump.zst\n`));
    await a.storage.put(manifestKey(a.scope, id(1)), serializeManifest(signManifest(m, keys.privateKey)));
    const r = await runMirror(rt, { to: 'b', scope: 'all', dryRun: false });
    expect(r.locations[0]!.error).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('no signing.key') as string });

    // With the key: re-signed, and believed.
    const signed = await runMirror({ ...rt, signing: { key: keys.privateKey, trust: [keys.publicKey] } }, { to: 'b', scope: 'all', dryRun: false });
    expect(signed.locations[0]!.copied).toHaveLength(1);
    expect((await listBackups(rt)).backups[0]!.locations).toEqual(['a', 'b']);
  });

  it('a runner that signs but does not verify never signs a manifest it did not sign (one planted in its bucket)', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const keys = generateKeyPairSync('ed25519');
    const a = location('a', new MemoryStorage());
    const b = location('b', new MemoryStorage(), [alice.recipient]);
    await writeBackup(a, id(1), at(1)); // unsigned: not this runner's
    const rt = locationsRuntime([a, b], { signing: { key: keys.privateKey } });
    expect((await runMirror(rt, { to: 'b', scope: 'all', dryRun: false })).locations[0]!.copied).toHaveLength(1);
    expect(await manifestIn(b, id(1))).not.toHaveProperty('signature');
  });

  it('a copy as stored keeps the signature, so a runner without a signing key can mirror', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { signManifest } = await import('../../runner/crypto/signing.js');
    const keys = generateKeyPairSync('ed25519');
    const a = location('a', new MemoryStorage());
    const b = location('b', new MemoryStorage());
    const rt = { ...locationsRuntime([a, b]), signing: { trust: [keys.publicKey] } };
    const data = Buffer.from('payload');
    await a.storage.put(objectKey(a.scope, id(1), 'data.dump.zst'), data);
    await a.storage.put(manifestKey(a.scope, id(1)), serializeManifest(signManifest(manifestFor(a.scope, id(1), at(1), { 'data.dump.zst': data }), keys.privateKey)));
    expect((await runMirror(rt, { to: 'b', scope: 'all', dryRun: false })).locations[0]!.copied).toHaveLength(1);
    expect((await listBackups(rt)).backups[0]!.locations).toEqual(['a', 'b']);
  });
});

