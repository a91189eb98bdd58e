/**
 * The chart's monitoring objects on a real kube-apiserver 1.20: stub CRDs for
 * ServiceMonitor and PrometheusRule (testenv/crds/, not the Prometheus
 * Operator's schemas) are installed for real, then the rendered
 * ServiceMonitors, PrometheusRule and dashboard ConfigMap are applied with
 * `kubectl apply --dry-run=server`: the API server validates names, labels,
 * the namespace and what the stubs check.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { kubeBinaries, startKube, type KubeInstance } from '../../testenv/kube.js';
import { helm, templateArgs } from '../../testenv/helm.js';
import { parseManifests } from '../chart-fixtures.js';

const CRD_DIR = join(import.meta.dirname, '..', '..', 'testenv', 'crds');
const RELEASE = 'backups';
const NAMESPACE = 'platform';

let kube: KubeInstance | undefined;
let rendered = '';

beforeAll(async () => {
  // Throws with the `bash testenv/kube/build.sh` hint when the binaries are missing: this suite fails rather than skips.
  kubeBinaries();
  const args = [
    ...templateArgs({
      release: RELEASE,
      namespace: NAMESPACE,
      set: ['monitoring.serviceMonitor.enabled=true', 'monitoring.prometheusRule.enabled=true', 'monitoring.grafanaDashboard.enabled=true', 'monitoring.serviceMonitor.labels.release=prometheus'],
    }),
    ...['servicemonitors.yaml', 'prometheusrule.yaml', 'grafana-dashboard.yaml'].flatMap((t) => ['--show-only', `templates/monitoring/${t}`]),
  ];
  const r = await helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  rendered = r.stdout;
  kube = await startKube({ controllerManager: false });
  await kube.kubectlOk(['apply', '-f', CRD_DIR]);
  await kube.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com']);
  await kube.kubectlOk(['create', 'namespace', NAMESPACE]);
});

afterAll(async () => {
  await kube?.stop();
});

describe('chart monitoring objects on kube-apiserver 1.20 (stub Prometheus Operator CRDs)', () => {
  it('the API server accepts every rendered monitoring object (server-side dry run)', async () => {
    const docs = parseManifests(rendered);
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(
      [`ConfigMap/${RELEASE}-db-backup-controller-dashboard`, `PrometheusRule/${RELEASE}-db-backup-controller`, `ServiceMonitor/${RELEASE}-db-backup-controller`, `ServiceMonitor/${RELEASE}-db-backup-controller-runners`].sort(),
    );
    const out = await kube!.kubectlOk(['apply', '--dry-run=server', '-f', '-'], { input: rendered });
    expect(out.trim().split('\n').sort()).toEqual([
      `configmap/${RELEASE}-db-backup-controller-dashboard created (server dry run)`,
      `prometheusrule.monitoring.coreos.com/${RELEASE}-db-backup-controller created (server dry run)`,
      `servicemonitor.monitoring.coreos.com/${RELEASE}-db-backup-controller created (server dry run)`,
      `servicemonitor.monitoring.coreos.com/${RELEASE}-db-backup-controller-runners created (server dry run)`,
    ]);
    // A dry run stores nothing.
    expect((await kube!.kubectlOk(['get', 'servicemonitors,prometheusrules', '-n', NAMESPACE, '-o', 'name'])).trim()).toBe('');
  });

  it('the stubs check something: a rule without expr, a non-string label and a ServiceMonitor without selector are refused', async () => {
    const docs = parseManifests(rendered);
    const rule = structuredClone(docs.find((d) => d.kind === 'PrometheusRule')!);
    const first = (rule.spec as { groups: { rules: Record<string, unknown>[] }[] }).groups[0]!.rules;
    delete first[0]!.expr;
    first[2]!.labels = { severity: 3 };
    const refusedRule = await kube!.kubectl(['apply', '--dry-run=server', '--validate=false', '-f', '-'], { input: stringify(rule) });
    expect(refusedRule.code).not.toBe(0);
    expect(refusedRule.stderr).toMatch(/expr: Required value/);
    expect(refusedRule.stderr).toMatch(/labels\.severity: Invalid value: "integer"/);

    const monitor = structuredClone(docs.find((d) => d.kind === 'ServiceMonitor')!);
    delete (monitor.spec as { selector?: unknown }).selector;
    const refusedMonitor = await kube!.kubectl(['apply', '--dry-run=server', '--validate=false', '-f', '-'], { input: stringify(monitor) });
    expect(refusedMonitor.code).not.toBe(0);
    expect(refusedMonitor.stderr).toMatch(/spec\.selector: Required value/);
  });
});
