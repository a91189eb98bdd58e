import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateDatabaseBackup, validateStorageClass, type DatabaseBackup, type DatabaseBackupStorageClass } from '../../api/crds/index.js';
import { validateRunnerConfig } from '../../api/runner-config.js';
import { backupLabelValue, runnerName } from '../../controller/names.js';
import { compareVersions, pickImage, renderRunner, type RenderInput } from '../../controller/render/objects.js';
import { CONFIG_KEY } from '../../controller/render/runner-config.js';
import { classSecrets, renderSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';
import { expectGolden } from './golden-files.js';

function valid<T>(r: { ok: true; value: T } | { ok: false; errors: unknown[] }): T {
  if (!r.ok) throw new Error(`fixture invalid: ${JSON.stringify(r.errors)}`);
  return r.value;
}

function input(backup: Record<string, unknown>, sc: Record<string, unknown> = validStorageClass(), secrets = classSecrets()): RenderInput {
  const storageClass = valid(validateStorageClass(sc));
  const b = valid(validateDatabaseBackup(backup, { storageClass }));
  (b.metadata as Record<string, unknown>).uid = '4f1c7a52-0000-4000-8000-000000000001';
  return { backup: b, storageClass, secrets: (n) => secrets[n], settings: renderSettings() };
}

function configOf(secretData: Record<string, string> | undefined): string {
  return Buffer.from(secretData?.[CONFIG_KEY] ?? '', 'base64').toString('utf8');
}

const minimal = () => ({
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackup',
  metadata: { name: 'inventory', namespace: 'shop' },
  spec: {
    engine: { type: 'postgresql', postgresql: { host: 'inventory-db', database: 'inventory', user: 'postgres', version: '15' } },
    schedule: { interval: '6h' },
    storageClassName: 'standard',
    locations: ['offsite'],
  },
});

/** The class's S3 and GCS locations take their keys from each DatabaseBackup: the class holds none. */
const tenantClass = () => {
  const sc = validStorageClass();
  const locs = sc.spec.locations as Record<string, Record<string, unknown>>[];
  delete locs[1]!.s3!.accessKeyIdSecretRef;
  delete locs[1]!.s3!.secretAccessKeySecretRef;
  delete locs[2]!.gcs!.keySecretRef;
  sc.spec.credentials = { source: 'DatabaseBackup' };
  return sc;
};
const tenantBackup = () => {
  const b = validBackup();
  b.spec.locations = ['local', 'offsite', 'gcs'];
  b.spec.credentials = [
    { location: 'offsite', s3: { accessKeyIdSecretRef: { name: 'orders-s3', key: 'id' }, secretAccessKeySecretRef: { name: 'orders-s3', key: 'secret' } } },
    { location: 'gcs', gcs: { keySecretRef: { name: 'orders-gcs', key: 'key.json' } } },
  ];
  return b;
};
const ambientClass = () => {
  const sc = tenantClass();
  sc.spec.credentials = { source: 'Ambient' };
  return sc;
};

const CASES: Record<string, () => RenderInput> = {
  // Every pod setting, TLS files from two Secrets, a PVC location and an S3 location with keys.
  full: () => input(validBackup()),
  // Interval schedule, no password, one location, controller defaults for image and resources.
  minimal: () => input(minimal()),
  // A 60-character name starting with a digit: the object names are shortened with a hash.
  'long-name': () => {
    const b = minimal();
    b.metadata.name = `2026-${'x'.repeat(55)}`;
    return input(b);
  },
  // Keys from the DatabaseBackup's own Secrets, mounted like the database's TLS files: none in the runner Secret.
  'tenant-keys': () => input(tenantBackup(), tenantClass(), {}),
  // Workload identity: no keys anywhere, the ServiceAccount carries the cloud role.
  ambient: () => input(validBackup(), ambientClass(), {}),
  // MariaDB with a password, TLS verified against a CA from a Secret, extra dump arguments, image by server version.
  mysql: () => {
    const b = minimal();
    (b.spec as { engine: unknown }).engine = {
      type: 'mysql',
      mysql: {
        host: 'orders-db',
        database: 'orders',
        user: 'backup',
        version: '11.4',
        passwordSecretRef: { name: 'orders-db', key: 'password' },
        sslMode: 'VERIFY_IDENTITY',
        sslCaSecretRef: { name: 'orders-db-tls', key: 'ca.crt' },
        dumpArgs: ['--ignore-table=orders.sessions'],
      },
    };
    return input(b);
  },
  // A whole PostgreSQL server: every database and the globals, connected through the postgres database.
  'pg-server': () => {
    const b = minimal();
    (b.spec.engine.postgresql as Record<string, unknown>).database = 'postgres';
    (b.spec.engine.postgresql as Record<string, unknown>).allDatabases = true;
    return input(b);
  },
  // A dotted name cannot name the storage path: the problem is the result.
  'dotted-name': () => {
    const b = minimal();
    b.metadata.name = 'orders.eu-central';
    return input(b);
  },
};

describe('renderRunner: golden files (UPDATE_GOLDEN=1 rewrites test/unit/golden/controller/)', () => {
  it.each(Object.keys(CASES))('%s', (name) => {
    const r = renderRunner(CASES[name]!());
    if (!r.ok) {
      expectGolden(`controller/${name}.json`, { problems: r.problems });
      return;
    }
    expectGolden(`controller/${name}.json`, { configYaml: configOf(r.value.objects.secret.data), configHash: r.value.configHash, objects: r.value.objects });
  });
});

describe('renderRunner: contract with the runner', () => {
  it.each(['full', 'minimal', 'mysql', 'pg-server'])('%s: config.yaml is a valid runner config', (name) => {
    const r = renderRunner(CASES[name]!());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const cfg = validateRunnerConfig(parse(configOf(r.value.objects.secret.data)));
    expect(cfg.ok ? [] : cfg.errors).toEqual([]);
  });

  it('points every credential at a file of the same Secret, never inline', () => {
    const r = renderRunner(CASES.full!());
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const text = configOf(r.value.objects.secret.data);
    expect(text).not.toContain('AKIAEXAMPLE');
    expect(text).not.toContain('example-secret-key');
    const data = r.value.objects.secret.data ?? {};
    expect(Buffer.from(data['offsite.access-key-id'] ?? '', 'base64').toString()).toBe('AKIAEXAMPLE');
    expect(text).toContain('file: /etc/backup-runner/offsite.access-key-id');
  });

  it('the pod meets the restricted Pod Security Standard', () => {
    const r = renderRunner(CASES.full!());
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const pod = r.value.objects.deployment.spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    for (const c of pod.containers) {
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
    }
    expect(pod.volumes?.some((v) => v.hostPath !== undefined)).toBe(false);
  });

  it('the Role grants only the status of the runner\'s own DatabaseBackup', () => {
    const r = renderRunner(CASES.full!());
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.value.objects.role.rules).toEqual([
      { apiGroups: ['dbbackup.io'], resources: ['databasebackups/status'], resourceNames: ['orders'], verbs: ['get', 'patch'] },
    ]);
  });

  it('a config change changes the hash annotation; a pod-only change does not', () => {
    const base = renderRunner(CASES.full!());
    const b = validBackup();
    (b.spec as { retention: { keepLast: number } }).retention.keepLast = 5;
    const changed = renderRunner(input(b));
    const p = validBackup();
    (p.spec as { runner: { nodeSelector: Record<string, string> } }).runner.nodeSelector = { disk: 'ssd' };
    const podOnly = renderRunner(input(p));
    if (!base.ok || !changed.ok || !podOnly.ok) throw new Error('render failed');
    expect(changed.value.configHash).not.toBe(base.value.configHash);
    expect(podOnly.value.configHash).toBe(base.value.configHash);
    const rotated = classSecrets();
    rotated.minio!['secret-key'] = Buffer.from('rotated').toString('base64');
    const afterRotation = renderRunner(input(validBackup(), validStorageClass(), rotated));
    if (!afterRotation.ok) throw new Error('render failed');
    expect(afterRotation.value.configHash).not.toBe(base.value.configHash);
  });
});

describe('renderRunner: credentials per tenant', () => {
  const rendered = (i: RenderInput) => {
    const r = renderRunner(i);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.value;
  };

  it('credentials.source DatabaseBackup: the runner Secret holds no key, the pod mounts the namespace\'s own Secrets', () => {
    const r = rendered(CASES['tenant-keys']!());
    expect(Object.keys(r.objects.secret.data ?? {})).toEqual(['config.yaml']);
    const text = configOf(r.objects.secret.data);
    expect(text).toContain('file: /var/run/backup-runner/db/orders-s3/id');
    expect(text).toContain('keyFile: /var/run/backup-runner/db/orders-gcs/key.json');
    const volumes = r.objects.deployment.spec!.template.spec!.volumes!;
    expect(volumes.filter((v) => v.secret).map((v) => v.secret!.secretName)).toEqual(['orders-runner', 'orders-s3', 'orders-gcs', 'orders-db-ca']);
    const cfg = validateRunnerConfig(parse(text));
    expect(cfg.ok ? [] : cfg.errors).toEqual([]);
    expect(r.access.map((a) => [a.location, a.source])).toEqual([['local', 'Volume'], ['offsite', 'DatabaseBackup'], ['gcs', 'DatabaseBackup']]);
    expect(r.access[1]!.readableBy).toBe(
      'this namespace\'s own keys (Secret shop/orders-s3), mounted into the runner pod, never read or copied by the controller: readable by anyone who may read Secrets or create pods in namespace shop',
    );
  });

  it('credentials.source StorageClass: says the class keys are copied and who can read them', () => {
    const r = rendered(CASES.full!());
    expect(r.access.find((a) => a.location === 'offsite')).toEqual({
      location: 'offsite',
      source: 'StorageClass',
      readableBy:
        'keys of storage class "standard" (Secret minio in the controller\'s namespace) copied into Secret shop/orders-runner: readable by anyone who may read Secrets or create pods in namespace shop, ' +
        'and valid for whatever those keys may do in the bucket, other tenants\' prefixes included',
    });
  });

  it('credentials.source Ambient: no key anywhere, the ServiceAccount is the identity', () => {
    const r = rendered(CASES.ambient!());
    expect(Object.keys(r.objects.secret.data ?? {})).toEqual(['config.yaml']);
    expect(configOf(r.objects.secret.data)).not.toMatch(/accessKeyId|secretAccessKey|keyFile/);
    expect(r.access.find((a) => a.location === 'offsite')!.readableBy).toMatch(/^no keys: the runner authenticates as ServiceAccount shop\/orders-runner /);
  });

  it('a class that wants the DatabaseBackup\'s keys: missing, misplaced and mistyped entries are named', () => {
    const problems = (b: ReturnType<typeof validBackup>) => {
      const r = renderRunner(input(b, tenantClass(), {}));
      return r.ok ? [] : r.problems;
    };
    const none = tenantBackup();
    delete none.spec.credentials;
    none.spec.locations = ['offsite'];
    expect(problems(none)).toEqual([
      {
        reason: 'CredentialsRequired',
        message:
          'location "offsite" of storage class "standard" takes its keys from each DatabaseBackup (credentials.source DatabaseBackup): ' +
          'add { location: offsite, s3: { accessKeyIdSecretRef, secretAccessKeySecretRef } } to spec.credentials, naming a Secret in namespace "shop"',
      },
    ]);
    const wrong = tenantBackup();
    const creds = wrong.spec.credentials as Record<string, unknown>[];
    creds[1] = { location: 'gcs', s3: creds[0]!.s3 };
    creds.push({ location: 'local', gcs: { keySecretRef: { name: 'x', key: 'y' } } });
    expect(problems(wrong).map((p) => `${p.reason}: ${p.message}`)).toEqual([
      'CredentialsMismatch: spec.credentials[1]: location "gcs" is gcs; set gcs instead',
      'CredentialsMismatch: spec.credentials[2]: location "local" of storage class "standard" does not take keys from the DatabaseBackup (its credentials.source is none: a filesystem location); remove the entry',
    ]);
  });
});

describe('renderRunner: healing per location', () => {
  it('a class location with heal: false says so in the runner config; the others leave it out (healed, the default)', () => {
    const sc = validStorageClass();
    (sc.spec.locations as Record<string, unknown>[])[1]!.heal = false;
    const out = renderRunner(input(validBackup(), sc));
    if (!out.ok) throw new Error(JSON.stringify(out.problems));
    const cfg = validateRunnerConfig(parse(configOf(out.value.objects.secret.data)));
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    expect(cfg.value.locations.map((l) => [l.name, l.heal])).toEqual([
      ['local', undefined],
      ['offsite', false],
    ]);
  });
});

describe('renderRunner: encryption per location', () => {
  const CLASS_KEY = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
  const TEAM_KEY = 'age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg';
  const withClassEncryption = (age: Record<string, unknown>) => {
    const sc = validStorageClass();
    (sc.spec.locations as Record<string, unknown>[])[1]!.encryption = { age };
    return sc;
  };
  const locationsOf = (i: RenderInput) => {
    const out = renderRunner(i);
    if (!out.ok) throw new Error(JSON.stringify(out.problems));
    const r = out.value;
    const cfg = validateRunnerConfig(parse(configOf(r.objects.secret.data)));
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    return { r, locations: cfg.value.locations };
  };

  it('the class\'s recipients and the team\'s own: the location is encrypted for all; the team\'s identity is mounted from its namespace, never copied', () => {
    const b = validBackup();
    b.spec.encryption = [{ location: 'offsite', age: { recipients: [TEAM_KEY], identitySecretRef: { name: 'orders-age', key: 'key.txt' } } }];
    const { r, locations } = locationsOf(input(b, withClassEncryption({ recipients: [CLASS_KEY] })));
    expect(locations.find((l) => l.name === 'local')!.encryption).toBeUndefined();
    expect(locations.find((l) => l.name === 'offsite')!.encryption).toEqual({ age: { recipients: [CLASS_KEY, TEAM_KEY], identities: [{ file: '/var/run/backup-runner/db/orders-age/key.txt' }] } });
    expect(Object.keys(r.objects.secret.data ?? {})).not.toContain('offsite.age-identity');
    expect(r.objects.deployment.spec!.template.spec!.volumes!.filter((v) => v.secret).map((v) => v.secret!.secretName)).toContain('orders-age');
  });

  it('a class passphrase is copied into the runner\'s Secret like the class\'s other keys', () => {
    const secrets = { ...classSecrets(), 'age-pass': { phrase: Buffer.from('break glass').toString('base64') } };
    const { r, locations } = locationsOf(input(validBackup(), withClassEncryption({ passphraseSecretRef: { secretName: 'age-pass', key: 'phrase' } }), secrets));
    expect(locations.find((l) => l.name === 'offsite')!.encryption).toEqual({ age: { passphrase: { file: '/etc/backup-runner/offsite.age-passphrase' } } });
    expect(r.objects.secret.data?.['offsite.age-passphrase']).toBe(Buffer.from('break glass').toString('base64'));
  });

  it('signing keys come from the team\'s namespace, mounted, never copied', () => {
    const b = validBackup();
    b.spec.signing = { keySecretRef: { name: 'orders-signing', key: 'key.pem' }, verifySecretRefs: [{ name: 'orders-signing', key: 'key.pub' }] };
    const out = renderRunner(input(b));
    if (!out.ok) throw new Error(JSON.stringify(out.problems));
    const cfg = validateRunnerConfig(parse(configOf(out.value.objects.secret.data)));
    expect(cfg.ok && cfg.value.signing).toEqual({ key: { file: '/var/run/backup-runner/db/orders-signing/key.pem' }, verify: [{ file: '/var/run/backup-runner/db/orders-signing/key.pub' }] });
    // Only the class's storage keys are copied; nothing of the signing Secret.
    expect(Object.keys(out.value.objects.secret.data ?? {}).sort()).toEqual(['config.yaml', 'offsite.access-key-id', 'offsite.secret-access-key']);
    expect(out.value.objects.deployment.spec!.template.spec!.volumes!.filter((v) => v.secret).map((v) => v.secret!.secretName)).toContain('orders-signing');
  });

  it('a team encrypts a location the class does not', () => {
    const b = validBackup();
    b.spec.encryption = [{ location: 'local', age: { recipients: [TEAM_KEY] } }];
    expect(locationsOf(input(b)).locations.find((l) => l.name === 'local')!.encryption).toEqual({ age: { recipients: [TEAM_KEY] } });
  });
});

describe('renderRunner: problems name what is wrong', () => {
  const problems = (i: RenderInput) => {
    const r = renderRunner(i);
    return r.ok ? [] : r.problems;
  };

  it('a missing Secret and a missing key are both reported', () => {
    const secrets = { minio: { 'access-key': 'QQ==' } };
    expect(problems(input(validBackup(), validStorageClass(), secrets))).toEqual([
      {
        reason: 'SecretKeyNotFound',
        message: 'secret "minio" has no key "secret-key" (referenced by storage class "standard" spec.locations[1].s3.secretAccessKeySecretRef; it has: access-key)',
      },
    ]);
    const b = validBackup();
    delete (b.spec as { locations?: string[] }).locations;
    expect(problems(input(b, validStorageClass(), {})).map((p) => p.message)).toEqual([
      'secret "minio" not found in namespace "db-backup-system" (referenced by storage class "standard" spec.locations[1].s3.accessKeyIdSecretRef)',
      'secret "minio" not found in namespace "db-backup-system" (referenced by storage class "standard" spec.locations[1].s3.secretAccessKeySecretRef)',
      'secret "gcs" not found in namespace "db-backup-system" (referenced by storage class "standard" spec.locations[2].gcs.keySecretRef)',
    ]);
  });

  it('an engine defined by a command whose DatabaseBackupEngine was not resolved', () => {
    const b = validBackup();
    delete (b.spec as { runner?: unknown }).runner;
    (b.spec as { engine: unknown }).engine = { type: 'command', command: { engineRef: 'redis' } };
    expect(problems(input(b))).toEqual([
      { reason: 'EngineNotFound', message: 'spec.engine.command.engineRef: DatabaseBackupEngine "redis" was not resolved' },
    ]);
  });

  it('an engine defined by a command: the definition travels in the runner config, which the runner accepts', () => {
    const b = validBackup();
    delete (b.spec as { runner?: unknown }).runner;
    (b.spec as { engine: unknown }).engine = { type: 'command', command: { engineRef: 'redis', host: 'cache.shop.svc', port: 6379, passwordSecretRef: { name: 'cache', key: 'password' }, config: { batchSize: 10 } } };
    const definition = { name: 'redis', command: ['db-backup-tool', 'redis'], verbs: ['probe', 'backup', 'restore', 'inspect'] as ('probe' | 'backup' | 'restore' | 'inspect')[], formats: [{ format: 'redis-rdb', extension: 'rdb', compressed: false, magicHex: ['5245444953'] }] };
    const r = renderRunner({ ...input(b), engine: { definition, image: 'registry.example/backup-runner-postgresql:16-1.0.0', allowedNamespaces: [] } });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const cfg = parse(configOf(r.value.objects.secret.data)) as Record<string, unknown>;
    expect(cfg.engine).toEqual({ type: 'command', command: { definition, host: 'cache.shop.svc', port: 6379, password: { env: 'DB_PASSWORD' }, config: { batchSize: 10 } } });
    expect(validateRunnerConfig(cfg).ok).toBe(true);
    expect(r.value.objects.deployment.spec!.template.spec!.containers[0]!.image).toBe('registry.example/backup-runner-postgresql:16-1.0.0');
  });

  it('a server-side engine: the tenant\'s own keys and an ambient identity are its database server\'s to use; a class\'s shared keys never are', () => {
    const definition = { name: 'crdb', command: ['db-backup-tool', 'cockroachdb'], verbs: ['probe', 'backup', 'restore'] as ('probe' | 'backup' | 'restore')[], formats: [{ format: 'crdb-backup', extension: 'crdb', compressed: true, magicHex: ['00'] }], output: 'location' as const };
    const render = (b: ReturnType<typeof validBackup>, sc: Record<string, unknown>, secrets?: Record<string, Record<string, string>>) => {
      delete (b.spec as { runner?: unknown }).runner;
      (b.spec as { engine: unknown }).engine = { type: 'command', command: { engineRef: 'crdb', host: 'crdb.shop.svc', port: 26257 } };
      return renderRunner({ ...input(b, sc, secrets), engine: { definition, image: 'registry.example/backup-runner-postgresql:16-1.0.0', allowedNamespaces: [] } });
    };
    const access = (r: ReturnType<typeof render>) => {
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      const cfg = parse(configOf(r.value.objects.secret.data)) as { locations: { name: string; serverAccess?: string }[] };
      expect(validateRunnerConfig(cfg).ok).toBe(true);
      return cfg.locations.map((l) => [l.name, l.serverAccess]);
    };
    expect(access(render(tenantBackup(), tenantClass(), {}))).toEqual([['local', undefined], ['offsite', 'credentials'], ['gcs', 'credentials']]);
    const ambient = validBackup();
    ambient.spec.locations = ['offsite', 'gcs'];
    expect(access(render(ambient, ambientClass(), {}))).toEqual([['offsite', 'server'], ['gcs', 'server']]);
    const sharedBackup = validBackup();
    sharedBackup.spec.locations = ['offsite'];
    const shared = render(sharedBackup, validStorageClass());
    expect(shared.ok ? [] : shared.problems).toEqual([
      {
        reason: 'ServerSideNotPossible',
        message:
          'engine "crdb" has the database server write its backups, and no location of storage class "standard" may be written by it: a storage class\'s shared keys are never handed to a database server; ' +
          'use a location with credentials.source DatabaseBackup (this namespace\'s own keys) or Ambient, or a filesystem location',
      },
    ]);
    // A stream engine's locations say nothing of the kind.
    const stream = renderRunner(CASES['tenant-keys']!());
    expect(stream.ok && configOf(stream.value.objects.secret.data)).not.toContain('serverAccess');
  });

  it('a whole-server block: allDatabases or databases, globals and parallel only with one of them', () => {
    const b = minimal();
    Object.assign(b.spec.engine.postgresql, { allDatabases: true, databases: ['a'], globals: false });
    const r = validateDatabaseBackup(b);
    expect(r.ok ? [] : r.errors.map((e) => e.path)).toEqual(['spec.engine.postgresql']);
    const c = minimal();
    Object.assign(c.spec.engine.postgresql, { globals: true, parallel: 4 });
    const rc = validateDatabaseBackup(c);
    expect(rc.ok ? [] : rc.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'spec.engine.postgresql.globals: applies only with allDatabases or databases (a whole-server backup)',
      'spec.engine.postgresql.parallel: applies only with allDatabases or databases (a whole-server backup)',
    ]);
    // With a whole server, parallel reaches the runner's config.
    const d = minimal();
    Object.assign(d.spec.engine.postgresql, { database: 'postgres', allDatabases: true, parallel: 4 });
    const rd = renderRunner(input(d));
    if (!rd.ok) throw new Error(JSON.stringify(rd.problems));
    const cfg = parse(configOf(rd.value.objects.secret.data)) as { engine: { postgresql: Record<string, unknown> } };
    expect(cfg.engine.postgresql).toMatchObject({ databases: 'all', parallel: 4 });
    expect(validateRunnerConfig(cfg).ok).toBe(true);
  });

  it('mode physical: the whole server by pg_basebackup, so the logical-only fields are refused with their paths; its checkpoint reaches the runner', () => {
    const b = minimal();
    Object.assign(b.spec.engine.postgresql, { mode: 'physical', allDatabases: true, dumpArgs: ['--no-comments'] });
    const r = validateDatabaseBackup(b);
    expect(r.ok ? [] : r.errors.map((e) => e.path)).toEqual(['spec.engine.postgresql.allDatabases', 'spec.engine.postgresql.dumpArgs']);
    const c = minimal();
    Object.assign(c.spec.engine.postgresql, { checkpoint: 'spread' });
    const rc = validateDatabaseBackup(c);
    expect(rc.ok ? [] : rc.errors.map((e) => `${e.path}: ${e.message}`)).toEqual(['spec.engine.postgresql.checkpoint: applies only to mode physical']);
    Object.assign(c.spec.engine.postgresql, { checkpoint: undefined, wal: { archive: true } });
    const rw = validateDatabaseBackup(c);
    expect(rw.ok ? [] : rw.errors.map((e) => `${e.path}: ${e.message}`)).toEqual(['spec.engine.postgresql.wal: applies only to mode physical']);
    const d = minimal();
    Object.assign(d.spec.engine.postgresql, { mode: 'physical', checkpoint: 'spread', wal: { partialSeconds: 5 } });
    const rd = renderRunner(input(d));
    if (!rd.ok) throw new Error(JSON.stringify(rd.problems));
    const cfg = parse(configOf(rd.value.objects.secret.data)) as { engine: { postgresql: Record<string, unknown> } };
    expect(cfg.engine.postgresql).toMatchObject({ mode: 'physical', checkpoint: 'spread', wal: { partialSeconds: 5 } });
    // A tenant never names the slot (it could be another DatabaseBackup's on a shared server).
    const e = minimal();
    Object.assign(e.spec.engine.postgresql, { mode: 'physical', wal: { slot: 'dbbackup_other_tenant' } });
    const re = validateDatabaseBackup(e);
    expect(re.ok ? [] : re.errors.map((x) => x.path)).toEqual(['spec.engine.postgresql.wal.slot']);
    expect(validateRunnerConfig(cfg).ok).toBe(true);
  });

  it('a MariaDB server version without its own image takes the next newer one, and none newer is a problem', () => {
    const b = minimal();
    (b.spec as { engine: unknown }).engine = { type: 'mysql', mysql: { host: 'db', database: 'shop', user: 'root', version: '10.6' } };
    const r = renderRunner(input(b));
    expect(r.ok && r.value.objects.deployment.spec?.template.spec?.containers[0]?.image).toBe('registry.example/backup-runner-mariadb:10.11-1.0.0');
    (b.spec.engine as unknown as { mysql: { version: string } }).mysql.version = '12.0';
    expect(problems(input(b))).toEqual([{ reason: 'RunnerImageNotFound', message: expect.stringMatching(/^no runner image for mysql 12.0 \(the controller has: 10.11, 11.4\)/) as string }]);
  });

  it('a filesystem location without a PVC needs a mounted volume at its path', () => {
    const sc = validStorageClass();
    delete ((sc.spec.locations as Record<string, Record<string, unknown>>[])[0]!.filesystem as Record<string, unknown>).claimName;
    expect(problems(input(validBackup(), sc))).toEqual([
      {
        reason: 'LocationNotMounted',
        message:
          'location "local" stores into /backups, but no volume is mounted there (the runner\'s root filesystem is read-only): ' +
          'set filesystem.claimName in storage class "standard", or mount a volume at /backups with spec.runner.extraVolumes and extraVolumeMounts',
      },
    ]);
    const b = validBackup();
    const runner = (b.spec as { runner: { extraVolumes: unknown[]; extraVolumeMounts: unknown[] } }).runner;
    runner.extraVolumes.push({ name: 'store', persistentVolumeClaim: { claimName: 'backups-store' } });
    runner.extraVolumeMounts.push({ name: 'store', mountPath: '/backups' });
    expect(problems(input(b, sc))).toEqual([]);
  });

  it('reserved volume names', () => {
    const b = validBackup();
    const runner = (b.spec as { runner: { extraVolumes: unknown[]; extraVolumeMounts: unknown[] } }).runner;
    runner.extraVolumes = [{ name: 'tmp', emptyDir: {} }];
    runner.extraVolumeMounts = [{ name: 'tmp', mountPath: '/scratch' }];
    expect(problems(input(b)).map((p) => p.reason)).toEqual(['ReservedName']);
  });
});

describe('pickImage', () => {
  const images = renderSettings().runnerImages.postgresql;
  it('orders versions part by part, never as decimals (10.6 is older than 10.11)', () => {
    expect(['11.4', '10.11', '9.6', '10', '10.6'].sort(compareVersions)).toEqual(['9.6', '10', '10.6', '10.11', '11.4']);
    expect(pickImage(renderSettings().runnerImages.mysql, 'mysql', '10.6')).toEqual({ image: 'registry.example/backup-runner-mariadb:10.11-1.0.0' });
  });
  it.each([
    ['16', 'registry.example/backup-runner-postgresql:16-1.0.0'],
    [undefined, 'registry.example/backup-runner-postgresql:16-1.0.0'],
    ['14', 'registry.example/backup-runner-postgresql:15-1.0.0'],
    ['17', 'registry.example/backup-runner-postgresql:17-1.0.0'],
  ])('version %s -> %s', (version, image) => {
    expect(pickImage(images, 'postgresql', version)).toEqual({ image });
  });
  it('no newer image: a problem that lists what exists', () => {
    expect(pickImage(images, 'postgresql', '18')).toEqual({
      problem: {
        reason: 'RunnerImageNotFound',
        message: "no runner image for postgresql 18 (the controller has: 15, 16, 17); set spec.runner.image or add one to the controller's runnerImages",
      },
    });
  });
});

describe('names', () => {
  it.each([
    ['orders', 'orders-runner'],
    ['a'.repeat(56), `${'a'.repeat(56)}-runner`],
    ['a'.repeat(57), `${'a'.repeat(45)}-runner-`],
    ['orders.eu', 'orders-eu-runner-'],
    ['1orders', 'orders-runner-'],
  ])('runnerName(%s) starts with %s', (name, prefix) => {
    const r = runnerName(name);
    expect(r.startsWith(prefix)).toBe(true);
    expect(r.length).toBeLessThanOrEqual(63);
    expect(r).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
  });
  it('distinct long names stay distinct', () => {
    expect(runnerName(`${'a'.repeat(60)}1`)).not.toBe(runnerName(`${'a'.repeat(60)}2`));
    expect(backupLabelValue(`${'b'.repeat(70)}1`)).not.toBe(backupLabelValue(`${'b'.repeat(70)}2`));
    expect(backupLabelValue(`${'b'.repeat(70)}1`).length).toBeLessThanOrEqual(63);
  });
});

export type { DatabaseBackup, DatabaseBackupStorageClass };
