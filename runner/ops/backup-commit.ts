/**
 * The last steps every kind of backup shares: writing each location's
 * manifest (the backup exists from then on), removing what a failed backup
 * stored, and the status of a backup from its locations' outcomes.
 */
import { signManifest } from '../crypto/signing.js';
import { type Manifest, serializeManifest } from '../manifest.js';
import type { Location, Runtime } from '../runtime.js';
import { MANIFEST_FILE, backupPrefix, manifestKey, objectKey } from '../storage/layout.js';
import { BackupError } from '../errors.js';
import type { BackupResult, BackupStatus, LocationOutcome, Trigger } from './backup.js';
import { putManifest } from './write-manifest.js';

export function summarize(outcomes: LocationOutcome[]): BackupStatus {
  const ok = outcomes.filter((o) => o.status === 'Succeeded').length;
  if (ok === 0) return 'Failed';
  return ok === outcomes.length ? 'Succeeded' : 'PartiallySucceeded';
}

/**
 * Removes every object under the backup's own directory at each location: a backup that failed has no manifest,
 * so nothing there is anyone's but this run's. What cannot be removed now is left for the orphan sweeper.
 */
export async function removeBackupDir(rt: Runtime, locations: readonly Location[], id: string): Promise<void> {
  await Promise.all(
    locations.map(async (loc) => {
      try {
        const keys: string[] = [];
        for await (const o of loc.storage.list(backupPrefix(loc.scope, id))) keys.push(o.key);
        // A manifest there is a backup's that is not this failed run's (an id taken twice): nothing of it is touched.
        if (keys.some((k) => k.endsWith(`/${MANIFEST_FILE}`))) {
          rt.logger.warn({ location: loc.name, backupId: id }, 'a manifest exists under the failed backup\'s id: its directory is left as it is');
          return;
        }
        for (const key of keys) await loc.storage.delete(key).catch((e: unknown) => rt.logger.warn({ location: loc.name, key, err: e }, 'data object left for the orphan sweeper'));
      } catch (err) {
        rt.logger.warn({ location: loc.name, err }, 'the failed backup\'s objects are left for the orphan sweeper');
      }
    }),
  );
}

/**
 * Checks what a location stored and writes its manifest; undoes the data object when that fails, unless the
 * failed manifest write landed after all (then the backup is there) or cannot be told (then the data stays).
 */
export async function commit(rt: Runtime, loc: Location, manifest: Manifest): Promise<LocationOutcome> {
  const size = manifest.objects.reduce((n, o) => n + o.size, 0);
  const key = rt.signing?.key;
  const put = await putManifest(loc, manifestKey(loc.scope, manifest.id), serializeManifest(key ? signManifest(manifest, key) : manifest));
  if (put.ok) return { location: loc.name, status: 'Succeeded', size };
  if (put.now === 'absent') {
    rt.logger.error({ location: loc.name, err: put.error }, 'could not complete the backup in this location; removing its data');
    for (const o of manifest.objects) {
      await loc.storage.delete(objectKey(loc.scope, manifest.id, o.name)).catch((e: unknown) => rt.logger.warn({ location: loc.name, err: e }, 'data object left for the orphan sweeper'));
    }
  } else {
    rt.logger.error({ location: loc.name, err: put.error }, 'the manifest write failed, but a manifest may be there: its data is kept');
  }
  return { location: loc.name, status: 'Failed', error: put.error };
}

/** What every manifest of one backup says of it, but its objects. */
export function manifestBase(
  rt: Runtime,
  b: {
    formatVersion: number;
    id: string;
    probe: { serverVersion: string; toolVersion: string };
    startedAt: Date;
    trigger: Trigger;
    written: { consistentAt: Date; format: string; position?: Record<string, string> };
    origin?: Manifest['origin'];
  },
): Omit<Manifest, 'objects'> {
  const { written, probe } = b;
  return {
    formatVersion: b.formatVersion,
    kind: 'backup',
    id: b.id,
    namespace: rt.config.namespace,
    name: rt.config.name,
    database: rt.engine.database,
    engine: { name: rt.engine.name, serverVersion: probe.serverVersion, toolVersion: probe.toolVersion, format: written.format, ...(written.position ? { position: written.position } : {}) },
    startedAt: b.startedAt.toISOString(),
    consistentAt: written.consistentAt.toISOString(),
    finishedAt: rt.clock().toISOString(),
    trigger: b.trigger,
    runnerVersion: rt.runnerVersion,
    ...(b.origin ? { origin: b.origin } : {}),
  };
}

/** A backup's result from every location's outcome, with the manifest of one that stored it. */
export function finished(rt: Runtime, r: { id: string; startedAt: Date; outcomes: LocationOutcome[]; manifest?: Manifest }): BackupResult {
  const status = summarize(r.outcomes);
  return {
    id: r.id,
    status,
    locations: r.outcomes,
    ...(r.manifest ? { manifest: r.manifest } : {}),
    startedAt: r.startedAt,
    finishedAt: rt.clock(),
    ...(status === 'Failed' ? { error: new BackupError('ALL_LOCATIONS_FAILED', 'every storage location failed') } : {}),
  };
}
