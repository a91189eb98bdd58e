/**
 * The etcd engine (v3 API), through the tool contract.
 *
 * - backup: `etcdctl snapshot save`, the server's own consistent copy of its
 *   database (a bbolt file with a sha256 at its end), written to the call's
 *   private directory (etcdctl needs a file), then streamed to stdout.
 * - restore: `etcdctl snapshot restore` unpacks the snapshot into a data
 *   directory (checking its sha256: a damaged input is refused before the
 *   target is touched); a scratch `etcd` on free loopback ports serves it, and
 *   every key is copied into the target through etcd's JSON gRPC gateway
 *   (base64 keys and values: binary safe), a transaction per batch. Without
 *   `force` a target holding any key is refused before anything is written,
 *   and each transaction only creates keys (one that appeared meanwhile fails
 *   it); a failed restore into an empty target deletes what it wrote. A key
 *   attached to a lease gets a new lease on the target with the original's
 *   granted TTL, counting from the restore (keys that shared a lease share
 *   the new one).
 * - inspect: whether the target holds any key.
 *
 * Authentication: with a password, `user` (default root) logs in through the
 * gateway's /v3/auth/authenticate (its token in the Authorization header,
 * renewed once when it expires) and etcdctl gets ETCDCTL_USER /
 * ETCDCTL_PASSWORD in its environment: the password is never on a command
 * line. Without one, a client certificate (tls certFile/keyFile) is the
 * identity, or the server has authentication off. A backup of a server with
 * authentication enabled carries it (users, roles, the switch): the switch
 * is turned off in the scratch copy's data file only, so the scratch server
 * is read without the source's passwords. `snapshot save` needs the root
 * role.
 *
 * A runner that ends the call (SIGTERM) ends the scratch etcd with it.
 * etcd has one keyspace: a restore.database other than the configured one is refused.
 *
 * Not covered: users, roles and permissions (not copied: the target keeps
 * its own), revisions and key history (a restore writes each key's newest
 * value at the target's next revisions), cluster membership, and snapshots
 * of an etcd newer than the tool's own `etcd` (the scratch server) can open.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createReadStream, createWriteStream, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { ToolResult } from '../../api/engine-contract.js';
import { type Handlers, requireConfiguredTarget, type ToolContext, ToolFailure } from '../sdk.js';
import { ETCD_SNAPSHOT_MAGIC } from './definition.js';
import {
  batches,
  boltFind,
  COUNT_ALL,
  deleteTxn,
  endpointOf,
  errorCode,
  etcdctlError,
  etcdctlVersion,
  grantedTtl,
  int64,
  keyAfter,
  leaseIds,
  putSize,
  putTxn,
  rangePage,
  rangeRequest,
  serverVersion,
  snapshotStatus,
  type KeyValue,
} from './parse.js';

interface Config {
  /** Seconds connecting may take. */
  dialTimeoutSeconds: number;
  /** Keys per transaction on restore. */
  restoreBatch: number;
  /** Seconds the scratch etcd may take to become healthy. */
  startTimeoutSeconds: number;
}

function configOf(ctx: ToolContext): Config {
  const c = ctx.request.config as Partial<Config>;
  return { dialTimeoutSeconds: c.dialTimeoutSeconds ?? 10, restoreBatch: c.restoreBatch ?? 128, startTimeoutSeconds: c.startTimeoutSeconds ?? 300 };
}

/** A transaction's puts stay below etcd's default --max-request-bytes (1.5 MiB); a larger key travels alone. */
const MAX_TXN_BYTES = 1024 * 1024;
/** A request may go this long without a byte moving before it is given up. */
const IDLE_MS = 120_000;
const INSTALL_HINT = 'Debian: apt-get install -y etcd-server etcd-client';
/** etcd's bolt bucket and key of the authentication switch (etcd 3.4 and 3.5: auth/store.go). */
const AUTH_BUCKET = Buffer.from('auth');
const AUTH_ENABLED = Buffer.from('authEnabled');

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** `err` as a ToolFailure, its code kept when it is one, else classified from its message. */
function failureOf(err: unknown): ToolFailure {
  return err instanceof ToolFailure ? err : new ToolFailure(errorCode(messageOf(err)), messageOf(err));
}

/** The same failure, saying what the target was left in. */
function leaving(err: unknown, target: NonNullable<ToolFailure['target']>): ToolFailure {
  const f = failureOf(err);
  return new ToolFailure(f.code, f.message, target);
}

interface Tls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * A client of one server's JSON gRPC gateway (`POST /v3/...` with a JSON body, int64 numbers as strings, bytes as
 * base64), over node:http or node:https. Every failure is a ToolFailure with a contract code.
 */
class Gateway {
  private readonly agent: HttpAgent;
  private token: string | undefined;
  private login: { name: string; password: string } | undefined;

  /** What a connection failure is: the target's DB_UNREACHABLE, or a plain failure of the scratch server. */
  private readonly unreachable: 'DB_UNREACHABLE' | 'FAILED';

  constructor(
    readonly base: string,
    private readonly what: string,
    private readonly dialMs: number,
    private readonly tls?: Tls,
    scratch = false,
  ) {
    this.unreachable = scratch ? 'FAILED' : 'DB_UNREACHABLE';
    this.agent = tls ? new HttpsAgent({ keepAlive: true, ...tls }) : new HttpAgent({ keepAlive: true });
  }

  /** One request; the answer's status and text. */
  private send(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}), ...(this.token ? { authorization: this.token } : {}) };
    return new Promise((resolve, reject) => {
      const req = (this.tls ? httpsRequest : httpRequest)(`${this.base}${path}`, { method, agent: this.agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.once('error', reject);
      });
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(new Error(`could not connect within ${this.dialMs / 1000}s`)), this.dialMs);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.setTimeout(IDLE_MS, () => req.destroy(new Error(`no answer within ${IDLE_MS / 1000}s`)));
      req.once('error', reject);
      req.end(payload);
    });
  }

  /** One call; a refusal throws with etcd's message. A token that expired meanwhile is renewed once. */
  async call(path: string, body: unknown, renewed = false): Promise<unknown> {
    let answer: { status: number; text: string };
    try {
      answer = await this.send('POST', path, body);
    } catch (err) {
      throw new ToolFailure(errorCode(messageOf(err)) === 'DB_AUTH_FAILED' ? 'DB_AUTH_FAILED' : this.unreachable, `${this.what}: ${messageOf(err)}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.text);
    } catch {
      throw new ToolFailure('FAILED', `${this.what} ${path}: HTTP ${answer.status}, not JSON: ${answer.text.slice(0, 200)}`);
    }
    if (answer.status === 200) return parsed;
    const said = parsed as { message?: unknown; error?: unknown; code?: unknown };
    const message = typeof said.message === 'string' ? said.message : typeof said.error === 'string' ? said.error : answer.text.slice(0, 200);
    if (!renewed && this.login && /invalid auth token/.test(message)) {
      await this.authenticate(this.login.name, this.login.password);
      return this.call(path, body, true);
    }
    // gRPC codes 7 (permission denied) and 16 (unauthenticated) are the server's word on credentials.
    const code = said.code === 7 || said.code === 16 ? 'DB_AUTH_FAILED' : errorCode(message);
    throw new ToolFailure(code, `${this.what} ${path}: ${message}`);
  }

  /** The text of a GET (e.g. /version, which needs no authentication). */
  async get(path: string): Promise<string> {
    try {
      const { status, text } = await this.send('GET', path);
      if (status !== 200) throw new Error(`HTTP ${status}: ${text.slice(0, 200)}`);
      return text;
    } catch (err) {
      throw new ToolFailure(errorCode(messageOf(err)) === 'DB_AUTH_FAILED' ? 'DB_AUTH_FAILED' : this.unreachable, `${this.what} ${path}: ${messageOf(err)}`);
    }
  }

  /** Takes a token for `name`; a server with authentication switched off needs none. */
  async authenticate(name: string, password: string): Promise<void> {
    this.token = undefined;
    this.login = { name, password };
    try {
      const answer = (await this.call('/v3/auth/authenticate', { name, password }, true)) as { token?: unknown };
      this.token = typeof answer.token === 'string' && answer.token !== '' ? answer.token : undefined;
    } catch (err) {
      if (/authentication is not enabled/.test(messageOf(err))) {
        this.login = undefined;
        return;
      }
      const f = failureOf(err);
      throw new ToolFailure(f.code === 'FAILED' ? 'DB_AUTH_FAILED' : f.code, f.message);
    }
  }

  /** How many keys the server holds. */
  async keyCount(): Promise<number> {
    return rangePage(await this.call('/v3/kv/range', COUNT_ALL)).count;
  }

  close(): void {
    this.agent.destroy();
  }
}

function readTls(ctx: ToolContext): Tls | undefined {
  const t = ctx.request.target.tls;
  if (!t) return undefined;
  const file = (path: string | undefined, what: string): Buffer | undefined => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ToolFailure('CONFIG_INVALID', `the TLS ${what} file ${path} cannot be read: ${messageOf(err)}`);
    }
  };
  return { ...(t.caFile ? { ca: file(t.caFile, 'CA') } : {}), ...(t.certFile ? { cert: file(t.certFile, 'certificate') } : {}), ...(t.keyFile ? { key: file(t.keyFile, 'key') } : {}) };
}

/**
 * Who to log in as: the target's user (root, etcd's one built-in user, when none is given) with the password.
 * Without a password there is no login: a client certificate (its common name is the user) or no authentication.
 */
function loginOf(ctx: ToolContext): { name: string; password: string } | undefined {
  return ctx.password === undefined ? undefined : { name: ctx.request.target.user ?? 'root', password: ctx.password };
}

function targetEndpoint(ctx: ToolContext): string {
  const t = ctx.request.target;
  return endpointOf(t.host ?? '127.0.0.1', t.port ?? 2379, t.tls !== undefined);
}

/** The target's gateway, authenticated when credentials are given. */
async function connectTarget(ctx: ToolContext, cfg: Config): Promise<Gateway> {
  const base = targetEndpoint(ctx);
  const gw = new Gateway(base, `etcd ${base}`, cfg.dialTimeoutSeconds * 1000, readTls(ctx));
  const login = loginOf(ctx);
  try {
    if (login) await gw.authenticate(login.name, login.password);
  } catch (err) {
    gw.close();
    throw err;
  }
  return gw;
}

async function withTarget<T>(ctx: ToolContext, cfg: Config, fn: (gw: Gateway) => Promise<T>): Promise<T> {
  const gw = await connectTarget(ctx, cfg);
  try {
    return await fn(gw);
  } finally {
    gw.close();
  }
}

/** The environment of etcdctl: none of the caller's ETCDCTL_* (etcdctl refuses a flag also set there), the credentials. */
function ctlEnv(ctx?: ToolContext): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCDCTL_')) env[k] = v;
  env.ETCDCTL_API = '3';
  const login = ctx ? loginOf(ctx) : undefined;
  if (login) {
    env.ETCDCTL_USER = login.name;
    env.ETCDCTL_PASSWORD = login.password;
  }
  return env;
}

/** etcdctl's flags reaching the target (never the password: that is in the environment). */
function ctlArgs(ctx: ToolContext, cfg: Config): string[] {
  const tls = ctx.request.target.tls;
  return [
    `--endpoints=${targetEndpoint(ctx)}`,
    `--dial-timeout=${cfg.dialTimeoutSeconds}s`,
    ...(tls?.caFile ? [`--cacert=${tls.caFile}`] : []),
    ...(tls?.certFile ? [`--cert=${tls.certFile}`] : []),
    ...(tls?.keyFile ? [`--key=${tls.keyFile}`] : []),
  ];
}

/** Runs a program to completion: its exit code and output. Not found is TOOL_INCOMPATIBLE with the install hint. */
async function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  try {
    const [code] = (await Promise.race([once(child, 'close'), once(child, 'error').then(([e]) => Promise.reject(e as Error))])) as [number | null];
    return { code, stdout, stderr };
  } catch (err) {
    throw new ToolFailure('TOOL_INCOMPATIBLE', `${command} is needed and could not be run (${INSTALL_HINT}): ${messageOf(err)}`);
  }
}

async function installedVersion(command: 'etcdctl' | 'etcd'): Promise<string> {
  const { stdout, stderr } = await run(command, [command === 'etcd' ? '--version' : 'version'], ctlEnv());
  const v = etcdctlVersion(stdout + stderr);
  if (!v) throw new ToolFailure('TOOL_INCOMPATIBLE', `${command} did not say its version (${INSTALL_HINT}): ${(stdout + stderr).trim().slice(0, 200)}`);
  return v;
}

async function probe(ctx: ToolContext): Promise<ToolResult<'probe'>> {
  const cfg = configOf(ctx);
  const toolVersion = await installedVersion('etcdctl');
  // connectTarget logs in when credentials are given: a wrong password fails here, not in the backup.
  const said = await withTarget(ctx, cfg, (gw) => gw.get('/version'));
  const version = serverVersion(said);
  if (!version) throw new ToolFailure('DB_UNREACHABLE', `the server did not say its version: ${said.slice(0, 200)}`);
  return { serverVersion: version, toolVersion };
}

/** The snapshot is the server's database as of the request: the end of the save is a safe upper bound. */
async function backup(ctx: ToolContext): Promise<ToolResult<'backup'>> {
  const cfg = configOf(ctx);
  const file = join(ctx.request.workDir, 'snapshot.db');
  try {
    const saved = await run('etcdctl', [...ctlArgs(ctx, cfg), 'snapshot', 'save', file], ctlEnv(ctx));
    const consistentAt = new Date().toISOString();
    if (saved.code !== 0) {
      const why = etcdctlError(saved.stderr + saved.stdout);
      throw new ToolFailure(errorCode(why), `etcdctl snapshot save exited with ${String(saved.code)}: ${why}`);
    }
    const checked = await run('etcdctl', ['snapshot', 'status', file, '-w', 'json'], ctlEnv());
    const status = snapshotStatus(checked.stdout);
    if (checked.code !== 0 || !status) throw new ToolFailure('FAILED', `etcdctl snapshot status could not read the snapshot just saved: ${etcdctlError(checked.stderr + checked.stdout)}`);
    await pipeline(createReadStream(file), process.stdout, { end: false });
    ctx.log(`snapshot of revision ${status.revision}: ${status.totalKey} keys, ${status.totalSize} bytes`);
    return { consistentAt, position: { revision: status.revision, hash: status.hash } };
  } finally {
    await rm(file, { force: true });
  }
}

async function inspect(ctx: ToolContext): Promise<ToolResult<'inspect'>> {
  const count = await withTarget(ctx, configOf(ctx), (gw) => gw.keyCount());
  return { exists: true, hasData: count > 0 };
}

/** A TCP port free on loopback right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}

/** Switches authentication off in a bolt data file, when it is on; says whether it was. */
function authSwitchedOff(dbFile: string): boolean {
  const fd = openSync(dbFile, 'r+');
  try {
    const read = (offset: number, length: number): Buffer => {
      const b = Buffer.alloc(length);
      return b.subarray(0, readSync(fd, b, 0, length, offset));
    };
    const found = boltFind(read, AUTH_BUCKET, AUTH_ENABLED);
    if (!found || !found.value.equals(Buffer.from([1]))) return false;
    writeSync(fd, Buffer.from([0]), 0, 1, found.at);
    return true;
  } finally {
    closeSync(fd);
  }
}

/**
 * A scratch etcd serving a snapshot, in the call's private directory. prepare() unpacks the snapshot (etcdctl
 * checks its sha256), start() serves it on loopback and waits until it is healthy, stop() kills it. A port
 * taken between choosing and binding it means unpacking again with other ports.
 */
class Scratch {
  private child: ChildProcess | undefined;
  private exited: number | string | undefined;
  private ports: { client: number; peer: number } | undefined;
  private attempt = 0;
  gateway: Gateway | undefined;
  private readonly onSignal = (): void => {
    this.child?.kill('SIGKILL');
    process.exit(143);
  };

  constructor(
    private readonly input: string,
    private readonly dir: string,
    private readonly cfg: Config,
    private readonly log: (m: string) => void,
  ) {}

  private get dataDir(): string {
    return join(this.dir, `scratch-${this.attempt}`);
  }

  private get logFile(): string {
    return join(this.dir, `scratch-${this.attempt}.log`);
  }

  private url(port: number): string {
    return `http://127.0.0.1:${port}`;
  }

  /** Unpacks the snapshot into a new data directory for two newly chosen ports. */
  async prepare(): Promise<void> {
    this.attempt++;
    this.ports = { client: await freePort(), peer: await freePort() };
    const peer = this.url(this.ports.peer);
    const r = await run('etcdctl', ['snapshot', 'restore', this.input, '--data-dir', this.dataDir, '--name', 'scratch', '--initial-cluster', `scratch=${peer}`, '--initial-advertise-peer-urls', peer], ctlEnv());
    if (r.code !== 0) {
      const why = etcdctlError(r.stderr + r.stdout);
      const damaged = /sha256|hash|checksum|invalid database|file size too small|not a|unexpected EOF/i.test(why);
      throw new ToolFailure('FAILED', `${damaged ? 'the snapshot is damaged: ' : ''}etcdctl snapshot restore refused it: ${why}`);
    }
    if (authSwitchedOff(join(this.dataDir, 'member', 'snap', 'db'))) {
      this.log('the backup has authentication enabled: it is switched off in the scratch copy only (users and roles are not restored; the target keeps its own)');
    }
  }

  private logTail(): string {
    try {
      return readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-3).join(' ').slice(-1500);
    } catch {
      return '';
    }
  }

  private launch(): void {
    const { client, peer } = this.ports!;
    const fd = openSync(this.logFile, 'a', 0o600);
    try {
      this.exited = undefined;
      this.child = spawn(
        'etcd',
        [
          '--name=scratch',
          `--data-dir=${this.dataDir}`,
          `--listen-client-urls=${this.url(client)}`,
          `--advertise-client-urls=${this.url(client)}`,
          `--listen-peer-urls=${this.url(peer)}`,
          `--initial-advertise-peer-urls=${this.url(peer)}`,
          `--initial-cluster=scratch=${this.url(peer)}`,
          '--logger=zap',
          '--log-outputs=stderr',
          '--log-level=warn',
        ],
        // etcd reads ETCD_* variables as flags: none of the caller's.
        { stdio: ['ignore', fd, fd], env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD'))) },
      );
    } finally {
      closeSync(fd);
    }
    const child = this.child;
    child.once('exit', (code, signal) => (this.exited = code ?? signal ?? 'killed'));
    child.once('error', (err) => (this.exited = err.message));
    // The scratch server dies with the call: the runner ends a call with SIGTERM.
    process.once('SIGTERM', this.onSignal);
    process.once('SIGINT', this.onSignal);
  }

  /** Serves the unpacked snapshot; resolves once it answers /health. */
  async start(): Promise<Gateway> {
    for (;;) {
      this.launch();
      const deadline = Date.now() + this.cfg.startTimeoutSeconds * 1000;
      const gw = new Gateway(this.url(this.ports!.client), 'the scratch etcd', 2000, undefined, true);
      for (;;) {
        if (this.exited !== undefined) break;
        if (Date.now() > deadline) {
          gw.close();
          await this.stop();
          throw new ToolFailure('FAILED', `the scratch etcd did not become healthy within ${this.cfg.startTimeoutSeconds}s (config startTimeoutSeconds): ${this.logTail()}`);
        }
        const health = await gw.get('/health').catch(() => '');
        if (/"health":\s*"true"/.test(health)) return (this.gateway = gw);
        await delay(100);
      }
      gw.close();
      const why = this.logTail();
      await this.stop();
      if (/address already in use/i.test(why) && this.attempt < 3) {
        await this.prepare();
        continue;
      }
      throw new ToolFailure('FAILED', `the scratch etcd could not serve the backup (exit ${String(this.exited)}): ${why}`);
    }
  }

  async stop(): Promise<void> {
    this.gateway?.close();
    this.gateway = undefined;
    process.removeListener('SIGTERM', this.onSignal);
    process.removeListener('SIGINT', this.onSignal);
    const child = this.child;
    if (!child || this.exited !== undefined) return;
    const gone = once(child, 'exit').catch(() => undefined);
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

/** The granted TTL of every lease the scratch server holds, read before any of them can expire there. */
async function leaseTtls(scratch: Gateway): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const id of leaseIds(await scratch.call('/v3/lease/leases', {}))) {
    const ttl = grantedTtl(await scratch.call('/v3/lease/timetolive', { ID: id }));
    if (ttl !== undefined) out.set(id, ttl);
  }
  return out;
}

/** Every key of the scratch server at `revision` (fixed: a lease expiring there meanwhile hides nothing), a page at a time. */
async function* pagesOf(scratch: Gateway, size: number, revision: { at: string }): AsyncGenerator<KeyValue[]> {
  let from: Buffer = Buffer.from([0]);
  for (;;) {
    const page = rangePage(await scratch.call('/v3/kv/range', rangeRequest(from, size, revision.at)));
    if (revision.at === '0') revision.at = page.revision;
    if (page.kvs.length > 0) yield page.kvs;
    if (!page.more || page.kvs.length === 0) return;
    from = keyAfter(page.kvs[page.kvs.length - 1]!.key);
  }
}

/** What a copy did so far: what a failure must undo or report. */
interface Copied {
  /** Keys written. */
  written: number;
  /** The last key written (keys are written in key order). */
  last: Buffer | undefined;
  /** Keys attached to a lease. */
  leased: number;
  /** Keys skipped because their lease had expired on the scratch server. */
  expired: number;
  /** The target's new lease of each original lease. */
  granted: Map<string, string>;
  revision: { at: string };
}

async function copyAll(scratch: Gateway, target: Gateway, cfg: Config, force: boolean, copied: Copied): Promise<void> {
  const ttls = await leaseTtls(scratch);
  for await (const page of pagesOf(scratch, cfg.restoreBatch, copied.revision)) {
    const kvs: KeyValue[] = [];
    for (const kv of page) {
      if (kv.lease !== '0' && !copied.granted.has(kv.lease)) {
        const ttl = ttls.get(kv.lease);
        if (ttl === undefined) {
          copied.expired++;
          continue;
        }
        const lease = (await target.call('/v3/lease/grant', { TTL: String(ttl) })) as { ID?: unknown };
        copied.granted.set(kv.lease, int64(lease.ID));
      }
      kvs.push(kv);
    }
    for (const batch of batches(kvs, putSize, cfg.restoreBatch, MAX_TXN_BYTES)) {
      const answer = (await target.call('/v3/kv/txn', putTxn(batch, copied.granted, force))) as { succeeded?: unknown };
      if (!force && answer.succeeded !== true) throw new ToolFailure('TARGET_NOT_EMPTY', 'a key of the backup appeared in the target while restoring (nothing of that batch was written); re-run with --force to replace such keys');
      copied.written += batch.length;
      copied.last = batch[batch.length - 1]!.key;
      copied.leased += batch.filter((kv) => kv.lease !== '0').length;
    }
  }
}

/** Deletes from the target exactly the keys a failed copy wrote, and revokes the leases it granted. */
async function removeWritten(scratch: Gateway, target: Gateway, cfg: Config, copied: Copied): Promise<void> {
  if (copied.last) {
    done: for await (const page of pagesOf(scratch, cfg.restoreBatch, copied.revision)) {
      const keys = page.filter((kv) => Buffer.compare(kv.key, copied.last!) <= 0 && (kv.lease === '0' || copied.granted.has(kv.lease))).map((kv) => kv.key);
      if (keys.length > 0) await target.call('/v3/kv/txn', deleteTxn(keys));
      if (Buffer.compare(page[page.length - 1]!.key, copied.last) >= 0) break done;
    }
  }
  await revokeGranted(target, copied);
}

async function revokeGranted(target: Gateway, copied: Copied): Promise<void> {
  for (const id of copied.granted.values()) await target.call('/v3/lease/revoke', { ID: id });
}

/** What a failed copy left in the target, and the failure saying so. */
async function undo(err: unknown, scratch: Gateway, target: Gateway, cfg: Config, force: boolean, copied: Copied): Promise<ToolFailure> {
  if (copied.written === 0) {
    await revokeGranted(target, copied).catch(() => undefined); // leases no key uses: they expire on their own too
    return leaving(err, { state: 'unchanged' });
  }
  if (force) return leaving(err, { state: 'partial', detail: `${copied.written} keys of the backup were written (replacing keys of the same name) before the failure` });
  try {
    await removeWritten(scratch, target, cfg, copied);
    return leaving(err, { state: 'emptied', detail: `the ${copied.written} keys written were deleted again` });
  } catch (cleanup) {
    return leaving(err, { state: 'partial', detail: `${copied.written} keys were written and deleting them failed (${messageOf(cleanup)})` });
  }
}

/** Reads the input into `file` and checks that it starts as an etcd snapshot does. */
async function receive(file: string): Promise<void> {
  await pipeline(process.stdin, createWriteStream(file, { mode: 0o600 }));
  const magic = Buffer.from(ETCD_SNAPSHOT_MAGIC, 'hex');
  const fh = await open(file);
  try {
    const head = Buffer.alloc(magic.length);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < magic.length || !head.equals(magic)) throw new ToolFailure('FAILED', 'the input is not an etcd snapshot (no bbolt header); nothing was changed', { state: 'unchanged' });
  } finally {
    await fh.close();
  }
}

async function restore(ctx: ToolContext): Promise<ToolResult<'restore'>> {
  const cfg = configOf(ctx);
  const force = ctx.request.restore?.force ?? false;
  requireConfiguredTarget(ctx, 'an etcd backup', "the configured cluster's one keyspace");
  const work = join(ctx.request.workDir, 'restore');
  await mkdir(work, { mode: 0o700 });
  const input = join(work, 'in.db');
  await receive(input);
  const scratch = new Scratch(input, work, cfg, (m) => ctx.log(m));
  let target: Gateway | undefined;
  try {
    try {
      await installedVersion('etcd');
      await scratch.prepare();
      target = await connectTarget(ctx, cfg);
      const before = force ? 0 : await target.keyCount();
      if (before > 0) {
        throw new ToolFailure('TARGET_NOT_EMPTY', `the target already holds ${before} keys; nothing was changed. Use --force to replace the keys the backup contains (other keys are kept)`);
      }
      await scratch.start();
      await rm(input, { force: true }); // served from its data directory now
    } catch (err) {
      throw leaving(err, { state: 'unchanged' });
    }
    const copied: Copied = { written: 0, last: undefined, leased: 0, expired: 0, granted: new Map(), revision: { at: '0' } };
    try {
      await copyAll(scratch.gateway!, target, cfg, force, copied);
    } catch (err) {
      throw await undo(err, scratch.gateway!, target, cfg, force, copied);
    }
    ctx.log(`restored ${copied.written} keys of revision ${copied.revision.at} of the backup`);
    if (copied.leased > 0) ctx.log(`${copied.leased} keys were attached to ${copied.granted.size} leases: each got a new lease with its original granted TTL, counting from now`);
    if (copied.expired > 0) ctx.log(`${copied.expired} keys were not restored: their lease expired on the scratch server before it could be read`);
    return {};
  } finally {
    await scratch.stop();
    target?.close();
  }
}

export const handlers: Handlers = { probe, backup, restore, inspect };
