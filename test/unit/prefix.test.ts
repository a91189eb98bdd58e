import { describe, expect, it } from 'vitest';
import { validateStorageClass } from '../../api/crds/index.js';
import { prefixProblem, prefixSegments, validateRunnerConfig } from '../../api/index.js';
import { validStorageClass } from '../crd-fixtures.js';

const config = (prefix: string) => ({
  name: 'orders',
  engine: { type: 'postgresql', postgresql: { host: 'db', database: 'orders', user: 'backup' } },
  locations: [
    { name: 'local', type: 'filesystem', filesystem: { path: '/backups' } },
    { name: 'offsite', type: 's3', prefix, s3: { bucket: 'orders-backups' } },
  ],
});

const storageClass = (prefix: string) => {
  const o = validStorageClass();
  (o.spec.locations as Record<string, unknown>[])[1]!.prefix = prefix;
  return o;
};

const refused: [string, string, RegExp][] = [
  ['parent segment', '../other-team', /"\.\." segment/],
  ['parent segment inside', 'db/../../etc', /"\.\." segment/],
  ['current segment', 'db/./x', /"\." segment/],
  ['lone dot', '.', /"\." segment/],
  ['absolute', '/etc', /relative/],
  ['leading and trailing slash', '/db/', /relative/],
  ['trailing slash', 'db/', /end with/],
  ['empty segment', 'team//db', /empty segment/],
  ['newline', 'db\nx', /control characters/],
  ['NUL', 'db\u0000', /control characters/],
  ['DEL', 'db\u007f', /control characters/],
  ['reserved temp segment', 'db/.tmp-upload', /reserved/],
  ['too long', 'a'.repeat(513), /512 bytes/],
];

describe('the location prefix rule (one rule for the runner config and the storage class)', () => {
  it.each(refused)('refuses %s: %j', (_what, prefix, rule) => {
    expect(prefixProblem(prefix)).toMatch(rule);

    const r = validateRunnerConfig(config(prefix));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toContainEqual({ path: 'locations[1].prefix', message: expect.stringMatching(rule) });

    const c = validateStorageClass(storageClass(prefix));
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.errors.find((e) => e.path === 'spec.locations[1].prefix')?.message).toMatch(prefix.length > 512 ? /512|length/ : rule);
  });

  it.each([[''], ['db'], ['team-a/db'], ['..hidden'], ['a.b/c..d'], ['ünïcode/日本']])('accepts %j', (prefix) => {
    expect(prefixProblem(prefix)).toBeUndefined();
    expect(validateRunnerConfig(config(prefix)).ok).toBe(true);
    expect(validateStorageClass(storageClass(prefix)).ok).toBe(true);
  });

  it('splits a valid prefix into its segments', () => {
    expect(prefixSegments('')).toEqual([]);
    expect(prefixSegments('team-a/db')).toEqual(['team-a', 'db']);
  });
});
