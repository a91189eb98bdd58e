/**
 * The Helm chart as the tests render it: one case per values file under
 * test/chart-values/, each with its release name and namespace, and the
 * rendered manifests as objects.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { CHART_DIR, helmTemplate, type TemplateOptions } from '../testenv/helm.js';

export const VALUES_DIR = join(import.meta.dirname, 'chart-values');

export interface ChartCase {
  /** test/chart-values/<name>.yaml */
  name: string;
  release: string;
  namespace: string;
}

export const CHART_CASES: ChartCase[] = [
  { name: 'defaults', release: 'db-backup-controller', namespace: 'db-backup-controller' },
  { name: 'ha', release: 'db-backup-controller', namespace: 'db-backup-controller' },
  { name: 'minimal', release: 'db-backup-controller', namespace: 'db-backup-controller' },
  // Another release name: every object is called backups-db-backup-controller.
  { name: 'custom', release: 'backups', namespace: 'platform' },
];

export const valuesFile = (c: ChartCase): string => join(VALUES_DIR, `${c.name}.yaml`);

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered Kubernetes objects, checked field by field by the tests */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: any;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

/** `helm template` of one case (plus more values or another kube version), as objects. */
export async function renderCase(c: ChartCase, extra: Pick<TemplateOptions, 'values' | 'set' | 'kubeVersion'> = {}): Promise<Manifest[]> {
  return parseManifests(await helmTemplate({ release: c.release, namespace: c.namespace, valuesFiles: [valuesFile(c)], ...extra }));
}

export function only(docs: Manifest[], kind: string): Manifest {
  const found = docs.filter((d) => d.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, rendered ${found.length}`);
  return found[0]!;
}

/** The controller's settings file from the rendered ConfigMap, as YAML text. */
export const settingsText = (docs: Manifest[]): string => (only(docs, 'ConfigMap').data as Record<string, string>)['config.yaml']!;

export const chartValues = (): Record<string, unknown> => parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
