/**
 * The fast path of `backup-runner wal-fetch WALFILE DEST`: PostgreSQL runs it once per WAL file while it
 * recovers, so a file the previous call already fetched and checked (prefetched into PREFETCH_DIR beside
 * DEST, wal-fetch.ts) is moved into place here, without loading the runner and its storage clients.
 * Anything else (no such file, other arguments) falls through to the full command.
 */
import { readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Where wal-fetch keeps the files it fetched ahead, beside PostgreSQL's DEST (in pg_wal/). */
export const PREFETCH_DIR = '.backup-runner-prefetch';

const WAL_NAME = /^[0-9A-F]{24}$/;
const VALUED = new Set(['-c', '--config', '-o', '--output', '--log-level']);

/** Pure: WALFILE and DEST of a wal-fetch command line (after the command name), or undefined. */
export function walFetchArgs(args: readonly string[]): { wal: string; dest: string } | undefined {
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (VALUED.has(a)) i++;
    else if (!a.startsWith('-')) positional.push(a);
  }
  if (positional.length !== 2 || !WAL_NAME.test(positional[0]!)) return undefined;
  return { wal: positional[0]!, dest: positional[1]! };
}

/** Serves a prefetched file: true when it was moved to DEST (and older prefetched files removed). */
export async function servePrefetched(argv: readonly string[]): Promise<boolean> {
  if (argv[0] !== 'wal-fetch') return false;
  const a = walFetchArgs(argv.slice(1));
  if (!a) return false;
  const dir = join(dirname(a.dest), PREFETCH_DIR);
  try {
    await rename(join(dir, a.wal), a.dest);
  } catch {
    return false;
  }
  // Older ones are never asked for again (recovery goes forward).
  for (const f of await readdir(dir).catch(() => [] as string[])) if (WAL_NAME.test(f) && f < a.wal) await rm(join(dir, f), { force: true });
  return true;
}
