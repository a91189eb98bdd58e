import { describe, expect, it } from 'vitest';
import type { DatabaseBackup, DatabaseBackupStorageClass } from '../../api/crds/index.js';
import { backupRoots } from '../../controller/overlap.js';
import { missingSecretsProblem, namespaceSecrets, planBackup } from '../../controller/plan.js';
import { classSecrets, renderSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- fixtures edited field by field */
type Obj = Record<string, any>;

const secrets = classSecrets();
const lookup = (n: string) => secrets[n];
const sc = (edit: (s: Obj) => void = () => undefined) => {
  const s = validStorageClass() as Obj;
  edit(s);
  return s as unknown as DatabaseBackupStorageClass;
};
const dbb = (edit: (b: Obj) => void = () => undefined) => {
  const b = validBackup() as Obj;
  b.metadata.creationTimestamp = '2026-11-02T00:00:00Z';
  edit(b);
  return b as unknown as DatabaseBackup;
};

describe('planBackup: which problems take the storage away (revoke) and which keep the last good runner', () => {
  const earlier = dbb((b) => {
    b.metadata = { namespace: 'db', name: 'shop', creationTimestamp: '2026-11-01T00:00:00Z' };
    b.spec.locations = ['offsite'];
  });
  it.each<[string, DatabaseBackup, DatabaseBackupStorageClass | undefined, string, boolean]>([
    ['class gone', dbb(), undefined, 'StorageClassNotFound', true],
    ['namespace no longer allowed', dbb(), sc((s) => (s.spec.allowedNamespaces = ['billing'])), 'NamespaceNotAllowed', true],
    ['class key gone', dbb(), sc((s) => (s.spec.locations[1].s3.secretAccessKeySecretRef.key = 'gone')), 'SecretKeyNotFound', true],
    ['class Secret gone', dbb(), sc((s) => (s.spec.locations[1].s3.secretAccessKeySecretRef.secretName = 'gone')), 'SecretNotFound', true],
    ['a key gone and a dotted name: the access problem is the reason', dbb((b) => (b.metadata.name = 'a.b')), sc((s) => (s.spec.locations[1].s3.secretAccessKeySecretRef.key = 'gone')), 'SecretKeyNotFound', true],
    ['storage under an earlier DatabaseBackup\'s prefix', dbb(), sc(), 'PrefixOverlap', true],
    ['an invalid spec', dbb((b) => (b.spec.locations = ['nope'])), sc(), 'InvalidSpec', false],
    ['an invalid class', dbb(), sc((s) => (s.spec.locations[0].name = 'Not A Label')), 'StorageClassInvalid', false],
    ['a dotted name', dbb((b) => (b.metadata.name = 'a.b')), sc(), 'InvalidName', false],
  ])('%s -> %s, revoke %s', (name, backup, storageClass, reason, revoke) => {
    // db/shop under prefix "db" of the same bucket holds shop/orders's root db/shop/orders/ (only in the overlap case).
    const others = name.startsWith('storage under') ? [backupRoots(earlier, sc((s) => (s.spec.locations[1].prefix = '')))] : [];
    const plan = planBackup(backup, storageClass, lookup, renderSettings(), others);
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.problem.reason).toBe(reason);
    expect(plan.revoke).toBe(revoke);
  });

  it('a valid DatabaseBackup with no overlap plans its runner', () => {
    expect(planBackup(dbb(), sc(), lookup, renderSettings(), [backupRoots(earlier, sc())]).ok).toBe(true);
  });
});

describe('planBackup: a PersistentVolumeClaim the runner would mount must exist in its namespace', () => {
  const withClaimVolume = (b: Obj) => {
    const runner = b.spec.runner as { extraVolumes: unknown[]; extraVolumeMounts: unknown[] };
    runner.extraVolumes.push({ name: 'archive', persistentVolumeClaim: { claimName: 'archive' } });
    runner.extraVolumeMounts.push({ name: 'archive', mountPath: '/archive' });
  };
  const exist =
    (...claims: string[]) =>
    (ns: string, name: string) =>
      claims.includes(`${ns}/${name}`);
  it.each<[string, DatabaseBackup, string[], string | undefined]>([
    ['the class claim and an extra claim exist', dbb(withClaimVolume), ['shop/backups', 'shop/archive'], undefined],
    [
      "the class's filesystem.claimName is missing",
      dbb(),
      [],
      'PersistentVolumeClaim shop/backups (spec.locations[0].filesystem.claimName of storage class "standard") does not exist; create it in namespace "shop" and the runner is deployed (or updated) without any other change',
    ],
    [
      'an extraVolumes claim is missing',
      dbb(withClaimVolume),
      ['shop/backups'],
      'PersistentVolumeClaim shop/archive (spec.runner.extraVolumes[1].persistentVolumeClaim.claimName) does not exist; create it in namespace "shop" and the runner is deployed (or updated) without any other change',
    ],
    ['a claim of the same name in another namespace does not count', dbb(), ['billing/backups'], 'PersistentVolumeClaim shop/backups'],
    ['a location not chosen needs no claim', dbb((b) => (b.spec.locations = ['offsite'])), [], undefined],
  ])('%s', (_name, backup, claims, message) => {
    const plan = planBackup(backup, sc(), lookup, renderSettings(), [], exist(...claims));
    if (message === undefined) {
      expect(plan.ok).toBe(true);
      return;
    }
    expect(plan).toMatchObject({ ok: false, revoke: false, problem: { reason: 'ClaimNotFound', message: expect.stringContaining(message) } });
  });

  it('two missing claims are both named, in one ClaimNotFound', () => {
    const plan = planBackup(dbb(withClaimVolume), sc(), lookup, renderSettings(), [], exist());
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.problem.message).toContain('shop/backups');
    expect(plan.problem.message).toContain('shop/archive');
  });

  it('without a claim lookup nothing is checked', () => {
    expect(planBackup(dbb(), sc(), lookup, renderSettings(), []).ok).toBe(true);
  });
});

describe('namespaceSecrets: the Secrets of its namespace a runner pod cannot start without, with the fields that name them', () => {
  const secretsOf = (backup: DatabaseBackup, storageClass = sc()) => {
    const plan = planBackup(backup, storageClass, lookup, renderSettings(), []);
    if (!plan.ok) throw new Error(plan.problem.message);
    return namespaceSecrets(plan.rendered, backup);
  };
  it.each<[string, (b: Obj) => void, { name: string; fields: string[] }[]]>([
    [
      'the password (environment) and the CA (volume); the runner config Secret is its own',
      () => undefined,
      [
        { name: 'orders-db', fields: ['spec.engine.postgresql.passwordSecretRef'] },
        { name: 'orders-db-ca', fields: ['spec.engine.postgresql.sslRootCertSecretRef'] },
      ],
    ],
    [
      'one Secret named by several fields is listed once, with each field',
      (b) => {
        b.spec.engine.postgresql.sslRootCertSecretRef = { name: 'orders-db', key: 'ca.crt' };
        b.spec.engine.postgresql.sslMode = 'verify-full';
      },
      [{ name: 'orders-db', fields: ['spec.engine.postgresql.passwordSecretRef', 'spec.engine.postgresql.sslRootCertSecretRef'] }],
    ],
    [
      'a secret volume and a projected one of spec.runner.extraVolumes; an optional one is not needed',
      (b) => {
        (b.spec.runner.extraVolumes as unknown[]).push(
          { name: 'certs', secret: { secretName: 'certs' } },
          { name: 'bundle', projected: { sources: [{ secret: { name: 'bundle-a' } }, { secret: { name: 'bundle-b', optional: true } }] } },
          { name: 'maybe', secret: { secretName: 'maybe', optional: true } },
        );
      },
      [
        { name: 'orders-db', fields: ['spec.engine.postgresql.passwordSecretRef'] },
        { name: 'orders-db-ca', fields: ['spec.engine.postgresql.sslRootCertSecretRef'] },
        { name: 'certs', fields: ['spec.runner.extraVolumes[1].secret'] },
        { name: 'bundle-a', fields: ['spec.runner.extraVolumes[2].projected.sources[0].secret'] },
      ],
    ],
    [
      'signing keys, one of them in a list of references',
      (b) => {
        b.spec.signing = { keySecretRef: { name: 'orders-signing', key: 'key.pem' }, verifySecretRefs: [{ name: 'other-team', key: 'key.pub' }] };
      },
      [
        { name: 'orders-db', fields: ['spec.engine.postgresql.passwordSecretRef'] },
        { name: 'orders-db-ca', fields: ['spec.engine.postgresql.sslRootCertSecretRef'] },
        { name: 'orders-signing', fields: ['spec.signing.keySecretRef'] },
        { name: 'other-team', fields: ['spec.signing.verifySecretRefs[0]'] },
      ],
    ],
    [
      'no password and no TLS: none',
      (b) => {
        delete b.spec.engine.postgresql.passwordSecretRef;
        delete b.spec.engine.postgresql.sslRootCertSecretRef;
        b.spec.engine.postgresql.sslMode = 'require';
      },
      [],
    ],
  ])('%s', (_name, edit, want) => {
    expect(secretsOf(dbb(edit))).toEqual(want);
  });

  it('the keys of the team\'s own storage credentials (credentials.source DatabaseBackup) are named with their field', () => {
    const backup = dbb((b) => {
      b.spec.locations = ['offsite'];
      b.spec.credentials = [{ location: 'offsite', s3: { accessKeyIdSecretRef: { name: 'team-s3', key: 'id' }, secretAccessKeySecretRef: { name: 'team-s3', key: 'secret' } } }];
    });
    const storageClass = sc((s) => {
      delete s.spec.locations[1].s3.accessKeyIdSecretRef;
      delete s.spec.locations[1].s3.secretAccessKeySecretRef;
      s.spec.locations[1].credentials = { source: 'DatabaseBackup' };
    });
    expect(secretsOf(backup, storageClass)).toContainEqual({ name: 'team-s3', fields: ['spec.credentials[0].s3.accessKeyIdSecretRef', 'spec.credentials[0].s3.secretAccessKeySecretRef'] });
  });

  it('the problem names each missing Secret with its fields, and how to fix it', () => {
    const one = missingSecretsProblem('shop', [{ name: 'orders-db', fields: ['spec.engine.postgresql.passwordSecretRef'] }], 30_000);
    expect(one).toEqual({
      reason: 'NamespaceSecretNotFound',
      message:
        'Secret shop/orders-db (spec.engine.postgresql.passwordSecretRef) does not exist; the runner pod cannot start without it: create it in namespace "shop" and the runner is deployed (or updated) without any other change (looked for again every 30 s)',
    });
    const two = missingSecretsProblem('shop', [{ name: 'a', fields: ['x'] }, { name: 'b', fields: ['y', 'z'] }], 5_000);
    expect(two.message).toMatch(/^Secret shop\/a \(x\); Secret shop\/b \(y, z\) do not exist; the runner pod cannot start without them: create them .* every 5 s\)$/);
  });
});
