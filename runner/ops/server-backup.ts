/**
 * Backups a database server writes itself (a server-side engine, `output:
 * location` in its definition: CockroachDB `BACKUP INTO`, Elasticsearch
 * snapshots). The promises of a streamed backup still hold:
 *
 * - The server writes into one location only, below this backup's own
 *   directory (`backups/<id>/server/`), reached with nothing but what the
 *   tenant owns: a filesystem directory of the runner's pod, the location's
 *   credentials when they are the tenant's own (`serverAccess: credentials`),
 *   or the server's own identity (`serverAccess: server`). A storage class's
 *   shared keys are never handed out.
 * - Once the tool says the backup is complete, the runner lists the
 *   directory, refuses anything outside `server/` or with a name the layout
 *   does not allow, and reads every object back once: its size and sha256 go
 *   into the manifest, and the same bytes are copied to every other location
 *   at the same time (so every copy has one `consistentAt`).
 * - The manifest (format 4) is written last, in each location that holds
 *   every object. A failed server backup writes no manifest, and its
 *   directory is removed (the orphan sweeper removes what cannot be).
 */
import { lstat, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { serverLocationTypes, type SourceObject } from '../../api/engine-contract.js';
import type { LocationConfig } from '../../api/index.js';
import { resolveSecret } from '../config/secrets.js';
import type { ProbeResult, ServerPlace } from '../engines/types.js';
import { BackupError, toBackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { type Manifest, type ManifestObject, SERVER_FORMAT_VERSION } from '../manifest.js';
import { discard } from '../pipeline/counter.js';
import { DigestStream } from '../pipeline/digest.js';
import { FanOut } from '../pipeline/fanout.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { MANIFEST_FILE, SERVER_DIR, backupPrefix, keyIn, serverPathProblem } from '../storage/layout.js';
import { describeLocation } from '../storage/registry.js';
import { linkedAbort, mapLimit } from '../util/async.js';
import type { BackupResult, LocationOutcome, Trigger } from './backup.js';
import { deleteKeys, listKeys } from '../retention/objects.js';
import { commit, finished, manifestBase, removeBackupDir } from './backup-commit.js';

/** The most objects one server-side backup may hold (each is a line of its manifest). */
export const MAX_SERVER_OBJECTS = 20_000;

/** A location as the database server may reach it, or why it may not. */
export type ServerReach = { place: ServerPlace } | { refused: string };

/** The keys handed to the server for `serverAccess: credentials`: the tenant's own (the controller sets it only for those). */
async function credentialsOf(cfg: LocationConfig, env: NodeJS.ProcessEnv): Promise<string> {
  if (cfg.type === 's3') {
    const s3 = cfg.s3!;
    const at = `location "${cfg.name}" s3`;
    const keys = {
      accessKeyId: await resolveSecret(s3.accessKeyId!, `${at}.accessKeyId`, env),
      secretAccessKey: await resolveSecret(s3.secretAccessKey!, `${at}.secretAccessKey`, env),
      ...(s3.sessionToken ? { sessionToken: await resolveSecret(s3.sessionToken, `${at}.sessionToken`, env) } : {}),
    };
    return JSON.stringify(keys);
  }
  return readFile(cfg.gcs!.keyFile!, 'utf8');
}

/**
 * Pure but for reading secrets: how the database server reaches `dir` (a backup directory key, ending in `/`) of
 * `loc`, or why it cannot. The place is the directory's `server/` folder.
 */
export async function serverReach(rt: Runtime, loc: Location, dir: string, env: NodeJS.ProcessEnv = process.env): Promise<ServerReach> {
  const cfg = rt.config.locations.find((l) => l.name === loc.name);
  if (!cfg) return { refused: `${loc.name} is not in the configuration` };
  if (loc.crypto || cfg.encryption) return { refused: `${loc.name} encrypts what it stores, and the database server writes in the clear` };
  const definition = rt.config.engine.command?.definition;
  if (definition && !serverLocationTypes(definition).includes(cfg.type)) return { refused: `${loc.name}: the ${definition.name} server cannot write ${cfg.type} locations (its definition's locationTypes: ${serverLocationTypes(definition).join(', ')})` };
  const prefix = `${dir}${SERVER_DIR}/`;
  const url = `${describeLocation({ ...cfg, prefix: '' })}/${prefix}`;
  const base = { location: loc.name, url };
  switch (cfg.type) {
    case 'filesystem':
      return { place: { destination: { ...base, type: 'filesystem', path: `${resolve(cfg.filesystem!.path, ...prefix.split('/').filter(Boolean))}/` } } };
    case 's3':
    case 'gcs': {
      if (cfg.serverAccess === undefined) return { refused: `${loc.name}: its credentials are not the tenant's to hand to the database server (serverAccess is not set): it receives the runner's copy` };
      const s3 = cfg.s3;
      const where =
        cfg.type === 's3'
          ? { type: 's3' as const, bucket: s3!.bucket, prefix, region: s3!.region, forcePathStyle: s3!.forcePathStyle, ...(s3!.endpoint ? { endpoint: s3!.endpoint } : {}) }
          : { type: 'gcs' as const, bucket: cfg.gcs!.bucket, prefix };
      if (cfg.serverAccess === 'server') return { place: { destination: { ...base, ...where, credentials: { source: 'server' } } } };
      return { place: { destination: { ...base, ...where }, secret: await credentialsOf(cfg, env) } };
    }
  }
}

/** The first of `ready` the database server can write, and why each before it could not. */
async function choosePrimary(rt: Runtime, ready: readonly Location[], id: string): Promise<{ loc: Location; place: ServerPlace } | { refused: string[] }> {
  const refused: string[] = [];
  for (const loc of ready) {
    const reach = await serverReach(rt, loc, backupPrefix(loc.scope, id));
    if ('place' in reach) return { loc, place: reach.place };
    refused.push(reach.refused);
  }
  return { refused };
}

/** What the server wrote below the backup's directory, with each object's listed size: every key under `server/` with a name the layout allows, else INTEGRITY. */
async function listWritten(loc: Location, dir: string, signal: AbortSignal): Promise<Map<string, number>> {
  const paths = new Map<string, number>();
  const serverDir = `${dir}${SERVER_DIR}/`;
  for await (const o of loc.storage.list(dir, { signal })) {
    const path = o.key.startsWith(serverDir) ? o.key.slice(serverDir.length) : undefined;
    const problem = path === undefined ? `${o.key.slice(dir.length)} is outside ${SERVER_DIR}/` : serverPathProblem(path);
    if (problem) {
      throw new BackupError('INTEGRITY', `${loc.name}: the server-side backup wrote ${JSON.stringify(o.key)}, which ${path === undefined ? 'lies' : 'is not a server object: its path'} ${problem}; the backup is not kept`, {
        details: { location: loc.name, key: o.key },
      });
    }
    paths.set(path!, o.size);
    if (paths.size > MAX_SERVER_OBJECTS) throw new BackupError('INTEGRITY', `${loc.name}: the server-side backup wrote more than ${MAX_SERVER_OBJECTS} objects; the backup is not kept`, { details: { location: loc.name } });
  }
  if (paths.size === 0) throw new BackupError('DUMP_FAILED', `${loc.name}: the tool said the server-side backup is complete, but nothing is below ${serverDir}`, { details: { location: loc.name } });
  return paths;
}

/**
 * A filesystem backup directory holds only directories and regular files, and files only below `server/` with
 * names the layout allows: a symbolic link (to a file of the runner's pod, or out of the directory; the directory
 * itself included), a device or a hidden temporary name is refused, not skipped the way a listing skips it.
 */
export async function checkTree(root: string): Promise<void> {
  const refuse = (rel: string, problem: string): never => {
    throw new BackupError('INTEGRITY', `the server-side backup's directory holds ${JSON.stringify(rel)}, which ${problem}; not kept, not handed to a server`, { details: { path: rel } });
  };
  let top;
  try {
    top = await lstat(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!top.isDirectory()) refuse('.', 'is not a directory (a symbolic link or a file)');
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    const rel = relative(root, join(e.parentPath, e.name));
    if (!e.isFile() && !e.isDirectory()) refuse(rel, 'is not a regular file or a directory (a symbolic link or a special file)');
    if (!e.isFile() || rel === MANIFEST_FILE) continue;
    if (!rel.startsWith(`${SERVER_DIR}/`)) refuse(rel, `lies outside ${SERVER_DIR}/`);
    const problem = serverPathProblem(rel.slice(SERVER_DIR.length + 1));
    if (problem) refuse(rel, `is not a server object: its path ${problem}`);
  }
}

interface CopyJob {
  id: string;
  primary: Location;
  copies: Location[];
  signal: AbortSignal;
  log: Logger;
}

/**
 * Reads one server object back from the primary once: its size and sha256, and the same bytes to every copy
 * location at the same time. The bytes read must be as many as the listing said (a server still writing, or a
 * short read, fails the backup). A copy location whose own upload fails is left out of the objects that follow;
 * a failure of the read itself fails the backup, never a copy location.
 */
async function readBack(job: CopyJob, path: string, listed: number, failed: Map<string, BackupError>): Promise<{ size: number; sha256: string }> {
  const name = `${SERVER_DIR}/${path}`;
  const copies = job.copies.filter((l) => !failed.has(l.name));
  const abort = linkedAbort(job.signal);
  const read = () => job.primary.storage.get(keyIn(backupPrefix(job.primary.scope, job.id), name), { signal: abort.signal });
  const checked = (r: { size: number; sha256: string }): { size: number; sha256: string } => {
    if (r.size !== listed) throw new BackupError('INTEGRITY', `${job.primary.name}: ${name} was listed with ${listed} bytes and read with ${r.size} (the server may still be writing it); the backup is not kept`);
    return r;
  };
  const hashOnly = async (): Promise<{ size: number; sha256: string }> => {
    const digest = new DigestStream();
    await pipeline(await read(), digest, discard(), { signal: abort.signal });
    return checked({ size: digest.bytes, sha256: digest.sha256 });
  };
  try {
    if (copies.length === 0) return await hashOnly();
    // Only an error of reading the primary itself is the source's: the body is read through a generator that
    // records it, so a copy's failure (which stops the read) is never taken for one.
    const body = await read();
    let sourceError: unknown;
    const source = (async function* () {
      try {
        for await (const chunk of body) yield chunk as Buffer;
      } catch (err) {
        sourceError ??= err;
        throw err;
      }
    })();
    const digest = new DigestStream();
    const fan = new FanOut(copies.map((l) => l.name));
    const putErrors = new Map<string, BackupError>();
    const uploads = copies.map(async (loc, i) => {
      try {
        return (await loc.storage.put(keyIn(backupPrefix(loc.scope, job.id), name), fan.branches[i]!.stream, { signal: abort.signal })).size;
      } catch (err) {
        const error = toBackupError(err, 'STORAGE_FAILED');
        fan.detach(loc.name, error);
        putErrors.set(loc.name, error);
        return undefined;
      }
    });
    const flow = await pipeline(source, digest, fan, { signal: abort.signal }).then(
      () => undefined,
      (err: unknown) => err,
    );
    const sizes = await Promise.all(uploads);
    // The read failed (the copies' uploads failed with it, through no fault of theirs): nothing of this object is known.
    if (flow && (sourceError !== undefined || putErrors.size < copies.length)) throw toBackupError(sourceError ?? flow, 'STORAGE_FAILED');
    for (const [location, error] of putErrors) {
      if (!abort.signal.aborted) job.log.error({ location, err: error }, 'location failed while copying the server-side backup; continuing with the others');
      failed.set(location, error);
    }
    // Every copy failed on the way: the object is hashed from the primary alone.
    if (flow) return await hashOnly();
    const r = checked({ size: digest.bytes, sha256: digest.sha256 });
    copies.forEach((loc, i) => {
      if (sizes[i] !== undefined && sizes[i] !== r.size && !failed.has(loc.name)) failed.set(loc.name, new BackupError('INTEGRITY', `${loc.name}: stored ${sizes[i]} bytes of ${name}, read ${r.size}`));
    });
    return r;
  } finally {
    abort.dispose();
  }
}

/** How many objects are read back (and copied) at a time: a server writes many (CockroachDB: an SST file per range). */
export const READ_BACK_CONCURRENCY = 4;

/**
 * Every object read back, READ_BACK_CONCURRENCY at a time, in the manifest in path order. The first failure
 * stops the others and is the one thrown.
 */
async function readBackAll(job: CopyJob, paths: Map<string, number>, failed: Map<string, BackupError>, onBytes: (n: number) => void): Promise<ManifestObject[]> {
  const list = [...paths].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const abort = linkedAbort(job.signal);
  let failure: unknown;
  try {
    // Every read settles before this returns (a failed one never leaves another in flight), and after the first failure none starts.
    const out = await mapLimit(list, READ_BACK_CONCURRENCY, async ([path, listed]): Promise<ManifestObject | undefined> => {
      if (failure !== undefined) return undefined;
      try {
        const plain = await readBack({ ...job, signal: abort.signal }, path, listed, failed);
        onBytes(plain.size);
        return { name: `${SERVER_DIR}/${path}`, ...plain, plain, compression: { algorithm: 'none' }, encryption: { scheme: 'none' } };
      } catch (err) {
        failure ??= err;
        abort.abort(err);
        return undefined;
      }
    });
    if (failure !== undefined) throw toBackupError(failure, 'STORAGE_FAILED');
    return out as ManifestObject[];
  } finally {
    abort.dispose();
  }
}

/**
 * Removes everything under a server-side backup's directory in the primary, whatever the server wrote there
 * (a manifest it planted included): the directory was empty before the tool ran, so nothing there is anyone
 * else's. A filesystem destination's directory goes as a whole (links and all, never followed).
 */
async function purge(rt: Runtime, loc: Location, dir: string, place: ServerPlace): Promise<void> {
  try {
    // A backup directory a tool replaced with a link: the link goes, nothing it points to is listed or deleted.
    if (place.destination.path && (await lstat(dirname(place.destination.path)).catch(() => undefined))?.isSymbolicLink()) {
      await rm(dirname(place.destination.path), { force: true });
      return;
    }
    const failures = await deleteKeys(loc.storage, await listKeys(loc.storage, dir));
    if (failures.length > 0) rt.logger.warn({ location: loc.name, objects: failures.length, err: failures[0]!.error }, 'objects of the failed server-side backup left for the orphan sweeper');
    if (place.destination.path) await rm(dirname(place.destination.path), { recursive: true, force: true });
  } catch (err) {
    rt.logger.warn({ location: loc.name, err }, "the failed server-side backup's objects are left for the orphan sweeper");
  }
}

/** Refuses a backup directory that holds anything before the tool runs (an id taken twice): nothing of it may be removed on failure. */
async function requireEmpty(loc: Location, dir: string, place: ServerPlace, signal: AbortSignal): Promise<void> {
  for await (const o of loc.storage.list(dir, { signal })) {
    throw new BackupError('INTERNAL', `${loc.name}: the new backup's directory already holds ${JSON.stringify(o.key)}; nothing was written`, { details: { location: loc.name } });
  }
  if (place.destination.path) {
    const held = await readdir(dirname(place.destination.path)).catch(() => []);
    if (held.length > 0) throw new BackupError('INTERNAL', `${loc.name}: the new backup's directory already holds files; nothing was written`, { details: { location: loc.name } });
  }
}

export interface ServerBackupContext {
  id: string;
  startedAt: Date;
  probe: ProbeResult;
  ready: Location[];
  failed: LocationOutcome[];
  trigger: Trigger;
  log: Logger;
  signal: AbortSignal;
  onProgress?: ProgressListener;
}

/** One backup by a server-side engine (see the module comment); never deletes an earlier backup. */
export async function runServerBackup(rt: Runtime, ctx: ServerBackupContext): Promise<BackupResult> {
  const { id, startedAt, ready, log } = ctx;
  const engine = rt.engine.serverSide!;
  const fail = (error: BackupError): BackupResult => ({
    id,
    status: 'Failed',
    error,
    locations: [...ctx.failed, ...ready.map((l) => ({ location: l.name, status: 'Failed' as const, error }))],
    startedAt,
    finishedAt: rt.clock(),
  });
  const primary = await choosePrimary(rt, ready, id);
  if ('refused' in primary) {
    return fail(new BackupError('CONFIG_INVALID', `no usable location can be written by the database server: ${primary.refused.join('; ')}`));
  }
  const { loc } = primary;
  const dir = backupPrefix(loc.scope, id);
  const copies = ready.filter((l) => l !== loc);
  log.info({ backupId: id, location: loc.name, copies: copies.map((l) => l.name), server: ctx.probe.serverVersion }, 'server-side backup started');
  let paths: Map<string, number>;
  let written;
  try {
    await requireEmpty(loc, dir, primary.place, ctx.signal);
  } catch (err) {
    return fail(toBackupError(err, 'INTERNAL'));
  }
  try {
    // A filesystem destination is made for the tool; an object store needs no directory.
    if (primary.place.destination.path) await mkdir(primary.place.destination.path, { recursive: true });
    written = await engine.backup(primary.place, { signal: ctx.signal });
    if (primary.place.destination.path) await checkTree(dirname(primary.place.destination.path));
    paths = await listWritten(loc, dir, ctx.signal);
    if (ctx.signal.aborted) throw new BackupError('ABORTED', 'the backup was stopped before its manifests were written; nothing of it was kept');
  } catch (err) {
    await purge(rt, loc, dir, primary.place);
    return fail(toBackupError(err, 'DUMP_FAILED'));
  }
  const failedCopies = new Map<string, BackupError>();
  let objects: ManifestObject[];
  const progress = { bytes: 0 };
  try {
    objects = await readBackAll({ id, primary: loc, copies, signal: ctx.signal, log }, paths, failedCopies, (n) => ctx.onProgress?.({ phase: 'copy', bytesIn: (progress.bytes += n) }));
    if (ctx.signal.aborted) throw new BackupError('ABORTED', 'the backup was stopped before its manifests were written; nothing of it was kept');
  } catch (err) {
    await purge(rt, loc, dir, primary.place);
    await removeBackupDir(rt, copies, id);
    return fail(toBackupError(err, 'STORAGE_FAILED'));
  }
  const manifest: Manifest = { ...manifestBase(rt, { formatVersion: SERVER_FORMAT_VERSION, id, probe: ctx.probe, startedAt, trigger: ctx.trigger, written }), objects };
  const dropped: LocationOutcome[] = [...failedCopies].map(([location, error]) => ({ location, status: 'Failed', error }));
  const committing = [loc, ...copies.filter((l) => !failedCopies.has(l.name))];
  const outcomes = await Promise.all(committing.map((l) => commit(rt, l, manifest)));
  await removeBackupDir(rt, copies.filter((l) => failedCopies.has(l.name)), id);
  const result = finished(rt, { id, startedAt, outcomes: [...ctx.failed, ...dropped, ...outcomes], ...(outcomes.some((o) => o.status === 'Succeeded') ? { manifest } : {}) });
  log.info({ backupId: id, status: result.status, bytes: progress.bytes, objects: objects.length }, 'server-side backup finished');
  return result;
}

/** The keys of a manifest's server objects below its directory, for a restore request. */
export function sourceObjects(m: Manifest): SourceObject[] {
  return m.objects.map((o) => ({ path: o.name.slice(SERVER_DIR.length + 1), size: o.size, sha256: o.sha256 }));
}
