/**
 * Builds the Storage for one configured location, chosen by `type`, wrapped
 * with retries. The S3 and GCS backends (and their SDKs) are imported only
 * when a location of that type exists: a runner that writes to a directory
 * never loads them (the runner's memory budget is 150 MB RSS).
 *
 * Keys given to the returned Storage are full keys inside the bucket or
 * directory; the location's `prefix` is applied by layout.ts, and only shows
 * here in the description (`s3://bucket/prefix`).
 */
import type { LocationConfig } from '../../api/index.js';
import { BackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { FilesystemStorage } from './filesystem.js';
import { DEFAULT_RETRY, withRetry, type RetryOptions } from './retry.js';
import type { Storage } from './types.js';

export interface StorageDeps {
  logger: Logger;
  /** Environment for credentials given as `env` secret sources; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Overrides of the retry policy (attempts, delays). */
  retry?: Partial<Omit<RetryOptions, 'logger'>>;
}

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '');
}

/** `s3://bucket/prefix`, `gs://bucket/prefix` or `file:///dir/prefix`, for logs and error messages. */
export function describeLocation(location: LocationConfig): string {
  const prefix = trimSlashes(location.prefix ?? '');
  const tail = prefix === '' ? '' : `/${prefix}`;
  switch (location.type) {
    case 's3':
      return `s3://${location.s3?.bucket ?? '?'}${tail}`;
    case 'gcs':
      return `gs://${location.gcs?.bucket ?? '?'}${tail}`;
    case 'filesystem':
      return `file://${(location.filesystem?.path ?? '?').replace(/\/+$/, '')}${tail}`;
  }
}

function missingBlock(location: LocationConfig): BackupError {
  return new BackupError('CONFIG_INVALID', `location "${location.name}": type is "${location.type}" but the ${location.type} block is missing`, {
    details: { field: `locations[${location.name}].${location.type}` },
  });
}

async function createBackend(location: LocationConfig, deps: StorageDeps, description: string): Promise<Storage> {
  const field = `location "${location.name}" ${location.type}`;
  switch (location.type) {
    case 'filesystem': {
      if (!location.filesystem) throw missingBlock(location);
      return new FilesystemStorage(location.filesystem.path, { description });
    }
    case 's3': {
      if (!location.s3) throw missingBlock(location);
      const { createS3Storage } = await import('./s3.js');
      return createS3Storage(location.s3, { description, field, logger: deps.logger, env: deps.env });
    }
    case 'gcs': {
      if (!location.gcs) throw missingBlock(location);
      const { createGcsStorage } = await import('./gcs.js');
      return createGcsStorage(location.gcs, { description, logger: deps.logger });
    }
  }
}

/** The Storage for `location`, with retries (see retry.ts). Call `close()` when done. */
export async function createStorage(location: LocationConfig, deps: StorageDeps): Promise<Storage> {
  const description = describeLocation(location);
  const backend = await createBackend(location, deps, description);
  return withRetry(backend, { ...DEFAULT_RETRY, ...deps.retry, logger: deps.logger });
}
