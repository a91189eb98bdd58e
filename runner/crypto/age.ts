/**
 * The age file format (age-encryption.org/v1), streaming, for one object of
 * a backup: anyone can decrypt it by hand with the `age` command.
 *
 *   header   "age-encryption.org/v1\n", one stanza per recipient, "--- <MAC>\n"
 *   payload  a 16-byte nonce, then ChaCha20-Poly1305 chunks of 64 KiB
 *            (STREAM: 11-byte counter + last-chunk flag as the nonce)
 *
 * Reading (untrusted bytes from a bucket) goes through the well-kept
 * implementation, the age-encryption package: it parses the header, checks
 * its MAC and unwraps the file key with an identity (X25519, post-quantum
 * hybrid) or a passphrase (scrypt). The payload is decrypted here with
 * node:crypto, which runs several times faster than the package's pure
 * JavaScript cipher (bench/encryption.bench.ts).
 *
 * Writing needs the file key in hand (rekey wraps an existing file key for
 * new recipients, which the package cannot do): the X25519 and scrypt
 * stanzas, the header MAC and the payload are built here with node:crypto
 * exactly as the specification says, and the tests prove every byte against
 * the package, the `age` command and the official test vectors (cctv-age).
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, scrypt as scryptCb, timingSafeEqual, type KeyObject } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { Decrypter, identityToRecipient } from 'age-encryption';
import { parseAgeRecipient } from '../../api/age.js';
import { BackupError } from '../errors.js';

const scrypt = promisify(scryptCb) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

const VERSION_LINE = 'age-encryption.org/v1';
const CHUNK = 64 * 1024;
const TAG = 16;
const FILE_KEY_BYTES = 16;
const NONCE_BYTES = 16;
/** The scrypt work factor age uses by default (2^18: about 256 MiB and a second per wrap). */
export const SCRYPT_WORK_FACTOR = 18;
/** A header longer than this is refused (a hostile object could otherwise make the reader buffer without end). */
export const MAX_HEADER_BYTES = 64 * 1024;

/** Whom an object is encrypted for: X25519 recipients (`age1...`), or one passphrase (age allows a scrypt stanza only alone). */
export type AgeRecipients = { recipients: readonly string[] } | { passphrase: string; workFactor?: number };

/** How an object can be read: identities (`AGE-SECRET-KEY-1...`, post-quantum `AGE-SECRET-KEY-PQ-1...`) and passphrases. */
export interface AgeIdentities {
  identities: readonly string[];
  passphrases?: readonly string[];
  /**
   * The fingerprints the object's manifest says it is encrypted for. When one of the identities is among
   * them and still cannot unwrap the file key, the header was altered (INTEGRITY), not the wrong key.
   */
  expected?: readonly string[];
  /**
   * A file key already unwrapped (rekey reading back the object it wrote for recipients it may hold no
   * identity of): the header's MAC is checked with it instead of unwrapping.
   */
  fileKey?: Uint8Array;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64').replace(/=+$/, '');

/** The public key of an X25519 recipient, or why the string is not one (api/age.ts: the rule configuration uses). */
export function parseRecipient(s: string): { key: Buffer } | { error: string } {
  const r = parseAgeRecipient(s);
  return 'error' in r ? r : { key: Buffer.from(r.key) };
}

/** What a manifest records of a recipient: `sha256:` and the first 16 hex digits of the sha256 of its text. Never the key. */
export function recipientFingerprint(recipient: string): string {
  return `sha256:${createHash('sha256').update(recipient).digest('hex').slice(0, 16)}`;
}

/** The fingerprints an object is encrypted for: its recipients', or `passphrase` for a passphrase. */
export function fingerprints(to: AgeRecipients): string[] {
  return 'passphrase' in to ? ['passphrase'] : to.recipients.map(recipientFingerprint);
}

/** The recipient (public key) of an identity, e.g. to tell which configured identity can read an object. */
export async function recipientOf(identity: string): Promise<string> {
  return identityToRecipient(identity);
}

function seal(key: Uint8Array, nonce: Buffer, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function x25519Public(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** One X25519 stanza: an ephemeral share and the file key wrapped for `recipient`. */
function x25519Stanza(fileKey: Uint8Array, recipient: string): string {
  const parsed = parseRecipient(recipient);
  if ('error' in parsed) throw new BackupError('CONFIG_INVALID', `recipient "${recipient}" ${parsed.error}`);
  const eph = generateKeyPairSync('x25519');
  const share = Buffer.from(eph.publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: x25519Public(parsed.key) });
  if (shared.every((b) => b === 0)) throw new BackupError('CONFIG_INVALID', `recipient "${recipient}" is a low-order point`);
  const wrapKey = Buffer.from(hkdfSync('sha256', shared, Buffer.concat([share, parsed.key]), 'age-encryption.org/v1/X25519', 32));
  return `-> X25519 ${b64(share)}\n${bodyLines(seal(wrapKey, Buffer.alloc(12), fileKey))}`;
}

async function scryptStanza(fileKey: Uint8Array, passphrase: string, logN: number): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(passphrase, Buffer.concat([Buffer.from('age-encryption.org/v1/scrypt'), salt]), 32, { N: 2 ** logN, r: 8, p: 1, maxmem: 2 ** logN * 8 * 128 + 16 * 2 ** 20 });
  return `-> scrypt ${b64(salt)} ${logN}\n${bodyLines(seal(key, Buffer.alloc(12), fileKey))}`;
}

/** A stanza body: base64 in lines of 64 columns, the last one shorter (empty when the rest fill whole lines). */
function bodyLines(body: Buffer): string {
  const text = b64(body);
  const lines: string[] = [];
  for (let i = 0; i <= text.length; i += 64) lines.push(text.slice(i, i + 64));
  if (lines[lines.length - 1]!.length === 64) lines.push('');
  return `${lines.join('\n')}\n`;
}

/** The header for `fileKey`: one stanza per recipient (or the one scrypt stanza), then the MAC. */
export async function encodeHeader(fileKey: Uint8Array, to: AgeRecipients): Promise<Buffer> {
  if (fileKey.length !== FILE_KEY_BYTES) throw new BackupError('INTERNAL', 'an age file key is 16 bytes');
  let stanzas: string[];
  if ('passphrase' in to) stanzas = [await scryptStanza(fileKey, to.passphrase, to.workFactor ?? SCRYPT_WORK_FACTOR)];
  else {
    if (to.recipients.length === 0) throw new BackupError('CONFIG_INVALID', 'age encryption needs at least one recipient');
    stanzas = to.recipients.map((r) => x25519Stanza(fileKey, r));
  }
  const noMac = `${VERSION_LINE}\n${stanzas.join('')}---`;
  const macKey = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32));
  const tag = createHmac('sha256', macKey).update(noMac).digest();
  return Buffer.from(`${noMac} ${b64(tag)}\n`, 'latin1');
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUIntBE(counter, 5, 6); // the 11-byte counter: 2^48 chunks of 64 KiB is far beyond any backup
  n[11] = last ? 1 : 0;
  return n;
}

/**
 * Encrypts a stream into an age file for `to`. The header is written first, then the payload chunk by
 * chunk: a full chunk is held back until more input (or the end) tells whether it is the last one.
 * Memory: two chunks.
 */
export class AgeEncrypt extends Transform {
  private readonly fileKey = randomBytes(FILE_KEY_BYTES);
  private key: Buffer | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private counter = 0;

  constructor(private readonly to: AgeRecipients) {
    super();
  }

  private async start(): Promise<void> {
    const nonce = randomBytes(NONCE_BYTES);
    this.push(await encodeHeader(this.fileKey, this.to));
    this.push(nonce);
    this.key = Buffer.from(hkdfSync('sha256', this.fileKey, nonce, 'payload', 32));
  }

  private sealChunk(chunk: Buffer, last: boolean): void {
    this.push(seal(this.key!, chunkNonce(this.counter++, last), chunk));
  }

  override _transform(data: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const go = async () => {
      if (!this.key) await this.start();
      this.pending.push(data);
      this.pendingBytes += data.length;
      // Keep at least one byte back: the chunk holding the stream's last byte is sealed as the last one.
      while (this.pendingBytes > CHUNK) {
        const all = Buffer.concat(this.pending);
        this.sealChunk(all.subarray(0, CHUNK), false);
        this.pending = [all.subarray(CHUNK)];
        this.pendingBytes = all.length - CHUNK;
      }
    };
    go().then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    const go = async () => {
      if (!this.key) await this.start();
      this.sealChunk(Buffer.concat(this.pending), true);
      this.pending = [];
    };
    go().then(() => cb(), cb);
  }
}

/** The header's MAC line checked against `fileKey`; the key is returned when it matches, else INTEGRITY. */
function checkHeaderMac(header: Buffer, fileKey: Uint8Array, what: string): Uint8Array {
  const text = header.toString('latin1');
  const at = text.lastIndexOf('\n---') + 1;
  const mac = at > 0 ? text.slice(at + 4).trim() : '';
  const macKey = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32));
  const want = Buffer.from(b64(createHmac('sha256', macKey).update(text.slice(0, at + 3)).digest()));
  const got = Buffer.from(mac);
  if (at <= 0 || got.length !== want.length || !timingSafeEqual(got, want)) throw new BackupError('INTEGRITY', `${what}: age header does not match its file key (altered or not the object written)`);
  return fileKey;
}

/** The file key of an age header, with the identities or passphrases given (or checked against the one given); AGE_* errors name `what`. */
export async function unwrap(header: Buffer, keys: AgeIdentities, what: string): Promise<Uint8Array> {
  if (keys.fileKey) return checkHeaderMac(header, keys.fileKey, what);
  const d = new Decrypter();
  keys.identities.forEach((identity, n) => {
    try {
      d.addIdentity(identity);
    } catch {
      // Never quote it: it may be a private key with a typo.
      throw new BackupError('CONFIG_INVALID', `${what}: identity ${n + 1} of the ${keys.identities.length} given is not an age identity (AGE-SECRET-KEY-1...)`);
    }
  });
  for (const p of keys.passphrases ?? []) d.addPassphrase(p);
  try {
    return await d.decryptHeader(header);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/no identity matched/i.test(message)) {
      const mine = await Promise.all(keys.identities.map(async (i) => recipientFingerprint(await recipientOf(i).catch(() => ''))));
      const listed = mine.filter((f) => keys.expected?.includes(f));
      if (listed.length > 0) {
        throw new BackupError('INTEGRITY', `${what}: age header was altered: identity ${listed[0]} is a recipient of this object (its manifest says so) but cannot unwrap its key`, { cause: err });
      }
      throw new BackupError(
        'NO_MATCHING_IDENTITY',
        `${what}: none of the given identities can decrypt it (identities ${mine.join(', ') || 'none'}${keys.passphrases?.length ? `, ${keys.passphrases.length} passphrase(s)` : ''}; encrypted for ${keys.expected?.join(', ') ?? 'recipients not recorded'})`,
      );
    }
    throw new BackupError('INTEGRITY', `${what}: age header is invalid or was altered: ${message}`, { cause: err });
  }
}

/**
 * Decrypts an age file: buffers the header (at most MAX_HEADER_BYTES), unwraps the file key with the
 * package, then decrypts and authenticates each chunk. A wrong key fails before any output; an altered or
 * truncated payload fails with INTEGRITY at the chunk where it is found (output so far is authentic, but the
 * stream as a whole must be treated as failed: callers let a failure abort everything downstream).
 */
export class AgeDecrypt extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  private state: 'header' | 'nonce' | 'payload' | 'done' = 'header';
  private fileKey: Uint8Array | undefined;
  private key: Buffer | undefined;
  private counter = 0;

  constructor(
    private readonly keys: AgeIdentities,
    private readonly what: string,
  ) {
    super();
  }

  override _transform(data: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data]);
    this.advance(false).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.advance(true).then(() => {
      if (this.state !== 'done') return cb(this.fail(this.state === 'payload' ? 'payload is truncated (no last chunk)' : 'file is truncated'));
      cb();
    }, cb);
  }

  private fail(why: string): BackupError {
    return new BackupError('INTEGRITY', `${this.what}: ${why}`);
  }

  private async advance(end: boolean): Promise<void> {
    if (this.state === 'header') {
      const at = headerEnd(this.buf);
      if (at < 0) {
        if (this.buf.length > MAX_HEADER_BYTES || end) throw this.fail(this.buf.length > MAX_HEADER_BYTES ? `age header longer than ${MAX_HEADER_BYTES} bytes` : 'not an age file (no header end)');
        return;
      }
      const header = this.buf.subarray(0, at);
      this.buf = this.buf.subarray(at);
      this.fileKey = await unwrap(header, this.keys, this.what);
      this.state = 'nonce';
    }
    if (this.state === 'nonce') {
      if (this.buf.length < NONCE_BYTES) {
        if (end) throw this.fail('payload nonce is truncated');
        return;
      }
      this.key = Buffer.from(hkdfSync('sha256', this.fileKey!, this.buf.subarray(0, NONCE_BYTES), 'payload', 32));
      this.buf = this.buf.subarray(NONCE_BYTES);
      this.state = 'payload';
    }
    if (this.state === 'payload') this.payload(end);
    else if (this.state === 'done' && this.buf.length > 0) throw this.fail('data after the last chunk');
  }

  private payload(end: boolean): void {
    const full = CHUNK + TAG;
    // A chunk is known to be the last when the input ended and nothing follows it.
    while (this.buf.length > full || (end && this.buf.length > 0)) {
      const size = Math.min(full, this.buf.length);
      const last = size < full || (end && this.buf.length === full);
      const chunk = this.buf.subarray(0, size);
      if (size < TAG) throw this.fail('payload chunk is truncated');
      this.push(this.open(chunk, last));
      this.buf = this.buf.subarray(size);
      if (last) {
        this.state = 'done';
        if (this.buf.length > 0) throw this.fail('data after the last chunk');
        return;
      }
    }
  }

  private open(chunk: Buffer, last: boolean): Buffer {
    const body = chunk.subarray(0, chunk.length - TAG);
    if (last && body.length === 0 && this.counter > 0) throw this.fail('payload ends with an empty chunk');
    const d = createDecipheriv('chacha20-poly1305', this.key!, chunkNonce(this.counter, last), { authTagLength: TAG });
    d.setAuthTag(chunk.subarray(chunk.length - TAG));
    try {
      const plain = Buffer.concat([d.update(body), d.final()]);
      this.counter++;
      return plain;
    } catch {
      // A chunk sealed as not-last where it should be last (or the reverse) also ends here: truncation.
      throw this.fail(`payload chunk ${this.counter} failed authentication (altered, truncated or not for this key)`);
    }
  }
}

/** The length of the header (through the MAC line's newline), or -1 while it is not complete. */
export function headerEnd(buf: Buffer): number {
  // The MAC line is the first line starting with "---": stanza lines start with "-> " or are base64 (no "-").
  let from = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, from);
    if (nl < 0) return -1;
    if (buf[from] === 0x2d && buf[from + 1] === 0x2d && buf[from + 2] === 0x2d) return nl + 1;
    from = nl + 1;
  }
}

/**
 * A new header for the same file key, for other recipients: the payload stays as it is. Needs an identity
 * that can read the old header.
 */
export async function rewrapHeader(header: Buffer, keys: AgeIdentities, to: AgeRecipients, what: string): Promise<Buffer> {
  return encodeHeader(await unwrap(header, keys, what), to);
}

/** Bytes of the age file for `plainSize` bytes of plain data, given its header's length. */
export function encryptedSize(plainSize: number, headerLength: number): number {
  const chunks = Math.max(1, Math.ceil(plainSize / CHUNK));
  return headerLength + NONCE_BYTES + plainSize + chunks * TAG;
}
