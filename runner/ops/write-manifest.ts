import { signManifest } from '../crypto/signing.js';
import { BackupError } from '../errors.js';
import { type Manifest, MANIFEST_FORMAT_VERSION } from '../manifest.js';
import type { Runtime } from '../runtime.js';

/**
 * A manifest this runner rewrites (a copy into another location, a rekeyed copy) as it stores it: format 2,
 * without the old signature, signed with `signing.key`. Where manifests must be signed (`signing.verify`)
 * and this runner has no signing key the rewrite is refused (CONFIG_INVALID): an unsigned manifest would not
 * be believed, and the copy would vanish from every listing. `what` says what changes, for that message.
 */
export function rewrittenManifest(rt: Runtime, source: Manifest, objects: Manifest['objects'], what: string): Manifest {
  if (rt.signing?.trust?.length && !rt.signing.key) {
    throw new BackupError('CONFIG_INVALID', `backup ${source.id}: ${what} changes its manifest, and manifests must be signed (signing.verify) but this runner has no signing.key`, {
      details: { path: 'signing.key', backupId: source.id },
    });
  }
  const { signature: _old, ...rest } = source;
  const m: Manifest = { ...rest, formatVersion: MANIFEST_FORMAT_VERSION, objects };
  return rt.signing?.key ? signManifest(m, rt.signing.key) : m;
}
