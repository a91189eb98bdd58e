/**
 * age recipients as configuration sees them (runner config, storage class,
 * DatabaseBackup): one rule, used on both sides. Pure.
 */
import { bech32 } from '@scure/base';
import type { FieldError } from './runner-config.js';

/** The 32-byte X25519 public key of an age recipient (`age1...`), or why the text is not one. */
export function parseAgeRecipient(s: string): { key: Uint8Array } | { error: string } {
  if (!s.startsWith('age1') || s.startsWith('age1pq1') || s.startsWith('age1tag')) return { error: 'is not an X25519 age recipient (age1...)' };
  try {
    const { prefix, bytes } = bech32.decodeToBytes(s);
    if (prefix !== 'age' || bytes.length !== 32) return { error: 'is not an X25519 age recipient (age1... of 32 bytes)' };
    return { key: bytes };
  } catch (err) {
    return { error: `is not a valid age recipient (${err instanceof Error ? err.message : String(err)})` };
  }
}

/** Each recipient an X25519 public key (a private key is refused without being quoted), none twice; `at` is the list's path. */
export function recipientErrors(at: string, recipients: readonly string[] | undefined): FieldError[] {
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  (recipients ?? []).forEach((r, i) => {
    const p = parseAgeRecipient(r);
    if ('error' in p) errors.push({ path: `${at}[${i}]`, message: r.startsWith('AGE-SECRET-KEY') ? 'is a private key (an identity): give its public key (age-keygen -y), never the private one' : p.error });
    else if (seen.has(r)) errors.push({ path: `${at}[${i}]`, message: 'duplicate recipient' });
    seen.add(r);
  });
  return errors;
}
