/**
 * The two CustomResourceDefinitions (apiextensions.k8s.io/v1), rendered from
 * the TypeBox schemas. Pure: the same schemas always give the same YAML, which
 * is committed as Helm chart templates under
 * charts/db-backup-controller/templates/crds/ and checked in CI.
 *
 * Templates, not the chart's crds/ folder: Helm installs crds/ once and never
 * upgrades it, while templates are upgraded with every release. Each template
 * renders only when the value crds.install is true, and the CRDs carry
 * helm.sh/resource-policy: keep, so neither an uninstall nor turning
 * crds.install off deletes them (and with them every DatabaseBackup).
 */
import type { TSchema } from '@sinclair/typebox';
import { stringify } from 'yaml';
import { GROUP, VERSION } from './common.js';
import { DatabaseBackupSpec, DatabaseBackupStatus } from './database-backup.js';
import { EngineSpec, EngineStatus } from './engine.js';
import { StorageClassSpec, StorageClassStatus } from './storage-class.js';
import { convert, type JsonSchema } from './structural.js';

export const CRD_DIR = 'charts/db-backup-controller/templates/crds';

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

interface CrdInput {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  description: string;
  spec: TSchema;
  status: TSchema;
  columns: PrinterColumn[];
}

const READY: PrinterColumn = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' };
const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
/** The Ready condition's reason is the cause at a glance: the first condition that is not True says it. */
const REASON: PrinterColumn = {
  name: 'Reason',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  description: 'why it is or is not ready: the reason of the Ready condition (the first problem found)',
};
const MESSAGE: PrinterColumn = { name: 'Message', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].message', priority: 1 };

const CRDS: CrdInput[] = [
  {
    kind: 'DatabaseBackupStorageClass',
    plural: 'databasebackupstorageclasses',
    singular: 'databasebackupstorageclass',
    shortNames: ['dbbsc'],
    scope: 'Cluster',
    description: 'Where and how backups are stored: one or more locations (S3 or S3-compatible, Google Cloud Storage, a filesystem or PVC) with credentials from Secrets in the controller\'s namespace.',
    spec: StorageClassSpec,
    status: StorageClassStatus,
    columns: [READY, REASON, AGE, MESSAGE],
  },
  {
    kind: 'DatabaseBackup',
    plural: 'databasebackups',
    singular: 'databasebackup',
    shortNames: ['dbb'],
    scope: 'Namespaced',
    description: 'What to back up (engine and connection), when (cron or interval), how long to keep, and into which DatabaseBackupStorageClass. The controller runs one runner pod per DatabaseBackup, in its namespace.',
    spec: DatabaseBackupSpec,
    status: DatabaseBackupStatus,
    columns: [
      { name: 'Engine', type: 'string', jsonPath: '.spec.engine.type' },
      { name: 'Schedule', type: 'string', jsonPath: '.spec.schedule.cron', description: 'cron expression (read in spec.schedule.timeZone)' },
      { name: 'Interval', type: 'string', jsonPath: '.spec.schedule.interval', description: 'time between backups, when not on a cron schedule' },
      { name: 'Last Backup', type: 'string', jsonPath: '.status.lastBackup.status', description: 'result of the last backup: Running, Succeeded, PartiallySucceeded or Failed' },
      { name: 'Last Success', type: 'date', jsonPath: '.status.lastSuccessAt' },
      READY,
      REASON,
      AGE,
      { name: 'Class', type: 'string', jsonPath: '.spec.storageClassName', priority: 1 },
      // A string: kubectl prints a date column in the future as <invalid>.
      { name: 'Next Run', type: 'string', jsonPath: '.status.nextRunAt', description: 'next scheduled start (UTC)', priority: 1 },
      MESSAGE,
    ],
  },
  {
    kind: 'DatabaseBackupEngine',
    plural: 'databasebackupengines',
    singular: 'databasebackupengine',
    shortNames: ['dbbe'],
    scope: 'Cluster',
    description: 'An engine defined by a command (the tool contract): the runner image holding the tool, its command, dump formats and the JSON Schema of its config. Written by cluster administrators; a DatabaseBackup picks one with spec.engine.command.engineRef.',
    spec: EngineSpec,
    status: EngineStatus,
    columns: [
      { name: 'Image', type: 'string', jsonPath: '.spec.image' },
      READY,
      REASON,
      AGE,
      MESSAGE,
    ],
  },
];

export function crdObject(c: CrdInput): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${c.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/part-of': 'db-backup-controller' },
      annotations: { 'helm.sh/resource-policy': 'keep' },
    },
    spec: {
      group: GROUP,
      scope: c.scope,
      names: { kind: c.kind, listKind: `${c.kind}List`, plural: c.plural, singular: c.singular, shortNames: c.shortNames, categories: ['dbbackup'] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: c.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: c.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: convert(c.spec, 'spec'),
                status: convert(c.status, 'status'),
              },
            },
          },
        },
      ],
    },
  };
}

export interface RenderedCrd {
  /** Path of the chart template, relative to the repository root. */
  path: string;
  /** The CustomResourceDefinition alone, as `kubectl apply -f -` takes it. */
  yaml: string;
  /** The chart template (the committed file): the same YAML, rendered only when crds.install is true. */
  template: string;
}

const HEADER = '{{- /* Generated by `npx tsx scripts/generate.ts` from the schemas in api/crds/. Do not edit. */ -}}\n';

export function renderCrds(): RenderedCrd[] {
  return CRDS.map((c) => {
    const yaml = stringify(crdObject(c), { lineWidth: 0 });
    // Helm would read a description holding "{{" as template code.
    if (/\{\{|\}\}/.test(yaml)) throw new Error(`the ${c.kind} CRD holds "{{" or "}}", which Helm would read as template code: reword the schema description`);
    return {
      path: `${CRD_DIR}/${GROUP}_${c.plural}.yaml`,
      yaml,
      template: `${HEADER}{{- if .Values.crds.install }}\n${yaml}{{- end }}\n`,
    };
  });
}
