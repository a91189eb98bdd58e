/**
 * Finding PostgreSQL client tools on this machine (I/O; the pure argv
 * building is in plan.ts).
 */
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError, isBackupError } from '../../errors.js';
import { capture, minimalEnv } from '../../util/process.js';
import { parseToolVersion, type PgVersion } from './plan.js';

/** Where Debian and Ubuntu install each PostgreSQL major version side by side. */
export const DEBIAN_ROOT = '/usr/lib/postgresql';

/** The version a tool reports with --version. */
export async function readToolVersion(path: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<PgVersion> {
  try {
    // `--version` needs no connection: nothing but PATH-like variables, never the runner's credentials.
    return parseToolVersion(await capture(path, ['--version'], { env: minimalEnv(env), signal }));
  } catch (err) {
    throw withInstallHint(err, path);
  }
}

/** Adds what to do to a TOOL_MISSING error; other errors pass through. */
export function withInstallHint(err: unknown, path: string): unknown {
  if (!isBackupError(err, 'TOOL_MISSING')) return err;
  return new BackupError(
    'TOOL_MISSING',
    `${path} was not found: install the PostgreSQL client tools (Debian: apt-get install postgresql-client) or set engine.postgresql.binDir to their directory`,
    { cause: err, details: { command: path } },
  );
}

/**
 * The newest /usr/lib/postgresql/<major>/bin whose pg_dump is at least
 * `minMajor`, or undefined. Used when the pg_dump found on PATH is older than
 * the server (several client versions installed side by side).
 */
export async function findDebianBinDir(
  minMajor: number,
  env: NodeJS.ProcessEnv,
  root = DEBIAN_ROOT,
): Promise<{ binDir: string; version: PgVersion } | undefined> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return undefined;
  }
  const majors = entries.filter((e) => /^\d+(\.\d+)?$/.test(e)).sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    if (Number(major) < minMajor) break;
    const binDir = join(root, major, 'bin');
    try {
      await access(join(binDir, 'pg_dump'));
      const version = await readToolVersion(join(binDir, 'pg_dump'), env);
      if (version.major >= minMajor) return { binDir, version };
    } catch {
      // Not a usable install; try the next one.
    }
  }
  return undefined;
}
