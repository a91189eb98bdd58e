import { describe, expect, it } from 'vitest';
import { validateRunnerConfig } from '../../api/index.js';
import { cronErrors } from '../../api/runner-config.js';
import { stringify } from 'yaml';
import { configDigest, parseConfig } from '../../runner/config/load.js';
import { BackupError } from '../../runner/errors.js';

const valid = {
  name: 'orders',
  engine: { type: 'postgresql', postgresql: { host: 'db', database: 'orders', user: 'backup', password: { env: 'PGPASS' } } },
  locations: [
    { name: 'local', type: 'filesystem', filesystem: { path: '/backups' } },
    { name: 'offsite', type: 's3', s3: { bucket: 'orders-backups', accessKeyId: { value: 'a' }, secretAccessKey: { file: '/s/key' } } },
  ],
};

describe('validateRunnerConfig', () => {
  it('fills defaults and freezes the result', () => {
    const r = validateRunnerConfig(valid);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.namespace).toBe('default');
    expect(r.value.compression.algorithm).toBe('auto');
    expect(r.value.engine.postgresql?.port).toBe(5432);
    expect(r.value.locations[1]?.s3).toMatchObject({ region: 'us-east-1', forcePathStyle: false, partSizeMiB: 8 });
    expect(r.value.locations[0]?.prefix).toBe('');
    expect(Object.isFrozen(r.value.locations[1]?.s3)).toBe(true);
  });

  it('reports every bad field together, each with its path and rule', () => {
    const r = validateRunnerConfig({
      name: 'Orders',
      engine: { type: 'postgresql' },
      compression: { algorithm: 'lz4' },
      locations: [
        { name: 'a', type: 's3', s3: { bucket: 'x' }, filesystem: { path: '/p' } },
        { name: 'a', type: 'ftp' },
        { name: 'c', type: 'filesystem', filesystem: { path: '/q', mode: 1 } },
      ],
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual(
      expect.arrayContaining([
        { path: 'name', message: expect.stringContaining('DNS label') as string },
        { path: 'compression.algorithm', message: 'must be one of "auto", "zstd", "gzip", "none"' },
        { path: 'engine.postgresql', message: 'is required when engine.type is "postgresql"' },
        { path: 'locations[0].s3.bucket', message: expect.stringContaining('length') as string },
        { path: 'locations[0].filesystem', message: 'must not be set when locations[0].type is "s3"' },
        { path: 'locations[1].type', message: 'must be one of "s3", "gcs", "filesystem"' },
        { path: 'locations[1].name', message: 'duplicate location name "a"' },
        { path: 'locations[2].filesystem.mode', message: expect.stringContaining('unexpected property') as string },
      ]),
    );
  });

  it.each([
    [{ password: { env: 'A', file: 'b' } }, 'engine.postgresql.password', 'exactly one of value, env, file'],
    [{ password: {} }, 'engine.postgresql.password', 'exactly one of value, env, file'],
    [{ port: 70000 }, 'engine.postgresql.port', '65535'],
    [{ sslMode: 'sometimes' }, 'engine.postgresql.sslMode', 'must be one of'],
    [{ globals: false }, 'engine.postgresql.globals', 'applies only with databases'],
    [{ parallel: 2 }, 'engine.postgresql.parallel', 'applies only with databases'],
    [{ databases: 'all', parallel: 0 }, 'engine.postgresql.parallel', 'greater or equal to 1'],
    [{ databases: 'all', parallel: 17 }, 'engine.postgresql.parallel', 'less or equal to 16'],
  ])('postgresql %j -> %s', (patch, path, text) => {
    const r = validateRunnerConfig({ ...valid, engine: { type: 'postgresql', postgresql: { ...valid.engine.postgresql, ...patch } } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toContainEqual({ path, message: expect.stringContaining(text) as string });
  });

  it('S3 keys come in pairs', () => {
    const r = validateRunnerConfig({ ...valid, locations: [{ name: 's', type: 's3', s3: { bucket: 'abc', accessKeyId: { value: 'a' } } }] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toContainEqual({ path: 'locations[0].s3', message: expect.stringContaining('both accessKeyId and secretAccessKey') as string });
  });

  it('needs at least one location', () => {
    const r = validateRunnerConfig({ ...valid, locations: [] });
    expect(r.ok).toBe(false);
  });
});

describe('parseConfig', () => {
  it('names the file and lists each error on its own line', () => {
    expect(() => parseConfig('name: x\nlocations: []\n', 'cfg.yaml')).toThrowError(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/^cfg\.yaml: invalid configuration:\n {2}- /) }) as Error,
    );
  });

  it('rejects YAML syntax errors clearly', () => {
    expect(() => parseConfig('name: [unclosed', 'cfg.yaml')).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('not valid YAML') }) as Error);
  });
});

describe('parseConfig never echoes the text of a broken file (it may hold credentials)', () => {
  const SECRET = 'pw-Xq7-never-printed';
  const thrown = (text: string): BackupError => {
    try {
      parseConfig(text, 'cfg.yaml');
    } catch (err) {
      expect(err).toBeInstanceOf(BackupError);
      return err as BackupError;
    }
    throw new Error('expected parseConfig to throw');
  };

  it.each([
    ['an unclosed quote on the password line', `name: x\nengine:\n  postgresql:\n    password: { value: "${SECRET}\n    user: backup\n`, /missing closing quote or bracket at line \d+, column \d+ \(MISSING_CHAR\)/],
    ['bad indentation after the password', `engine:\n  postgresql:\n    password: ${SECRET}\n     user: x\n`, /at line 3, column \d+/],
    ['an invalid escape inside the password', `password: "${SECRET}\\q"\n`, /invalid escape sequence/],
    ['an unexpected bracket after the password', `password: { value: ${SECRET} }}\n`, /unexpected character at line 1/],
    ['a duplicate key holding the password', `password: a\npassword: ${SECRET}\n`, /duplicate key at line 2/],
    ['an unknown tag on the password', `password: !!secret ${SECRET}\n`, /unknown tag at line 1/],
    ['an alias named like the password', `password: *${SECRET}\n`, /an alias refers to no anchor/],
  ])('%s: line, column and kind, no value', (_name, text, rule) => {
    const err = thrown(text);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(rule);
    expect(err.cause).toBeUndefined();
    for (const shown of [err.message, JSON.stringify(err.toJSON()), err.stack ?? '']) expect(shown).not.toContain(SECRET);
  });

  it('a schema error in a field holding a secret names the field, not the value', () => {
    const err = thrown(stringify({ ...valid, engine: { ...valid.engine, postgresql: { ...valid.engine.postgresql, password: SECRET } } }));
    expect(err.message).toContain('engine.postgresql.password');
    expect(JSON.stringify(err.toJSON())).not.toContain(SECRET);
  });
});

describe('parseConfig refuses keys that reach an object prototype', () => {
  it.each([
    ['__proto__ at the top', `__proto__: { polluted: true }\n${stringify(valid)}`, '__proto__'],
    ['__proto__ inside a location', stringify(valid).replace('name: local', 'name: local\n    __proto__:\n      prefix: ../../other-tenant'), 'locations[0].__proto__'],
    ['constructor inside the engine', stringify(valid).replace('host: db', 'host: db\n    constructor: { prototype: { x: 1 } }'), 'engine.postgresql.constructor'],
    ['prototype in a secret source', stringify(valid).replace('env: PGPASS', 'env: PGPASS\n      prototype: 1'), 'engine.postgresql.password.prototype'],
    ['__proto__ in JSON', JSON.stringify({ ...valid, retention: JSON.parse('{"__proto__": {"keepLast": 1}}') as unknown }), 'retention.__proto__'],
  ])('%s', (_name, text, path) => {
    try {
      parseConfig(text, 'cfg.yaml');
      expect.unreachable();
    } catch (err) {
      expect((err as BackupError).code).toBe('CONFIG_INVALID');
      expect((err as BackupError).message).toContain(`  - ${path}: the key "${path.split('.').pop()!.replace(/^.*\]/, '')}" is not allowed anywhere in the configuration`);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('configDigest', () => {
  it('is the same for the same settings however they are written, and differs when a setting differs', () => {
    const a = parseConfig(stringify(valid), 'a.yaml');
    const b = parseConfig(JSON.stringify({ locations: valid.locations, engine: valid.engine, name: 'orders', namespace: 'default' }), 'b.json');
    const c = parseConfig(stringify({ ...valid, name: 'payments' }), 'c.yaml');
    expect(configDigest(a)).toBe(configDigest(b));
    expect(configDigest(a)).not.toBe(configDigest(c));
    expect(configDigest(a)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('schedule and retention settings', () => {
  const withSchedule = (schedule: unknown, extra: Record<string, unknown> = {}) => validateRunnerConfig({ ...valid, schedule, ...extra });

  it.each([
    [{ cron: '0 3 * * *', timeZone: 'Europe/Berlin' }],
    [{ cron: '*/30 * * * * *' }],
    [{ cron: '@hourly' }],
    [{ cron: '@daily', timeZone: 'Europe/Berlin' }],
    [{ cron: '@midnight' }],
    [{ cron: '@weekly' }],
    [{ cron: '@monthly' }],
    [{ cron: '@yearly' }],
    [{ cron: '@annually' }],
    [{ interval: '6h', jitter: '5m' }],
    [{ interval: '1d12h', suspend: true, catchUp: false }],
  ])('accepts %j', (schedule) => {
    expect(withSchedule(schedule).ok).toBe(true);
  });

  it.each([
    [{ cron: '0 3 * *' }, 'schedule.cron', 'has 4 fields'],
    [{ cron: '61 3 * * *' }, 'schedule.cron', 'not a valid cron expression'],
    [{ cron: '@fortnightly' }, 'schedule.cron', 'is not a cron macro'],
    [{ cron: '0 3 * * *', interval: '1h' }, 'schedule', 'exactly one of cron, interval'],
    [{}, 'schedule', 'exactly one of cron, interval'],
    [{ interval: '90 minutes' }, 'schedule.interval', 'must be a duration such as'],
    [{ interval: '0s' }, 'schedule.interval', 'at least 1s'],
    [{ cron: '0 3 * * *', timeZone: 'Europe/Atlantis' }, 'schedule.timeZone', 'not an IANA time zone'],
  ])('rejects %j at %s', (schedule, path, text) => {
    const r = withSchedule(schedule);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toContainEqual({ path, message: expect.stringContaining(text) });
  });

  it('retention fields are checked too', () => {
    const r = validateRunnerConfig({ ...valid, retention: { keepDaily: -1, keepWithin: '7 days', minKeep: 0, timeZone: 'Nowhere/Else' } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.path).sort()).toEqual(['retention.keepDaily', 'retention.keepWithin', 'retention.minKeep', 'retention.timeZone']);
  });

  it('fills daemon and retention defaults', () => {
    const r = validateRunnerConfig(valid);
    expect(r.ok && r.value.daemon).toEqual({ socket: '/tmp/backup-runner/control.sock', metricsHost: '0.0.0.0', metricsPort: 9090, shutdownGracePeriod: '25s' });
    expect(r.ok && r.value.retention).toEqual({ minKeep: 1, orphanGracePeriod: '24h' });
  });
});

describe('parseConfig checks extra pg_dump / pg_restore arguments against the allowlist', () => {
  it('lists every bad argument with its path, under the file name', () => {
    const text = stringify({ ...valid, engine: { ...valid.engine, postgresql: { ...valid.engine.postgresql, dumpArgs: ['--no-owner', '-vf/tmp/x'], restoreArgs: ['--fil=/tmp/y'] } } });
    try {
      parseConfig(text, 'cfg.yaml');
      expect.unreachable();
    } catch (err) {
      const message = (err as BackupError).message;
      expect(message).toMatch(/^cfg\.yaml: invalid configuration:\n/);
      expect(message).toContain('  - engine.postgresql.dumpArgs[1]: "-vf/tmp/x": -f (pg_dump reads it as --file) is not allowed here');
      expect(message).toMatch(/ {2}- engine\.postgresql\.restoreArgs\[0\]: "--fil=\/tmp\/y": .*--file/);
    }
  });
});

describe('cron messages', () => {
  const FORMS = 'use 5 fields (minute hour day-of-month month day-of-week), 6 (a second first) or a macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)';
  const FIELD = 'a field is a value, *, a list a,b, a range a-b or a step */n (n at least 1)';
  it.each([
    ['0', `"0" has 1 field; ${FORMS}`],
    ['0 3 * *', `"0 3 * *" has 4 fields; ${FORMS}`],
    ['1 2 3 4 5 6 7', `"1 2 3 4 5 6 7" has 7 fields; ${FORMS}`],
    ['@fortnightly', `"@fortnightly" is not a cron macro; ${FORMS}`],
    ['60 * * * * *', `"60 * * * * *" is not a valid cron expression: second "60" is not valid (0-59); ${FIELD}`],
    ['61 3 * * *', `"61 3 * * *" is not a valid cron expression: minute "61" is not valid (0-59); ${FIELD}`],
    ['0 24 * * *', `"0 24 * * *" is not a valid cron expression: hour "24" is not valid (0-23); ${FIELD}`],
    ['0 3 32 * *', `"0 3 32 * *" is not a valid cron expression: day of month "32" is not valid (1-31); ${FIELD}`],
    ['0 3 * 13 *', `"0 3 * 13 *" is not a valid cron expression: month "13" is not valid (1-12 or jan-dec); ${FIELD}`],
    ['0 3 * * 8', `"0 3 * * 8" is not a valid cron expression: day of week "8" is not valid (0-7 or sun-sat, 0 and 7 both Sunday); ${FIELD}`],
    ['*/0 3 * * *', `"*/0 3 * * *" is not a valid cron expression: minute "*/0" is not valid (0-59); ${FIELD}`],
    [
      'x 25 * * *',
      `"x 25 * * *" is not a valid cron expression: minute "x" is not valid (0-59); hour "25" is not valid (0-23); ${FIELD}`,
    ],
  ])('%j: %s', (cronExpr, message) => {
    expect(cronErrors(cronExpr, 'schedule.cron')).toEqual([{ path: 'schedule.cron', message }]);
  });

  it('no message says "1 fields" or "a invalid"', () => {
    for (const c of ['0', '61 * * * *', 'a b c d e', '* * * * 9', '99 * * * * *']) {
      for (const e of cronErrors(c, 'cron')) expect(e.message).not.toMatch(/\b1 fields\b|\ba invalid\b/);
    }
  });

  it.each(['@hourly', '@daily', '@midnight', '@weekly', '@monthly', '@yearly', '@annually', ' @daily '])('accepts %j', (c) => {
    expect(cronErrors(c, 'schedule.cron')).toEqual([]);
  });
});

describe('encryption of a location (age)', () => {
  const R1 = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
  const R2 = 'age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg';
  const withAge = (age: unknown) => ({ ...valid, locations: [valid.locations[0], { ...valid.locations[1], encryption: { age } }] });
  it.each<[string, unknown, { path: string; message: RegExp }[]]>([
    ['recipients', { recipients: [R1, R2] }, []],
    ['recipients and identity files', { recipients: [R1], identities: [{ file: '/k/key.txt' }] }, []],
    ['a passphrase alone', { passphrase: { file: '/k/pass' } }, []],
    ['neither', {}, [{ path: 'locations[1].encryption.age', message: /exactly one of recipients, passphrase/ }]],
    ['both', { recipients: [R1], passphrase: { value: 'x' } }, [{ path: 'locations[1].encryption.age', message: /exactly one of recipients, passphrase/ }]],
    ['an empty list', { recipients: [] }, [{ path: 'locations[1].encryption.age.recipients', message: /array length to be greater or equal to 1/ }]],
    ['not a recipient', { recipients: ['ssh-ed25519 AAAA'] }, [{ path: 'locations[1].encryption.age.recipients[0]', message: /not an X25519 age recipient/ }]],
    ['a bad checksum', { recipients: [`${R1.slice(0, -1)}q`] }, [{ path: 'locations[1].encryption.age.recipients[0]', message: /not a valid age recipient/ }]],
    [
      'a private key given as a recipient',
      { recipients: ['AGE-SECRET-KEY-1GQ9778VQXMMJVE8SK7J6VT8UJ4HDQAJUVSFCWCM02D8GEWQ72PVQ2Y5J33'] },
      [{ path: 'locations[1].encryption.age.recipients[0]', message: /private key .* never the private one/ }],
    ],
    ['a post-quantum recipient (not yet)', { recipients: ['age1pq1abc'] }, [{ path: 'locations[1].encryption.age.recipients[0]', message: /not an X25519/ }]],
    ['twice the same', { recipients: [R1, R1] }, [{ path: 'locations[1].encryption.age.recipients[1]', message: /duplicate recipient/ }]],
    ['a passphrase with two sources', { passphrase: { value: 'x', env: 'Y' } }, [{ path: 'locations[1].encryption.age.passphrase', message: /exactly one of value, env, file/ }]],
    ['an unknown scheme field', { recipients: [R1], cipher: 'aes' }, [{ path: 'locations[1].encryption.age.cipher', message: /./ }]],
  ])('%s', (_what, age, want) => {
    const r = validateRunnerConfig(withAge(age));
    if (want.length === 0) {
      expect(r.ok, JSON.stringify(r)).toBe(true);
      return;
    }
    expect(r.ok).toBe(false);
    if (r.ok) return;
    for (const w of want) expect(r.errors).toContainEqual({ path: w.path, message: expect.stringMatching(w.message) });
    // A private key given by mistake is never echoed back.
    expect(JSON.stringify(r.errors)).not.toContain('AGE-SECRET-KEY-1GQ9778');
  });
});

describe('signing', () => {
  it.each<[string, unknown, { path: string; message: RegExp }[]]>([
    ['a key', { key: { file: '/k/signing.pem' } }, []],
    ['verification keys only (a reader)', { verify: [{ file: '/k/a.pub' }, { value: '-----BEGIN PUBLIC KEY-----' }] }, []],
    ['nothing', {}, [{ path: 'signing', message: /set key, verify or both/ }]],
    ['a key from two sources', { key: { file: '/k', env: 'K' } }, [{ path: 'signing.key', message: /exactly one of value, env, file/ }]],
    ['an empty verify list', { verify: [] }, [{ path: 'signing.verify', message: /greater or equal to 1/ }]],
  ])('%s', (_what, signing, want) => {
    const r = validateRunnerConfig({ ...valid, signing });
    if (want.length === 0) {
      expect(r.ok, JSON.stringify(r)).toBe(true);
      return;
    }
    expect(r.ok).toBe(false);
    if (!r.ok) for (const w of want) expect(r.errors).toContainEqual({ path: w.path, message: expect.stringMatching(w.message) });
  });
});

describe('a server-side engine\'s locations (engine.command.definition.output: location)', () => {
  const definition = { name: 'crdb', command: ['tool'], verbs: ['probe', 'backup', 'restore'], formats: [{ format: 'crdb-backup', extension: 'crdb', magicHex: ['00'] }], output: 'location' };
  const s3 = { bucket: 'team-a', accessKeyId: { value: 'a' }, secretAccessKey: { file: '/s/key' } };
  const cfg = (locations: unknown[], output = 'location') => ({ name: 'orders', engine: { type: 'command', command: { definition: { ...definition, output } } }, locations });
  it.each<[string, unknown, { path: string; message: RegExp }[]]>([
    ['a filesystem location the tool writes', cfg([{ name: 'fs', type: 'filesystem', filesystem: { path: '/b' } }]), []],
    ['the tenant\'s own keys handed over', cfg([{ name: 's3', type: 's3', s3, serverAccess: 'credentials' }]), []],
    ['the server\'s own identity', cfg([{ name: 'gcs', type: 'gcs', gcs: { bucket: 'team-a' }, serverAccess: 'server' }]), []],
    ['shared keys only: nowhere the server may write', cfg([{ name: 's3', type: 's3', s3 }]), [{ path: 'locations', message: /needs a location its database server can write/ }]],
    [
      'an encrypting location',
      cfg([{ name: 'fs', type: 'filesystem', filesystem: { path: '/b' } }, { name: 's3', type: 's3', s3, encryption: { age: { recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] } } }]),
      [{ path: 'locations[1].encryption', message: /in the clear/ }],
    ],
    ['serverAccess on a filesystem location', cfg([{ name: 'fs', type: 'filesystem', filesystem: { path: '/b' }, serverAccess: 'server' }]), [{ path: 'locations[0].serverAccess', message: /applies to s3 and gcs/ }]],
    ['credentials without keys to hand over (s3)', cfg([{ name: 's3', type: 's3', s3: { bucket: 'team-a' }, serverAccess: 'credentials' }]), [{ path: 'locations[0].serverAccess', message: /needs s3.accessKeyId/ }]],
    ['credentials without a key file (gcs)', cfg([{ name: 'gcs', type: 'gcs', gcs: { bucket: 'team-a' }, serverAccess: 'credentials' }]), [{ path: 'locations[0].serverAccess', message: /needs gcs.keyFile/ }]],
    ['a stream engine may encrypt, and needs no such location', cfg([{ name: 's3', type: 's3', s3, encryption: { age: { recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'] } } }], 'stream'), []],
    [
      'a server that cannot write the filesystem location (locationTypes)',
      { ...cfg([{ name: 'fs', type: 'filesystem', filesystem: { path: '/b' } }]), engine: { type: 'command', command: { definition: { ...definition, locationTypes: ['s3', 'gcs'] } } } },
      [{ path: 'locations', message: /can write: serverAccess on an s3 location, or serverAccess on a gcs location/ }],
    ],
    ['an unknown output', cfg([{ name: 'fs', type: 'filesystem', filesystem: { path: '/b' } }], 'bucket'), [{ path: 'engine.command.definition.output', message: /./ }]],
  ])('%s', (_what, config, want) => {
    const r = validateRunnerConfig(config);
    if (want.length === 0) {
      expect(r.ok, JSON.stringify(r)).toBe(true);
      return;
    }
    expect(r.ok).toBe(false);
    if (!r.ok) for (const w of want) expect(r.errors).toContainEqual({ path: w.path, message: expect.stringMatching(w.message) });
  });
});
