/** S3 behaviour beyond the contract, against a real s3rver: missing bucket, credentials, outages, paging. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Location } from '../../api/index.js';
import { createLogger, silentLogger, type Logger } from '../../runner/logger.js';
import { createStorage } from '../../runner/storage/registry.js';
import { createS3Storage } from '../../runner/storage/s3.js';
import type { Storage } from '../../runner/storage/types.js';
import { startFaultProxy, type FaultProxy } from '../../testenv/fault-proxy.js';
import { startS3Server, type S3Server } from '../../testenv/s3.js';
import { selfSignedCert } from '../../testenv/tls.js';
import { MiB, expectCode, generated, listAll, sha256Of } from './storage-helpers.js';

/** A JSON logger whose lines are kept for assertions. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger({ destination, pretty: false, level: 'debug' }), lines };
}

describe('S3 backend against s3rver', () => {
  let s3: S3Server;
  let proxy: FaultProxy;
  const open: Storage[] = [];
  const storage = async (cfg: S3Location, logger: Logger = silentLogger(), pageSize?: number): Promise<Storage> => {
    const s = await createS3Storage(cfg, { description: `s3://${cfg.bucket}/db`, field: 's3', logger, pageSize });
    open.push(s);
    return s;
  };

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['present'] });
    proxy = await startFaultProxy({ port: s3.port });
  });
  afterAll(async () => {
    for (const s of open) await s.close();
    await proxy?.close();
    await s3?.stop();
  });

  it('a missing bucket fails every call with STORAGE_BUCKET_MISSING naming the bucket', async () => {
    const s = await storage(s3.location('absent-bucket'));
    const calls: [string, () => Promise<unknown>][] = [
      ['preflight', () => s.preflight()],
      ['put Buffer', () => s.put('db/a', Buffer.from('x'))],
      ['put stream', () => s.put('db/b', generated(7 * MiB).stream)],
      ['list', () => listAll(s, 'db/')],
      ['get', () => s.get('db/a')],
      ['stat', () => s.stat('db/a')],
    ];
    for (const [what, call] of calls) {
      const err = await expectCode(call(), 'STORAGE_BUCKET_MISSING');
      expect(err.message, what).toBe('s3://absent-bucket/db: bucket "absent-bucket" does not exist');
      expect(err.retryable).toBe(false);
    }
  });

  // s3rver knows one key id (S3RVER) and refuses others with InvalidAccessKeyId (403),
  // as AWS does. It does not verify SigV4 signatures, so a wrong *secret* key
  // cannot be detected here: the unknown key id is the honest failure to test.
  it('an unknown access key id fails with STORAGE_DENIED', async () => {
    const s = await storage(s3.location('present', { accessKeyId: { value: 'NOT-A-KEY' }, secretAccessKey: { value: 'wrong' } }));
    for (const call of [() => s.preflight(), () => s.put('db/x', Buffer.from('x')), () => s.put('db/y', generated(6 * MiB).stream), () => listAll(s, '')]) {
      const err = await expectCode(call(), 'STORAGE_DENIED');
      // HEAD requests (preflight) have no error body: only the status tells.
      expect(err.message).toMatch(/^s3:\/\/present\/db: .*access denied \((InvalidAccessKeyId|HTTP 403)\)/);
    }
    expect(await s3.openUploads('present')).toEqual([]);
  });

  it('reads credentials from env secret sources through the registry, and says which one is missing', async () => {
    const location = s3.location('present', { accessKeyId: { env: 'TEST_S3_KEY' }, secretAccessKey: { env: 'TEST_S3_SECRET' } });
    const env = { TEST_S3_KEY: 'S3RVER', TEST_S3_SECRET: 'S3RVER' };
    const s = await createStorage({ name: 'remote', type: 's3', prefix: 'db', s3: location }, { logger: silentLogger(), env });
    open.push(s);
    expect(s.description).toBe('s3://present/db');
    await s.preflight();
    await s.put('db/env-creds', Buffer.from('ok'));
    expect((await s.stat('db/env-creds')).size).toBe(2);
    const missing = createStorage({ name: 'remote', type: 's3', prefix: '', s3: location }, { logger: silentLogger(), env: {} });
    const err = await expectCode(missing, 'SECRET_UNREADABLE');
    expect(err.message).toContain('TEST_S3_KEY');
  });

  it('lists across pages in key order', async () => {
    const s = await storage(s3.location('present'), silentLogger(), 2);
    const keys = ['db/page/e', 'db/page/a', 'db/page/c/1', 'db/page/b', 'db/page/d'];
    for (const k of keys) await s.put(k, Buffer.from(k));
    expect((await listAll(s, 'db/page/')).map((o) => o.key)).toEqual([...keys].sort());
  });

  it('a server that cannot be reached fails with STORAGE_UNAVAILABLE, retried by the registry wrapper', async () => {
    proxy.down();
    try {
      const { logger, lines } = capturingLogger();
      const s = await createStorage(
        { name: 'down', type: 's3', prefix: '', s3: s3.location('present', { endpoint: proxy.url }) },
        { logger, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 } },
      );
      open.push(s);
      const err = await expectCode(s.preflight(), 'STORAGE_UNAVAILABLE');
      expect(err.retryable).toBe(true);
      expect(lines.filter((l) => l.msg === 'storage call failed, retrying')).toHaveLength(1);
    } finally {
      proxy.up();
    }
  });

  it('a connection reset in the middle of a part is retried by the SDK and the object is intact', async () => {
    const s = await storage(s3.location('present', { endpoint: proxy.url }));
    const body = generated(16 * MiB);
    const cut = proxy.cutAfter(7 * MiB);
    await s.put('db/flaky/data', body.stream);
    await cut;
    expect(await sha256Of(await s.get('db/flaky/data'))).toEqual({ sha256: body.sha256(), size: 16 * MiB });
    expect(await s3.openUploads('present')).toEqual([]);
  });

  it('a server going down mid-upload fails the put; nothing is visible once it is back; a failed abort is reported', async () => {
    const { logger, lines } = capturingLogger();
    const s = await storage(s3.location('present', { endpoint: proxy.url }), logger);
    const body = generated(64 * MiB);
    void proxy.cutAfter(12 * MiB, { refuseMs: 60_000 });
    try {
      const err = await expectCode(s.put('db/outage/data', body.stream), 'STORAGE_UNAVAILABLE');
      expect(err.message).toMatch(/^s3:\/\/present\/db: put db\/outage\/data failed/);
      expect(body.stream.destroyed).toBe(true);
      expect(body.produced()).toBeLessThan(40 * MiB);
    } finally {
      proxy.up();
    }
    await expectCode(s.stat('db/outage/data'), 'STORAGE_NOT_FOUND');
    expect(await listAll(s, 'db/outage/')).toEqual([]);
    // The abort could not reach the server: its parts stay, invisible, and the upload id is logged.
    const warning = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('could not abort the multipart upload'));
    expect(warning?.uploadId).toBeDefined();
    expect(await s3.openUploads('present')).toEqual([warning?.uploadId]);
  });

  it('over HTTPS: trusts a CA from caFile, refuses an unknown CA with a hint, and can skip verification', async () => {
    const dir = await mkdtemp(join(tmpdir(), 's3-tls-'));
    const tls = selfSignedCert(dir);
    const secure = await startS3Server({ buckets: ['tls'], tls });
    try {
      expect(secure.endpoint).toMatch(/^https:/);
      const trusted = await storage(secure.location('tls', { caFile: tls.certFile }));
      await trusted.preflight();
      const body = generated(6 * MiB);
      await trusted.put('db/tls/data', body.stream);
      expect(await sha256Of(await trusted.get('db/tls/data'))).toEqual({ sha256: body.sha256(), size: 6 * MiB });

      const untrusted = await storage(secure.location('tls'));
      const err = await expectCode(untrusted.preflight(), 'STORAGE_FAILED');
      expect(err.message).toMatch(/TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\): set caFile/);

      const skipping = await storage(secure.location('tls', { insecureSkipTLSVerify: true }));
      expect((await skipping.stat('db/tls/data')).size).toBe(6 * MiB);
    } finally {
      await secure.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
