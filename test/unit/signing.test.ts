import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, checkSignature, keyId, signManifest, signingKey, verificationKey } from '../../runner/crypto/signing.js';

const pair = () => generateKeyPairSync('ed25519');
const pem = (k: KeyObject) => k.export({ type: k.type === 'private' ? 'pkcs8' : 'spki', format: 'pem' }).toString();
const manifest = () => ({ formatVersion: 2, kind: 'backup', id: '20261203T185900Z-e278', namespace: 'shop', name: 'orders', objects: [{ name: 'data.dump.zst', size: 3, sha256: 'ab' }] });

describe('canonical JSON (what a signature covers)', () => {
  it.each<[unknown, string]>([
    [{ b: 1, a: [true, null, 'x'], c: { z: 1, y: { x: 2 } } }, '{"a":[true,null,"x"],"b":1,"c":{"y":{"x":2},"z":1}}'],
    [{ 'ü': 'é', a: '"\n' }, '{"a":"\\"\\n","ü":"é"}'],
    [{ gone: undefined, kept: 0 }, '{"kept":0}'],
    [[], '[]'],
  ])('%j', (value, want) => {
    expect(canonicalJson(value)).toBe(want);
  });
});

describe('signed manifests', () => {
  const mine = pair();
  const theirs = pair();

  it('a signed manifest is believed by its key, whatever the order of its fields on the way back', () => {
    const signed = signManifest(manifest(), mine.privateKey);
    expect(signed.signature.keyId).toBe(keyId(mine.publicKey));
    expect(signed.signature.keyId).toMatch(/^sha256:[0-9a-f]{16}$/);
    const { objects, ...rest } = manifest();
    const reordered = JSON.parse(JSON.stringify({ signature: signed.signature, objects, ...rest })) as unknown;
    expect(checkSignature(reordered, [theirs.publicKey, mine.publicKey])).toEqual({ ok: true, keyId: keyId(mine.publicKey) });
  });

  it.each<[string, (m: Record<string, unknown>) => void, string, RegExp]>([
    ['unsigned', (m) => delete m.signature, 'MANIFEST_UNSIGNED', /not signed/],
    ['a field changed', (m) => (m.id = '20261203T185901Z-e278'), 'MANIFEST_SIGNATURE_INVALID', /does not match its content/],
    ['an object size changed', (m) => ((m.objects as { size: number }[])[0]!.size = 4), 'MANIFEST_SIGNATURE_INVALID', /does not match its content/],
    ['a field added (even one this runner does not know)', (m) => (m.extra = 1), 'MANIFEST_SIGNATURE_INVALID', /does not match its content/],
    ['the signature value altered', (m) => ((m.signature as { value: string }).value = Buffer.alloc(64).toString('base64')), 'MANIFEST_SIGNATURE_INVALID', /does not match/],
    ['a malformed signature', (m) => (m.signature = 'yes'), 'MANIFEST_SIGNATURE_INVALID', /malformed/],
  ])('%s: %s', (_what, alter, code, why) => {
    const m = JSON.parse(JSON.stringify(signManifest(manifest(), mine.privateKey))) as Record<string, unknown>;
    alter(m);
    expect(checkSignature(m, [mine.publicKey])).toEqual({ ok: false, code, why: expect.stringMatching(why) });
  });

  it('signed by another DatabaseBackup\'s key: invalid here, naming both keys', () => {
    const m = signManifest(manifest(), theirs.privateKey);
    const c = checkSignature(m, [mine.publicKey]);
    expect(c).toMatchObject({ ok: false, code: 'MANIFEST_SIGNATURE_INVALID' });
    expect(c.ok ? '' : c.why).toContain(keyId(theirs.publicKey));
    expect(c.ok ? '' : c.why).toContain(keyId(mine.publicKey));
  });

  it('a forged keyId does not help: the signature is checked with the key the id names', () => {
    const m = signManifest(manifest(), theirs.privateKey);
    m.signature.keyId = keyId(mine.publicKey);
    expect(checkSignature(m, [mine.publicKey])).toMatchObject({ ok: false, code: 'MANIFEST_SIGNATURE_INVALID', why: expect.stringMatching(/does not match/) });
  });
});

describe('keys from configuration', () => {
  it('reads Ed25519 PEM keys; the key id is the same from the private and the public key', () => {
    const { privateKey, publicKey } = pair();
    expect(keyId(signingKey(pem(privateKey), 'signing.key'))).toBe(keyId(verificationKey(pem(publicKey), 'signing.verify[0]')));
    expect(keyId(createPublicKey(privateKey))).toBe(keyId(publicKey));
  });

  it.each<[string, () => string, 'key' | 'verify', RegExp]>([
    ['not PEM', () => 'hello', 'key', /signing.key: not a PEM private key/],
    ['an RSA key', () => pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey), 'key', /an rsa key; manifests are signed with Ed25519/],
    ['a private key as a verification key', () => pem(pair().privateKey), 'verify', /signing.verify\[0\]: a private key: give its public key/],
    ['an X25519 public key', () => pem(generateKeyPairSync('x25519').publicKey), 'verify', /not an Ed25519 public key/],
  ])('%s is CONFIG_INVALID naming the field, never quoting the key', (_what, text, which, message) => {
    const t = text();
    const read = () => (which === 'key' ? signingKey(t, 'signing.key') : verificationKey(t, 'signing.verify[0]'));
    expect(read).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(message) }));
    try {
      read();
    } catch (err) {
      expect((err as Error).message).not.toContain('PRIVATE KEY');
    }
  });
});
