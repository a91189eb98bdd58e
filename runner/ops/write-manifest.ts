import { createPublicKey } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { checkSignature, signManifest } from '../crypto/signing.js';
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import { type Manifest, formatFor } from '../manifest.js';
import type { Location, Runtime } from '../runtime.js';

/**
 * A manifest this runner rewrites (a copy into another location, a rekeyed copy) as it stores it: format 2,
 * without the old signature, signed with `signing.key` when the source was vouched for: verified against
 * `signing.verify` when that is configured (the listing did), or else signed by this runner's own key. A
 * manifest nobody vouched for (planted in a bucket of a runner that signs but does not verify) is never
 * signed into trust: it is written unsigned. Where manifests must be signed and this runner has no signing
 * key the rewrite is refused (CONFIG_INVALID): an unsigned manifest would not be believed, and the copy would
 * vanish from every listing. `what` says what changes, for that message.
 */
export function rewrittenManifest(rt: Runtime, source: Manifest, objects: Manifest['objects'], what: string): Manifest {
  if (rt.signing?.trust?.length && !rt.signing.key) {
    throw new BackupError('CONFIG_INVALID', `backup ${source.id}: ${what} changes its manifest, and manifests must be signed (signing.verify) but this runner has no signing.key`, {
      details: { path: 'signing.key', backupId: source.id },
    });
  }
  const { signature: _old, ...rest } = source;
  const m: Manifest = { ...rest, formatVersion: formatFor(objects), objects };
  const key = rt.signing?.key;
  if (!key) return m;
  const vouched = rt.signing?.trust?.length ? true : checkSignature(source, [createPublicKey(key)]).ok;
  return vouched ? signManifest(m, key) : m;
}

/** What a manifest key holds after a put of `body` failed: that put may have landed anyway (a lost answer, a failed directory sync). */
export type ManifestAfterFailure = 'ours' | 'absent' | 'unreadable' | { other: string };

/**
 * Puts a manifest. When the put fails, what the key now holds is read back, so the caller never undoes a
 * write that landed: `ours` means it did (the put counts as done), `absent` that nothing is there,
 * `{ other }` another manifest's text, `unreadable` that nobody can tell (then nothing may be undone).
 */
export async function putManifest(loc: Location, key: string, body: Buffer, signal?: AbortSignal): Promise<{ ok: true } | { ok: false; error: BackupError; now: Exclude<ManifestAfterFailure, 'ours'> }> {
  try {
    await loc.storage.put(key, body, signal ? { signal } : {});
    return { ok: true };
  } catch (err) {
    const error = toBackupError(err, 'STORAGE_FAILED');
    let now: ManifestAfterFailure;
    try {
      const held = await buffer(await loc.storage.get(key));
      now = held.equals(body) ? 'ours' : { other: held.toString('utf8') };
    } catch (readErr) {
      now = isBackupError(readErr, 'STORAGE_NOT_FOUND') ? 'absent' : 'unreadable';
    }
    return now === 'ours' ? { ok: true } : { ok: false, error, now };
  }
}
