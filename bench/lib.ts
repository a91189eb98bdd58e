import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

export interface Timed {
  seconds: number;
  maxRssKiB?: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; stdout to a file when `stdoutFile` is set (e.g. /dev/null). */
export function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; stdoutFile?: string } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const fd = opts.stdoutFile ? openSync(opts.stdoutFile, 'w') : undefined;
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', fd ?? 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (fd !== undefined) closeSync(fd);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      const rss = /\{"maxRssKiB":(\d+)\}\s*$/.exec(err);
      resolve({ seconds, stdout: out, stderr: err, ...(rss ? { maxRssKiB: Number(rss[1]) } : {}) });
    });
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const fmt = (x: number, digits = 2): string => x.toFixed(digits);
