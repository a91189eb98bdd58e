/**
 * The Redis engine, through the tool contract.
 *
 * - backup: `redis-cli --rdb -`, the server's own point-in-time snapshot (a
 *   fork), streamed to stdout untouched.
 * - restore: the RDB is loaded by a scratch `redis-server` in the call's
 *   private directory (which checks its checksum), and every key is copied to
 *   the target with DUMP / RESTORE (value, type and TTL exact). Without
 *   `force` a target holding any key is refused before anything is written;
 *   a failed restore into an empty target removes what it wrote.
 * - inspect: whether the target holds any key (INFO keyspace).
 *
 * Function libraries (Redis 7) are restored with FUNCTION RESTORE.
 *
 * Not covered: Redis Cluster targets (one node's slots only), ACL users and
 * server configuration (not in an RDB), restoring into another server than
 * the configured one through restore.database (refused).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import type { ToolResult } from '../../api/engine-contract.js';
import { type Handlers, requireConfiguredTarget, type ToolContext, ToolFailure } from '../sdk.js';
import { keyspace, parseInfo, payloadRdbVersion, rdbVersion, toolVersion } from './rdb.js';

interface Config {
  /** Keys copied per round trip on restore. */
  batchSize: number;
  /** Seconds to wait for the scratch server to load the RDB. */
  loadTimeoutSeconds: number;
}

function configOf(ctx: ToolContext): Config {
  const c = ctx.request.config as Partial<Config>;
  return { batchSize: c.batchSize ?? 500, loadTimeoutSeconds: c.loadTimeoutSeconds ?? 600 };
}

function targetOptions(ctx: ToolContext): RedisOptions {
  const t = ctx.request.target;
  const tls = t.tls
    ? {
        tls: {
          ...(t.tls.caFile ? { ca: readFileSync(t.tls.caFile) } : {}),
          ...(t.tls.certFile ? { cert: readFileSync(t.tls.certFile) } : {}),
          ...(t.tls.keyFile ? { key: readFileSync(t.tls.keyFile) } : {}),
        },
      }
    : {};
  return {
    host: t.host ?? '127.0.0.1',
    port: t.port ?? 6379,
    ...(t.user ? { username: t.user } : {}),
    ...(ctx.password !== undefined ? { password: ctx.password } : {}),
    ...tls,
    ...QUIET,
  };
}

/** One attempt, no offline queue, no reconnects: a failure is reported, not retried behind the runner's back. */
const QUIET: RedisOptions = { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 10_000 };

async function connect(options: RedisOptions, what: string): Promise<Redis> {
  const r = new Redis(options);
  r.on('error', () => undefined); // reported by the command that failed
  try {
    await r.connect();
  } catch (err) {
    r.disconnect();
    const message = err instanceof Error ? err.message : String(err);
    throw new ToolFailure(/WRONGPASS|NOAUTH|NOPERM/.test(message) ? 'DB_AUTH_FAILED' : 'DB_UNREACHABLE', `${what}: ${message}`);
  }
  return r;
}

async function withTarget<T>(ctx: ToolContext, fn: (r: Redis) => Promise<T>): Promise<T> {
  const t = ctx.request.target;
  const r = await connect(targetOptions(ctx), `redis ${t.host ?? '127.0.0.1'}:${t.port ?? 6379}`);
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** Runs a program to completion and returns its stdout. */
async function output(command: string, args: string[]): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const [code] = (await Promise.race([once(child, 'close'), once(child, 'error').then(([e]) => Promise.reject(e as Error))])) as [number | null];
  if (code !== 0) throw new ToolFailure('FAILED', `${command} exited with ${String(code)}: ${out.trim()}`);
  return out;
}

async function installedVersion(command: string): Promise<string> {
  try {
    const v = toolVersion(await output(command, ['--version']));
    if (!v) throw new Error('no version in its output');
    return v;
  } catch (err) {
    throw new ToolFailure('TOOL_INCOMPATIBLE', `${command} is needed and was not found or did not answer --version (Debian: apt-get install redis-tools redis-server): ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function probe(ctx: ToolContext): Promise<ToolResult<'probe'>> {
  const cli = await installedVersion('redis-cli');
  const serverVersion = await withTarget(ctx, async (r) => parseInfo(await r.info('server')).get('redis_version'));
  if (!serverVersion) throw new ToolFailure('DB_UNREACHABLE', 'the server did not say its redis_version');
  return { serverVersion, toolVersion: cli };
}

/** redis-cli's connection arguments; the password goes through REDISCLI_AUTH, never the command line. */
function cliArgs(ctx: ToolContext): { args: string[]; env: NodeJS.ProcessEnv } {
  const t = ctx.request.target;
  const args = ['-h', t.host ?? '127.0.0.1', '-p', String(t.port ?? 6379), ...(t.user ? ['--user', t.user] : [])];
  if (t.tls) args.push('--tls', ...(t.tls.caFile ? ['--cacert', t.tls.caFile] : []), ...(t.tls.certFile ? ['--cert', t.tls.certFile] : []), ...(t.tls.keyFile ? ['--key', t.tls.keyFile] : []));
  return { args, env: { ...process.env, ...(ctx.password !== undefined ? { REDISCLI_AUTH: ctx.password } : {}) } };
}

/**
 * The snapshot is the server's fork at SYNC time: redis-cli says "writing bytes of bulk transfer" once the
 * server started sending it, an instant after the fork. That instant (or the end) is the consistency bound.
 */
async function backup(ctx: ToolContext): Promise<ToolResult<'backup'>> {
  const { args, env } = cliArgs(ctx);
  const child = spawn('redis-cli', [...args, '--rdb', '-'], { stdio: ['ignore', 'inherit', 'pipe'], env });
  let consistentAt: string | undefined;
  let said = '';
  child.stderr.on('data', (c: Buffer) => {
    const text = c.toString('utf8');
    said += text;
    if (!consistentAt && /bulk transfer/.test(said)) consistentAt = new Date().toISOString();
    for (const line of text.split('\n')) if (line.trim()) ctx.log(`redis-cli: ${line.trim()}`);
  });
  const [code] = (await Promise.race([once(child, 'close'), once(child, 'error').then(([e]) => Promise.reject(e as Error))])) as [number | null];
  if (code !== 0 || !/Transfer finished with success/.test(said)) {
    const why = said.trim().split('\n').slice(-3).join(' ');
    throw new ToolFailure(/NOAUTH|WRONGPASS|NOPERM/.test(said) ? 'DB_AUTH_FAILED' : 'FAILED', `redis-cli --rdb exited with ${String(code)}${why ? `: ${why}` : ''}`);
  }
  return { consistentAt: consistentAt ?? new Date().toISOString() };
}

async function inspect(ctx: ToolContext): Promise<ToolResult<'inspect'>> {
  const keys = await withTarget(ctx, async (r) => keyspace(await r.info('keyspace')));
  return { exists: true, hasData: [...keys.values()].some((n) => n > 0) };
}

/** A scratch redis-server on a unix socket in `dir`, loading `dir/dump.rdb`; resolves once it has loaded it. */
async function scratchServer(dir: string, cfg: Config): Promise<{ redis: Redis; stop: () => Promise<void> }> {
  const socket = join(dir, 'scratch.sock');
  const logfile = join(dir, 'scratch.log');
  const child = spawn(
    'redis-server',
    // sanitize-dump-payload: every value is checked deeply as it loads; a crafted encoding is refused here, not relayed to the target.
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--logfile', logfile, '--rdbchecksum', 'yes', '--sanitize-dump-payload', 'yes'],
    { stdio: 'ignore' },
  );
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  child.once('error', () => (exited = -1));
  const stop = async (): Promise<void> => {
    if (exited === undefined) {
      child.kill('SIGKILL');
      await once(child, 'exit').catch(() => undefined);
    }
  };
  const deadline = Date.now() + cfg.loadTimeoutSeconds * 1000;
  const log = (): string => {
    try {
      return readFileSync(logfile, 'utf8').trim().split('\n').slice(-3).join(' ');
    } catch {
      return '';
    }
  };
  for (;;) {
    if (exited !== undefined) {
      const why = log();
      throw new ToolFailure(/RDB format version|Can't handle/i.test(why) ? 'TOOL_INCOMPATIBLE' : 'FAILED', `the scratch redis-server could not load the backup: ${why || `exit ${String(exited)}`}`, { state: 'unchanged' });
    }
    if (Date.now() > deadline) {
      await stop();
      throw new ToolFailure('FAILED', `the scratch redis-server did not load the backup within ${cfg.loadTimeoutSeconds}s (config loadTimeoutSeconds)`, { state: 'unchanged' });
    }
    try {
      const redis = await connect({ path: socket, ...QUIET }, 'scratch redis-server');
      const loading = parseInfo(await redis.info('persistence')).get('loading');
      if (loading === '0') return { redis, stop: async () => (redis.disconnect(), await stop()) };
      redis.disconnect();
    } catch {
      // not listening yet, or still loading
    }
    await delay(50);
  }
}

/** Every key of `db` in the scratch server, a batch at a time. */
async function* keysOf(scratch: Redis, db: number, batch: number): AsyncGenerator<Buffer[]> {
  await scratch.select(db);
  let cursor = '0';
  do {
    const [next, keys] = await scratch.scanBuffer(cursor, 'COUNT', batch);
    cursor = next.toString();
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

function failedReplies(replies: [Error | null, unknown][] | null): Error | undefined {
  return (replies ?? []).find(([e]) => e)?.[0] ?? undefined;
}

/** The contract's failure for a target's refusal of a RESTORE. */
function restoreRefusal(failed: Error, sample: Buffer | undefined): ToolFailure | Error {
  if (/payload version or checksum/i.test(failed.message)) {
    return new ToolFailure('TOOL_INCOMPATIBLE', `the target refused values of RDB version ${String(sample ? payloadRdbVersion(sample) : '?')} (this tool's redis-server writes them): use a tool image whose redis-server is not newer than the target`);
  }
  if (/BUSYKEY/.test(failed.message)) return new ToolFailure('TARGET_NOT_EMPTY', 'a key of the backup appeared in the target while restoring; re-run with --force to replace such keys');
  return failed;
}

/**
 * The keys a restore wrote (each RESTORE the target answered OK), by logical database: what a failed
 * restore into an empty target removes again. Past `limit` bytes of key names it stops keeping them, and a
 * failure is then reported as partial.
 */
class Written {
  readonly byDb = new Map<number, Buffer[]>();
  count = 0;
  private bytes = 0;
  complete = true;
  constructor(private readonly limit = 256 * 1024 * 1024) {}

  add(db: number, key: Buffer): void {
    this.count++;
    if (!this.complete) return;
    this.bytes += key.length + 64;
    if (this.bytes > this.limit) {
      this.complete = false;
      this.byDb.clear();
      return;
    }
    const list = this.byDb.get(db) ?? [];
    list.push(key);
    this.byDb.set(db, list);
  }
}

/** One batch read from the scratch server: each live key with its DUMP payload and remaining TTL. */
interface Batch {
  db: number;
  keys: Buffer[];
  payloads: Buffer[];
  ttls: number[];
}

/** Reads `keys` of `db` from the scratch server (DUMP and PTTL in one round trip); keys that expired meanwhile are left out. */
async function readBatch(scratch: Redis, db: number, keys: Buffer[]): Promise<Batch> {
  const read = scratch.pipeline();
  for (const k of keys) read.dumpBuffer(k).pttl(k);
  const replies = await read.exec();
  const bad = failedReplies(replies);
  if (bad) throw bad;
  const batch: Batch = { db, keys: [], payloads: [], ttls: [] };
  keys.forEach((k, i) => {
    const payload = replies![2 * i]![1] as Buffer | null;
    const ttl = replies![2 * i + 1]![1] as number;
    if (!payload || ttl === -2) return;
    batch.keys.push(k);
    batch.payloads.push(payload);
    batch.ttls.push(ttl > 0 ? ttl : 0);
  });
  return batch;
}

/** Writes a batch into the target, one RESTORE per key in one round trip, counting each it accepted; throws the first refusal. */
async function writeBatch(target: Redis, batch: Batch, force: boolean, written: Written): Promise<void> {
  if (batch.keys.length === 0) return;
  // Awaited on its own: a failed SELECT never lets the RESTOREs land in another database.
  await target.select(batch.db);
  const write = target.pipeline();
  batch.keys.forEach((k, i) => write.restore(k, batch.ttls[i]!, batch.payloads[i]!, ...((force ? ['REPLACE'] : []) as [])));
  const answers = (await write.exec()) ?? [];
  answers.forEach(([err], i) => {
    if (!err) written.add(batch.db, batch.keys[i]!);
  });
  const failed = failedReplies(answers);
  if (failed) throw restoreRefusal(failed, batch.payloads[0]);
}

/**
 * Copies every key of `dbs` from the scratch server into the target: the next batch is read from the
 * scratch server while the one before is written (the two servers work at once), one write at a time.
 */
async function copyAll(scratch: Redis, target: Redis, dbs: number[], batchSize: number, force: boolean, written: Written): Promise<void> {
  let writing: Promise<void> = Promise.resolve();
  try {
    for (const db of dbs) {
      for await (const keys of keysOf(scratch, db, batchSize)) {
        const batch = await readBatch(scratch, db, keys);
        await writing;
        writing = writeBatch(target, batch, force, written);
        // Awaited at the next batch or at the end; until then a failure must not count as unhandled (the process would end).
        writing.catch(() => undefined);
      }
    }
  } finally {
    // Whatever happened to the reads, the write in flight is counted before the restore says what it left.
    await writing;
  }
}

/** Removes from the target exactly the keys the failed restore wrote. */
async function removeWritten(target: Redis, written: Written, batch: number): Promise<void> {
  for (const [db, keys] of written.byDb) {
    await target.select(db);
    for (let i = 0; i < keys.length; i += batch) await target.unlink(...keys.slice(i, i + batch));
  }
}

/** Library names of FUNCTION LIST (Redis 7), or none on a server without functions. */
async function libraries(r: Redis): Promise<string[]> {
  try {
    const list = (await r.call('FUNCTION', 'LIST')) as unknown[];
    return list.map((lib) => {
      const fields = lib as unknown[];
      const at = fields.indexOf('library_name');
      return String(fields[at + 1]);
    });
  } catch {
    return [];
  }
}

/** The restore's failure, with what it left: nothing written, replaced keys (force), or the written keys removed again. */
async function failedRestore(err: unknown, target: Redis, written: Written, force: boolean, batch: number): Promise<ToolFailure> {
  const failure = err instanceof ToolFailure ? err : new ToolFailure('FAILED', err instanceof Error ? err.message : String(err));
  if (written.count === 0) return new ToolFailure(failure.code, failure.message, { state: 'unchanged' });
  if (force) return new ToolFailure(failure.code, failure.message, { state: 'partial', detail: `${written.count} keys of the backup were written (replacing keys of the same name) before the failure` });
  if (!written.complete) return new ToolFailure(failure.code, failure.message, { state: 'partial', detail: `${written.count} keys of the backup were written, too many to remove again one by one` });
  try {
    await removeWritten(target, written, batch);
    return new ToolFailure(failure.code, failure.message, { state: 'emptied', detail: `the ${written.count} keys it wrote were removed again` });
  } catch (cleanup) {
    return new ToolFailure(failure.code, failure.message, { state: 'partial', detail: `${written.count} keys were written and removing them failed (${cleanup instanceof Error ? cleanup.message : String(cleanup)})` });
  }
}

async function restore(ctx: ToolContext): Promise<ToolResult<'restore'>> {
  const cfg = configOf(ctx);
  const force = ctx.request.restore?.force ?? false;
  requireConfiguredTarget(ctx, 'a Redis backup', 'the configured server as a whole (every logical database)');
  const file = join(ctx.request.workDir, 'dump.rdb');
  await pipeline(process.stdin, createWriteStream(file, { mode: 0o600 }));
  const fh = await open(file);
  const head = Buffer.alloc(9);
  await fh.read(head, 0, 9, 0);
  await fh.close();
  if (rdbVersion(head) === undefined) throw new ToolFailure('FAILED', 'the input is not an RDB file (no REDIS header); nothing was changed', { state: 'unchanged' });
  return withTarget(ctx, async (target) => {
    const before = keyspace(await target.info('keyspace'));
    if (!force && [...before.values()].some((n) => n > 0)) {
      throw new ToolFailure('TARGET_NOT_EMPTY', `the target already holds keys (${[...before].map(([db, n]) => `db${db}: ${n}`).join(', ')}); nothing was changed. Use --force to replace the keys the backup contains (other keys are kept)`, { state: 'unchanged' });
    }
    const scratch = await scratchServer(ctx.request.workDir, cfg);
    const written = new Written();
    try {
      const libs = await libraries(scratch.redis);
      const clash = libs.length > 0 ? (await libraries(target)).filter((l) => libs.includes(l)) : [];
      if (clash.length > 0 && !force) {
        throw new ToolFailure('TARGET_NOT_EMPTY', `the target already has the function libraries ${clash.join(', ')}; nothing was changed. Use --force to replace them`, { state: 'unchanged' });
      }
      const dbs = [...keyspace(await scratch.redis.info('keyspace')).keys()].sort((a, b) => a - b);
      await copyAll(scratch.redis, target, dbs, cfg.batchSize, force, written);
      if (libs.length > 0) {
        const payload = (await scratch.redis.callBuffer('FUNCTION', 'DUMP')) as Buffer;
        await target.callBuffer('FUNCTION', 'RESTORE', payload, force ? 'REPLACE' : 'APPEND');
        ctx.log(`restored the function libraries ${libs.join(', ')}`);
      }
      ctx.log(`restored ${written.count} keys in ${dbs.length} database(s)`);
      return {};
    } catch (err) {
      throw await failedRestore(err, target, written, force, cfg.batchSize);
    } finally {
      await scratch.stop();
    }
  });
}

export const handlers: Handlers = { probe, backup, restore, inspect };
