/**
 * A location's encryption as operations use it: whom new objects are
 * encrypted for (public recipients, or a passphrase), what the manifest
 * records of them (fingerprints), and where the keys that read the location
 * come from (identity files from the config, identities given to one
 * command). Private keys are read only when an object must be decrypted,
 * never at start: a runner that only backs up never holds one.
 */
import { readFile } from 'node:fs/promises';
import type { LocationEncryption } from '../../api/index.js';
import { resolveSecret } from '../config/secrets.js';
import { BackupError } from '../errors.js';
import type { Encryption, ManifestObject } from '../manifest.js';
import { type AgeIdentities, type AgeRecipients, fingerprints } from './age.js';

export interface LocationCrypto {
  /** Whom new objects are encrypted for. */
  to: AgeRecipients;
  /** What each object's manifest records: the recipients' fingerprints (never a key). */
  encryption: Encryption;
  /** Files of identities that read this location (config), read when needed. */
  identityFiles: readonly string[];
}

/** The location's encryption from its validated config (the passphrase, when one is used, read now), or undefined. */
export async function locationCrypto(cfg: LocationEncryption | undefined, field: string, env: NodeJS.ProcessEnv): Promise<LocationCrypto | undefined> {
  const age = cfg?.age;
  if (!age) return undefined;
  const to: AgeRecipients = age.passphrase ? { passphrase: await resolveSecret(age.passphrase, `${field}.age.passphrase`, env) } : { recipients: age.recipients ?? [] };
  return { to, encryption: { scheme: 'age', recipients: fingerprints(to) }, identityFiles: (age.identities ?? []).map((i) => i.file) };
}

/** The passphrase a location encrypts with, or undefined (it uses recipients, or does not encrypt). */
export function passphraseOf(crypto: LocationCrypto | undefined): string | undefined {
  return crypto && 'passphrase' in crypto.to ? crypto.to.passphrase : undefined;
}

/** Whether two lists of recipient fingerprints name the same recipients, in any order. */
export function sameRecipients(a: readonly string[], b: readonly string[]): boolean {
  const sb = [...b].sort();
  return a.length === b.length && [...a].sort().every((f, i) => f === sb[i]);
}

/** The identities in an age key file: one per line, `#` comments and blank lines skipped. */
export function parseIdentities(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** Reads identity files; an unreadable one is SECRET_UNREADABLE naming it (never its content). */
export async function readIdentityFiles(files: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    try {
      out.push(...parseIdentities(await readFile(f, 'utf8')));
    } catch (err) {
      throw new BackupError('SECRET_UNREADABLE', `cannot read the identity file ${f} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
  }
  return out;
}

/**
 * The keys that may read `object` of a location: the identities given to the command, the location's
 * identity files, and its passphrase when it encrypts with one; `expected` from the object's manifest.
 */
export async function keysFor(crypto: LocationCrypto | undefined, given: readonly string[], object: ManifestObject): Promise<AgeIdentities> {
  const fromFiles = crypto ? await readIdentityFiles(crypto.identityFiles) : [];
  const passphrase = passphraseOf(crypto);
  const passphrases = passphrase === undefined ? [] : [passphrase];
  const expected = object.encryption.scheme === 'age' ? object.encryption.recipients : [];
  return { identities: [...given, ...fromFiles], passphrases, expected };
}
