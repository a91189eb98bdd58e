/**
 * Starts a real, throwaway etcd for tests and demos (Debian's etcd-server
 * and etcd-client, 3.4): a temp data directory, free loopback client and peer
 * ports (the flags of testenv/kube's etcd), and by default authentication
 * enabled with a `root` user and a random password, so clients take the
 * password path. `stop()` is idempotent and removes the directory; servers
 * still running when the process exits are killed.
 *
 * Also a dataset with binary keys and values, keys attached to leases and
 * more keys than one transaction holds, and its fingerprint: what a restore
 * must reproduce exactly.
 */
import { randomBytes, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdArgs } from './kube/plan.js';
import { exec, freePort, httpStatus, lostPortRace, removeOnExit, startDaemon, waitUntil, type Daemon } from './kube/process.js';

export const ETCD_INSTALL_HINT = 'etcd and etcdctl were not found. Install them with `apt-get install -y etcd-server etcd-client` (as root) or run `bash testenv/install-deps.sh`.';

const SERVER = '/usr/bin/etcd';
const CLI = '/usr/bin/etcdctl';

export interface EtcdInstance {
  host: string;
  port: number;
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** `root` when authentication is enabled. */
  user: string | undefined;
  password: string | undefined;
  /** The server version, e.g. 3.4.23. */
  version: string;
  /** Runs one etcdctl command against the server (credentials in the environment) and returns its stdout, trailing newline removed. */
  ctl(...args: string[]): Promise<string>;
  /** One call of the JSON gRPC gateway (`POST /v3/...`), authenticated; throws on a refusal. */
  api(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Puts one key (bytes or UTF-8 text), optionally attached to a lease. */
  put(key: Buffer | string, value: Buffer | string, lease?: string): Promise<void>;
  /** The value of one key, undefined when absent. */
  get(key: Buffer | string): Promise<Buffer | undefined>;
  del(key: Buffer | string): Promise<void>;
  stop(): Promise<void>;
}

const b64 = (v: Buffer | string): string => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v).toString('base64');

export interface StartEtcdOptions {
  /** Enable authentication with a root user (default true). */
  auth?: boolean;
  /** More etcd flags, e.g. ['--max-request-bytes=262144']. */
  extraArgs?: string[];
}

/** Starts etcd on two free loopback ports, again on others when one was taken meanwhile; resolves once it is healthy. */
async function launch(dir: string, extraArgs: string[]): Promise<{ daemon: Daemon; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const [client, peer] = [await freePort(), await freePort()];
    const args = [...etcdArgs({ name: 'testenv', dataDir: join(dir, `data-${attempt}`), clientPort: client, peerPort: peer }), ...extraArgs];
    const daemon = startDaemon('etcd', SERVER, args, join(dir, 'etcd.log'));
    try {
      await waitUntil(daemon, 'healthy', async () => (await httpStatus(`http://127.0.0.1:${client}/health`)) === 200, 30_000);
      return { daemon, port: client };
    } catch (err) {
      await daemon.stop();
      if (attempt >= 3 || !lostPortRace(daemon)) throw err;
    }
  }
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdInstance> {
  if (!existsSync(SERVER) || !existsSync(CLI)) throw new Error(ETCD_INSTALL_HINT);
  const dir = await mkdtemp(join(tmpdir(), 'etcd-testenv-'));
  const forgetDir = removeOnExit(dir);
  let daemon: Daemon;
  let port: number;
  try {
    ({ daemon, port } = await launch(dir, opts.extraArgs ?? []));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    forgetDir();
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const user = opts.auth === false ? undefined : 'root';
  const password = opts.auth === false ? undefined : randomBytes(12).toString('hex');
  const env = { ...process.env, ETCDCTL_API: '3' };
  const credentials = (): NodeJS.ProcessEnv => ({ ...env, ...(user ? { ETCDCTL_USER: user, ETCDCTL_PASSWORD: password } : {}) });
  const ctlAs = async (environment: NodeJS.ProcessEnv, args: string[], input?: string): Promise<string> => {
    const r = await exec(CLI, [`--endpoints=${endpoint}`, ...args], { env: environment, ...(input !== undefined ? { input } : {}) });
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited with ${String(r.code)}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
    return r.stdout.replace(/\n$/, '');
  };
  let token: string | undefined;
  const post = async (path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${endpoint}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: token } : {}) }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const api = async (path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> => {
    for (let attempt = 0; ; attempt++) {
      if (user && !token) {
        const auth = await post('/v3/auth/authenticate', { name: user, password });
        if (auth.status !== 200) throw new Error(`etcd authenticate: ${JSON.stringify(auth.json)}`);
        token = auth.json.token as string;
      }
      const r = await post(path, body);
      if (r.status === 200) return r.json;
      if (attempt === 0 && /invalid auth token/.test(String(r.json.message))) {
        token = undefined;
        continue;
      }
      throw new Error(`etcd ${path}: ${JSON.stringify(r.json)}`);
    }
  };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await daemon.stop(5000);
    await rm(dir, { recursive: true, force: true });
    forgetDir();
  };
  try {
    if (user) {
      await ctlAs(env, ['user', 'add', user, '--interactive=false'], `${password}\n`);
      await ctlAs(env, ['auth', 'enable']);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const version = ((await (await fetch(`${endpoint}/version`)).json()) as { etcdserver?: string }).etcdserver ?? 'unknown';
  return {
    host: '127.0.0.1',
    port,
    endpoint,
    user,
    password,
    version,
    ctl: (...args) => ctlAs(credentials(), args),
    api,
    put: async (key, value, lease) => void (await api('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) })),
    get: async (key) => {
      const kvs = (await api('/v3/kv/range', { key: b64(key) })).kvs as { value?: string }[] | undefined;
      return kvs?.[0] ? Buffer.from(kvs[0].value ?? '', 'base64') : undefined;
    },
    del: async (key) => void (await api('/v3/kv/deleterange', { key: b64(key) })),
    stop,
  };
}

/** A binary key (NUL, CR, LF, 0xff) of the seeded dataset. */
export const BINARY_KEY = Buffer.from([0, 1, 10, 13, 255, 0x7f]);

/**
 * Seeds `keys` text keys (default 1000), a binary key with a binary value, values with NUL bytes, an empty
 * value, two values too large to share one transaction, a key written several times, a deleted key, and three
 * keys on two leases (TTL 3600 s: /leased/session/a and /leased/session/b; TTL 600 s: /leased/lock/x), which sort
 * before the large values.
 */
export async function seedEtcd(e: EtcdInstance, opts: { keys?: number } = {}): Promise<void> {
  const n = opts.keys ?? 1000;
  for (let i = 0; i < n; i += 100) {
    const success = [];
    for (let j = i; j < Math.min(n, i + 100); j++) success.push({ request_put: { key: b64(`/registry/items/${String(j).padStart(5, '0')}`), value: b64(`item-${j}-ünïcødé-🙂`) } });
    await e.api('/v3/kv/txn', { success });
  }
  await e.put(BINARY_KEY, Buffer.from([0, 0, 255, 10, 1]));
  await e.put('nul/value', Buffer.from('before\0after\0\0end', 'latin1'));
  await e.put('empty', '');
  await e.put('big/1', Buffer.alloc(600 * 1024, 7));
  await e.put('big/2', randomBytes(600 * 1024));
  for (let v = 1; v <= 5; v++) await e.put('counter', String(v));
  await e.put('gone', 'deleted before the backup');
  await e.del('gone');
  const session = String((await e.api('/v3/lease/grant', { TTL: '3600' })).ID);
  const lock = String((await e.api('/v3/lease/grant', { TTL: '600' })).ID);
  await e.put('/leased/session/a', 'alice', session);
  await e.put('/leased/session/b', 'bob', session);
  await e.put('/leased/lock/x', 'held', lock);
}

export interface EtcdFingerprint {
  keys: number;
  /** sha256 over every key and value, in key order. */
  sha256: string;
  /** Keys attached to a lease, grouped by lease (keys as hex), with each lease's granted TTL; sorted. */
  leases: { ttl: number; keys: string[] }[];
}

/** Every key and value, and which keys share a lease of which TTL: what a restore must reproduce. */
export async function etcdFingerprint(e: EtcdInstance): Promise<EtcdFingerprint> {
  const h = createHash('sha256');
  const byLease = new Map<string, string[]>();
  let keys = 0;
  let from = Buffer.from([0]);
  let revision: string | undefined;
  for (;;) {
    const page = await e.api('/v3/kv/range', { key: b64(from), range_end: b64(Buffer.from([0])), limit: '200', ...(revision ? { revision } : {}) });
    revision ??= String((page.header as { revision: string }).revision);
    const kvs = (page.kvs ?? []) as { key: string; value?: string; lease?: string }[];
    for (const kv of kvs) {
      const key = Buffer.from(kv.key, 'base64');
      const value = Buffer.from(kv.value ?? '', 'base64');
      h.update(`${key.length}:`).update(key).update(`${value.length}:`).update(value).update('\n');
      keys++;
      if (kv.lease && kv.lease !== '0') byLease.set(kv.lease, [...(byLease.get(kv.lease) ?? []), key.toString('hex')]);
    }
    if (page.more !== true || kvs.length === 0) break;
    from = Buffer.concat([Buffer.from(kvs[kvs.length - 1]!.key, 'base64'), Buffer.from([0])]);
  }
  const leases: { ttl: number; keys: string[] }[] = [];
  for (const [id, members] of byLease) {
    const ttl = Number((await e.api('/v3/lease/timetolive', { ID: id })).grantedTTL ?? 0);
    leases.push({ ttl, keys: members.sort() });
  }
  leases.sort((a, b) => a.ttl - b.ttl || a.keys.join().localeCompare(b.keys.join()));
  return { keys, sha256: h.digest('hex'), leases };
}
