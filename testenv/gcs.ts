/**
 * Starts a real Cloud Storage emulator (firebase-tools' StorageEmulator) for
 * tests, demos and benchmarks.
 *
 * Its CLI needs Java 21 for the security-rules runtime; the GCS JSON API that
 * @google-cloud/storage speaks does not use rules (it is served as admin), so
 * the emulator's Node class is started directly here with the rules runtime
 * replaced by no-ops.
 *
 * Invariants and limits of the emulator:
 * - Buckets appear on first use (createBucket answers 501), so a missing
 *   bucket cannot be simulated; credentials are not checked.
 * - Simple and single-request resumable uploads work; chunked resumable
 *   uploads (`chunkSize`) do not. Request bodies are buffered by the emulator
 *   (limit 130 MB per upload) — in this process when started in-process, so
 *   memory measurements of a client need `spawnGcsEmulator`.
 * - Each instance owns one temp directory and one loopback port; `stop()` is
 *   idempotent and removes the directory.
 *
 * As a process: `npx tsx testenv/gcs.ts [--port N]` prints one JSON line
 * `{"apiEndpoint": ...}` and runs until SIGINT/SIGTERM.
 */
import { runAsProcess, spawnAsProcess } from './main.js';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Storage as GcsClient } from '@google-cloud/storage';
import type { GcsLocation } from '../api/index.js';
import { silentLogger } from '../runner/logger.js';
import { GcsStorage } from '../runner/storage/gcs.js';
import type { Storage } from '../runner/storage/types.js';

export const GCS_INSTALL_HINT =
  'The GCS emulator comes from the npm package firebase-tools (a devDependency, lib/emulator/storage/): run `npm ci` in the repository root.';
export const GCS_PROJECT = 'demo-backup';

export interface GcsEmulator {
  /** e.g. http://127.0.0.1:41235 */
  apiEndpoint: string;
  port: number;
  projectId: string;
  /** A location block for this emulator. */
  location(bucket: string, overrides?: Partial<GcsLocation>): GcsLocation;
  /** A Storage on `bucket` (no retry wrapper), for tests that inspect or tamper with stored objects. */
  storage(bucket: string): Storage;
  stop(): Promise<void>;
}

/** The parts of firebase-tools' emulator classes used here (they ship no types for deep imports). */
interface EmulatorInstance {
  args: { port: number };
  _rulesRuntime: { start(): Promise<void>; stop(): Promise<void> };
  _rulesManager: { start(): Promise<unknown>; stop(): Promise<void> };
  _persistence: { deleteAll(): Promise<void> };
  uploadService: { reset(): void };
}
type EmulatorClass = new (args: { projectId: string; host: string; port: number; rules: unknown[]; auto_download: boolean }) => EmulatorInstance;
type CreateApp = (projectId: string, emulator: EmulatorInstance) => Promise<{ listen(port: number, host: string): Server }>;
interface Registry {
  get(name: string): unknown;
  set(name: string, instance: EmulatorInstance): void;
  clear(name: string): void;
}

interface EmulatorModules {
  StorageEmulator: EmulatorClass;
  createApp: CreateApp;
  /** Process-wide: object metadata links are built from the registered instance's host and port. */
  EmulatorRegistry: Registry;
}

function loadEmulator(): EmulatorModules {
  const require = createRequire(import.meta.url);
  try {
    const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js') as { StorageEmulator: EmulatorClass };
    const { createApp } = require('firebase-tools/lib/emulator/storage/server.js') as { createApp: CreateApp };
    const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js') as { EmulatorRegistry: Registry };
    return { StorageEmulator, createApp, EmulatorRegistry };
  } catch (err) {
    throw new Error(`${GCS_INSTALL_HINT} (${(err as Error).message})`, { cause: err });
  }
}

function handle(apiEndpoint: string, stop: () => Promise<void>): GcsEmulator {
  const port = Number(new URL(apiEndpoint).port);
  const clients: GcsClient[] = [];
  return {
    apiEndpoint,
    port,
    projectId: GCS_PROJECT,
    location: (bucket, overrides = {}) => ({ bucket, projectId: GCS_PROJECT, apiEndpoint, ...overrides }),
    storage: (bucket) => {
      const client = new GcsClient({ apiEndpoint, projectId: GCS_PROJECT });
      clients.push(client);
      return new GcsStorage(client, bucket, { description: `gs://${bucket}`, logger: silentLogger() });
    },
    stop,
  };
}

/**
 * Starts the emulator in this process on a loopback port (0: a free one).
 * One per process: the emulator registers itself in firebase-tools'
 * process-wide registry.
 */
export async function startGcsEmulator(opts: { port?: number } = {}): Promise<GcsEmulator> {
  const { StorageEmulator, createApp, EmulatorRegistry } = loadEmulator();
  if (EmulatorRegistry.get('storage') !== undefined) throw new Error('a GCS emulator already runs in this process; use spawnGcsEmulator() for another');
  const dir = await mkdtemp(join(tmpdir(), 'gcs-emulator-'));
  // Persist blobs in our own directory instead of the shared $TMPDIR/firebase/storage/blobs.
  class Emulator extends StorageEmulator {
    getPersistenceTmpDir(): string {
      return join(dir, 'blobs');
    }
  }
  const emulator = new Emulator({ projectId: GCS_PROJECT, host: '127.0.0.1', port: 0, rules: [], auto_download: false });
  emulator._rulesRuntime.start = () => Promise.resolve();
  emulator._rulesRuntime.stop = () => Promise.resolve();
  await emulator._rulesManager.start();
  const app = await createApp(GCS_PROJECT, emulator);
  const server = app.listen(opts.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  emulator.args.port = port;
  EmulatorRegistry.set('storage', emulator);
  let stopped = false;
  return handle(`http://127.0.0.1:${port}`, async () => {
    if (stopped) return;
    stopped = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await emulator._rulesManager.stop();
    EmulatorRegistry.clear('storage');
    await rm(dir, { recursive: true, force: true });
  });
}

/** Alias of startGcsEmulator. */
export const startGcs = startGcsEmulator;

/**
 * Starts the emulator as a child process (`tsx testenv/gcs.ts`), so that its
 * buffering of request bodies does not count against this process's memory.
 */
export async function spawnGcsEmulator(): Promise<GcsEmulator> {
  const { info, stop } = await spawnAsProcess<{ apiEndpoint: string }>('gcs', [], GCS_INSTALL_HINT);
  return handle(info.apiEndpoint, stop);
}

runAsProcess(import.meta.url, async () => {
  const [flag, value] = process.argv.slice(2);
  if (flag !== undefined && (flag !== '--port' || value === undefined)) throw new Error('usage: gcs.ts [--port N]');
  const emu = await startGcsEmulator({ port: value === undefined ? 0 : Number(value) });
  return { info: { apiEndpoint: emu.apiEndpoint, projectId: emu.projectId }, stop: () => emu.stop() };
});
