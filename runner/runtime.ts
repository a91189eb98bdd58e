import type { KeyObject } from 'node:crypto';
import type { RunnerConfig } from '../api/index.js';
import type { LocationCrypto } from './crypto/location.js';
import type { Engine } from './engines/types.js';
import type { Logger } from './logger.js';
import type { Manifest } from './manifest.js';
import type { Scope } from './storage/layout.js';
import type { ForeignObjects } from './storage/foreign.js';
import type { Storage } from './storage/types.js';

export interface Location {
  /** The location's name from the config. */
  name: string;
  storage: Storage;
  scope: Scope;
  /** Encryption of what this location stores (age); absent: stored as it is. */
  crypto?: LocationCrypto;
  /** false: backups it missed are not copied into it by the daemon (config `heal`); mirror still fills it. */
  heal?: boolean;
}

export interface ProgressEvent {
  phase: 'dump' | 'verify' | 'download' | 'restore' | 'copy';
  /** Bytes read from the source so far (dump output, or downloaded object bytes). */
  bytesIn: number;
  /** Bytes written so far (compressed bytes sent to locations), when that differs. */
  bytesOut?: number;
  /** Total expected bytes, when known. */
  total?: number;
  location?: string;
}

export type ProgressListener = (e: ProgressEvent) => void;

/** Everything an operation needs, built once from the validated config. */
export interface Runtime {
  config: Readonly<RunnerConfig>;
  engine: Engine;
  locations: Location[];
  logger: Logger;
  clock: () => Date;
  runnerVersion: string;
  /**
   * Parsed manifests by location and key. Manifests are written once and
   * never changed, so a long-lived process (the daemon) reads each only once.
   */
  manifestCache?: Map<string, Map<string, Manifest>>;
  /** Where foreign objects are reported once per key; the process's tracker when unset. */
  foreign?: ForeignObjects;
  /** Signed manifests: the key that signs what this runner writes, the keys a manifest must be signed by to be believed. */
  signing?: { key?: KeyObject; trust?: readonly KeyObject[] };
}

export async function closeRuntime(rt: Runtime): Promise<void> {
  await Promise.allSettled(rt.locations.map((l) => l.storage.close()));
}
