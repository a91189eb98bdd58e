/**
 * The generated CRDs against a real kube-apiserver 1.20: they are accepted as
 * structural and established, valid objects are stored with defaults filled,
 * and invalid ones are rejected by the API server itself (kubectl's
 * client-side validation is off) with a message naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { renderCrds, validateDatabaseBackup, validateEngine } from '../../api/crds/index.js';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

type Obj = Record<string, unknown>;
type Mutable = { metadata: Obj; spec: Obj };

describe('CRDs on kube-apiserver 1.20', () => {
  let kube: KubeInstance | undefined;

  const apply = (obj: unknown) => kube!.kubectl(['apply', '--validate=false', '-f', '-'], { input: stringify(obj) });
  const getJson = async (args: string[]) => JSON.parse(await kube!.kubectlOk([...args, '-o', 'json'])) as { spec: Obj; status?: Obj };

  /** Applies a copy of `base` changed by `mutate` and returns the API server's answer (which must be a rejection). */
  async function rejected(base: () => Mutable, name: string, mutate: (o: Mutable) => void): Promise<string> {
    const o = base();
    o.metadata.name = name;
    mutate(o);
    const r = await apply(o);
    expect(r.code, `expected the API server to reject ${name}, got: ${r.stdout}`).not.toBe(0);
    return r.stderr;
  }

  beforeAll(async () => {
    // Throws with the `bash testenv/kube/build.sh` hint when the binaries are missing: this suite fails rather than skips.
    kubeBinaries();
    kube = await startKube({ controllerManager: false });
    for (const f of renderCrds()) await kube.kubectlOk(['apply', '-f', '-'], { input: f.yaml });
    await kube.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/databasebackups.dbbackup.io', 'crd/databasebackupstorageclasses.dbbackup.io', 'crd/databasebackupengines.dbbackup.io']);
    await kube.kubectlOk(['create', 'namespace', 'shop']);
  });

  afterAll(async () => {
    await kube?.stop();
  });

  it('accepts every CRD as structural (no NonStructuralSchema condition)', async () => {
    for (const name of ['databasebackups.dbbackup.io', 'databasebackupstorageclasses.dbbackup.io', 'databasebackupengines.dbbackup.io']) {
      const types = await kube!.kubectlOk(['get', 'crd', name, '-o', 'jsonpath={.status.conditions[*].type}']);
      expect(types.split(' ').sort()).toEqual(['Established', 'NamesAccepted']);
    }
  });

  it('stores a valid storage class and DatabaseBackup, with defaults filled by the API server', async () => {
    expect(await kube!.kubectlOk(['apply', '-f', '-'], { input: stringify(validStorageClass()) })).toContain('databasebackupstorageclass.dbbackup.io/standard created');
    expect(await kube!.kubectlOk(['apply', '-f', '-'], { input: stringify(validBackup()) })).toContain('databasebackup.dbbackup.io/orders created');

    const sc = await getJson(['get', 'dbbsc', 'standard']);
    expect((sc.spec.locations as Obj[])[1]!.s3).toMatchObject({ region: 'eu-central-1', partSizeMiB: 8, queueSize: 2, insecureSkipTLSVerify: false });

    const dbb = await getJson(['get', 'dbb', 'orders', '-n', 'shop']);
    expect((dbb.spec.engine as { postgresql: Obj }).postgresql.port).toBe(5432);
    expect(dbb.spec.schedule).toMatchObject({ cron: '0 3 * * *', timeZone: 'Europe/Berlin', suspend: false, catchUp: true });
    expect(dbb.spec.retention).toMatchObject({ keepDaily: 7, minKeep: 1, orphanGracePeriod: '24h' });
    // Kept as given: affinity and volume sources are preserved, not pruned.
    expect((dbb.spec.runner as Obj).affinity).toEqual((validBackup().spec.runner as Obj).affinity);
    expect((dbb.spec.runner as { extraVolumes: Obj[] }).extraVolumes[0]).toEqual({ name: 'scratch', emptyDir: { sizeLimit: '1Gi' } });
    expect(validateDatabaseBackup(dbb).ok).toBe(true);
  });

  it('accepts mysql and command engines, a DatabaseBackupEngine with its schema, and an interval schedule', async () => {
    const mysql = validBackup();
    mysql.metadata.name = 'shop-mysql';
    mysql.spec.engine = { type: 'mysql', mysql: { host: 'db', database: 'shop', user: 'backup', passwordSecretRef: { name: 'db', key: 'password' }, sslMode: 'REQUIRED' } };
    mysql.spec.schedule = { interval: '6h', jitter: '1m30s' };
    const command = validBackup();
    command.metadata.name = 'shop-mongo';
    command.spec.engine = { type: 'command', command: { engineRef: 'mongodb', host: 'mongo.shop.svc', port: 27017, config: { uri: 'mongodb://m', opts: { gzip: true } } } };
    const configSchema = { type: 'object', required: ['uri'], properties: { uri: { type: 'string', pattern: '^mongodb://' }, opts: { type: 'object', additionalProperties: { type: 'boolean' } } } };
    const engine = {
      apiVersion: 'dbbackup.io/v1alpha1',
      kind: 'DatabaseBackupEngine',
      metadata: { name: 'mongodb' },
      spec: { image: 'registry.example.com/mongo-runner:7', command: ['mongo-tool'], verbs: ['probe', 'backup', 'restore'], formats: [{ format: 'mongodump-archive', extension: 'archive', magicHex: ['6de299816b'] }], configSchema },
    };
    for (const o of [mysql, command, engine]) expect((await apply(o)).code).toBe(0);
    const stored = await getJson(['get', 'dbb', 'shop-mongo', '-n', 'shop']);
    expect((stored.spec.engine as { command: Obj }).command.config).toEqual({ uri: 'mongodb://m', opts: { gzip: true } });
    // The schema is kept whole (not pruned), and a format's compressed flag defaults to false.
    const storedEngine = await getJson(['get', 'dbbe', 'mongodb']);
    expect(storedEngine.spec.configSchema).toEqual(configSchema);
    expect((storedEngine.spec.formats as Obj[])[0]).toEqual({ format: 'mongodump-archive', extension: 'archive', compressed: false, magicHex: ['6de299816b'] });
    expect(validateEngine(storedEngine).ok).toBe(true);
  });

  it('serves the status subresource and the printer columns', async () => {
    const status = {
      observedGeneration: 1,
      conditions: [{ type: 'Ready', status: 'True', reason: 'RunnerAvailable', message: 'runner is up', lastTransitionTime: '2026-11-21T10:00:00Z', observedGeneration: 1 }],
      lastBackup: { id: '20261121T030000Z-3fa1', status: 'Succeeded', startedAt: '2026-11-21T03:00:00Z', finishedAt: '2026-11-21T03:01:00Z' },
      lastSuccessAt: '2026-11-21T03:01:00Z',
      nextRunAt: '2026-11-22T02:00:00Z',
      locations: [{ name: 'local', state: 'Ready', lastSuccessAt: '2026-11-21T03:01:00Z', backupsStored: 12 }],
    };
    await kube!.kubectlOk(['patch', 'dbb', 'orders', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    const table = await kube!.kubectlOk(['get', 'dbb', '-n', 'shop']);
    const [header, ...rows] = table.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'ENGINE', 'SCHEDULE', 'INTERVAL', 'LAST BACKUP', 'LAST SUCCESS', 'READY', 'REASON', 'AGE']);
    // Empty cells print as blanks: orders has no interval, shop-mysql no cron, no last backup or success and no Ready condition.
    expect(rows.find((r) => r.startsWith('orders '))).toMatch(/^orders\s+postgresql\s+0 3 \* \* \*\s+Succeeded\s+\S+\s+True\s+RunnerAvailable\s+\S+$/);
    expect(rows.find((r) => r.startsWith('shop-mysql '))).toMatch(/^shop-mysql\s+mysql\s+6h\s+\S+$/);

    // The next run lies in the future: kubectl prints such a date column as <invalid>, a string column as it is.
    const next = new Date(Date.now() + 3 * 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    await kube!.kubectlOk(['patch', 'dbb', 'orders', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { nextRunAt: next } })]);
    const [wideHeader, ...wideRows] = (await kube!.kubectlOk(['get', 'dbb', '-n', 'shop', '-o', 'wide'])).trim().split('\n');
    expect(wideHeader!.split(/\s{2,}/)).toEqual(['NAME', 'ENGINE', 'SCHEDULE', 'INTERVAL', 'LAST BACKUP', 'LAST SUCCESS', 'READY', 'REASON', 'AGE', 'CLASS', 'NEXT RUN', 'MESSAGE']);
    const wideOrders = wideRows.find((r) => r.startsWith('orders '))!;
    expect(wideOrders).not.toContain('<invalid>');
    expect(wideOrders).toMatch(new RegExp(`\\s${next}\\s+runner is up$`));

    const bad = { ...status, lastBackup: { ...status.lastBackup, status: 'Done' } };
    const r = await kube!.kubectl(['patch', 'dbb', 'orders', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: bad })]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('status.lastBackup.status: Unsupported value: "Done"');
  });

  it('rejects invalid DatabaseBackups with a message naming the field', async () => {
    const engine = (o: Mutable) => o.spec.engine as { type: string; postgresql: Obj };
    expect(await rejected(validBackup, 'bad-enum', (o) => { engine(o).type = 'oracle'; }))
      .toContain('spec.engine.type: Unsupported value: "oracle": supported values: "postgresql", "mysql", "command"');
    expect(await rejected(validBackup, 'bad-duration', (o) => { (o.spec.schedule as Obj).jitter = '5 minutes'; }))
      .toContain('spec.schedule.jitter: Invalid value: "5 minutes": spec.schedule.jitter in body should match \'^(\\d+(ms|s|m|h|d|w))+$\'');
    expect(await rejected(validBackup, 'missing-class', (o) => { delete o.spec.storageClassName; }))
      .toContain('spec.storageClassName: Required value');
    expect(await rejected(validBackup, 'negative-count', (o) => { (o.spec.retention as Obj).keepDaily = -1; }))
      .toContain('spec.retention.keepDaily: Invalid value: -1: spec.retention.keepDaily in body should be greater than or equal to 0');
    expect(await rejected(validBackup, 'bad-port', (o) => { engine(o).postgresql.port = 70000; }))
      .toContain('spec.engine.postgresql.port: Invalid value: 70000: spec.engine.postgresql.port in body should be less than or equal to 65535');
    expect(await rejected(validBackup, 'bad-quantity', (o) => { (o.spec.runner as Obj).resources = { requests: { cpu: 'lots' } }; }))
      .toMatch(/spec\.runner\.resources\.requests\.cpu: Invalid value: "lots": spec\.runner\.resources\.requests\.cpu in body should match/);
    expect(await rejected(validBackup, 'bad-secret-ref', (o) => { engine(o).postgresql.passwordSecretRef = { name: 'orders-db' }; }))
      .toContain('spec.engine.postgresql.passwordSecretRef.key: Required value');
  });

  it('reports every invalid field of one object together', async () => {
    const msg = await rejected(validBackup, 'many', (o) => {
      (o.spec.engine as Obj).type = 'oracle';
      (o.spec.retention as Obj).keepLast = -1;
      (o.spec.schedule as Obj).interval = 'daily';
      (o.spec.runner as Obj).fsGroup = -5;
    });
    for (const path of ['spec.engine.type', 'spec.retention.keepLast', 'spec.schedule.interval', 'spec.runner.fsGroup']) expect(msg).toContain(`${path}: `);
  });

  it('rejects invalid storage classes with a message naming the field', async () => {
    // kube-apiserver 1.20 leaves the index out of paths inside arrays ("spec.locations.name"); later releases print it.
    const loc = (o: Mutable, i: number) => (o.spec.locations as Obj[])[i]!;
    expect(await rejected(validStorageClass, 'bad-name', (o) => { loc(o, 0).name = 'Local_1'; }))
      .toMatch(/spec\.locations(\[0\])?\.name: Invalid value: "Local_1": spec\.locations(\[0\])?\.name in body should match '\^\[a-z0-9\]/);
    expect(await rejected(validStorageClass, 'small-parts', (o) => { (loc(o, 1).s3 as Obj).partSizeMiB = 1; }))
      .toMatch(/spec\.locations(\[1\])?\.s3\.partSizeMiB: Invalid value: 1: spec\.locations(\[1\])?\.s3\.partSizeMiB in body should be greater than or equal to 5/);
    expect(await rejected(validStorageClass, 'no-locations', (o) => { o.spec.locations = []; }))
      .toContain('spec.locations: Invalid value: 0: spec.locations in body should have at least 1 items');
    expect(await rejected(validStorageClass, 'no-bucket', (o) => { delete (loc(o, 2).gcs as Obj).bucket; }))
      .toMatch(/spec\.locations(\[2\])?\.gcs\.bucket: Required value/);
    expect(await rejected(validStorageClass, 'bad-namespace', (o) => { o.spec.allowedNamespaces = ['Shop']; }))
      .toMatch(/spec\.allowedNamespaces(\[0\])?: Invalid value: "Shop"/);
  });

  it('leaves the cross-field rules to the controller: the API server stores them, validateDatabaseBackup names them', async () => {
    const o = validBackup();
    o.metadata.name = 'both-schedules';
    (o.spec.schedule as Obj).interval = '6h';
    (o.spec.engine as Obj).type = 'mysql';
    expect((await apply(o)).code).toBe(0);
    const stored = await getJson(['get', 'dbb', 'both-schedules', '-n', 'shop']);
    const r = validateDatabaseBackup(stored);
    expect(r.ok ? [] : r.errors.map((e) => e.path)).toEqual(['spec.engine.mysql', 'spec.engine.postgresql', 'spec.schedule']);
  });

  it('prunes unknown fields, so an inline credential is never stored', async () => {
    const o = validStorageClass();
    o.metadata.name = 'inline';
    ((o.spec.locations as Obj[])[1]!.s3 as Obj).secretAccessKey = 'plain-text';
    expect((await apply(o)).code).toBe(0);
    const stored = await getJson(['get', 'dbbsc', 'inline']);
    expect((stored.spec.locations as Obj[])[1]!.s3).not.toHaveProperty('secretAccessKey');
  });
});
