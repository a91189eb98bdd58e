/**
 * Starts a real, throwaway Redis server for tests and demos (Debian's
 * `redis-server`): a temp directory, a free loopback port, a password
 * (`requirepass`), no persistence of its own. `stop()` is idempotent and
 * removes the directory; servers still running when the process exits are
 * killed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { exec } from './exec.js';
import { freePort } from './net.js';

export const REDIS_INSTALL_HINT = 'redis-server and redis-cli were not found. Install them with `apt-get install -y redis-server redis-tools` (as root) or run `bash testenv/install-deps.sh`.';

const SERVER = '/usr/bin/redis-server';
const CLI = '/usr/bin/redis-cli';

export interface RedisInstance {
  host: string;
  port: number;
  password: string;
  version: string;
  /** Runs one redis-cli command (arguments as given) and returns its raw output, trailing newline removed. */
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

const live = new Set<{ child: ChildProcess; dir: string }>();
let hooked = false;

export async function startRedis(): Promise<RedisInstance> {
  if (!existsSync(SERVER) || !existsSync(CLI)) throw new Error(REDIS_INSTALL_HINT);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const i of live) {
        i.child.kill('SIGKILL');
        spawnSync('rm', ['-rf', i.dir], { stdio: 'ignore' });
      }
    });
  }
  const dir = await mkdtemp(join(tmpdir(), 'redis-testenv-'));
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const child = spawn(SERVER, ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'no', '--requirepass', password, '--logfile', join(dir, 'redis.log')], { stdio: 'ignore' });
  const entry = { child, dir };
  live.add(entry);
  const cli = async (...args: string[]): Promise<string> => (await exec(CLI, ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning', ...args], { env: { ...process.env, REDISCLI_AUTH: password } })).stdout.replace(/\n$/, '');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    child.kill('SIGKILL');
    live.delete(entry);
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await cli('PING')) === 'PONG') break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`redis-server did not start on port ${port}`);
    }
    await delay(50);
  }
  const version = /redis_version:(\S+)/.exec(await cli('INFO', 'server'))?.[1] ?? 'unknown';
  return { host: '127.0.0.1', port, password, version, cli, stop };
}
