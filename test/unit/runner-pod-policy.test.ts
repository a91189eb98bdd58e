/**
 * A DatabaseBackup grants no more than a backup needs: a table of adversarial
 * spec.runner values, each either refused by the controller's plan (reason
 * and field path) or rendered into a Deployment whose pod meets the
 * restricted Pod Security Standard (test/pod-security.ts).
 */
import type { V1PodSpec } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { CONTROLLER_LABELS, imageAllowed, imageRepository, mountPathErrors, volumeErrors } from '../../api/crds/runner-pod.js';
import { LABEL_BACKUP, commonLabels } from '../../controller/names.js';
import { planBackup } from '../../controller/plan.js';
import type { RenderSettings } from '../../controller/render/objects.js';
import { classSecrets, renderSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';
import { restrictedViolations } from '../pod-security.js';

type Runner = Record<string, unknown> & { extraVolumes: Record<string, unknown>[]; extraVolumeMounts: Record<string, unknown>[] };
type Expect = { refused: string; reason?: string } | 'renders';

const secrets = classSecrets();

function plan(edit: (runner: Runner, spec: Record<string, unknown>) => void, settings: Partial<RenderSettings> = {}) {
  const b = validBackup();
  edit(b.spec.runner as Runner, b.spec);
  return planBackup(b as never, validStorageClass() as never, (n) => secrets[n], { ...renderSettings(), ...settings }, undefined, undefined, (n) => ENGINES[n] as never);
}

/** DatabaseBackupEngines of the cluster, by name. */
const engineResource = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'dbbackup.io/v1alpha1',
  kind: 'DatabaseBackupEngine',
  metadata: { name },
  spec: {
    command: ['db-backup-tool', 'redis'],
    verbs: ['probe', 'backup', 'restore'],
    formats: [{ format: 'redis-rdb', extension: 'rdb', compressed: false, magicHex: ['5245444953'] }],
    configSchema: { type: 'object', additionalProperties: false, properties: { batchSize: { type: 'integer', minimum: 1 } } },
    ...spec,
  },
});
const ENGINES: Record<string, unknown> = {
  redis: engineResource('redis', { image: 'registry.example.com/team/backup-runner-redis:7.0-1.0.0' }),
  'evil-tool': engineResource('evil-tool', { image: 'evil.example/x:1' }),
  'billing-only': engineResource('billing-only', { image: 'registry.example.com/team/backup-runner-redis:7.0-1.0.0', allowedNamespaces: ['billing'] }),
  broken: engineResource('broken', { image: 'registry.example.com/team/x:1', verbs: ['probe'] }),
  postgresql: engineResource('postgresql', { image: 'registry.example.com/team/x:1' }),
};
const useEngine = (engineRef: string, config?: Record<string, unknown>) => (_r: Runner, spec: Record<string, unknown>) =>
  (spec.engine = { type: 'command', command: { engineRef, host: 'cache.shop.svc', ...(config ? { config } : {}) } });
const TEAM = { allowedImagePrefixes: ['registry.example.com/team/'] };

const vol = (v: Record<string, unknown>) => (r: Runner) => {
  r.extraVolumes.push({ name: 'extra', ...v });
  r.extraVolumeMounts.push({ name: 'extra', mountPath: '/data' });
};

const CASES: [string, (r: Runner, spec: Record<string, unknown>) => void, Expect, Partial<RenderSettings>?][] = [
  // Volumes.
  ['hostPath /', vol({ hostPath: { path: '/' } }), { refused: 'spec.runner.extraVolumes[1].hostPath' }],
  ['hostPath smuggled next to an allowed source', vol({ emptyDir: {}, hostPath: { path: '/' } }), { refused: 'spec.runner.extraVolumes[1].hostPath' }],
  ['nfs', vol({ nfs: { server: 'nas', path: '/exports' } }), { refused: 'spec.runner.extraVolumes[1].nfs' }],
  ['iscsi', vol({ iscsi: { targetPortal: '10.0.0.1:3260', iqn: 'iqn.2001-04.com.example:storage', lun: 0 } }), { refused: 'spec.runner.extraVolumes[1].iscsi' }],
  ['inline csi', vol({ csi: { driver: 'nfs.csi.k8s.io', volumeAttributes: { server: 'nas', share: '/' } } }), { refused: 'spec.runner.extraVolumes[1].csi' }],
  ['generic ephemeral', vol({ ephemeral: { volumeClaimTemplate: { spec: {} } } }), { refused: 'spec.runner.extraVolumes[1].ephemeral' }],
  ['gitRepo', vol({ gitRepo: { repository: 'https://example.com/x.git' } }), { refused: 'spec.runner.extraVolumes[1].gitRepo' }],
  ['"constructor" as a volume source', vol(JSON.parse('{"constructor": {}}') as Record<string, unknown>), { refused: 'spec.runner.extraVolumes[1].constructor: is not an allowed volume source (unknown field)' }],
  ['"__proto__" as a volume source, next to hostPath', vol(JSON.parse('{"__proto__": {}, "hostPath": {"path": "/"}}') as Record<string, unknown>), { refused: 'spec.runner.extraVolumes[1].hostPath' }],
  ['"toString" as a projected source', vol({ projected: { sources: [{ toString: {} }] } }), { refused: 'spec.runner.extraVolumes[1].projected.sources[0].toString: is not an allowed projected source' }],
  ['a volume without a source', vol({}), { refused: 'spec.runner.extraVolumes[1]: must set exactly one volume source' }],
  ['two allowed sources in one volume', vol({ emptyDir: {}, secret: { secretName: 's' } }), { refused: 'spec.runner.extraVolumes[1]: must set exactly one volume source' }],
  ['privileged smuggled as a volume field', vol({ emptyDir: {}, securityContext: { privileged: true } }), { refused: 'spec.runner.extraVolumes[1].securityContext' }],
  ['an unknown field inside an allowed source', vol({ emptyDir: { medium: '', path: '/' } }), { refused: 'spec.runner.extraVolumes[1].emptyDir.path' }],
  ['an unknown field in a Secret item', vol({ secret: { secretName: 's', items: [{ key: 'a', path: 'a', hostPath: '/' }] } }), { refused: 'spec.runner.extraVolumes[1].secret.items[0].hostPath' }],
  ['hostPath inside a projected volume', vol({ projected: { sources: [{ hostPath: { path: '/' } }] } }), { refused: 'spec.runner.extraVolumes[1].projected.sources[0].hostPath' }],
  ['two sources in one projection', vol({ projected: { sources: [{ secret: { name: 's' }, configMap: { name: 'c' } }] } }), { refused: 'spec.runner.extraVolumes[1].projected.sources[0]: must set exactly one' }],
  ['33 volumes', (r) => (r.extraVolumes = Array.from({ length: 33 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }))), { refused: 'spec.runner.extraVolumes', reason: 'InvalidSpec' }],
  // Mount paths.
  ['a mount over the runner config', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/etc/backup-runner' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  ['a mount over the database Secret files', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/var/run/backup-runner/db' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  ['a mount over /', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  ['a mount over the tools', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/usr/bin' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  ['a mount over the runner code', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/app/dist' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  ['a mount over a parent of the ServiceAccount token', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/var' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  ['a mount path with ..', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/data/../etc' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  ['a mount over the control socket dir', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/tmp' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPath' }],
  // Images.
  ['an image from elsewhere, nothing allowed', (r) => (r.image = 'evil.example/backup-runner:1'), { refused: 'spec.runner.image: "evil.example/backup-runner:1" is not allowed', reason: 'ImageNotAllowed' }],
  [
    'an image from a look-alike repository',
    (r) => (r.image = 'registry.example.com/team-evil/runner:1'),
    { refused: 'spec.runner.image', reason: 'ImageNotAllowed' },
    { allowedImagePrefixes: ['registry.example.com/team'] },
  ],
  ['one of the controller\'s own runner images, nothing allowed', (r) => (r.image = 'registry.example/backup-runner-postgresql:15-1.0.0'), 'renders'],
  ['a tag of the controller\'s own repository that it does not use, nothing allowed', (r) => (r.image = 'registry.example/backup-runner-postgresql:evil'), { refused: 'spec.runner.image', reason: 'ImageNotAllowed' }],
  ['an image below an allowed directory prefix', (r) => (r.image = 'registry.example.com/team/runner:1'), 'renders', { allowedImagePrefixes: ['registry.example.com/team/'] }],
  [
    'an image pinned by digest under an allowed repository',
    (r) => (r.image = `registry.example.com/team@sha256:${'a'.repeat(64)}`),
    'renders',
    { allowedImagePrefixes: ['registry.example.com/team'] },
  ],
  // Engines defined by a command: the image is the DatabaseBackupEngine's, under the same rule.
  ['an engine whose image is from elsewhere', useEngine('evil-tool'), { refused: 'DatabaseBackupEngine evil-tool spec.image', reason: 'ImageNotAllowed' }, TEAM],
  ['an engine whose image is allowed', useEngine('redis', { batchSize: 10 }), 'renders', TEAM],
  // The engines the controller installs (settings.engines): their images are its own, allowed with no prefix.
  ['an engine in an image the controller installs engines with', useEngine('redis'), 'renders', { engineImages: ['registry.example.com/team/backup-runner-redis:7.0-1.0.0'] }],
  [
    "an installed engine's image as spec.runner.image of another engine",
    (r) => (r.image = 'registry.example.com/team/backup-runner-redis:7.0-1.0.0'),
    { refused: 'spec.runner.image', reason: 'ImageNotAllowed' },
    { engineImages: ['registry.example.com/team/backup-runner-redis:7.0-1.0.0'] },
  ],
  ['an engine in an image the controller does not install engines with', useEngine('redis'), { refused: 'DatabaseBackupEngine redis spec.image', reason: 'ImageNotAllowed' }, { engineImages: ['registry.example.com/team/backup-runner-redis:7.0-1.0.1'] }],
  [
    "a tenant's runner image for an engine's tool",
    (r, spec) => {
      useEngine('redis')(r, spec);
      r.image = `${TEAM.allowedImagePrefixes[0]}tenant-image:1`;
    },
    { refused: 'spec.runner.image: must not be set with an engine defined by a command' },
    TEAM,
  ],
  ['an engine named like a built-in engine', useEngine('postgresql'), { refused: 'metadata.name: must not be postgresql, mysql, command', reason: 'EngineInvalid' }, TEAM],
  ['an engine that does not exist', useEngine('nope'), { refused: 'DatabaseBackupEngine "nope" not found', reason: 'EngineNotFound' }, TEAM],
  ['an engine that does not allow the namespace', useEngine('billing-only'), { refused: 'not allowed by DatabaseBackupEngine "billing-only"', reason: 'NamespaceNotAllowed' }, TEAM],
  ['an engine whose definition is invalid', useEngine('broken'), { refused: 'DatabaseBackupEngine "broken" is invalid: spec.verbs: must include backup', reason: 'EngineInvalid' }, TEAM],
  ['a config the engine schema refuses', useEngine('redis', { batchSize: 0, flushall: true }), { refused: 'spec.engine.command.config.flushall: is not a setting of this engine; spec.engine.command.config.batchSize: must be >= 1', reason: 'InvalidSpec' }, TEAM],
  // Annotations and labels.
  ['AppArmor unconfined', (r) => (r.podAnnotations = { 'container.apparmor.security.beta.kubernetes.io/runner': 'unconfined' }), { refused: 'spec.runner.podAnnotations["container.apparmor.security.beta.kubernetes.io/runner"]' }],
  ['seccomp unconfined (pod annotation)', (r) => (r.podAnnotations = { 'seccomp.security.alpha.kubernetes.io/pod': 'unconfined' }), { refused: 'spec.runner.podAnnotations["seccomp.security.alpha.kubernetes.io/pod"]' }],
  ['seccomp unconfined (container annotation)', (r) => (r.podAnnotations = { 'container.seccomp.security.alpha.kubernetes.io/runner': 'unconfined' }), { refused: 'container.seccomp.security.alpha.kubernetes.io/runner' }],
  ['a CRI-O device annotation', (r) => (r.podAnnotations = { 'io.kubernetes.cri-o.Devices': '/dev/sda' }), { refused: 'spec.runner.podAnnotations["io.kubernetes.cri-o.Devices"]' }],
  ['a crun annotation', (r) => (r.podAnnotations = { 'run.oci.keep_original_groups': '1' }), { refused: 'spec.runner.podAnnotations["run.oci.keep_original_groups"]' }],
  ['the config hash overridden', (r) => (r.podAnnotations = { 'dbbackup.io/config-hash': 'x' }), { refused: 'spec.runner.podAnnotations["dbbackup.io/config-hash"]' }],
  ['a team annotation and the autoscaler hint', (r) => (r.podAnnotations = { 'example.com/team': 'shop', 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false' }), 'renders'],
  ['the managed-by label overridden', (r) => (r.podLabels = { 'app.kubernetes.io/managed-by': 'someone' }), { refused: 'spec.runner.podLabels["app.kubernetes.io/managed-by"]' }],
  ['the DatabaseBackup label overridden', (r) => (r.podLabels = { 'dbbackup.io/database-backup': 'other' }), { refused: 'spec.runner.podLabels["dbbackup.io/database-backup"]' }],
  ['a team label and a recommended label the controller does not set', (r) => (r.podLabels = { 'example.com/team': 'shop', 'app.kubernetes.io/component': 'backup' }), 'renders'],
  // Scheduling.
  ['tolerate every taint', (r) => (r.tolerations = [{ operator: 'Exists' }]), { refused: 'spec.runner.tolerations[0]' }],
  ['tolerate the control-plane taint', (r) => (r.tolerations = [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }]), { refused: 'spec.runner.tolerations[0]' }],
  ['privileged smuggled into affinity', (r) => (r.affinity = { securityContext: { privileged: true } }), { refused: 'spec.runner.affinity.securityContext' }],
  // Fields the schema has no place for.
  ['hostNetwork', (r) => (r.hostNetwork = true), { refused: 'spec.runner.hostNetwork', reason: 'InvalidSpec' }],
  ['a securityContext', (r) => (r.securityContext = { privileged: true }), { refused: 'spec.runner.securityContext', reason: 'InvalidSpec' }],
  ['mountPropagation', (r) => r.extraVolumeMounts.push({ name: 'scratch', mountPath: '/x', mountPropagation: 'Bidirectional' }), { refused: 'spec.runner.extraVolumeMounts[1].mountPropagation', reason: 'InvalidSpec' }],
  ['fsGroup 0', (r) => (r.fsGroup = 0), { refused: 'spec.runner.fsGroup' }],
  // Huge values.
  ['33 tolerations', (r) => (r.tolerations = Array.from({ length: 33 }, (_, i) => ({ key: `k${i}`, operator: 'Exists' }))), { refused: 'spec.runner.tolerations: must have at most 32 items' }],
  ['a 20 KiB pod annotation', (r) => (r.podAnnotations = { 'example.com/blob': 'x'.repeat(20 * 1024) }), { refused: 'spec.runner.podAnnotations: must hold at most 16384 characters' }],
  ['a 20 KiB ServiceAccount annotation', (r) => (r.serviceAccountAnnotations = { 'example.com/blob': 'x'.repeat(20 * 1024) }), { refused: 'spec.runner.serviceAccountAnnotations: must hold at most' }],
  // What a backup needs renders.
  [
    'every allowed source',
    (r) => {
      r.extraVolumes.push(
        { name: 'pvc', persistentVolumeClaim: { claimName: 'store' } },
        { name: 'mem', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
        { name: 'cm', configMap: { name: 'ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { name: 'sec', secret: { secretName: 'tls', defaultMode: 0o440 } },
        { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
        { name: 'token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', expirationSeconds: 3600, path: 'token' } }, { secret: { name: 'tls' } }] } },
      );
      ['pvc', 'mem', 'cm', 'sec', 'info', 'token'].forEach((n) => r.extraVolumeMounts.push({ name: n, mountPath: `/data/${n}` }));
    },
    'renders',
  ],
  ['32 volumes', (r) => (r.extraVolumes = Array.from({ length: 32 }, (_, i) => ({ name: i === 0 ? 'scratch' : `v${i}`, emptyDir: {} }))), 'renders'],
];

describe('spec.runner: refused with its field path, or rendered into a restricted pod', () => {
  it.each(CASES)('%s', (_name, edit, expected, settings) => {
    const p = plan(edit, settings);
    if (expected === 'renders') {
      if (!p.ok) throw new Error(`refused: ${p.problem.reason}: ${p.problem.message}`);
      const template = p.rendered.objects.deployment.spec!.template;
      expect(restrictedViolations(template.spec as V1PodSpec, template.metadata?.annotations ?? {})).toEqual([]);
      return;
    }
    expect(p.ok, 'the plan must refuse it').toBe(false);
    if (p.ok) return;
    expect(p.problem.reason).toBe(expected.reason ?? 'InvalidSpec');
    expect(p.problem.message).toContain(expected.refused);
  });

  it('the restricted check itself catches what the plan refuses (so a rendered pass means something)', () => {
    const ok = plan(() => undefined);
    if (!ok.ok) throw new Error(ok.problem.message);
    const pod = structuredClone(ok.rendered.objects.deployment.spec!.template.spec!);
    pod.volumes!.push({ name: 'host', hostPath: { path: '/' } });
    expect(restrictedViolations(pod, { 'container.apparmor.security.beta.kubernetes.io/runner': 'unconfined', 'seccomp.security.alpha.kubernetes.io/pod': 'unconfined' })).toEqual([
      'volume host is of type hostPath',
      'AppArmor profile unconfined',
      'seccomp annotation seccomp.security.alpha.kubernetes.io/pod is unconfined',
    ]);
  });

  it('the rendered pod carries only the name and the one source of each extra volume', () => {
    const p = plan(vol({ persistentVolumeClaim: { claimName: 'store', readOnly: true } }));
    if (!p.ok) throw new Error(p.problem.message);
    expect(p.rendered.objects.deployment.spec!.template.spec!.volumes!.find((v) => v.name === 'extra')).toEqual({ name: 'extra', persistentVolumeClaim: { claimName: 'store', readOnly: true } });
  });
});

describe('the controller\'s labels', () => {
  it('are exactly the ones podLabels may not set', () => {
    expect(Object.keys(commonLabels('x')).filter((k) => !k.startsWith('dbbackup.io/')).sort()).toEqual([...CONTROLLER_LABELS].sort());
    expect(LABEL_BACKUP.startsWith('dbbackup.io/')).toBe(true);
  });
});

describe('imageAllowed', () => {
  const team = ['registry.example.com/team/'];
  it.each([
    ['registry.example.com/team/runner:1', team, true],
    ['registry.example.com/team/sub/runner@sha256:' + 'b'.repeat(64), team, true],
    ['registry.example.com/team-evil/runner:1', team, false],
    ['registry.example.com/team:1', team, false],
    ['registry.example.com/team', ['registry.example.com/team'], true],
    ['registry.example.com/team/x', ['registry.example.com/team'], false],
    ['registry.example.com:5000/team/x', team, false],
    ['registry.example.com/team/../evil/x', team, false],
    ['registry.example.com/team/Runner', team, false],
    ['registry.example.com/team/runner:1', [], false],
  ])('%s with %j -> %s', (image, prefixes, ok) => {
    expect(imageAllowed(image, prefixes).ok).toBe(ok);
  });
  it('reads the repository without tag or digest', () => {
    expect(imageRepository('localhost:5000/a/b:1@sha256:' + 'c'.repeat(64))).toBe('localhost:5000/a/b');
    expect(imageRepository('team/x:1')).toBe('team/x');
    expect(imageRepository('Team/x')).toBeUndefined();
    expect(imageRepository('a b')).toBeUndefined();
  });
});

describe('volume and mount rules', () => {
  it('name every refused source with the reason', () => {
    expect(volumeErrors({ name: 'h', hostPath: { path: '/' } }, 'v')).toEqual([
      { path: 'v.hostPath', message: "is not an allowed volume source (it exposes the node's filesystem); allowed: persistentVolumeClaim, emptyDir, configMap, secret, downwardAPI, projected" },
    ]);
  });
  it.each([['/data', true], ['/backups/x', true], ['/etc', false], ['/etcetera', true], ['/data/', false], ['//data', false], ['/var/lib/x', false], ['/var/backups', true]])('%s allowed: %s', (path, ok) => {
    expect(mountPathErrors(path, 'm').length === 0).toBe(ok);
  });
});
