/**
 * What scripts/check-images.ts reads: images/matrix.json, the chart's values and Chart.yaml, package.json and
 * its lock file, the Dockerfiles, .dockerignore, the image plan and the sources, as one object the unit test can
 * change one piece of at a time.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { TOOLS, type ToolImage } from '../tools/index.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The build argument that selects the client tools' version, per engine. */
export const ENGINE_ARG: Record<string, string> = { postgresql: 'PG_MAJOR', mysql: 'MARIADB_VERSION' };

export interface MatrixImage {
  name: string;
  dockerfile: string;
  repository: string;
  engine?: string;
  engineVersion?: string;
  /** A shipped tool's runner (tools/<tool>/, images/runner-tool.Dockerfile). */
  tool?: string;
  buildArgs?: Record<string, string>;
}
export interface Matrix {
  registry: string;
  source: string;
  platforms: string[];
  chart: { path: string; repository: string };
  images: MatrixImage[];
}
export interface PlanEntry {
  name: string;
  dockerfile: string;
  ref: string;
}
export interface LockPackage {
  dev?: boolean;
  hasInstallScript?: boolean;
  os?: string[];
  cpu?: string[];
}

export interface CheckInputs {
  matrix: Matrix;
  /** charts/<chart>/values.yaml, parsed. */
  values: unknown;
  /** charts/<chart>/Chart.yaml as text (read with patterns: the checks need two fields). */
  chartYaml: string;
  packageJson: { bin: Record<string, string>; dependencies: Record<string, string> };
  lockPackages: Record<string, LockPackage>;
  /** The shipped tools (tools/index.ts) and the image each wants, if any. */
  tools: Record<string, ToolImage | undefined>;
  /** Every images/*.Dockerfile: repository path -> text. */
  dockerfiles: Map<string, string>;
  dockerignore: string;
  /** scripts/image-plan.mjs's images for this version (default registry). */
  plan: (version: string) => PlanEntry[];
  /** A repository file's text, undefined when there is none. */
  readSource: (path: string) => string | undefined;
  /** The TypeScript sources under a repository directory, tests left out (as tsconfig.build.json does). */
  listSources: (dir: string) => string[];
}

export function loadInputs(root = ROOT): CheckInputs {
  const read = (p: string) => readFileSync(join(root, p), 'utf8');
  const matrix = JSON.parse(read('images/matrix.json')) as Matrix;
  const plans: Record<string, string> = {};
  const dockerfiles = new Map(
    readdirSync(join(root, 'images'))
      .filter((f) => f.endsWith('.Dockerfile'))
      .map((f) => [`images/${f}`, read(`images/${f}`)] as const),
  );
  return {
    matrix,
    values: YAML.parse(read(`${matrix.chart.path}/values.yaml`)),
    chartYaml: read(`${matrix.chart.path}/Chart.yaml`),
    packageJson: JSON.parse(read('package.json')) as CheckInputs['packageJson'],
    lockPackages: (JSON.parse(read('package-lock.json')) as { packages: Record<string, LockPackage> }).packages,
    tools: Object.fromEntries(Object.entries(TOOLS).map(([name, t]) => [name, t.image])),
    dockerfiles,
    dockerignore: read('.dockerignore'),
    plan: (version) => {
      const lines = (plans[version] ??= execFileSync(process.execPath, [join(root, 'scripts/image-plan.mjs'), '--version', version], { encoding: 'utf8' }));
      return lines
        .trim()
        .split('\n')
        .map((line) => {
          const [name = '', dockerfile = '', ref = ''] = line.split('\t');
          return { name, dockerfile, ref };
        });
    },
    readSource: (p) => (existsSync(join(root, p)) ? read(p) : undefined),
    listSources: (dir) =>
      existsSync(join(root, dir)) && statSync(join(root, dir)).isDirectory()
        ? readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
            .map((f) => `${dir}/${f.split(sep).join('/')}`)
            .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
            .sort()
        : [],
  };
}

export type EngineValues = { versions: string[]; defaultVersion: string };

/** The parts of values.yaml the images depend on: image names, per engine versions and default, the shipped engines. */
export function chartValues(values: unknown) {
  const v = values as {
    image?: { registry?: string; repository?: string; tag?: string };
    runner?: { image?: { registry?: string; repositoryPrefix?: string; tag?: string } } & Record<string, unknown>;
    engines?: Record<string, { enabled?: boolean }>;
  };
  const engines = new Map<string, EngineValues>();
  for (const [key, value] of Object.entries(v.runner ?? {})) {
    const e = value as Partial<EngineValues> | undefined;
    if (e && Array.isArray(e.versions)) engines.set(key, { versions: e.versions.map(String), defaultVersion: String(e.defaultVersion) });
  }
  return { image: v.image ?? {}, runnerImage: v.runner?.image ?? {}, engines, shippedEngines: v.engines ?? {} };
}

