/**
 * The age format as the runner writes and reads it, proven against the
 * age-encryption package (the well-kept implementation) in both directions
 * and against the official test vectors (cctv-age). The `age` command is
 * the third witness, in test/integration/encryption.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { inflateSync } from 'node:zlib';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import * as vectors from 'cctv-age';
import { describe, expect, it } from 'vitest';
import { AgeDecrypt, AgeEncrypt, encryptedSize, headerEnd, MAX_HEADER_BYTES, parseRecipient, recipientFingerprint, rewrapHeader, type AgeIdentities, type AgeRecipients } from '../../runner/crypto/age.js';

const CHUNK = 64 * 1024;

/** Feeds `data` in pieces of random sizes, as a network stream would. */
function pieces(data: Buffer): Readable {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const n = 1 + Math.floor(Math.random() * 40_000);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return Readable.from(out);
}

async function encrypt(data: Buffer, to: AgeRecipients): Promise<Buffer> {
  const e = new AgeEncrypt(to);
  const [out] = await Promise.all([buffer(e), pipeline(pieces(data), e)]);
  return out;
}

async function decrypt(file: Buffer, keys: AgeIdentities): Promise<Buffer> {
  const d = new AgeDecrypt(keys, 'fs: k');
  const [out] = await Promise.all([buffer(d), pipeline(pieces(file), d)]);
  return out;
}

async function keyPair(): Promise<{ identity: string; recipient: string }> {
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}

const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17, 300_000];

describe('age: what the runner writes, the age-encryption package reads', () => {
  it.each(SIZES)('%i bytes, two X25519 recipients: each identity decrypts it; the size is as computed', async (size) => {
    const [a, b] = [await keyPair(), await keyPair()];
    const data = randomBytes(size);
    const file = await encrypt(data, { recipients: [a.recipient, b.recipient] });
    for (const who of [a, b]) {
      const d = new Decrypter();
      d.addIdentity(who.identity);
      expect(Buffer.from(await d.decrypt(file))).toEqual(data);
    }
    expect(file.length).toBe(encryptedSize(size, headerEnd(file)));
  });

  it('a passphrase (scrypt) recipient', async () => {
    const data = randomBytes(100_000);
    const file = await encrypt(data, { passphrase: 'correct horse battery staple', workFactor: 10 });
    expect(file.toString('latin1', 0, 200)).toMatch(/^age-encryption\.org\/v1\n-> scrypt [A-Za-z0-9+/]{22} 10\n/);
    const d = new Decrypter();
    d.addPassphrase('correct horse battery staple');
    expect(Buffer.from(await d.decrypt(file))).toEqual(data);
  });
});

describe('age: what the package writes, the runner reads', () => {
  it.each(SIZES)('%i bytes', async (size) => {
    const me = await keyPair();
    const data = randomBytes(size);
    const e = new Encrypter();
    e.addRecipient(me.recipient);
    const file = Buffer.from(await e.encrypt(data));
    expect(await decrypt(file, { identities: [me.identity] })).toEqual(data);
  });

  it('with a passphrase', async () => {
    const e = new Encrypter();
    e.setPassphrase('break glass');
    e.setScryptWorkFactor(10);
    const file = Buffer.from(await e.encrypt('hello'));
    expect((await decrypt(file, { identities: [], passphrases: ['break glass'] })).toString()).toBe('hello');
  });
});

describe('age: the official test vectors (cctv-age)', () => {
  const all = Object.entries(vectors as Record<string, Uint8Array>).map(([name, bytes]) => {
    const raw = Buffer.from(bytes);
    const split = raw.indexOf('\n\n');
    const lines = raw.subarray(0, split).toString('latin1').split('\n').map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)] as const);
    const meta = Object.fromEntries(lines) as Record<string, string>;
    const identities = lines.filter(([k]) => k === 'identity').map(([, v]) => v);
    const body = raw.subarray(split + 2);
    return { name, meta, identities, file: meta.compressed === 'zlib' ? inflateSync(body) : body };
  });
  // Armored files are not what a location holds; every other vector is decrypted.
  const usable = all.filter((v) => v.meta.armored !== 'yes' && !v.meta.expect!.startsWith('armor'));

  it('covers every outcome but armor', () => {
    expect(new Set(usable.map((v) => v.meta.expect))).toEqual(new Set(['success', 'header failure', 'payload failure', 'no match', 'HMAC failure']));
    expect(usable.length).toBeGreaterThan(100);
  });

  it.each(usable.map((v) => [v.name, v] as const))('%s', async (_name, v) => {
    const keys: AgeIdentities = { identities: v.identities, passphrases: v.meta.passphrase ? [v.meta.passphrase] : [] };
    const run = decrypt(v.file, keys);
    if (v.meta.expect === 'success') {
      expect(createHash('sha256').update(await run).digest('hex')).toBe(v.meta.payload);
    } else if (v.meta.expect === 'payload failure') {
      await expect(run).rejects.toMatchObject({ code: 'INTEGRITY' });
    } else {
      // A malformed stanza matches no identity: for the package that is "no match" as well (the manifest's fingerprints tell tampering apart, below).
      await expect(run).rejects.toMatchObject({ code: expect.stringMatching(/^(INTEGRITY|NO_MATCHING_IDENTITY)$/) });
    }
  });
});

describe('age: a wrong key, an altered or truncated object', () => {
  const make = async () => {
    const me = await keyPair();
    const data = randomBytes(3 * CHUNK + 1000);
    return { me, data, file: await encrypt(data, { recipients: [me.recipient] }) };
  };

  it('a wrong identity: NO_MATCHING_IDENTITY naming the object, before any output', async () => {
    const { file } = await make();
    const other = await keyPair();
    const d = new AgeDecrypt({ identities: [other.identity] }, 's3: db/shop/orders/backups/x/data.dump.zst.age');
    let out = 0;
    d.on('data', (c: Buffer) => (out += c.length));
    await expect(pipeline(Readable.from([file]), d)).rejects.toMatchObject({ code: 'NO_MATCHING_IDENTITY', message: expect.stringContaining('s3: db/shop/orders/backups/x/data.dump.zst.age') });
    expect(out).toBe(0);
  });

  it.each([
    ['a flipped byte in the header', (f: Buffer) => flip(f, 30)],
    ['a flipped byte in the MAC', (f: Buffer) => flip(f, headerEnd(f) - 5)],
    ['a flipped byte in the nonce', (f: Buffer) => flip(f, headerEnd(f) + 3)],
    ['a flipped byte in the first chunk', (f: Buffer) => flip(f, headerEnd(f) + 100)],
    ['a flipped byte in the last chunk', (f: Buffer) => flip(f, f.length - 1)],
    ['truncated by a few bytes', (f: Buffer) => f.subarray(0, f.length - 7)],
    ['truncated at a chunk boundary (the last chunk dropped)', (f: Buffer) => f.subarray(0, headerEnd(f) + 16 + 3 * (CHUNK + 16))],
    ['truncated inside the header', (f: Buffer) => f.subarray(0, 40)],
    ['data after the last chunk', (f: Buffer) => Buffer.concat([f, Buffer.from('x')])],
    ['two chunks swapped', (f: Buffer) => swapChunks(f)],
  ])('%s: INTEGRITY', async (_what, alter) => {
    const { me, file } = await make();
    // With the manifest's fingerprints, as the runner reads: an altered stanza is not mistaken for the wrong key.
    await expect(decrypt(alter(Buffer.from(file)), { identities: [me.identity], expected: [recipientFingerprint(me.recipient)] })).rejects.toMatchObject({ code: 'INTEGRITY' });
  });

  it('a header without end is refused after MAX_HEADER_BYTES instead of buffered without bound', async () => {
    const junk = Buffer.concat([Buffer.from('age-encryption.org/v1\n'), Buffer.alloc(MAX_HEADER_BYTES + 10, 'A')]);
    await expect(decrypt(junk, { identities: [] })).rejects.toMatchObject({ code: 'INTEGRITY', message: expect.stringContaining('header longer than') });
  });

  function flip(f: Buffer, at: number): Buffer {
    f[at] = f[at]! ^ 0x01;
    return f;
  }
  function swapChunks(f: Buffer): Buffer {
    const start = headerEnd(f) + 16;
    const a = Buffer.from(f.subarray(start, start + CHUNK + 16));
    f.copy(f, start, start + CHUNK + 16, start + 2 * (CHUNK + 16));
    a.copy(f, start + CHUNK + 16);
    return f;
  }
});

describe('age: rekey rewrites only the header', () => {
  it('the same payload under a new header is readable by the new recipient only', async () => {
    const [old, next] = [await keyPair(), await keyPair()];
    const data = randomBytes(200_000);
    const file = await encrypt(data, { recipients: [old.recipient] });
    const header = file.subarray(0, headerEnd(file));
    const fresh = await rewrapHeader(header, { identities: [old.identity] }, { recipients: [next.recipient] }, 'fs: k');
    const rekeyed = Buffer.concat([fresh, file.subarray(header.length)]);
    expect(await decrypt(rekeyed, { identities: [next.identity] })).toEqual(data);
    await expect(decrypt(rekeyed, { identities: [old.identity] })).rejects.toMatchObject({ code: 'NO_MATCHING_IDENTITY' });
    const d = new Decrypter();
    d.addIdentity(next.identity);
    expect(Buffer.from(await d.decrypt(rekeyed))).toEqual(data);
  });
});

describe('age: recipients', () => {
  it('parses X25519 recipients and says why anything else is not one', async () => {
    const { recipient, identity } = await keyPair();
    expect(parseRecipient(recipient)).toMatchObject({ key: expect.any(Buffer) });
    // The last character changed (to one it is not), so the checksum fails.
    const altered = `${recipient.slice(0, -1)}${recipient.endsWith('q') ? 'p' : 'q'}`;
    for (const bad of [identity, 'age1', 'age1qqqq', altered, 'ssh-ed25519 AAAA', '']) expect(parseRecipient(bad), bad).toMatchObject({ error: expect.any(String) });
  });

  it('a fingerprint is sha256: and 16 hex digits of the recipient, never the key itself', async () => {
    const { recipient } = await keyPair();
    const f = recipientFingerprint(recipient);
    expect(f).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(f).toBe(`sha256:${createHash('sha256').update(recipient).digest('hex').slice(0, 16)}`);
  });
});
