/**
 * Whether the control socket's directory is private to the runner's user:
 * shared by the daemon (refuses to serve there) and the CLI (refuses to send
 * commands there). No server code: the CLI loads this without Fastify.
 */
import type { Stats } from 'node:fs';

/** Pure: why a directory (its lstat) is not private to `uid`; empty when it is. */
export function socketDirProblems(st: Pick<Stats, 'mode' | 'uid' | 'isDirectory'>, uid: number | undefined): string[] {
  const mode = st.mode & 0o777;
  const problems: string[] = [];
  if (!st.isDirectory()) problems.push('it is not a directory (a symlink?)');
  if (uid !== undefined && st.uid !== uid) problems.push(`it is owned by uid ${st.uid}, not by the runner (uid ${uid})`);
  if (mode !== 0o700) problems.push(`its mode is ${mode.toString(8).padStart(4, '0')}, not 0700`);
  return problems;
}
