/**
 * The retention candidates of one location: its complete backups, read from
 * their manifests (a backup without a manifest does not exist).
 *
 * Invariants:
 * - A listing failure throws: retention must never plan on a partial view.
 * - A manifest that cannot be read or whose id differs from its directory is
 *   reported as a problem and is not a candidate, so retention never removes
 *   it; its data is not an orphan either (the sweeper sees its manifest key).
 * - A candidate's id is the backup's directory name, which is what removal
 *   deletes under.
 */
import { text } from 'node:stream/consumers';
import { BackupError, toBackupError } from '../errors.js';
import { parseManifest } from '../manifest.js';
import type { Location } from '../runtime.js';
import { MANIFEST_FILE, databasePrefix, parseKey } from '../storage/layout.js';
import { mapLimit } from '../util/async.js';
import type { RetentionCandidate } from './policy.js';

export interface LocationCandidates {
  /** Oldest first, as listed. */
  candidates: RetentionCandidate[];
  /** Manifests that could not be used. */
  problems: { key: string; error: BackupError }[];
}

export async function retentionCandidates(location: Location, opts: { signal?: AbortSignal } = {}): Promise<LocationCandidates> {
  const manifests: { id: string; key: string }[] = [];
  for await (const obj of location.storage.list(databasePrefix(location.scope), { signal: opts.signal })) {
    const parsed = parseKey(location.scope, obj.key);
    if (parsed?.file === MANIFEST_FILE) manifests.push({ id: parsed.backupId, key: obj.key });
  }
  const problems: LocationCandidates['problems'] = [];
  const read = await mapLimit(manifests, 8, async ({ id, key }): Promise<RetentionCandidate | undefined> => {
    try {
      const m = parseManifest(await text(await location.storage.get(key, { signal: opts.signal })), `${location.name}: ${key}`);
      if (m.id !== id) throw new BackupError('MANIFEST_INVALID', `${location.name}: ${key}: manifest names backup ${m.id}, but lies under ${id}`);
      return { id, time: new Date(m.consistentAt) };
    } catch (err) {
      problems.push({ key, error: toBackupError(err, 'STORAGE_FAILED') });
      return undefined;
    }
  });
  if (opts.signal?.aborted) throw new BackupError('ABORTED', 'listing retention candidates aborted', { cause: opts.signal.reason });
  const candidates = read.filter((c): c is RetentionCandidate => c !== undefined).sort((a, b) => a.time.getTime() - b.time.getTime() || (a.id < b.id ? -1 : 1));
  return { candidates, problems };
}
