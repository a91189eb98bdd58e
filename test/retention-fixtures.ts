/** Backups written straight into a storage with the layout helpers (no database), for retention tests. */
import { createHash } from 'node:crypto';
import { type Manifest, type ManifestObject, MANIFEST_FORMAT_VERSION, serializeManifest } from '../runner/manifest.js';
import { validateRunnerConfig } from '../api/index.js';
import type { Engine } from '../runner/engines/types.js';
import { silentLogger } from '../runner/logger.js';
import type { Location, Runtime } from '../runner/runtime.js';
import { type LayoutVersion, manifestKey, objectKey, type Scope } from '../runner/storage/layout.js';
import type { CallOptions, ObjectInfo, Storage } from '../runner/storage/types.js';

/** A manifest object for `data` stored unencrypted (stored bytes = plain bytes), compressed as its name's suffix says unless told. */
export function plainObject(name: string, data: Buffer, algorithm = name.endsWith('.zst') ? 'zstd' : name.endsWith('.gz') ? 'gzip' : 'none'): ManifestObject {
  const digest = { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
  return { name, ...digest, plain: digest, compression: { algorithm }, encryption: { scheme: 'none' } };
}

export function manifestFor(scope: Scope, id: string, consistentAt: Date, files: Record<string, Buffer>): Manifest {
  const iso = consistentAt.toISOString();
  return {
    formatVersion: MANIFEST_FORMAT_VERSION,
    kind: 'backup',
    id,
    namespace: scope.namespace,
    name: scope.name,
    database: 'app',
    engine: { name: 'postgresql', serverVersion: '15.8', toolVersion: '15.8', format: 'custom' },
    startedAt: iso,
    consistentAt: iso,
    finishedAt: iso,
    trigger: 'schedule',
    objects: Object.entries(files).map(([name, data]) => plainObject(name, data)),
    runnerVersion: '0.1.0',
  };
}

/** Writes data objects and, unless `complete` is false, the manifest last (format 2 layout unless told). Returns every key written. */
export async function writeBackup(loc: Location, id: string, time: Date, opts: { complete?: boolean; files?: string[]; layout?: LayoutVersion } = {}): Promise<string[]> {
  const files = Object.fromEntries((opts.files ?? ['data.dump.zst']).map((f) => [f, Buffer.from(`${id}/${f}\n`)]));
  const keys: string[] = [];
  for (const [name, data] of Object.entries(files)) {
    const key = objectKey(loc.scope, id, name, opts.layout);
    await loc.storage.put(key, data);
    keys.push(key);
  }
  if (opts.complete !== false) {
    await loc.storage.put(manifestKey(loc.scope, id, opts.layout), serializeManifest(manifestFor(loc.scope, id, time, files)));
    keys.push(manifestKey(loc.scope, id, opts.layout));
  }
  return keys;
}

export async function allKeys(storage: Storage, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of storage.list(prefix)) keys.push(o.key);
  return keys.sort();
}

export interface StorageCall {
  op: 'delete' | 'stat';
  key: string;
}

export interface Recorder {
  /** Use this as the location's storage: every call goes to the wrapped one, with the hooks below. */
  storage: Storage;
  calls: StorageCall[];
  deletes(): string[];
  /** Deletes of keys for which this returns true fail with an I/O error. */
  failDelete: (key: string) => boolean;
  /** Runs before each stat (to simulate a writer racing the caller). */
  beforeStat: (key: string) => Promise<void>;
  /** Modification times that `list` reports instead of the stored ones; null: none at all. */
  modifiedAt: Map<string, Date | null>;
}

/** Wraps a Storage, recording deletes and stats in call order; every other member passes through. */
export function recording(inner: Storage): Recorder {
  const rec: Recorder = {
    storage: inner,
    calls: [],
    deletes: () => rec.calls.filter((c) => c.op === 'delete').map((c) => c.key),
    failDelete: () => false,
    beforeStat: () => Promise.resolve(),
    modifiedAt: new Map(),
  };
  const overrides: Partial<Storage> = {
    async *list(prefix: string, opts?: CallOptions): AsyncIterable<ObjectInfo> {
      for await (const o of inner.list(prefix, opts)) {
        const time = rec.modifiedAt.get(o.key);
        yield time === null ? { key: o.key, size: o.size } : { ...o, modifiedAt: time ?? o.modifiedAt };
      }
    },
    async stat(key: string, opts?: CallOptions): Promise<ObjectInfo> {
      rec.calls.push({ op: 'stat', key });
      await rec.beforeStat(key);
      return inner.stat(key, opts);
    },
    async delete(key: string, opts?: CallOptions): Promise<void> {
      rec.calls.push({ op: 'delete', key });
      if (rec.failDelete(key)) throw Object.assign(new Error(`injected failure deleting ${key}`), { code: 'EIO' });
      await inner.delete(key, opts);
    },
  };
  rec.storage = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop in overrides) return overrides[prop as keyof Storage];
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return rec;
}

/** A runtime over `locations` (no database: the engine is never called), for tests of operations between locations. */
export function locationsRuntime(locations: Location[], extra: Partial<Runtime> = {}): Runtime {
  const cfg = validateRunnerConfig({
    namespace: 'shop',
    name: 'orders',
    engine: { type: 'postgresql', postgresql: { host: 'h', database: 'd', user: 'u' } },
    locations: locations.map((l) => ({ name: l.name, type: 'filesystem', filesystem: { path: '/unused' } })),
  });
  if (!cfg.ok) throw new Error('bad test config');
  return { config: cfg.value, engine: {} as Engine, locations, logger: silentLogger(), clock: () => new Date(), runnerVersion: 'test', ...extra };
}
