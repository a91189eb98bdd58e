import { readFile } from 'node:fs/promises';
import type { SecretSource } from '../../api/index.js';
import { BackupError } from '../errors.js';

/**
 * Reads a credential from where the config says it is. `field` is the config
 * path, used in the error so the user knows which setting to fix.
 */
export async function resolveSecret(source: SecretSource, field: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (source.value !== undefined) return source.value;
  if (source.env !== undefined) {
    const v = env[source.env];
    if (v === undefined || v === '') {
      throw new BackupError('SECRET_UNREADABLE', `${field}: environment variable ${source.env} is not set`, { details: { field } });
    }
    return v;
  }
  if (source.file !== undefined) {
    try {
      return (await readFile(source.file, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new BackupError('SECRET_UNREADABLE', `${field}: cannot read ${source.file} (${code})`, { cause: err, details: { field } });
    }
  }
  throw new BackupError('SECRET_UNREADABLE', `${field}: no value, env or file set`, { details: { field } });
}

export async function resolveOptionalSecret(source: SecretSource | undefined, field: string, env?: NodeJS.ProcessEnv): Promise<string | undefined> {
  return source === undefined ? undefined : resolveSecret(source, field, env);
}
