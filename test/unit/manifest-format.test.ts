import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MANIFEST_FORMAT_VERSION, parseManifest, serializeManifest, storedBytes, type Manifest } from '../../runner/manifest.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'format-1', 'shop', 'orders', '20261203T185900Z-e278', 'manifest.json');

const v2: Manifest = {
  formatVersion: 2,
  kind: 'backup',
  id: '20261203T185900Z-e278',
  namespace: 'shop',
  name: 'orders',
  database: 'shop',
  engine: { name: 'postgresql', serverVersion: '15.18', toolVersion: '15.18', format: 'pg_dump-custom' },
  startedAt: '2026-12-03T18:59:00.449Z',
  consistentAt: '2026-12-03T18:59:00.590Z',
  finishedAt: '2026-12-03T18:59:00.777Z',
  trigger: 'manual',
  objects: [
    {
      name: 'data.dump.zst.age',
      size: 1368300,
      sha256: 'a'.repeat(64),
      plain: { size: 1367953, sha256: 'e94d13f59b1fc4b556e38d88e376144a5e49fd66506173ed720b9910038c109c' },
      compression: { algorithm: 'zstd', level: 3 },
      encryption: { scheme: 'age', recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] },
    },
  ],
  runnerVersion: '0.2.0',
};

describe('manifest formats', () => {
  it('this runner writes format 2', () => {
    expect(MANIFEST_FORMAT_VERSION).toBe(2);
    expect(parseManifest(serializeManifest(v2).toString(), 'here')).toEqual(v2);
  });

  it('reads the committed format 1 manifest of release 0.1.0 into the format 2 shape (golden)', () => {
    expect(parseManifest(readFileSync(FIXTURE, 'utf8'), 'fixture')).toEqual({
      formatVersion: 1,
      kind: 'backup',
      id: '20261203T185900Z-e278',
      namespace: 'shop',
      name: 'orders',
      database: 'shop',
      engine: { name: 'postgresql', serverVersion: '15.18', toolVersion: '15.18', format: 'pg_dump-custom' },
      startedAt: '2026-12-03T18:59:00.449Z',
      consistentAt: '2026-12-03T18:59:00.590Z',
      finishedAt: '2026-12-03T18:59:00.777Z',
      trigger: 'manual',
      objects: [
        {
          name: 'data.dump.zst',
          size: 1367953,
          sha256: 'e94d13f59b1fc4b556e38d88e376144a5e49fd66506173ed720b9910038c109c',
          plain: { size: 1367953, sha256: 'e94d13f59b1fc4b556e38d88e376144a5e49fd66506173ed720b9910038c109c' },
          compression: { algorithm: 'zstd', level: 3 },
          encryption: { scheme: 'none' },
        },
      ],
      runnerVersion: '0.1.0',
    });
  });

  it('tolerates fields it does not know within a major version (a later minor release)', () => {
    const later = { ...v2, signature: { keyId: 'k1', value: 'x' }, objects: [{ ...v2.objects[0]!, chunking: { size: 1 } }] };
    expect(parseManifest(JSON.stringify(later), 'here')).toMatchObject({ id: v2.id, objects: [{ name: 'data.dump.zst.age' }] });
  });

  it('reads a database stream\'s own properties (format 3, optional)', () => {
    const properties = { settings: ['work_mem=8MB'], grants: [{ grantee: null, privilege: 'CONNECT', grantable: false }], comment: 'x' };
    const m = { ...v2, formatVersion: 3, objects: [{ ...v2.objects[0]!, stream: { name: 'shop', kind: 'database', format: 'pg_dump-custom', consistentAt: v2.consistentAt, owner: 'app', properties } }] };
    expect(parseManifest(JSON.stringify(m), 'here').objects[0]!.stream).toMatchObject({ owner: 'app', properties });
  });

  it('reads a server-side backup (format 4): every object one the database server wrote', () => {
    const m = { ...v2, formatVersion: 4, objects: [{ ...v2.objects[0]!, name: 'server/data/1.sst', compression: { algorithm: 'none' }, encryption: { scheme: 'none' } }] };
    expect(parseManifest(JSON.stringify(m), 'here').objects.map((o) => o.name)).toEqual(['server/data/1.sst']);
  });

  it('sums the stored sizes of a copy', () => {
    expect(storedBytes({ ...v2, objects: [v2.objects[0]!, { ...v2.objects[0]!, size: 7 }] })).toBe(1368307);
  });

  it.each<[string, unknown, string, RegExp]>([
    ['a newer major version', { ...v2, formatVersion: 5 }, 'MANIFEST_UNSUPPORTED', /^fs: k: manifest format 5 is newer than this runner reads \(formats 1, 2, 3, 4\); upgrade the runner/],
    ['format 4 with an object the server did not write', { ...v2, formatVersion: 4 }, 'MANIFEST_INVALID', /does not match format 4 \(every object must be one the database server wrote/],
    ['format 4 with a stream', { ...v2, formatVersion: 4, objects: [{ ...v2.objects[0]!, name: 'server/BACKUP', stream: { name: 'shop', kind: 'database', format: 'x', consistentAt: v2.consistentAt } }] }, 'MANIFEST_INVALID', /and none a stream/],
    ['format 2 naming a server object', { ...v2, objects: [{ ...v2.objects[0]!, name: 'server/BACKUP' }] }, 'MANIFEST_INVALID', /an object under server\/ is format 4/],
    ['format 3 with an object that is no stream', { ...v2, formatVersion: 3 }, 'MANIFEST_INVALID', /does not match format 3 \(every object must be a stream, each stream once\)/],
    [
      'format 3 naming one stream twice',
      { ...v2, formatVersion: 3, objects: [0, 1].map((i) => ({ ...v2.objects[0]!, name: `data-00${i + 1}.dump.zst.age`, stream: { name: 'shop', kind: 'database', format: 'pg_dump-custom', consistentAt: v2.consistentAt } })) },
      'MANIFEST_INVALID',
      /each stream once/,
    ],
    ['format 2 with a stream', { ...v2, objects: [{ ...v2.objects[0]!, stream: { name: 'shop', kind: 'database', format: 'pg_dump-custom', consistentAt: v2.consistentAt } }] }, 'MANIFEST_INVALID', /streams are format 3/],
    [
      'format 3 with database properties of another shape (a grant as text)',
      { ...v2, formatVersion: 3, objects: [{ ...v2.objects[0]!, stream: { name: 'shop', kind: 'database', format: 'pg_dump-custom', consistentAt: v2.consistentAt, properties: { grants: ['GRANT ALL TO evil'] } } }] },
      'MANIFEST_INVALID',
      /properties\/grants\/0/,
    ],
    ['no formatVersion', { ...v2, formatVersion: undefined }, 'MANIFEST_INVALID', /no formatVersion/],
    ['formatVersion as a string', { ...v2, formatVersion: '2' }, 'MANIFEST_INVALID', /no formatVersion/],
    ['formatVersion 0', { ...v2, formatVersion: 0 }, 'MANIFEST_INVALID', /no formatVersion/],
    ['format 2 without its kind', { ...v2, kind: undefined }, 'MANIFEST_INVALID', /does not match format 2 \(\/kind/],
    ['format 2 without the plain digest', { ...v2, objects: [{ ...v2.objects[0]!, plain: undefined }] }, 'MANIFEST_INVALID', /\/objects\/0\/plain/],
    ['an unknown encryption scheme', { ...v2, objects: [{ ...v2.objects[0]!, encryption: { scheme: 'rot13' } }] }, 'MANIFEST_INVALID', /\/objects\/0\/encryption/],
    ['format 1 claiming encryption', { ...JSON.parse(readFileSync(FIXTURE, 'utf8')), encryption: { scheme: 'aes-ctr' } }, 'MANIFEST_INVALID', /does not match format 1 \(\/encryption/],
    ['not JSON', '{', 'MANIFEST_INVALID', /not valid JSON/],
    ['an array', [], 'MANIFEST_INVALID', /no formatVersion/],
  ])('%s: %s', (_what, data, code, message) => {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    expect(() => parseManifest(text, 'fs: k')).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }));
  });
});
