import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderCrds, validateDatabaseBackup, validateStorageClass, convert, type DatabaseBackupStorageClass } from '../../api/crds/index.js';
import { staleGeneratedFiles } from '../../scripts/generate.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

type Obj = Record<string, unknown>;
type Case = [name: string, mutate: (o: { spec: Obj; metadata: Obj }) => void, errors: { path: string; message: string | RegExp }[]];

function errorsOf(r: { ok: true } | { ok: false; errors: { path: string; message: string }[] }) {
  return r.ok ? [] : r.errors;
}

function expectErrors(actual: { path: string; message: string }[], expected: Case[2]) {
  expect(actual.map((e) => e.path).sort()).toEqual(expected.map((e) => e.path).sort());
  for (const e of expected) {
    const got = actual.find((a) => a.path === e.path)!;
    if (typeof e.message === 'string') expect(got.message).toBe(e.message);
    else expect(got.message).toMatch(e.message);
  }
}

const storageClass = () => validateStorageClass(validStorageClass()).ok ? (validateStorageClass(validStorageClass()) as { value: DatabaseBackupStorageClass }).value : undefined;
const s = (o: { spec: Obj }) => o.spec;
const R1 = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const loc = (o: { spec: Obj }, i: number) => (s(o).locations as Obj[])[i]!;

describe('validateStorageClass', () => {
  it('accepts a valid class and fills defaults', () => {
    const r = validateStorageClass(validStorageClass());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.spec.locations[0]!.prefix).toBe('');
    expect(r.value.spec.locations[1]!.s3).toMatchObject({ partSizeMiB: 8, queueSize: 2, insecureSkipTLSVerify: false });
  });

  const cases: Case[] = [
    ['no location block', (o) => { delete loc(o, 0).filesystem; }, [{ path: 'spec.locations[0]', message: 'set exactly one of s3, gcs, filesystem' }]],
    ['two location blocks', (o) => { loc(o, 0).gcs = { bucket: 'abc' }; }, [{ path: 'spec.locations[0]', message: 'set exactly one of s3, gcs, filesystem (found gcs, filesystem)' }]],
    ['duplicate location name', (o) => { loc(o, 2).name = 'local'; }, [{ path: 'spec.locations[2].name', message: 'duplicate location name "local"' }]],
    ['half the S3 keys', (o) => { delete (loc(o, 1).s3 as Obj).secretAccessKeySecretRef; }, [{ path: 'spec.locations[1].s3', message: /set both accessKeyIdSecretRef and secretAccessKeySecretRef/ }]],
    ['session token without keys', (o) => {
      const s3 = loc(o, 1).s3 as Obj;
      delete s3.accessKeyIdSecretRef; delete s3.secretAccessKeySecretRef;
      s3.sessionTokenSecretRef = { secretName: 'x', key: 'y' };
    }, [{ path: 'spec.locations[1].s3.sessionTokenSecretRef', message: 'needs accessKeyIdSecretRef and secretAccessKeySecretRef' }]],
    ['credentials DatabaseBackup with the class\'s own keys still set', (o) => { loc(o, 1).credentials = { source: 'DatabaseBackup' }; }, [
      { path: 'spec.locations[1].s3.accessKeyIdSecretRef', message: 'must be unset: spec.locations[1].credentials.source is DatabaseBackup (each DatabaseBackup brings its own keys), so the class holds no keys' },
      { path: 'spec.locations[1].s3.secretAccessKeySecretRef', message: /must be unset/ },
    ]],
    ['class-wide credentials Ambient with a GCS key', (o) => { s(o).credentials = { source: 'Ambient' }; delete (loc(o, 1).s3 as Obj).accessKeyIdSecretRef; delete (loc(o, 1).s3 as Obj).secretAccessKeySecretRef; }, [
      { path: 'spec.locations[2].gcs.keySecretRef', message: 'must be unset: spec.credentials.source is Ambient (the runner uses its workload identity), so the class holds no keys' },
    ]],
    ['credentials StorageClass without keys', (o) => { delete (loc(o, 2).gcs as Obj).keySecretRef; loc(o, 2).credentials = { source: 'StorageClass' }; }, [
      { path: 'spec.locations[2].gcs.keySecretRef', message: 'is required: spec.locations[2].credentials.source is StorageClass (the class\'s own keys)' },
    ]],
    ['credentials on a filesystem location', (o) => { loc(o, 0).credentials = { source: 'Ambient' }; }, [{ path: 'spec.locations[0].credentials', message: 'a filesystem location has no credentials; remove it' }]],
    ['unknown credentials source', (o) => { loc(o, 1).credentials = { source: 'Tenant' }; }, [{ path: 'spec.locations[1].credentials.source', message: /must be one of "StorageClass", "DatabaseBackup", "Ambient"/ }]],
    ['the class-wide encryption of release 0.1 (reserved, never functional) is gone: encryption is per location', (o) => { s(o).encryption = { enabled: false }; }, [
      { path: 'spec.encryption', message: 'unexpected property' },
    ]],
    ['a location encrypted for recipients and a passphrase', (o) => { loc(o, 1).encryption = { age: { recipients: [R1], passphraseSecretRef: { secretName: 'p', key: 'k' } } }; }, [
      { path: 'spec.locations[1].encryption.age', message: /set exactly one of recipients, passphraseSecretRef/ },
    ]],
    ['a location encrypted for nobody', (o) => { loc(o, 1).encryption = { age: {} }; }, [{ path: 'spec.locations[1].encryption.age', message: /set exactly one of recipients, passphraseSecretRef/ }]],
    ['a private key as a recipient, and a recipient twice', (o) => { loc(o, 1).encryption = { age: { recipients: ['AGE-SECRET-KEY-1GQ9778VQXMMJVE8SK7J6VT8UJ4HDQAJUVSFCWCM02D8GEWQ72PVQ2Y5J33', R1, R1] } }; }, [
      { path: 'spec.locations[1].encryption.age.recipients[0]', message: /is a private key .*never the private one/ },
      { path: 'spec.locations[1].encryption.age.recipients[2]', message: 'duplicate recipient' },
    ]],
    ['duplicate allowed namespace', (o) => { s(o).allowedNamespaces = ['a', 'a']; }, [{ path: 'spec.allowedNamespaces[1]', message: 'duplicate namespace "a"' }]],
    ['shape errors with paths', (o) => {
      loc(o, 0).name = 'Local_1';
      (loc(o, 1).s3 as Obj).partSizeMiB = 1;
      (loc(o, 1).s3 as Obj).accessKeyIdSecretRef = { secretName: 'minio' };
      s(o).allowedNamespaces = ['Shop'];
    }, [
      { path: 'spec.locations[0].name', message: 'must be a DNS label: lower-case letters, digits and -' },
      { path: 'spec.locations[1].s3.partSizeMiB', message: /greater or equal to 5/ },
      { path: 'spec.locations[1].s3.accessKeyIdSecretRef.key', message: /required/ },
      { path: 'spec.allowedNamespaces[0]', message: 'must be a DNS label: lower-case letters, digits and -' },
    ]],
    ['no locations', (o) => { s(o).locations = []; }, [{ path: 'spec.locations', message: 'expected array length to be greater or equal to 1' }]],
    ['inline credentials are unknown fields', (o) => { (loc(o, 1).s3 as Obj).secretAccessKey = 'plain'; }, [{ path: 'spec.locations[1].s3.secretAccessKey', message: /unexpected property/ }]],
  ];
  it.each(cases)('%s', (_name, mutate, expected) => {
    const o = validStorageClass();
    mutate(o);
    expectErrors(errorsOf(validateStorageClass(o)), expected);
  });

  it('reports every problem of one object together', () => {
    const o = validStorageClass();
    delete loc(o, 0).filesystem;
    loc(o, 2).name = 'local';
    loc(o, 1).encryption = { age: {} };
    expect(errorsOf(validateStorageClass(o)).map((e) => e.path)).toEqual([
      'spec.locations[0]', 'spec.locations[2].name', 'spec.locations[1].encryption.age',
    ]);
  });
});

describe('validateDatabaseBackup', () => {
  it('accepts a valid backup and fills defaults', () => {
    const r = validateDatabaseBackup(validBackup(), { storageClass: storageClass() });
    expect(errorsOf(r)).toEqual([]);
    if (!r.ok) return;
    expect(r.value.spec.engine.postgresql?.port).toBe(5432);
    expect(r.value.spec.schedule).toMatchObject({ suspend: false, catchUp: true });
    expect(r.value.spec.retention?.orphanGracePeriod).toBe('24h');
  });

  it.each(['@hourly', '@daily', '@midnight', '@weekly', '@monthly', '@yearly', '@annually'])('accepts the cron macro %s', (macro) => {
    const o = validBackup();
    (o.spec.schedule as Record<string, unknown>).cron = macro;
    expect(errorsOf(validateDatabaseBackup(o))).toEqual([]);
  });

  it.each([
    ['mysql', { type: 'mysql', mysql: { host: 'db', database: 'shop', user: 'backup', sslMode: 'REQUIRED' } }],
    ['command', { type: 'command', command: { engineRef: 'redis', host: 'cache', port: 6379, passwordSecretRef: { name: 'cache', key: 'password' }, config: { batchSize: 10, nested: { a: [1] } } } }],
  ])('accepts a %s engine', (_n, engine) => {
    const o = validBackup();
    o.spec.engine = engine;
    expect(errorsOf(validateDatabaseBackup(o))).toEqual([]);
  });

  const eng = (o: { spec: Obj }) => s(o).engine as Obj;
  const sched = (o: { spec: Obj }) => s(o).schedule as Obj;
  const runner = (o: { spec: Obj }) => s(o).runner as Obj;
  const cases: Case[] = [
    ['engine block missing', (o) => { eng(o).type = 'mysql'; }, [
      { path: 'spec.engine.mysql', message: 'is required when spec.engine.type is "mysql"' },
      { path: 'spec.engine.postgresql', message: 'must not be set when spec.engine.type is "mysql"' },
    ]],
    ['unknown engine type', (o) => { eng(o).type = 'oracle'; }, [{ path: 'spec.engine.type', message: 'must be one of "postgresql", "mysql", "command"' }]],
    ['cron and interval', (o) => { sched(o).interval = '6h'; }, [{ path: 'spec.schedule', message: 'set exactly one of cron, interval' }]],
    ['neither cron nor interval', (o) => { delete sched(o).cron; }, [{ path: 'spec.schedule', message: 'set exactly one of cron, interval' }]],
    ['bad cron', (o) => { sched(o).cron = '0 3 * *'; }, [{ path: 'spec.schedule.cron', message: /has 4 fields/ }]],
    ['unknown cron macro', (o) => { sched(o).cron = '@every'; }, [{ path: 'spec.schedule.cron', message: /"@every" is not a cron macro/ }]],
    ['bad time zone', (o) => { sched(o).timeZone = 'Mars/Olympus'; }, [{ path: 'spec.schedule.timeZone', message: /not an IANA time zone/ }]],
    ['bad jitter duration', (o) => { sched(o).jitter = '5 minutes'; }, [{ path: 'spec.schedule.jitter', message: 'must be a duration such as 90s, 15m, 36h, 7d, 2w or 1d12h' }]],
    ['negative count', (o) => { (s(o).retention as Obj).keepDaily = -1; }, [{ path: 'spec.retention.keepDaily', message: /greater or equal to 0/ }]],
    ['retention time zone', (o) => { (s(o).retention as Obj).timeZone = 'Nowhere'; }, [{ path: 'spec.retention.timeZone', message: /not an IANA time zone/ }]],
    ['duplicate location', (o) => { s(o).locations = ['local', 'local']; }, [{ path: 'spec.locations[1]', message: 'duplicate location "local"' }]],
    ['location not in the class', (o) => { s(o).locations = ['local', 'tape']; }, [{ path: 'spec.locations[1]', message: 'storage class "standard" has no location "tape" (it has local, offsite, gcs)' }]],
    ['namespace not allowed', (o) => { o.metadata.namespace = 'dev'; }, [{ path: 'spec.storageClassName', message: 'storage class "standard" does not allow namespace "dev" (allowed: shop, billing)' }]],
    ['mount of an unknown volume', (o) => { runner(o).extraVolumeMounts = [{ name: 'cache', mountPath: '/cache' }]; }, [
      { path: 'spec.runner.extraVolumeMounts[0].name', message: 'names no volume of spec.runner.extraVolumes ("cache")' },
    ]],
    ['duplicate volume', (o) => { runner(o).extraVolumes = [{ name: 'scratch', emptyDir: {} }, { name: 'scratch', secret: { secretName: 'x' } }]; }, [
      { path: 'spec.runner.extraVolumes[1].name', message: 'duplicate volume name "scratch"' },
    ]],
    ['encryption: a bad recipient, a location twice, an entry with nothing', (o) => {
      s(o).encryption = [
        { location: 'offsite', age: { recipients: ['ssh-ed25519 AAAA'] } },
        { location: 'offsite', age: {} },
      ];
    }, [
      { path: 'spec.encryption[0].age.recipients[0]', message: /not an X25519 age recipient/ },
      { path: 'spec.encryption[1].location', message: 'duplicate location "offsite"' },
      { path: 'spec.encryption[1].age', message: 'set recipients, identitySecretRef or both' },
    ]],
    ['encryption: a location the backup does not use; an identity for a location nobody encrypts', (o) => {
      s(o).encryption = [
        { location: 'gcs', age: { recipients: [R1] } },
        { location: 'local', age: { identitySecretRef: { name: 'k', key: 'key.txt' } } },
      ];
    }, [
      { path: 'spec.encryption[0].location', message: /"gcs" is not a location this DatabaseBackup uses/ },
      { path: 'spec.encryption[1].age', message: /location "local" is not encrypted by storage class "standard": add recipients/ },
    ]],
    ['credentials: duplicate location, no block, half the S3 keys', (o) => {
      s(o).credentials = [
        { location: 'offsite', s3: { accessKeyIdSecretRef: { name: 'k', key: 'id' } } },
        { location: 'offsite' },
      ];
    }, [
      { path: 'spec.credentials[0].s3', message: 'set both accessKeyIdSecretRef and secretAccessKeySecretRef' },
      { path: 'spec.credentials[1].location', message: 'duplicate location "offsite"' },
      { path: 'spec.credentials[1]', message: 'set exactly one of s3, gcs' },
    ]],
    ['extra tool arguments that redirect pg_dump / pg_restore (as getopt_long reads them)', (o) => {
      (eng(o).postgresql as Obj).dumpArgs = ['--exclude-table=audit', '--fil=/tmp/x', '-vf/tmp/x'];
      (eng(o).postgresql as Obj).restoreArgs = ['--no-owner', 'other-archive'];
    }, [
      { path: 'spec.engine.postgresql.dumpArgs[1]', message: /^"--fil=\/tmp\/x": --fil=\/tmp\/x: ambiguous/ },
      { path: 'spec.engine.postgresql.dumpArgs[2]', message: /^"-vf\/tmp\/x": -f \(pg_dump reads it as --file\) is not allowed here/ },
      { path: 'spec.engine.postgresql.restoreArgs[1]', message: /positional arguments are not allowed/ },
    ]],
    ['toleration rules', (o) => { runner(o).tolerations = [{ key: 'a', operator: 'Exists', value: 'b', tolerationSeconds: 5, effect: 'NoSchedule' }]; }, [
      { path: 'spec.runner.tolerations[0].value', message: 'must be empty when operator is Exists' },
      { path: 'spec.runner.tolerations[0].tolerationSeconds', message: 'is only allowed with effect NoExecute' },
    ]],
    ['shape errors with paths', (o) => {
      const pg = eng(o).postgresql as Obj;
      pg.port = 70000;
      pg.sslMode = 'on';
      delete pg.user;
      s(o).storageClassName = 'Standard!';
      runner(o).fsGroup = -1;
      runner(o).resources = { requests: { cpu: 'lots' } };
    }, [
      { path: 'spec.engine.postgresql.port', message: /less or equal to 65535/ },
      { path: 'spec.engine.postgresql.sslMode', message: 'must be one of "disable", "allow", "prefer", "require", "verify-ca", "verify-full"' },
      { path: 'spec.engine.postgresql.user', message: /required/ },
      { path: 'spec.storageClassName', message: 'must be a DNS subdomain name: lower-case letters, digits, - and .' },
      { path: 'spec.runner.fsGroup', message: /greater or equal to 0/ },
      { path: 'spec.runner.resources.requests.cpu', message: /.+/ },
    ]],
  ];
  it.each(cases)('%s', (_name, mutate, expected) => {
    const o = validBackup();
    mutate(o);
    expectErrors(errorsOf(validateDatabaseBackup(o, { storageClass: storageClass() })), expected);
  });

  it('reports structural and cross-field problems together', () => {
    const o = validBackup();
    eng(o).type = 'command';
    sched(o).interval = '1h';
    (s(o).retention as Obj).keepLast = -3;
    expect(errorsOf(validateDatabaseBackup(o)).map((e) => e.path)).toEqual([
      'spec.retention.keepLast', 'spec.engine.command', 'spec.engine.postgresql', 'spec.schedule',
    ]);
  });

  it('rejects a missing spec with the required fields named', () => {
    expect(errorsOf(validateDatabaseBackup({ metadata: { name: 'x' } })).map((e) => e.path)).toEqual(['spec.engine', 'spec.storageClassName']);
  });
});

describe('CRD rendering', () => {
  it('committed templates under charts/db-backup-controller/templates/crds/ equal the generated ones', () => {
    expect(staleGeneratedFiles()).toEqual([]);
  });

  it('renders one structural CRD per resource', () => {
    const files = renderCrds();
    expect(files.map((f) => f.path)).toEqual([
      'charts/db-backup-controller/templates/crds/dbbackup.io_databasebackupstorageclasses.yaml',
      'charts/db-backup-controller/templates/crds/dbbackup.io_databasebackups.yaml',
      'charts/db-backup-controller/templates/crds/dbbackup.io_databasebackupengines.yaml',
    ]);
    for (const f of files) {
      expect(f.yaml).not.toMatch(/additionalProperties: false|const:|patternProperties|\$id/);
      expect(f.yaml).not.toMatch(/default: ""/);
      // Kept on helm uninstall (and when crds.install is turned off), and rendered only with crds.install.
      expect(f.yaml).toContain("annotations:\n    helm.sh/resource-policy: keep\n");
      expect(f.template).toMatch(/^\{\{- \/\* Generated .* \*\/ -\}\}\n\{\{- if \.Values\.crds\.install \}\}\napiVersion: apiextensions\.k8s\.io\/v1\n/);
      expect(f.template.endsWith(`${f.yaml}{{- end }}\n`)).toBe(true);
    }
  });

  it('prints the cause at a glance and no date in the future', () => {
    const columns = (i: number) => (parse(renderCrds()[i]!.yaml) as { spec: { versions: { additionalPrinterColumns: { name: string; type: string; jsonPath: string; priority?: number }[] }[] } }).spec.versions[0]!.additionalPrinterColumns;
    for (const i of [0, 1]) {
      const cols = columns(i);
      expect(cols.find((c) => c.name === 'Reason')).toEqual(expect.objectContaining({ type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason' }));
      expect(cols.find((c) => c.name === 'Reason')).not.toHaveProperty('priority');
      expect(cols.find((c) => c.name === 'Message')).toEqual(expect.objectContaining({ jsonPath: '.status.conditions[?(@.type=="Ready")].message', priority: 1 }));
      // kubectl prints a date column that lies in the future as <invalid>: only past times may be dates.
      expect(cols.filter((c) => c.type === 'date').map((c) => c.jsonPath)).toEqual(i === 0 ? ['.metadata.creationTimestamp'] : ['.status.lastSuccessAt', '.metadata.creationTimestamp']);
    }
    expect(columns(1).find((c) => c.name === 'Next Run')).toEqual(expect.objectContaining({ type: 'string', jsonPath: '.status.nextRunAt' }));
  });

  it('turns TypeBox into structural JSON Schema', () => {
    expect(convert({ type: 'object', properties: { a: { type: 'integer', default: 1 }, b: { type: 'string', default: '' }, c: { anyOf: [{ const: 'x' }, { const: 'y' }] } }, required: ['a', 'b', 'c'], additionalProperties: false })).toEqual({
      type: 'object',
      properties: { a: { type: 'integer', default: 1 }, b: { type: 'string' }, c: { type: 'string', enum: ['x', 'y'] } },
      required: ['c'],
    });
    expect(convert({ type: 'object', patternProperties: { '^(.*)$': { type: 'string' } } })).toEqual({ type: 'object', additionalProperties: { type: 'string' } });
    expect(() => convert({ type: 'object', properties: { u: { anyOf: [{ type: 'string' }, { type: 'object' }] } } }, 'spec')).toThrow(/spec\.u: unions other than literal enums/);
    expect(() => convert({ type: 'object', properties: { u: {} } }, 'spec')).toThrow(/spec\.u: has no type/);
  });
});
