/**
 * The minikube test environment (testenv/minikube/) as its tests see it: the
 * manifests rendered by render.sh, the names lib.sh defines, and the scripts
 * run with bash. Nothing here needs minikube.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { RenderSettings } from '../controller/render/objects.js';
import { exec, type ExecResult } from '../testenv/exec.js';

export const ROOT = join(import.meta.dirname, '..');
export const MINIKUBE_DIR = join(ROOT, 'testenv', 'minikube');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** Runs a bash script in the repository root; never throws on a non-zero exit. */
export function bash(script: string, env: Record<string, string> = {}, input?: string): Promise<ExecResult> {
  return exec('bash', ['-c', `cd '${ROOT}' && ${script}`], { env: { ...process.env, ...env }, input, timeoutMs: 60_000 });
}

/** Runs a testenv/minikube script with extra environment. */
export function runScript(name: string, env: Record<string, string> = {}, args: string[] = []): Promise<ExecResult> {
  return exec('bash', [join(MINIKUBE_DIR, name), ...args], { env: { ...process.env, ...env }, timeoutMs: 60_000 });
}

/** render.sh's YAML stream (every manifest, ConfigMap included, or the named files) and its objects. */
export async function renderManifests(env: Record<string, string> = {}, files: string[] = []): Promise<{ yaml: string; objects: K8sObject[] }> {
  const r = await runScript('render.sh', env, files);
  if (r.code !== 0) throw new Error(`render.sh failed (exit ${r.code}): ${r.stderr}`);
  const objects = parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
  return { yaml: r.stdout, objects };
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in the rendered manifests (have: ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return o;
}

export const LIB_NAMES = [
  'TESTENV_NAMESPACE',
  'CONTROLLER_NAMESPACE',
  'BACKUP_NAME',
  'MARIADB_BACKUP_NAME',
  'PITR_BACKUP_NAME',
  'STORAGE_CLASS',
  'CONTROLLER_SECRET',
  'SEED_DATABASE',
  'META_DATABASE',
  'SEED_JOB',
  'MARIADB_SEED_JOB',
  'BUCKET_JOB',
  'RUNNER_SELECTOR',
  'MARIADB_RUNNER_SELECTOR',
  'PITR_RUNNER_SELECTOR',
  'RUNNERS_SELECTOR',
  'RUNNER_CONTAINER',
  'POSTGRES_SELECTOR',
  'POSTGRES_CONTAINER',
  'POSTGRES_STATEFULSET',
  'POSTGRES_UID',
  'MARIADB_SELECTOR',
  'MARIADB_CONTAINER',
] as const;

/** The names lib.sh defines, read by sourcing it. */
export async function libNames(): Promise<Record<(typeof LIB_NAMES)[number], string>> {
  const r = await bash(`. testenv/minikube/lib.sh && for n in ${LIB_NAMES.join(' ')}; do printf '%s=%s\\n' "$n" "\${!n}"; done`);
  if (r.code !== 0) throw new Error(`sourcing lib.sh failed: ${r.stderr}`);
  return Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) as Record<(typeof LIB_NAMES)[number], string>;
}

/** `a=b,c=d` -> { a: 'b', c: 'd' } */
export function parseSelector(selector: string): Record<string, string> {
  return Object.fromEntries(selector.split(',').map((kv) => kv.split('=') as [string, string]));
}

interface EngineValues {
  versions: string[];
  defaultVersion: string;
}
export const localValues = () => parse(readFileSync(join(MINIKUBE_DIR, 'values-local.yaml'), 'utf8')) as { runner: { postgresql: EngineValues; mysql: EngineValues } };

/** The controller's settings as values-local.yaml and deploy-local.sh make them (controller/settings.ts shape). */
export function localSettings(): RenderSettings {
  const { runner } = localValues();
  const images = (e: EngineValues, repository: string) => ({
    defaultVersion: e.defaultVersion,
    images: Object.fromEntries(e.versions.map((v) => [v, `localhost/db-backup-controller/${repository}:${v}-dev`])),
  });
  return {
    controllerNamespace: 'db-backup-controller',
    runnerImages: {
      postgresql: images(runner.postgresql, 'backup-runner-postgresql'),
      mysql: images(runner.mysql, 'backup-runner-mysql'),
    },
    imagePullPolicy: 'IfNotPresent',
    runnerResources: { requests: { cpu: '100m', memory: '192Mi' }, limits: { memory: '1Gi' } },
    runnerUser: 65532,
  };
}
