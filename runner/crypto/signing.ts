/**
 * Signed manifests (Ed25519, node:crypto). The runner signs each manifest it
 * writes with its DatabaseBackup's private key; a reader configured with
 * verification keys believes only a manifest signed by one of them. Whoever
 * may write into a prefix can then plant objects, but not a backup.
 *
 * What is signed: the manifest's JSON without its `signature` field, in a
 * canonical form (object keys sorted at every level, no whitespace), so that
 * any change to any field, an unknown one included, breaks the signature.
 *   "signature": { "keyId": "sha256:<16 hex>", "value": "<base64>" }
 * `keyId` is the first 16 hex digits of the sha256 of the public key (SPKI
 * DER): it names the key, it does not make a signature believed.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { BackupError } from '../errors.js';

export interface ManifestSignature {
  keyId: string;
  value: string;
}

/** JSON with object keys sorted at every level and no whitespace: the bytes a signature covers. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The bytes of a manifest a signature covers: everything but `signature`. */
function signedBytes(manifest: Record<string, unknown>): Buffer {
  const { signature: _s, ...rest } = manifest;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

/** `sha256:` and the first 16 hex digits of the sha256 of the public key's SPKI DER. */
export function keyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16)}`;
}

/** An Ed25519 private key from PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it); `field` names the setting. */
export function signingKey(pem: string, field: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new BackupError('CONFIG_INVALID', `${field}: not a PEM private key (openssl genpkey -algorithm ed25519)`, { details: { path: field } });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new BackupError('CONFIG_INVALID', `${field}: an ${key.asymmetricKeyType ?? 'unknown'} key; manifests are signed with Ed25519`, { details: { path: field } });
  return key;
}

/** An Ed25519 public key from PEM (SPKI, `openssl pkey -pubout`); `field` names the setting. */
export function verificationKey(pem: string, field: string): KeyObject {
  // createPublicKey would quietly derive the public key of a private one: a private key here is a mistake to say.
  let isPrivate = false;
  try {
    createPrivateKey(pem);
    isPrivate = true;
  } catch {
    // not a private key: as it should be
  }
  if (isPrivate) throw new BackupError('CONFIG_INVALID', `${field}: a private key: give its public key (openssl pkey -pubout), never the private one`, { details: { path: field } });
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new BackupError('CONFIG_INVALID', `${field}: not a PEM public key (openssl pkey -in key.pem -pubout)`, { details: { path: field } });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new BackupError('CONFIG_INVALID', `${field}: not an Ed25519 public key`, { details: { path: field } });
  return key;
}

/** The manifest with its signature (the input is not changed). */
export function signManifest<T extends object>(manifest: T, key: KeyObject): T & { signature: ManifestSignature } {
  const value = sign(null, signedBytes(manifest as Record<string, unknown>), key).toString('base64');
  return { ...manifest, signature: { keyId: keyId(key), value } };
}

export type SignatureCheck = { ok: true; keyId: string } | { ok: false; code: 'MANIFEST_UNSIGNED' | 'MANIFEST_SIGNATURE_INVALID'; why: string };

/**
 * Pure: whether the manifest (as parsed from its stored JSON, unknown fields included) carries a valid
 * signature by one of `keys`. A signature by a key that is not among them counts as invalid: it may be
 * another DatabaseBackup's.
 */
export function checkSignature(raw: unknown, keys: readonly KeyObject[]): SignatureCheck {
  const m = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const sig = m.signature as Partial<ManifestSignature> | undefined;
  if (sig === undefined) return { ok: false, code: 'MANIFEST_UNSIGNED', why: 'it is not signed' };
  if (!sig || typeof sig !== 'object' || typeof sig.keyId !== 'string' || typeof sig.value !== 'string') {
    return { ok: false, code: 'MANIFEST_SIGNATURE_INVALID', why: 'its signature field is malformed' };
  }
  const key = keys.find((k) => keyId(k) === sig.keyId);
  if (!key) return { ok: false, code: 'MANIFEST_SIGNATURE_INVALID', why: `it is signed by key ${sig.keyId}, which is not one of this database's verification keys (${keys.map(keyId).join(', ')})` };
  const bytes = signedBytes(m);
  if (!verify(null, bytes, key, Buffer.from(sig.value, 'base64'))) return { ok: false, code: 'MANIFEST_SIGNATURE_INVALID', why: `its signature by ${sig.keyId} does not match its content (altered)` };
  return { ok: true, keyId: sig.keyId };
}
