/**
 * The chart's monitoring objects (templates/monitoring/), rendered by helm:
 * the ServiceMonitors select the controller's metrics Service and the Service
 * the controller renders for each runner, by labels and port name; every
 * PromQL expression of the PrometheusRule and of the Grafana dashboard names
 * only metrics the runner and the controller register (or `up`, or a series
 * the rule records); every alert says how bad it is and what to check.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { validateDatabaseBackup, validateStorageClass } from '../../api/crds/index.js';
import { createControllerMetrics } from '../../controller/metrics.js';
import { LABEL_NAME } from '../../controller/names.js';
import { renderRunner } from '../../controller/render/objects.js';
import { RunnerMetrics } from '../../runner/daemon/metrics.js';
import { CHART_DIR, helm, helmBinary, templateArgs } from '../../testenv/helm.js';
import { parseManifests, type Manifest } from '../chart-fixtures.js';
import { classSecrets, renderSettings } from '../controller-fixtures.js';
import { validBackup, validStorageClass } from '../crd-fixtures.js';

const RELEASE = 'backups';
const NAMESPACE = 'platform';
const ENABLE_ALL = ['monitoring.serviceMonitor.enabled=true', 'monitoring.prometheusRule.enabled=true', 'monitoring.grafanaDashboard.enabled=true'];
const DASHBOARD_FILE = join(CHART_DIR, 'dashboards', 'db-backup.json');

/** `helm template` of the chart (optionally only some templates) as objects; throws with helm's message. */
async function render(set: string[], showOnly: string[] = []): Promise<Manifest[]> {
  const args = [...templateArgs({ release: RELEASE, namespace: NAMESPACE, set }), ...showOnly.flatMap((t) => ['--show-only', `templates/monitoring/${t}`])];
  const r = await helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return parseManifests(r.stdout);
}

/** Metric and recorded series names a PromQL expression reads (not functions, keywords, labels or Grafana variables). */
function metricNames(expr: string): string[] {
  const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  return [...stripped.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*(?!\s*\(|[\w:])/g)].map((m) => m[0]).filter((n) => !KEYWORDS.has(n.toLowerCase()));
}

/** Every series name the runner and the controller export (histograms as _bucket, _sum, _count), and `up`. */
async function exportedNames(): Promise<Set<string>> {
  const runner = new RunnerMetrics({ namespace: 'shop', name: 'orders' });
  const controller = createControllerMetrics();
  const names = new Set(['up']);
  for (const m of [...(await runner.registry.getMetricsAsJSON()), ...(await controller.registry.getMetricsAsJSON())]) {
    const type = String(m.type);
    const suffixes = type === 'histogram' ? ['_bucket', '_sum', '_count'] : type === 'summary' ? ['', '_sum', '_count'] : [''];
    for (const s of suffixes) names.add(`${m.name}${s}`);
  }
  return names;
}

interface MonitorSpec {
  jobLabel: string;
  namespaceSelector: { any?: boolean; matchNames?: string[] };
  selector: { matchLabels: Record<string, string> };
  endpoints: { port: string; path: string; interval: string }[];
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface RuleSpec {
  groups: { name: string; rules: Rule[] }[];
}

const monitorSpec = (d: Manifest): MonitorSpec => d.spec as MonitorSpec;
const ruleSpec = (d: Manifest): RuleSpec => d.spec as RuleSpec;

const selects = (selector: Record<string, string>, labels: Record<string, string> | undefined): boolean =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

let exported: Set<string>;
let all: Manifest[];
const monitors = () => all.filter((d) => d.kind === 'ServiceMonitor');
const ruleObject = () => all.find((d) => d.kind === 'PrometheusRule')!;
const rules = (): Rule[] => ruleSpec(ruleObject()).groups.flatMap((g) => g.rules);
const alerts = () => rules().filter((r) => r.alert);

beforeAll(async () => {
  helmBinary(); // fails with the `npm ci` hint when helm is missing
  exported = await exportedNames();
  all = await render([...ENABLE_ALL, 'monitoring.serviceMonitor.labels.release=prometheus', 'monitoring.prometheusRule.labels.release=prometheus']);
});

describe('metricNames', () => {
  it('finds the series an expression reads and nothing else', () => {
    expect(metricNames('sum by (namespace, le) (rate(a_total{x="b c", y=~"$namespace"}[$__rate_interval])) > on (namespace) group_left () b:rec and c unless 2 * 1.5e3')).toEqual(['a_total', 'b:rec', 'c']);
    expect(metricNames('absent(up{job="x"} == 1) or vector(0)')).toEqual(['up']);
  });
});

describe('chart monitoring: off by default', () => {
  it('renders no monitoring object with the default values', async () => {
    const docs = parseManifests((await helm(templateArgs({ release: RELEASE, namespace: NAMESPACE }))).stdout);
    expect(docs.length).toBeGreaterThan(0);
    expect(docs.filter((d) => d.kind === 'ServiceMonitor' || d.kind === 'PrometheusRule' || d.metadata.labels?.['app.kubernetes.io/component'] === 'monitoring')).toEqual([]);
  });
});

describe('chart monitoring: ServiceMonitors', () => {
  it('the controller ServiceMonitor selects exactly the chart metrics Service in the release namespace, by its port name', () => {
    const sm = monitors().map(monitorSpec).find((m) => m.namespaceSelector.matchNames)!;
    expect(sm.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
    const selector = sm.selector.matchLabels;
    expect(selector).toMatchObject({ 'app.kubernetes.io/name': 'db-backup-controller', 'app.kubernetes.io/instance': RELEASE });
    const services = all.filter((d) => d.kind === 'Service' && selects(selector, d.metadata.labels));
    expect(services.map((s) => s.metadata.name)).toHaveLength(1);
    const service = services[0]!;
    expect(service.metadata.namespace).toBe(NAMESPACE);
    const ports = (service.spec as { ports: { name: string }[] }).ports.map((p) => p.name);
    expect(sm.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s' }]);
    expect(ports).toContain('metrics');
    // The job label comes from this Service label; the controller's alerts select it.
    expect(sm.jobLabel).toBe(LABEL_NAME);
    const job = service.metadata.labels![LABEL_NAME]!;
    expect(alerts().filter((a) => a.expr.includes('up{')).some((a) => a.expr.includes(`up{job="${job}"`))).toBe(true);
  });

  it('the runners ServiceMonitor selects, in every namespace, the metrics Service the controller renders for a runner', () => {
    const sm = monitors().map(monitorSpec).find((m) => m.namespaceSelector.any)!;
    expect(sm.namespaceSelector).toEqual({ any: true });
    const storageClass = validateStorageClass(validStorageClass());
    if (!storageClass.ok) throw new Error('fixture invalid');
    const backup = validateDatabaseBackup(validBackup(), { storageClass: storageClass.value });
    if (!backup.ok) throw new Error('fixture invalid');
    const secrets = classSecrets();
    const r = renderRunner({ backup: backup.value, storageClass: storageClass.value, secrets: (n) => secrets[n], settings: renderSettings() });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const service = r.value.objects.service;
    expect(selects(sm.selector.matchLabels, service.metadata?.labels)).toBe(true);
    expect(sm.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'backup-runner', 'app.kubernetes.io/managed-by': 'db-backup-controller' });
    expect(service.spec?.ports?.map((p) => p.name)).toContain(sm.endpoints[0]!.port);
    expect(sm.jobLabel).toBe(LABEL_NAME);
    const job = service.metadata!.labels![LABEL_NAME]!;
    expect(alerts().some((a) => a.expr.includes(`up{job="${job}"}`))).toBe(true);
  });

  it('take the interval and extra labels from the values, in the release namespace', async () => {
    const docs = await render(['monitoring.serviceMonitor.enabled=true', 'monitoring.serviceMonitor.interval=1m', 'monitoring.serviceMonitor.labels.team=dba'], ['servicemonitors.yaml']);
    expect(docs.map((d) => d.kind)).toEqual(['ServiceMonitor', 'ServiceMonitor']);
    for (const d of docs) {
      expect(d.metadata.namespace).toBe(NAMESPACE);
      expect(d.metadata.labels).toMatchObject({ team: 'dba', 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'monitoring' });
      expect(monitorSpec(d).endpoints.map((e) => e.interval)).toEqual(['1m']);
    }
    expect(new Set(docs.map((d) => d.metadata.name)).size).toBe(2);
    for (const d of monitors()) expect(d.metadata.labels).toMatchObject({ release: 'prometheus' });
  });
});

describe('chart monitoring: PrometheusRule', () => {
  it('every expression reads only metrics the runner or the controller export, or series the rule records', () => {
    const recorded = new Set(rules().flatMap((r) => (r.record ? [r.record] : [])));
    expect(recorded.size).toBeGreaterThan(0);
    for (const r of rules()) {
      const names = metricNames(r.expr);
      expect(names.length, `${r.alert ?? r.record}: ${r.expr}`).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n) || recorded.has(n), `${r.alert ?? r.record} reads ${n}, which nothing exports`).toBe(true);
    }
  });

  it('alerts on what matters to people who trust backups', () => {
    const names = alerts().map((a) => a.alert);
    expect(new Set(names).size).toBe(names.length);
    const reading = (metric: string) => alerts().filter((a) => metricNames(a.expr).includes(metric) || a.expr.includes(metric)).map((a) => a.alert);
    // Too old: the newest success against the schedule, through the recorded age and threshold.
    const age = rules().find((r) => r.record === 'dbbackup:last_success_age_seconds')!;
    expect(metricNames(age.expr)).toContain('backup_runner_last_success_timestamp_seconds');
    const threshold = rules().find((r) => r.record === 'dbbackup:stale_after_seconds')!;
    expect(metricNames(threshold.expr)).toEqual(expect.arrayContaining(['backup_runner_schedule_interval_seconds', 'backup_runner_schedule_max_gap_seconds', 'backup_runner_next_run_timestamp_seconds']));
    expect(reading('dbbackup:stale_after_seconds')).toEqual(expect.arrayContaining(['DatabaseBackupTooOld', 'DatabaseBackupLocationTooOld']));
    expect(reading('backup_runner_consecutive_failed_backups')).toEqual(['DatabaseBackupFailing']);
    expect(reading('backup_runner_location_failing')).toEqual(['DatabaseBackupLocationFailing']);
    expect(reading('backup_runner_retention_failing')).toEqual(['DatabaseBackupRetentionFailing']);
    expect(reading('backup_runner_location_backups_behind')).toEqual(['DatabaseBackupLocationBehind']);
    expect(reading('backup_runner_status_report_errors_total')).toEqual(['DatabaseBackupStatusReportsFailing']);
    expect(reading('dbbackup_controller_is_leader')).toEqual(['DatabaseBackupControllerNotLeading']);
    expect(reading('dbbackup_controller_reconcile_total')).toEqual(['DatabaseBackupControllerReconcileErrors']);
    expect(reading('dbbackup_controller_managed_backups')).toEqual(['DatabaseBackupsWithoutRunner']);
    expect(reading('dbbackup_controller_backup_ready')).toEqual(['DatabaseBackupNotReady']);
    expect(names).toEqual(expect.arrayContaining(['DatabaseBackupRunnerDown', 'DatabaseBackupControllerDown']));
  });

  it('every alert has a severity, a summary and a description that says what to check', () => {
    for (const a of alerts()) {
      expect(['critical', 'warning'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toMatch(/kubectl (describe|get|logs|exec) /);
      expect(a.annotations?.runbook_url, a.alert).toMatch(new RegExp(`docs/monitoring\\.md#${a.alert!.toLowerCase()}$`));
    }
    // Helm left the Prometheus templates alone: the runner alerts name the DatabaseBackup's namespace.
    const runnerGroup = ruleSpec(ruleObject()).groups.find((g) => g.name === 'db-backup-runner')!;
    for (const a of runnerGroup.rules.filter((r) => r.alert)) expect(a.annotations!.description, a.alert).toContain('-n {{ $labels.namespace }}');
    // Each alert is explained in docs/monitoring.md under its own heading.
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'monitoring.md'), 'utf8');
    for (const a of alerts()) expect(doc, a.alert).toContain(`### ${a.alert}`);
  });

  it('the controller alerts select the release namespace', () => {
    for (const a of alerts().filter((x) => x.alert!.startsWith('DatabaseBackupController') || ['DatabaseBackupsWithoutRunner', 'DatabaseBackupNotReady'].includes(x.alert!))) {
      expect(a.expr, a.alert).toContain(`namespace="${NAMESPACE}"`);
    }
    expect(ruleObject().metadata).toMatchObject({ namespace: NAMESPACE, labels: { release: 'prometheus' } });
  });

  it('staleFactor and cronGrace set the threshold; a duration that is none is refused', async () => {
    const threshold = async (set: string[]) => {
      const docs = await render(['monitoring.prometheusRule.enabled=true', ...set], ['prometheusrule.yaml']);
      return ruleSpec(docs[0]!).groups.flatMap((g) => g.rules).find((r) => r.record === 'dbbackup:stale_after_seconds')!.expr;
    };
    const defaults = await threshold([]);
    expect(defaults).toMatch(/\(backup_runner_schedule_interval_seconds > 0\) \* 1\.5\n/);
    expect(defaults).toContain('(backup_runner_schedule_max_gap_seconds > 0) + 7200\n');
    const custom = await threshold(['monitoring.prometheusRule.staleFactor=2', 'monitoring.prometheusRule.cronGrace=1w1d12h30m15s']);
    expect(custom).toMatch(/\(backup_runner_schedule_interval_seconds > 0\) \* 2\n/);
    expect(custom).toContain(`(backup_runner_schedule_max_gap_seconds > 0) + ${8 * 86400 + 12 * 3600 + 30 * 60 + 15}\n`);
    await expect(threshold(['monitoring.prometheusRule.cronGrace=1.5h'])).rejects.toThrow(/cronGrace/);
  });
});

describe('chart monitoring: Grafana dashboard', () => {
  interface Panel {
    id: number;
    type: string;
    title: string;
    datasource?: { uid: string };
    targets?: { expr: string }[];
  }
  const dashboard = () => JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { uid: string; title: string; panels: Panel[]; templating: { list: { name: string; type: string; query: unknown }[] } };

  it('is the dashboard file, in a ConfigMap with the sidecar label from the values', async () => {
    const cm = all.find((d) => d.kind === 'ConfigMap' && d.metadata.labels?.['app.kubernetes.io/component'] === 'monitoring')!;
    expect(cm.metadata).toMatchObject({ namespace: NAMESPACE, labels: { grafana_dashboard: '1' } });
    expect((cm.data as Record<string, string>)['db-backup.json']).toBe(readFileSync(DASHBOARD_FILE, 'utf8').trimEnd());
    const other = await render(['monitoring.grafanaDashboard.enabled=true', 'monitoring.grafanaDashboard.labels.grafana_dashboard=null', 'monitoring.grafanaDashboard.labels.dashboards=backups'], ['grafana-dashboard.yaml']);
    expect(other[0]!.metadata.labels).toMatchObject({ dashboards: 'backups' });
    expect(other[0]!.metadata.labels).not.toHaveProperty('grafana_dashboard');
  });

  it('is valid JSON with unique panel ids, and every panel reads from the chosen Prometheus', () => {
    const d = dashboard();
    expect(d.uid).toBe('db-backup-controller');
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of d.panels.filter((x) => x.type !== 'row')) expect(p.datasource?.uid, p.title).toBe('${datasource}');
    expect(d.templating.list.map((v) => v.name)).toEqual(['datasource', 'namespace', 'databasebackup']);
  });

  it('every query reads only metrics the runner or the controller export', () => {
    const d = dashboard();
    const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThan(20);
    for (const { title, expr } of exprs) {
      const names = metricNames(expr);
      expect(names.length, `${title}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n), `${title} reads ${n}, which nothing exports`).toBe(true);
    }
    for (const v of d.templating.list.filter((x) => x.type === 'query')) {
      const query = (v.query as { query: string }).query;
      const metric = /^label_values\(([a-zA-Z_:][\w:]*)/.exec(query)?.[1];
      expect(metric && exported.has(metric), `variable ${v.name}: ${query}`).toBe(true);
    }
  });

  it('shows last success, duration, size, locations, retention and the controller', () => {
    const read = new Set(dashboard().panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr))));
    for (const m of [
      'backup_runner_last_success_timestamp_seconds',
      'backup_runner_backup_duration_seconds_sum',
      'backup_runner_last_backup_bytes',
      'backup_runner_location_failing',
      'backup_runner_retention_removed_total',
      'dbbackup_controller_reconcile_total',
      'dbbackup_controller_queue_depth',
    ]) {
      expect(read, m).toContain(m);
    }
  });
});
