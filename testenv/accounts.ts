import { execFileSync, spawnSync } from 'node:child_process';

/** The uid and gid of system account `name`, created (no home, no shell) when missing. For servers that refuse to run as root. */
export function systemAccount(name: string): { uid: number; gid: number } {
  let id = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  if (id.status !== 0) {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
    id = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  }
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}
