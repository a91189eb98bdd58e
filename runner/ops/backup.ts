import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { newBackupId } from '../backup-id.js';
import { AgeEncrypt } from '../crypto/age.js';
import { BackupError, isBackupError, toBackupError } from '../errors.js';
import { type Manifest, type ManifestObject, MANIFEST_FORMAT_VERSION, MULTI_STREAM_FORMAT_VERSION, withoutProperties } from '../manifest.js';
import { type CompressionPlan, compress, hasZstd, pipeCompressor, planCompression, type Stage } from '../pipeline/compression.js';
import type { DumpHandle, StreamSpec } from '../engines/types.js';
import type { Logger } from '../logger.js';
import { ByteCounter } from '../pipeline/counter.js';
import { DigestStream } from '../pipeline/digest.js';
import { FanOut } from '../pipeline/fanout.js';
import type { Location, ProgressListener, Runtime } from '../runtime.js';
import { dataFileName, MAX_STREAMS, objectKey, storedFileName } from '../storage/layout.js';
import { setTimeout as delay } from 'node:timers/promises';
import { everyInterval, linkedAbort } from '../util/async.js';
import { runServerBackup } from './server-backup.js';
import { commit, finished, manifestBase, removeBackupDir } from './backup-commit.js';

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

/** The versions the manifest records: the database's, or those an imported dump's source says. */
async function probeFor(rt: Runtime, opts: BackupOptions, signal: AbortSignal): Promise<{ serverVersion: string; toolVersion: string }> {
  return opts.source ? { serverVersion: opts.source.serverVersion, toolVersion: opts.source.toolVersion } : rt.engine.probe({ signal });
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
    const probe = await probeFor(rt, opts, abort.signal);
    const { ready, failed } = await preflight(rt, abort.signal);
    if (ready.length === 0) {
      return { id, status: 'Failed', error: new BackupError('ALL_LOCATIONS_FAILED', 'no storage location is usable'), locations: failed, startedAt, finishedAt: rt.clock() };
    }
    if (rt.engine.serverSide && !opts.source) return await runServerBackup(rt, { id, startedAt, probe, ready, failed, trigger: opts.trigger, log, signal: abort.signal, onProgress: opts.onProgress });
    // A dump that is compressed already is stored as it is: compressing it again costs CPU and saves nothing.
    const plan = planCompression(rt.engine.dumpsCompressed && !opts.source ? { algorithm: 'none' } : rt.config.compression, await hasZstd());
    const streams = opts.source ? undefined : await rt.engine.streams?.({ signal: abort.signal });
    if (streams && streams.length > MAX_STREAMS) throw new BackupError('CONFIG_INVALID', `the backup would have ${streams.length} streams; at most ${MAX_STREAMS} are stored in one backup`);
    log.info({ backupId: id, locations: ready.map((l) => l.name), compression: plan.algorithm, server: probe.serverVersion, ...(streams ? { streams: streams.map((x) => x.name) } : {}) }, 'backup started');

    const r = await storeStreams(rt, { id, plan, ready, streams, opts, log, signal: abort.signal });
    if ('error' in r) return failAll(r.error, [...failed, ...r.outcomes]);
    const { held, dropped } = r;
    const base = manifestBase(rt, { formatVersion: streams ? MULTI_STREAM_FORMAT_VERSION : MANIFEST_FORMAT_VERSION, id, probe, startedAt, trigger: opts.trigger, written: r, ...(opts.source ? { origin: opts.source.origin } : {}) });
    // Each location's own manifest: its objects as it stores them (encrypted: its own size and digest; else the plain bytes).
    const committing = ready.filter((l) => !dropped.some((d) => d.location === l.name));
    const objectsAt = (loc: Location) => manifestObjects(loc, held.get(loc.name)!);
    const outcomes = await Promise.all(committing.map((loc) => commit(rt, loc, { ...base, objects: objectsAt(loc) })));
    for (const d of dropped) await removeStored(rt, ready.filter((l) => l.name === d.location), id, held);
    const done = committing.find((_l, i) => outcomes[i]!.status === 'Succeeded');
    const result = finished(rt, { id, startedAt, outcomes: [...failed, ...dropped, ...outcomes], ...(done ? { manifest: { ...base, objects: objectsAt(done) } } : {}) });
    log.info({ backupId: id, status: result.status, bytes: r.bytes }, 'backup finished');
    return result;
  } catch (err) {
    abort.abort(err);
    return failAll(toBackupError(err, 'DUMP_FAILED'));
  } finally {
    abort.dispose();
  }
}

/** A location's objects as its manifest records them: an encrypted one's without the database settings and comment (they may hold secrets; a manifest is plain). */
function manifestObjects(loc: Location, objects: ManifestObject[]): ManifestObject[] {
  return loc.crypto ? objects.map(withoutProperties) : objects;
}

/** Locations still in the race that hold fewer objects than the backup has streams: a manifest short of one would not be a backup of them all. */
function shortLocations(ready: readonly Location[], held: Map<string, ManifestObject[]>, out: readonly LocationOutcome[], expected: number): LocationOutcome[] {
  return ready
    .filter((loc) => !out.some((o) => o.location === loc.name) && (held.get(loc.name)?.length ?? 0) !== expected)
    .map((loc) => ({ location: loc.name, status: 'Failed' as const, error: new BackupError('STORAGE_FAILED', `${loc.name} holds ${held.get(loc.name)?.length ?? 0} of the backup's ${expected} objects`) }));
}

interface Streamed {
  /** Per location still in the race, the objects it stored. */
  held: Map<string, ManifestObject[]>;
  /** Locations that failed on the way (what they stored is removed once the backup is committed). */
  dropped: LocationOutcome[];
  consistentAt: Date;
  format: string;
  position?: Record<string, string>;
  bytes: number;
}

/**
 * The streams, `rt.engine.streamConcurrency` at a time (one by default), each to every location still in the
 * race; a location that fails drops out of the streams that start later. A stream that fails fails the backup:
 * the streams still running are stopped and everything stored so far is removed. Objects keep the streams'
 * order (data-001, data-002, ...) whatever order they finish in.
 */
async function storeStreams(
  rt: Runtime,
  ctx: { id: string; plan: CompressionPlan; ready: Location[]; streams: StreamSpec[] | undefined; opts: BackupOptions; log: Logger; signal: AbortSignal },
): Promise<Streamed | { error: BackupError; outcomes: LocationOutcome[] }> {
  const { id, plan, ready, streams, opts, log } = ctx;
  const list = streams ?? [undefined];
  const byIndex: Extract<StreamStored, { format: string }>[] = [];
  const stored = new Map(ready.map((loc) => [loc.name, [] as { index: number; object: ManifestObject }[]]));
  const dropped: LocationOutcome[] = [];
  const abort = linkedAbort(ctx.signal);
  let failure: { error: BackupError; outcomes: LocationOutcome[] } | undefined;
  let next = 0;
  // Streams dumped at a time report one total: each stream's bytes so far, summed (finished streams included).
  const sofar = new Map<number, { bytesIn: number; bytesOut: number }>();
  const progressOf = (i: number): ProgressListener | undefined =>
    opts.onProgress &&
    ((e) => {
      sofar.set(i, { bytesIn: e.bytesIn, bytesOut: e.bytesOut ?? 0 });
      let bytesIn = 0;
      let bytesOut = 0;
      for (const x of sofar.values()) {
        bytesIn += x.bytesIn;
        bytesOut += x.bytesOut;
      }
      opts.onProgress!({ phase: 'dump', bytesIn, bytesOut });
    });
  const worker = async (): Promise<void> => {
    while (!failure && next < list.length) {
      const i = next++;
      const racing = ready.filter((l) => !dropped.some((d) => d.location === l.name));
      if (racing.length === 0) return;
      const stream = list[i];
      const r = await storeStream(rt, { id, plan, locations: racing, signal: abort.signal, stream, index: streams ? i + 1 : undefined, source: opts.source, onProgress: progressOf(i), log });
      if ('error' in r) {
        // The first failure is the backup's; the streams it stops fail as ABORTED, which says nothing new.
        if (!failure) {
          failure = { error: r.error, outcomes: r.outcomes.filter((o) => o.status === 'Failed' && o.error?.code !== 'ABORTED') };
          abort.abort(r.error);
        }
        return;
      }
      for (const o of r.outcomes) {
        // A location drops out once; an upload stopped because another stream failed is not a cause of its own
        // (the backup fails anyway). Any other failure, a cancel included, drops the location.
        if (o.status === 'Failed') {
          const stoppedByOther = o.error?.code === 'ABORTED' && failure !== undefined;
          if (!stoppedByOther && !dropped.some((d) => d.location === o.location)) dropped.push(o);
        } else stored.get(o.location)!.push({ index: i, object: o.object! });
      }
      byIndex[i] = r;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(rt.engine.streamConcurrency ?? 1, list.length)) }, worker));
  } finally {
    abort.dispose();
  }
  const held = new Map([...stored].map(([loc, objects]) => [loc, objects.sort((a, b) => a.index - b.index).map((x) => x.object)]));
  // Stopped after the data was stored: nothing is committed, and what was stored goes.
  if (!failure && ctx.signal.aborted) failure = { error: new BackupError('ABORTED', 'the backup was stopped before its manifests were written; nothing of it was kept'), outcomes: [] };
  if (failure) {
    // Everything of this backup goes, also what a stream stopped part way may have stored under its name.
    await removeBackupDir(rt, ready, id);
    const reported = [...dropped, ...failure.outcomes.filter((o) => !dropped.some((d) => d.location === o.location))];
    return { error: failure.error, outcomes: reported };
  }
  dropped.push(...shortLocations(ready, held, dropped, list.length));
  const out: Streamed = { held, dropped, consistentAt: new Date(0), format: '', bytes: 0 };
  for (const [i, stream] of list.entries()) {
    const r = byIndex[i];
    if (!r) continue;
    if (r.consistentAt > out.consistentAt) out.consistentAt = r.consistentAt;
    if (!stream || stream.kind === 'database') out.format ||= r.format;
    out.position ??= r.position;
    out.bytes += r.bytes;
  }
  return out;
}

interface StreamJob {
  id: string;
  plan: CompressionPlan;
  locations: Location[];
  signal: AbortSignal;
  /** The stream to dump; undefined: the engine's one database. */
  stream?: StreamSpec;
  /** The stream's number in the object name (data-001...); undefined for a single-stream backup (data...). */
  index?: number;
  source?: BackupSource;
  onProgress?: ProgressListener;
  log: Logger;
}

type StreamStored =
  | { outcomes: (LocationOutcome & { object?: ManifestObject })[]; consistentAt: Date; format: string; position?: Record<string, string>; bytes: number }
  | { error: BackupError; outcomes: LocationOutcome[] };

/**
 * One stream: dumped once, compressed once, hashed once and streamed to every
 * location at the same time. A location that fails is detached and its upload
 * aborted; the others finish. The branches end only once the dump and the
 * compressor exited cleanly, so a failed dump completes no upload.
 */
async function storeStream(rt: Runtime, job: StreamJob): Promise<StreamStored> {
  const { plan, locations, signal } = job;
  const abort = linkedAbort(signal);
  try {
    const { dump, compressed, raw } = await startDump(rt, plan, abort.signal, job.source, job.stream);
    const dataName = dataFileName(dump.extension, plan.suffix, '', job.index);
    const digest = new DigestStream();
    const fan = new FanOut(
      locations.map((l) => l.name),
      { beforeEnd: () => Promise.all([dump.done, compressed.done]).then(() => undefined) },
    );
    // Per location, its own transform: an encrypted location seals its branch (age) and hashes what it stores.
    const sealed = locations.map((loc) => (loc.crypto ? { encrypt: new AgeEncrypt(loc.crypto.to), digest: new DigestStream() } : undefined));
    const uploads = locations.map(async (loc, i): Promise<LocationOutcome> => {
      const branch = fan.branches[i]!;
      const seal = sealed[i];
      try {
        let body: Readable = branch.stream;
        if (seal) {
          pipeline(branch.stream, seal.encrypt, seal.digest).catch((err: unknown) => seal.digest.destroy(toBackupError(err, 'INTERNAL')));
          body = seal.digest;
        }
        const r = await loc.storage.put(objectKey(loc.scope, job.id, storedFileName(dataName, loc.crypto !== undefined)), body, { signal: abort.signal });
        return { location: loc.name, status: 'Succeeded', size: r.size };
      } catch (err) {
        const error = toBackupError(err, 'STORAGE_FAILED');
        fan.detach(loc.name, error);
        if (!abort.signal.aborted) job.log.error({ location: loc.name, err: error, ...(job.stream ? { stream: job.stream.name } : {}) }, 'location failed during upload; continuing with the others');
        return { location: loc.name, status: 'Failed', error };
      }
    });

    const progress = (): void => job.onProgress?.({ phase: 'dump', bytesIn: raw?.bytes ?? digest.bytes, bytesOut: digest.bytes });
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
    if (flowError) return { error: flowError, outcomes: stored };

    const plain = { size: digest.bytes, sha256: digest.sha256 };
    const compression = plan.level === undefined ? { algorithm: plan.algorithm } : { algorithm: plan.algorithm, level: plan.level };
    const consistentAt = await dump.consistentAt;
    const position = await dump.position;
    const outcomes = locations.map((loc, i) => {
      const out = stored[i]!;
      if (out.status === 'Failed') return out;
      const seal = sealed[i];
      const heldBytes = seal ? { size: seal.digest.bytes, sha256: seal.digest.sha256 } : plain;
      const object: ManifestObject = {
        name: storedFileName(dataName, loc.crypto !== undefined),
        ...(job.stream
          ? {
              stream: {
                name: job.stream.name,
                kind: job.stream.kind,
                format: dump.format,
                consistentAt: consistentAt.toISOString(),
                ...(job.stream.owner ? { owner: job.stream.owner } : {}),
                ...(job.stream.properties ? { properties: job.stream.properties } : {}),
              },
            }
          : {}),
        ...heldBytes,
        plain,
        compression,
        encryption: loc.crypto?.encryption ?? { scheme: 'none' },
      };
      if (out.size !== object.size) return { location: loc.name, status: 'Failed' as const, error: new BackupError('INTEGRITY', `${loc.name}: stored ${out.size ?? 0} bytes of ${dataName}, expected ${object.size}`), wrong: object };
      return { ...out, object };
    });
    // An object stored with the wrong size is never named by a manifest: removed at once.
    for (const [i, o] of outcomes.entries()) {
      if ('wrong' in o && o.wrong) {
        const loc = locations[i]!;
        await loc.storage.delete(objectKey(loc.scope, job.id, o.wrong.name)).catch((e: unknown) => rt.logger.warn({ location: loc.name, err: e }, 'data object left for the orphan sweeper'));
      }
    }
    return { outcomes, consistentAt, format: dump.format, ...(position ? { position } : {}), bytes: digest.bytes };
  } catch (err) {
    abort.abort(err);
    return { error: toBackupError(err, 'DUMP_FAILED'), outcomes: [] };
  } finally {
    abort.dispose();
  }
}


async function removeStored(rt: Runtime, locations: readonly Location[], id: string, held: Map<string, ManifestObject[]>): Promise<void> {
  for (const loc of locations) {
    for (const o of held.get(loc.name) ?? []) {
      await loc.storage.delete(objectKey(loc.scope, id, o.name)).catch((e: unknown) => rt.logger.warn({ location: loc.name, err: e }, 'data object left for the orphan sweeper'));
    }
    held.set(loc.name, []);
  }
}

/**
 * Starts the dump and its compression. With zstd the dump process writes
 * straight into the compressor's pipe; otherwise the dump's stream is counted
 * and compressed here.
 */
async function startDump(rt: Runtime, plan: CompressionPlan, signal: AbortSignal, source?: BackupSource, stream?: StreamSpec): Promise<{ dump: DumpHandle; compressed: Stage; raw?: ByteCounter }> {
  const sink = rt.engine.dumpsIntoPipe && !source ? pipeCompressor(plan, signal) : undefined;
  let dump: DumpHandle;
  try {
    dump = source ? await source.start(signal) : await rt.engine.dump({ signal, ...(sink ? { output: sink.input } : {}), ...(stream ? { stream } : {}) });
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

