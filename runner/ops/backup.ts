import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { newBackupId } from '../backup-id.js';
import { AgeEncrypt } from '../crypto/age.js';
import { signManifest } from '../crypto/signing.js';
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import { type Manifest, type ManifestObject, MANIFEST_FORMAT_VERSION, serializeManifest } from '../manifest.js';
import { type CompressionPlan, compress, hasZstd, pipeCompressor, planCompression, type Stage } from '../pipeline/compression.js';
import type { DumpHandle } from '../engines/types.js';
import { ByteCounter } from '../pipeline/counter.js';
import { DigestStream } from '../pipeline/digest.js';
import { FanOut } from '../pipeline/fanout.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { dataFileName, manifestKey, objectKey, storedFileName } from '../storage/layout.js';
import { setTimeout as delay } from 'node:timers/promises';
import { everyInterval, linkedAbort } from '../util/async.js';
import { putManifest } from './write-manifest.js';

export type BackupStatus = 'Succeeded' | 'PartiallySucceeded' | 'Failed';
export type Trigger = Manifest['trigger'];

export interface LocationOutcome {
  location: string;
  status: 'Succeeded' | 'Failed';
  size?: number;
  error?: BackupError;
}

export interface BackupResult {
  id: string;
  status: BackupStatus;
  locations: LocationOutcome[];
  /** The manifest of the first location that stored the backup (each location has its own). */
  manifest?: Manifest;
  /** The cause when the whole backup failed (dump failed, no location usable). */
  error?: BackupError;
  startedAt: Date;
  finishedAt: Date;
}

export interface BackupOptions {
  trigger: Trigger;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Told the backup's id as soon as it is chosen, before anything runs. */
  onStarted?: (backup: { id: string; startedAt: Date }) => void;
  /** Stores this dump instead of dumping the database (import --keep). */
  source?: BackupSource;
}

/** A dump made elsewhere, stored as a backup: the stream, what the manifest says of it. */
export interface BackupSource {
  start(signal: AbortSignal): Promise<DumpHandle>;
  serverVersion: string;
  toolVersion: string;
  origin: NonNullable<Manifest['origin']>;
}

/** Checks every location concurrently; returns those ready and the failures. */
async function preflight(rt: Runtime, signal: AbortSignal): Promise<{ ready: Location[]; failed: LocationOutcome[] }> {
  const checks = await Promise.all(
    rt.locations.map(async (loc) => {
      try {
        await loc.storage.preflight({ signal });
        return { loc };
      } catch (err) {
        return { loc, error: toBackupError(err, 'STORAGE_FAILED') };
      }
    }),
  );
  const failed: LocationOutcome[] = [];
  for (const c of checks) {
    if (c.error) {
      rt.logger.error({ location: c.loc.name, err: c.error }, 'location is not usable; backing up to the others');
      failed.push({ location: c.loc.name, status: 'Failed', error: c.error });
    }
  }
  return { ready: checks.filter((c) => !c.error).map((c) => c.loc), failed };
}

function summarize(outcomes: LocationOutcome[]): BackupStatus {
  const ok = outcomes.filter((o) => o.status === 'Succeeded').length;
  if (ok === 0) return 'Failed';
  return ok === outcomes.length ? 'Succeeded' : 'PartiallySucceeded';
}

/**
 * One backup: the database is dumped once, compressed once, hashed once and
 * streamed to every usable location at the same time. A location that fails
 * is detached and its upload aborted; the others finish. Each location that
 * stored the data gets its manifest last. A failed dump leaves nothing
 * visible anywhere, and no backup is ever deleted here.
 */
export async function runBackup(rt: Runtime, opts: BackupOptions): Promise<BackupResult> {
  const startedAt = rt.clock();
  const log = rt.logger.child({ op: 'backup' });
  const abort = linkedAbort(opts.signal);
  const id = newBackupId(startedAt);
  opts.onStarted?.({ id, startedAt });
  const failAll = (error: BackupError, prior: LocationOutcome[] = []): BackupResult => ({
    id,
    status: 'Failed',
    error,
    locations: [...prior, ...rt.locations.filter((l) => !prior.some((p) => p.location === l.name)).map((l) => ({ location: l.name, status: 'Failed' as const, error }))],
    startedAt,
    finishedAt: rt.clock(),
  });

  try {
    const probe = opts.source ? { serverVersion: opts.source.serverVersion, toolVersion: opts.source.toolVersion } : await rt.engine.probe({ signal: abort.signal });
    const { ready, failed } = await preflight(rt, abort.signal);
    if (ready.length === 0) {
      return { id, status: 'Failed', error: new BackupError('ALL_LOCATIONS_FAILED', 'no storage location is usable'), locations: failed, startedAt, finishedAt: rt.clock() };
    }
    const plan = planCompression(rt.config.compression, await hasZstd());
    log.info({ backupId: id, locations: ready.map((l) => l.name), compression: plan.algorithm, server: probe.serverVersion }, 'backup started');

    const { dump, compressed, raw } = await startDump(rt, plan, abort.signal, opts.source);
    const dataName = dataFileName(dump.extension, plan.suffix);
    const digest = new DigestStream();
    // The branches end only once the dump and compressor exited cleanly, so a
    // failed dump aborts every upload instead of completing a truncated one.
    const fan = new FanOut(
      ready.map((l) => l.name),
      { beforeEnd: () => Promise.all([dump.done, compressed.done]).then(() => undefined) },
    );

    // Per location, its own transform: an encrypted location seals its branch (age) and hashes what it stores.
    const sealed = ready.map((loc) => (loc.crypto ? { encrypt: new AgeEncrypt(loc.crypto.to), digest: new DigestStream() } : undefined));
    const uploads = ready.map(async (loc, i): Promise<LocationOutcome> => {
      const branch = fan.branches[i]!;
      const seal = sealed[i];
      try {
        let body: Readable = branch.stream;
        if (seal) {
          pipeline(branch.stream, seal.encrypt, seal.digest).catch((err: unknown) => seal.digest.destroy(toBackupError(err, 'INTERNAL')));
          body = seal.digest;
        }
        const r = await loc.storage.put(objectKey(loc.scope, id, storedFileName(dataName, loc.crypto !== undefined)), body, { signal: abort.signal });
        return { location: loc.name, status: 'Succeeded', size: r.size };
      } catch (err) {
        const error = toBackupError(err, 'STORAGE_FAILED');
        fan.detach(loc.name, error);
        if (!abort.signal.aborted) log.error({ location: loc.name, err: error }, 'location failed during upload; continuing with the others');
        return { location: loc.name, status: 'Failed', error };
      }
    });

    const progress = (): void => opts.onProgress?.({ phase: 'dump', bytesIn: raw?.bytes ?? digest.bytes, bytesOut: digest.bytes });
    const ticker = everyInterval(1000, progress);
    const flowError = await pipeline(compressed.output, digest, fan, { signal: abort.signal }).then(
      () => undefined,
      async (err: unknown) => {
        abort.abort(err);
        return explainFlowFailure(err, dump.done, compressed.done);
      },
    );
    ticker.stop();
    const stored = await Promise.all(uploads);
    progress();
    if (flowError) {
      // No upload completed: the branches end only after a clean dump.
      return failAll(flowError, [...failed, ...stored.filter((s) => s.status === 'Failed' && s.error?.code !== 'ABORTED')]);
    }

    const plain = { size: digest.bytes, sha256: digest.sha256 };
    const position = await dump.position;
    const compression = plan.level === undefined ? { algorithm: plan.algorithm } : { algorithm: plan.algorithm, level: plan.level };
    const base: Omit<Manifest, 'objects'> = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      kind: 'backup',
      id,
      namespace: rt.config.namespace,
      name: rt.config.name,
      database: rt.engine.database,
      engine: { name: rt.engine.name, serverVersion: probe.serverVersion, toolVersion: probe.toolVersion, format: dump.format, ...(position ? { position } : {}) },
      startedAt: startedAt.toISOString(),
      consistentAt: (await dump.consistentAt).toISOString(),
      finishedAt: rt.clock().toISOString(),
      trigger: opts.trigger,
      runnerVersion: rt.runnerVersion,
      ...(opts.source ? { origin: opts.source.origin } : {}),
    };
    // Each location's own manifest: its object as it stores it (encrypted: its own size and digest; else the plain bytes).
    const manifests = ready.map((loc, i): Manifest => {
      const seal = sealed[i];
      const held = seal && stored[i]!.status === 'Succeeded' ? { size: seal.digest.bytes, sha256: seal.digest.sha256 } : plain;
      const object: ManifestObject = { name: storedFileName(dataName, loc.crypto !== undefined), ...held, plain, compression, encryption: loc.crypto?.encryption ?? { scheme: 'none' } };
      return { ...base, objects: [object] };
    });
    const outcomes = await Promise.all(ready.map((loc, i) => commit(rt, loc, stored[i]!, manifests[i]!)));
    const all = [...failed, ...outcomes];
    const status = summarize(all);
    const manifest = manifests[outcomes.findIndex((o) => o.status === 'Succeeded')];
    log.info({ backupId: id, status, bytes: digest.bytes, ...(raw ? { rawBytes: raw.bytes } : {}) }, 'backup finished');
    return {
      id,
      status,
      locations: all,
      ...(manifest ? { manifest } : {}),
      startedAt,
      finishedAt: rt.clock(),
      ...(status === 'Failed' ? { error: new BackupError('ALL_LOCATIONS_FAILED', 'every storage location failed') } : {}),
    };
  } catch (err) {
    abort.abort(err);
    return failAll(toBackupError(err, 'DUMP_FAILED'));
  } finally {
    abort.dispose();
  }
}

/**
 * Starts the dump and its compression. With zstd the dump process writes
 * straight into the compressor's pipe; otherwise the dump's stream is counted
 * and compressed here.
 */
async function startDump(rt: Runtime, plan: CompressionPlan, signal: AbortSignal, source?: BackupSource): Promise<{ dump: DumpHandle; compressed: Stage; raw?: ByteCounter }> {
  const sink = rt.engine.dumpsIntoPipe && !source ? pipeCompressor(plan, signal) : undefined;
  let dump: DumpHandle;
  try {
    dump = source ? await source.start(signal) : await rt.engine.dump({ signal, ...(sink ? { output: sink.input } : {}) });
  } catch (err) {
    sink?.kill();
    throw err;
  }
  if (sink) {
    sink.release();
    return { dump, compressed: sink.stage };
  }
  if (!dump.stream) throw new BackupError('INTERNAL', `the ${rt.engine.name} engine returned no dump stream`);
  const raw = new ByteCounter();
  pipeline(dump.stream, raw).catch(() => undefined); // an error destroys `raw`, which fails the flow
  return { dump, compressed: compress(raw, plan, signal), raw };
}

/** The most telling cause of a failed flow: the dump's own error, then the compressor's, then the pipe's. */
async function explainFlowFailure(err: unknown, ...stages: Promise<void>[]): Promise<BackupError> {
  for (const stage of stages) {
    const stageError = await Promise.race([stage.then(() => undefined, (e: unknown) => e), delay(2000)]);
    // A stage stopped by the abort itself says nothing about the cause.
    if (stageError && !isBackupError(stageError, 'ABORTED')) return toBackupError(stageError, 'DUMP_FAILED');
  }
  if (err instanceof AggregateError) return new BackupError('ALL_LOCATIONS_FAILED', 'every storage location failed during the upload', { cause: err });
  return toBackupError(err, 'DUMP_FAILED');
}

/**
 * Checks what a location stored and writes its manifest; undoes the data object when that fails, unless the
 * failed manifest write landed after all (then the backup is there) or cannot be told (then the data stays).
 */
async function commit(rt: Runtime, loc: Location, stored: LocationOutcome, manifest: Manifest): Promise<LocationOutcome> {
  if (stored.status === 'Failed') return stored;
  const dataKey = objectKey(loc.scope, manifest.id, manifest.objects[0]!.name);
  const expected = manifest.objects[0]!.size;
  let error: BackupError;
  let undo = true;
  if (stored.size !== expected) {
    error = new BackupError('INTEGRITY', `${loc.name}: stored ${stored.size} bytes, expected ${expected}`);
  } else {
    const key = rt.signing?.key;
    const put = await putManifest(loc, manifestKey(loc.scope, manifest.id), serializeManifest(key ? signManifest(manifest, key) : manifest));
    if (put.ok) return { location: loc.name, status: 'Succeeded', size: expected };
    error = put.error;
    undo = put.now === 'absent';
  }
  if (undo) {
    rt.logger.error({ location: loc.name, err: error }, 'could not complete the backup in this location; removing its data');
    await loc.storage.delete(dataKey).catch((e: unknown) => rt.logger.warn({ location: loc.name, err: e }, 'data object left for the orphan sweeper'));
  } else {
    rt.logger.error({ location: loc.name, err: error }, 'the manifest write failed, but a manifest may be there: its data is kept');
  }
  return { location: loc.name, status: 'Failed', error };
}
