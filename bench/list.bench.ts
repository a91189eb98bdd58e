/**
 * `list` over many backups in an S3 location, counting the HTTP requests that
 * reach the S3 server (s3rver, through a counting proxy). A cold listing pays
 * the ListObjectsV2 pages plus one GET per manifest; a warm one (the daemon's
 * cache) pays the pages only.
 *
 *   BENCH_BACKUPS=10000 npx tsx bench/list.bench.ts
 */
import { createServer, request } from 'node:http';
import { validateRunnerConfig } from '../api/index.js';
import type { Engine } from '../runner/engines/types.js';
import { silentLogger } from '../runner/logger.js';
import { listBackups } from '../runner/ops/list.js';
import type { Runtime } from '../runner/runtime.js';
import { createStorage } from '../runner/storage/registry.js';
import { mapLimit } from '../runner/util/async.js';
import { startS3 } from '../testenv/s3.js';
import { writeBackup } from '../test/retention-fixtures.js';

const count = Number(process.env.BENCH_BACKUPS ?? 10_000);
const s3 = await startS3();
const requests = new Map<string, number>();
const proxy = createServer((req, res) => {
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  const kind = `${req.method} ${q.has('list-type') ? 'ListObjectsV2' : req.method === 'GET' ? 'GetObject' : req.method === 'PUT' ? 'PutObject' : 'other'}`;
  requests.set(kind, (requests.get(kind) ?? 0) + 1);
  const up = request({ host: '127.0.0.1', port: s3.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
const port = (proxy.address() as { port: number }).port;

try {
  await s3.createBucket('bench');
  const cfg = validateRunnerConfig({
    name: 'orders',
    engine: { type: 'postgresql', postgresql: { host: 'unused', database: 'unused', user: 'unused' } },
    locations: [{ name: 's3', type: 's3', s3: { ...s3.location('bench'), endpoint: `http://127.0.0.1:${port}` } }],
  });
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const logger = silentLogger();
  const storage = await createStorage(cfg.value.locations[0]!, { logger });
  const rt: Runtime = {
    config: cfg.value,
    engine: {} as Engine,
    locations: [{ name: 's3', storage, scope: { prefix: '', namespace: 'default', name: 'orders' } }],
    logger,
    clock: () => new Date(),
    runnerVersion: 'bench',
    manifestCache: new Map(),
  };
  console.log(`writing ${count} backups ...`);
  const start = Date.parse('2025-01-01T00:00:00Z');
  await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    16,
    (i) => {
      const t = new Date(start + i * 600_000);
      const id = `${t.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-${(i % 65536).toString(16).padStart(4, '0')}`;
      return writeBackup(rt.locations[0]!, id, t);
    },
  );

  for (const round of ['cold (no cache)', 'warm (daemon cache)']) {
    requests.clear();
    const t0 = process.hrtime.bigint();
    const l = await listBackups(rt);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const total = [...requests.values()].reduce((a, b) => a + b, 0);
    console.log(`${round}: ${l.backups.length} backups in ${ms.toFixed(0)} ms, ${total} requests (${[...requests].map(([k, v]) => `${k}: ${v}`).join(', ')}), ${(total / count).toFixed(3)} per backup`);
  }
  await storage.close();
} finally {
  proxy.close();
  await s3.stop();
}
