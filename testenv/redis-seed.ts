/**
 * A Redis dataset with every value type, binary keys and values, TTLs and
 * several logical databases, and its fingerprint: what a restore must
 * reproduce exactly.
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { RedisInstance } from './redis.js';

function client(r: RedisInstance, db = 0): Redis {
  return new Redis({ host: r.host, port: r.port, password: r.password, db, lazyConnect: false, maxRetriesPerRequest: 1 });
}

/** Seeds db 0 and db 3 with `keys` string keys besides one value of every type. */
export async function seedRedis(r: RedisInstance, opts: { keys?: number } = {}): Promise<void> {
  const c = client(r);
  try {
    const p = c.pipeline();
    for (let i = 0; i < (opts.keys ?? 1000); i++) p.set(`user:${i}`, `name-${i}-ünïcødé-🙂`);
    p.set(Buffer.from([0, 1, 10, 13, 255, 0x7f]), Buffer.from([0, 0, 255, 10, 1]));
    p.set('big', Buffer.alloc(1024 * 1024, 7));
    p.hset('hash', { a: '1', b: '2', 'é': '🙂' });
    p.rpush('list', 'x', 'y', 'z', 'x');
    p.sadd('set', 'a', 'b', 'c');
    p.zadd('zset', 1, 'one', 2.5, 'two', -3, 'minus');
    p.xadd('stream', '1-1', 'f', 'v');
    p.set('expiring', 'soon', 'EX', 3600);
    p.set('counter', '41');
    p.incr('counter');
    p.call('FUNCTION', 'LOAD', "#!lua name=shoplib\nredis.register_function('echo_first', function(keys, args) return args[1] end)");
    p.select(3);
    p.set('in-db-3', 'yes');
    p.hset('db3-hash', 'k', 'v');
    await p.exec();
  } finally {
    c.disconnect();
  }
}

/** A key's value in a canonical form: members of sets and fields of hashes sorted (their order is the server's own hash order). */
async function canonical(c: Redis, key: Buffer, type: string): Promise<Buffer> {
  const sorted = (items: Buffer[]): Buffer[] => [...items].sort((a, b) => Buffer.compare(a, b));
  const join = (items: Buffer[]): Buffer => Buffer.concat(items.flatMap((b) => [Buffer.from(`${b.length}:`), b]));
  switch (type) {
    case 'string':
      return (await c.getBuffer(key)) ?? Buffer.alloc(0);
    case 'list':
      return join(await c.lrangeBuffer(key, 0, -1));
    case 'set':
      return join(sorted(await c.smembersBuffer(key)));
    case 'zset':
      return join(await c.zrangeBuffer(key, 0, -1, 'WITHSCORES'));
    case 'hash': {
      const flat = await c.hgetallBuffer(key);
      return join(sorted(Object.entries(flat).map(([f, v]) => Buffer.concat([Buffer.from(`${f}=`), v]))));
    }
    case 'stream':
      return Buffer.from(JSON.stringify(await c.xrange(key, '-', '+')));
    default:
      throw new Error(`redisFingerprint: no canonical form for type ${type}`);
  }
}

/**
 * Per logical database: a sha256 over every key with its type and canonical value, and the keys that carry
 * a TTL.
 */
export async function redisFingerprint(r: RedisInstance): Promise<Record<string, { keys: number; sha256: string; withTtl: string[] }>> {
  const out: Record<string, { keys: number; sha256: string; withTtl: string[] }> = {};
  const c = client(r);
  try {
    const info = await c.info('keyspace');
    for (const m of info.matchAll(/^db(\d+):keys=(\d+)/gm)) {
      const db = Number(m[1]);
      await c.select(db);
      const keys: Buffer[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await c.scanBuffer(cursor, 'COUNT', 1000);
        cursor = next.toString();
        keys.push(...batch);
      } while (cursor !== '0');
      keys.sort((a, b) => Buffer.compare(a, b));
      const h = createHash('sha256');
      const withTtl: string[] = [];
      for (const k of keys) {
        const [type, ttl] = await Promise.all([c.type(k), c.pttl(k)]);
        h.update(k).update('\0').update(type).update('\0').update(await canonical(c, k, type)).update('\n');
        if (ttl > 0) withTtl.push(k.toString('hex'));
      }
      out[`db${db}`] = { keys: keys.length, sha256: h.digest('hex'), withTtl };
    }
    // Function libraries (Redis 7) with their code.
    const libs = JSON.stringify(await c.call('FUNCTION', 'LIST', 'WITHCODE'));
    out.functions = { keys: (JSON.parse(libs) as unknown[]).length, sha256: createHash('sha256').update(libs).digest('hex'), withTtl: [] };
  } finally {
    c.disconnect();
  }
  return out;
}
