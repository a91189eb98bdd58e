/**
 * rekey on in-memory storage: a copy encrypted for alice re-wrapped for bob
 * (only the header changes), the manifest switched only after the new object
 * was read back and checked, and every failure leaving the backup as it was.
 * Against the S3 server (server-side copy), the filesystem and the `age`
 * command: test/integration/encryption.test.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, it } from 'vitest';
import { AgeDecrypt, fingerprints, headerEnd } from '../../runner/crypto/age.js';
import { parseManifest, serializeManifest, type Manifest } from '../../runner/manifest.js';
import { signManifest } from '../../runner/crypto/signing.js';
import { listBackups } from '../../runner/ops/list.js';
import { runMirror } from '../../runner/ops/mirror.js';
import { runRekey } from '../../runner/ops/rekey.js';
import type { Location, Runtime } from '../../runner/runtime.js';
import { manifestKey, objectKey } from '../../runner/storage/layout.js';
import { MemoryStorage } from '../../runner/storage/memory.js';
import type { CallOptions, PutResult, Storage } from '../../runner/storage/types.js';
import { allKeys, writeBackup, locationsRuntime } from '../retention-fixtures.js';

let alice: { identity: string; recipient: string };
let bob: { identity: string; recipient: string };

beforeAll(async () => {
  const make = async () => {
    const identity = await generateX25519Identity();
    return { identity, recipient: await identityToRecipient(identity) };
  };
  alice = await make();
  bob = await make();
});

const scope = { prefix: 'enc', namespace: 'shop', name: 'orders' };
const ID = '20261121T100000Z-aaaa';
const PLAIN = `${ID}/data.dump.zst\n`;

function encrypted(storage: Storage, recipient: string): Location {
  const to = { recipients: [recipient] };
  return { name: 'enc', storage, scope, crypto: { to, encryption: { scheme: 'age', recipients: fingerprints(to) }, identityFiles: [] } };
}


/** A memory storage holding one backup encrypted for alice (written by mirroring a plain copy into it). */
async function aliceBackup(storage: Storage = new MemoryStorage(), extra: Partial<Runtime> = {}): Promise<Storage> {
  const plain: Location = { name: 'plain', storage: new MemoryStorage(), scope: { ...scope, prefix: 'plain' } };
  await writeBackup(plain, ID, new Date(Date.UTC(2026, 10, 21, 10)));
  const key = extra.signing?.key;
  if (key) {
    // This runner's own backup: signed with its key, so copies of it are signed too.
    const mk = manifestKey(plain.scope, ID);
    const m = parseManifest((await buffer(await plain.storage.get(mk))).toString(), 'test');
    await plain.storage.put(mk, serializeManifest(signManifest(m, key)));
  }
  const r = await runMirror(locationsRuntime([plain, encrypted(storage, alice.recipient)], { signing: extra.signing?.key ? { key: extra.signing.key } : {} }), { to: 'enc', scope: 'all', dryRun: false });
  if (r.locations[0]!.copied.length !== 1) throw new Error('setup failed');
  return storage;
}

async function manifestOf(storage: Storage): Promise<Manifest> {
  return parseManifest((await buffer(await storage.get(manifestKey(scope, ID)))).toString(), 'test');
}

async function decrypt(storage: Storage, name: string, identity: string): Promise<string> {
  return (await buffer((await storage.get(objectKey(scope, ID, name))).pipe(new AgeDecrypt({ identities: [identity] }, 'test')))).toString();
}

/** Overrides some calls of a storage. */
function wrap(inner: Storage, overrides: Partial<Storage>): Storage {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop in overrides) return overrides[prop as keyof Storage];
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('rekey', () => {
  it('re-wraps for the new recipients: a new header before the same payload, the manifest switched, the old object removed', async () => {
    const storage = await aliceBackup();
    const before = await manifestOf(storage);
    const old = await buffer(await storage.get(objectKey(scope, ID, 'data.dump.zst.age')));
    const rt = locationsRuntime([encrypted(storage, bob.recipient)]);

    const r = await runRekey(rt, { dryRun: false, identities: [alice.identity] });
    expect(r.objects).toMatchObject([{ backupId: ID, status: 'rekeyed', newName: 'data.dump.zst.rekeyed.age', serverSide: false, to: fingerprints({ recipients: [bob.recipient] }) }]);
    const after = await manifestOf(storage);
    expect(after.objects[0]).toMatchObject({ name: 'data.dump.zst.rekeyed.age', plain: before.objects[0]!.plain, encryption: { scheme: 'age', recipients: fingerprints({ recipients: [bob.recipient] }) } });
    expect(await allKeys(storage)).toEqual([objectKey(scope, ID, 'data.dump.zst.rekeyed.age'), manifestKey(scope, ID)]);

    const now = await buffer(await storage.get(objectKey(scope, ID, 'data.dump.zst.rekeyed.age')));
    expect(now.subarray(headerEnd(now)).equals(old.subarray(headerEnd(old)))).toBe(true);
    expect(await decrypt(storage, 'data.dump.zst.rekeyed.age', bob.identity)).toBe(PLAIN);
    await expect(decrypt(storage, 'data.dump.zst.rekeyed.age', alice.identity)).rejects.toMatchObject({ code: 'NO_MATCHING_IDENTITY' });
    expect((await listBackups(rt)).backups).toHaveLength(1);

    // Current now; a second rekey changes nothing. Back to alice: the name switches back.
    expect((await runRekey(rt, { dryRun: false, identities: [alice.identity] })).objects).toMatchObject([{ status: 'current' }]);
    const back = await runRekey(locationsRuntime([encrypted(storage, alice.recipient)]), { dryRun: false, identities: [bob.identity] });
    expect(back.objects).toMatchObject([{ status: 'rekeyed', newName: 'data.dump.zst.age' }]);
    expect(await decrypt(storage, 'data.dump.zst.age', alice.identity)).toBe(PLAIN);
  });

  it('a dry run plans and changes nothing', async () => {
    const storage = await aliceBackup();
    const keys = await allKeys(storage);
    const r = await runRekey(locationsRuntime([encrypted(storage, bob.recipient)]), { dryRun: true });
    expect(r.objects).toMatchObject([{ status: 'planned', newName: 'data.dump.zst.rekeyed.age' }]);
    expect(await allKeys(storage)).toEqual(keys);
  });

  it('without an identity of the old recipients: NO_MATCHING_IDENTITY, nothing written', async () => {
    const storage = await aliceBackup();
    const keys = await allKeys(storage);
    const r = await runRekey(locationsRuntime([encrypted(storage, bob.recipient)]), { dryRun: false });
    expect(r.objects).toMatchObject([{ status: 'failed', error: { code: 'NO_MATCHING_IDENTITY' } }]);
    const wrong = await runRekey(locationsRuntime([encrypted(storage, bob.recipient)]), { dryRun: false, identities: [bob.identity] });
    expect(wrong.objects).toMatchObject([{ status: 'failed', error: { code: 'NO_MATCHING_IDENTITY' } }]);
    expect(await allKeys(storage)).toEqual(keys);
  });

  it('a manifest that cannot be written: the backup stays as it was, the new object is removed', async () => {
    const inner = await aliceBackup();
    const before = await manifestOf(inner);
    const storage = wrap(inner, {
      put: (key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult> =>
        key.endsWith('manifest.json') ? Promise.reject(Object.assign(new Error('no space'), { code: 'ENOSPC' })) : inner.put(key, body, opts),
    });
    const r = await runRekey(locationsRuntime([encrypted(storage, bob.recipient)]), { dryRun: false, identities: [alice.identity] });
    expect(r.objects).toMatchObject([{ status: 'failed' }]);
    expect(await manifestOf(inner)).toEqual(before);
    expect(await allKeys(inner)).toEqual([objectKey(scope, ID, 'data.dump.zst.age'), manifestKey(scope, ID)].sort());
    expect(await decrypt(inner, 'data.dump.zst.age', alice.identity)).toBe(PLAIN);
  });

  it('a manifest write that failed but landed counts as done: the backup is re-wrapped, nothing is lost', async () => {
    const inner = await aliceBackup();
    const storage = wrap(inner, {
      put: async (key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult> => {
        const r = await inner.put(key, body, opts);
        if (key.endsWith('manifest.json')) throw Object.assign(new Error('connection reset after the write'), { code: 'ECONNRESET' });
        return r;
      },
    });
    const r = await runRekey(locationsRuntime([encrypted(storage, bob.recipient)]), { dryRun: false, identities: [alice.identity] });
    expect(r.objects).toMatchObject([{ status: 'rekeyed' }]);
    expect((await manifestOf(inner)).objects[0]!.name).toBe('data.dump.zst.rekeyed.age');
    expect(await decrypt(inner, 'data.dump.zst.rekeyed.age', bob.identity)).toBe(PLAIN);
  });

  it('leaves a directory alone when an object its manifest names is missing (another rekey may be half way)', async () => {
    const storage = await aliceBackup();
    const named = objectKey(scope, ID, 'data.dump.zst.age');
    const other = objectKey(scope, ID, 'data.dump.zst.rekeyed.age');
    await storage.put(other, await buffer(await storage.get(named)));
    await storage.delete(named);
    const r = await runRekey(locationsRuntime([encrypted(storage, alice.recipient)]), { dryRun: false });
    expect(r.leftovers).toEqual([]);
    expect(await allKeys(storage)).toContain(other);
  });

  it('a new object that does not read back right is never named by the manifest', async () => {
    const inner = await aliceBackup();
    const before = await manifestOf(inner);
    const storage = wrap(inner, {
      put: async (key: string, body: Readable | Buffer, opts?: CallOptions): Promise<PutResult> => {
        if (!key.endsWith('.rekeyed.age')) return inner.put(key, body, opts);
        const data = Buffer.isBuffer(body) ? body : await buffer(body);
        data.writeUInt8(data.readUInt8(data.length - 20) ^ 1, data.length - 20); // one payload byte flipped on the way
        return inner.put(key, data, opts);
      },
    });
    const r = await runRekey(locationsRuntime([encrypted(storage, bob.recipient)]), { dryRun: false, identities: [alice.identity] });
    expect(r.objects).toMatchObject([{ status: 'failed', error: { code: 'INTEGRITY' } }]);
    expect(await manifestOf(inner)).toEqual(before);
    expect(await allKeys(inner)).not.toContain(objectKey(scope, ID, 'data.dump.zst.rekeyed.age'));
  });

  it('removes an object an interrupted rekey left beside the manifest (a dry run only names it)', async () => {
    const storage = await aliceBackup();
    const stray = objectKey(scope, ID, 'data.dump.zst.rekeyed.age');
    await storage.put(stray, Buffer.from('left over'));
    const rt = locationsRuntime([encrypted(storage, alice.recipient)]);
    expect((await runRekey(rt, { dryRun: true })).leftovers).toEqual([stray]);
    expect(await allKeys(storage)).toContain(stray);
    const r = await runRekey(rt, { dryRun: false });
    expect(r.objects).toMatchObject([{ status: 'current' }]);
    expect(r.leftovers).toEqual([stray]);
    expect(await allKeys(storage)).not.toContain(stray);
  });

  it('where manifests must be signed and no signing key is configured: refused before anything is written', async () => {
    const keys = generateKeyPairSync('ed25519');
    const storage = await aliceBackup(new MemoryStorage(), { signing: { key: keys.privateKey } });
    const before = await allKeys(storage);
    const verifyOnly = locationsRuntime([encrypted(storage, bob.recipient)], { signing: { trust: [keys.publicKey] } });
    const r = await runRekey(verifyOnly, { dryRun: false, identities: [alice.identity] });
    expect(r.objects).toMatchObject([{ status: 'failed', error: { code: 'CONFIG_INVALID', message: expect.stringContaining('no signing.key') as string } }]);
    expect(await allKeys(storage)).toEqual(before);

    // With the key: re-signed, and still believed.
    const signed = locationsRuntime([encrypted(storage, bob.recipient)], { signing: { key: keys.privateKey, trust: [keys.publicKey] } });
    expect((await runRekey(signed, { dryRun: false, identities: [alice.identity] })).objects).toMatchObject([{ status: 'rekeyed' }]);
    expect((await listBackups(verifyOnly)).backups).toHaveLength(1);
  });

  it('names a location that does not exist or does not encrypt', async () => {
    const plain: Location = { name: 'plain', storage: new MemoryStorage(), scope };
    const rt = locationsRuntime([plain, encrypted(new MemoryStorage(), alice.recipient)]);
    await expect(runRekey(rt, { dryRun: false, location: 'nope' })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('no such location') as string });
    await expect(runRekey(rt, { dryRun: false, location: 'plain' })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('does not encrypt') as string });
    await expect(runRekey(rt, { dryRun: false, id: '20991121T100000Z-ffff' })).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' });
  });
});
