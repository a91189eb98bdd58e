/**
 * The container images without a Docker engine: the static checks of scripts/check-images.ts (and that each
 * one finds what it is meant to), the version mapping, the exact commands make images / make publish run
 * (DRY_RUN=1), their refusals, shellcheck on scripts/, and the workflow's use of the image plan.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { checkImages, dockerignore, loadInputs, ROOT, type CheckInputs } from '../../scripts/check-images.js';

const inputs = loadInputs();
const SCRIPTS = readdirSync(join(ROOT, 'scripts'))
  .filter((f) => f.endsWith('.sh'))
  .map((f) => `scripts/${f}`);

/** Runs a command in the repository with only PATH and HOME from this environment, plus `env`. */
function sh(command: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function withDockerfile(path: string, edit: (text: string) => string): CheckInputs {
  const text = inputs.dockerfiles.get(path)!;
  const changed = edit(text);
  expect(changed, `the edit of ${path} changed nothing`).not.toBe(text);
  return { ...inputs, dockerfiles: new Map([...inputs.dockerfiles, [path, changed]]) };
}

function withValues(edit: (v: { image: Record<string, string>; runner: Record<string, Record<string, unknown>> }) => void): CheckInputs {
  const values = structuredClone(inputs.values) as Parameters<typeof edit>[0];
  edit(values);
  return { ...inputs, values };
}

const PG = 'images/runner-postgresql.Dockerfile';
const MYSQL = 'images/runner-mysql.Dockerfile';
const CONTROLLER = 'images/controller.Dockerfile';
const TOOL = 'images/runner-tool.Dockerfile';
const withMatrixImage = (name: string, edit: (i: CheckInputs['matrix']['images'][number]) => object): CheckInputs => ({
  ...inputs,
  matrix: { ...inputs.matrix, images: inputs.matrix.images.map((i) => (i.name === name ? { ...i, ...edit(i) } : i)) },
});

describe('image matrix, chart, controller and Dockerfiles', { timeout: 30_000 }, () => {
  it('are consistent', () => {
    expect(checkImages(inputs)).toEqual([]);
  });

  it.each<[string, () => CheckInputs, string]>([
    ['the chart lists a version no image is built for', () => withValues((v) => (v.runner.postgresql!.versions as string[]).push('18')), 'runner.postgresql.versions has "18", but images/matrix.json builds no postgresql 18 runner'],
    ['the matrix builds a version the chart does not list', () => withValues((v) => (v.runner.postgresql!.versions = ['13', '14', '15', '16'])), 'builds postgresql 17, but values.yaml runner.postgresql.versions does not list it'],
    ['the default version is not a listed one', () => withValues((v) => (v.runner.postgresql!.defaultVersion = '12')), 'runner.postgresql.defaultVersion "12" is not in runner.postgresql.versions'],
    ['the chart names runner images the matrix does not build', () => withValues((v) => ((v.runner.image as Record<string, string>).repositoryPrefix = 'db-backup-controller/runner')), 'which images/matrix.json does not build'],
    ['the chart pins an image tag', () => withValues((v) => (v.image.tag = '1.0.0')), 'pins the controller\'s tag'],
    ['a matrix entry builds another version than it says', () => ({ ...inputs, matrix: { ...inputs.matrix, images: inputs.matrix.images.map((i) => (i.name === 'runner-postgresql-15' ? { ...i, buildArgs: { PG_MAJOR: '14' } } : i)) } }), 'buildArgs must be { "PG_MAJOR": "15" }'],
    ['the final stage runs as root', () => withDockerfile(PG, (t) => t.replace('USER 65532:65532', 'USER root')), 'USER root in the final stage'],
    ['the final stage sets no user', () => withDockerfile(CONTROLLER, (t) => t.replace('USER 65532:65532\n', '')), 'the final stage sets no USER (65532:65532 expected)'],
    ['the final stage runs a command before USER', () => withDockerfile(MYSQL, (t) => t.replace(/(\nWORKDIR \/app\n)(?![\s\S]*\nWORKDIR \/app\n)/, '$1RUN mkdir -p /app/cache\n')), 'in the final stage before USER 65532 runs as root'],
    ['the PG_MAJOR default is not the chart\'s default version', () => withDockerfile(PG, (t) => t.replace('ARG PG_MAJOR=16', 'ARG PG_MAJOR=15')), 'ARG PG_MAJOR defaults to "15", not the chart\'s runner.postgresql.defaultVersion "16"'],
    ['the client package is left out', () => withDockerfile(PG, (t) => t.replace('"postgresql-client-${PG_MAJOR}" ', '')), 'apt-get install of postgresql-client-${PG_MAJOR} missing'],
    ['the server package (restore --start) is left out', () => withDockerfile(PG, (t) => t.replace(' "postgresql-${PG_MAJOR}"', '')), 'apt-get install of postgresql-${PG_MAJOR} missing'],
    ['the server package would create a cluster', () => withDockerfile(PG, (t) => t.split('\n').filter((l) => !l.includes('create_main_cluster')).join('\n')), 'installed without create_main_cluster = false'],
    ['zstd is not installed', () => withDockerfile(MYSQL, (t) => t.replace('mariadb-client zstd;', 'mariadb-client;')), 'apt-get install of zstd missing'],
    ['the tools of another version come first on PATH', () => withDockerfile(PG, (t) => t.replace('ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH}"', 'ENV PATH="${PATH}"')), 'ENV PATH must start with /usr/lib/postgresql/${PG_MAJOR}/bin'],
    ['HOME is on the read-only root filesystem', () => withDockerfile(PG, (t) => t.replace('HOME=/tmp', 'HOME=/home/nonroot')), 'ENV HOME=/tmp missing'],
    ['a HEALTHCHECK is added', () => withDockerfile(CONTROLLER, (t) => `${t}HEALTHCHECK CMD ["/nodejs/bin/node", "-e", "1"]\n`), 'HEALTHCHECK: Kubernetes probes check health'],
    ['the entry point is not the package\'s bin', () => withDockerfile(CONTROLLER, (t) => t.replace('"/app/dist/controller/bin.js"', '"/app/dist/controller/main.js"')), 'ENTRYPOINT must be ["<node>", "/app/dist/controller/bin.js"]'],
    ['the image lacks a directory its entry point imports', () => withDockerfile(CONTROLLER, (t) => t.replace('COPY --from=build /src/dist/api dist/api\n', '')), 'outside what the image copies, dist/{controller}'],
    ['the build stage lacks the sources of a copied directory', () => withDockerfile(PG, (t) => t.replace('COPY api api\n', '')), 'dist/api is copied, but its sources api/ are not copied into the build stage'],
    ['package.json is not copied', () => withDockerfile(MYSQL, (t) => t.replace('COPY --from=build /src/package.json package.json\n', '')), 'does not copy package.json'],
    ['node_modules come with dev dependencies', () => withDockerfile(CONTROLLER, (t) => t.replace('npm ci --omit=dev --ignore-scripts', 'npm ci --ignore-scripts')), 'npm ci --omit=dev --ignore-scripts'],
    ['the OCI revision label is missing', () => withDockerfile(PG, (t) => t.replace('org.opencontainers.image.revision="${REVISION}"', 'org.opencontainers.image.created="now"')), 'LABEL org.opencontainers.image.revision="${REVISION}" missing'],
    ['the MariaDB server package is installed', () => withDockerfile(MYSQL, (t) => t.replace('mariadb-client zstd;', 'mariadb-client mariadb-server zstd;')), 'installs the MariaDB/MySQL server (mariadb-server)'],
    ['.dockerignore keeps a source directory out', () => ({ ...inputs, dockerignore: inputs.dockerignore.replace('!runner\n', '') }), 'that .dockerignore keeps out of the build context'],
    ['a compiled source imports a file the build stage does not get', () => ({ ...inputs, readSource: (p: string) => (p === 'runner/util/async.ts' ? `import '../../testenv/net.js';\n${inputs.readSource(p)}` : inputs.readSource(p)) }), 'the build stage compiles api/, runner/, tools/, which import 1 file(s) (testenv/net.ts) it does not copy'],
    ['a run-time import is a dev dependency', () => ({ ...inputs, packageJson: { ...inputs.packageJson, dependencies: Object.fromEntries(Object.entries(inputs.packageJson.dependencies).filter(([k]) => k !== 'yaml')) } }), 'imports yaml, which is not in package.json dependencies'],
    ['a tool\'s image installs other packages than the tool names', () => withMatrixImage('runner-redis', () => ({ buildArgs: { TOOL: 'redis', TOOL_PACKAGES: 'redis-tools' } })), 'runner-redis: buildArgs must be {"TOOL":"redis","TOOL_PACKAGES":"redis-server redis-tools"}'],
    ['a tool asks for an image the matrix does not build', () => ({ ...inputs, matrix: { ...inputs.matrix, images: inputs.matrix.images.filter((i) => i.name !== 'runner-etcd') } }), '0 images for tool etcd; exactly one expected'],
    ['the matrix builds an image for a tool without one', () => ({ ...inputs, tools: { ...inputs.tools, etcd: undefined } }), 'runner-etcd: tool "etcd" has no image in tools/index.ts'],
    ['the chart installs an engine no tool ships', () => withValues((v) => ((v as unknown as { engines: Record<string, unknown> }).engines.mongodb = { enabled: true })), 'values.yaml: engines.mongodb: no tool of that name ships an image'],
    ['the chart does not offer a tool\'s engine', () => withValues((v) => delete (v as unknown as { engines: Record<string, unknown> }).engines.redis), 'values.yaml: engines.redis missing'],
    ['a tool\'s image is not built under the name the chart gives it', () => ({ ...inputs, plan: (v: string) => inputs.plan(v).map((p) => (p.name === 'runner-redis' ? { ...p, ref: p.ref.replace('backup-runner-redis', 'redis-runner') } : p)) }), 'engines.redis runs in ghcr.io/db-backup-controller/backup-runner-redis:1.2.3, which images/matrix.json does not build'],
    ['the tool image does not install the tool\'s packages', () => withDockerfile(TOOL, (t) => t.replace('ca-certificates zstd ${TOOL_PACKAGES};', 'ca-certificates zstd;')), 'apt-get install of ${TOOL_PACKAGES} missing'],
    ['the tool image defaults to one tool', () => withDockerfile(TOOL, (t) => t.replace('ARG TOOL\n# An unknown', 'ARG TOOL=redis\n# An unknown')), 'ARG TOOL has a default'],
    ['the tool image does not say its tool', () => withDockerfile(TOOL, (t) => t.replace('io.dbbackup.runner.tool="${TOOL}"', 'io.dbbackup.runner.tool="redis"')), 'LABEL io.dbbackup.runner.tool="${TOOL}" missing'],
    ['the tool image keeps HOME on the read-only root', () => withDockerfile(TOOL, (t) => t.replace('HOME=/tmp', 'HOME=/app')), 'images/runner-tool.Dockerfile: ENV HOME=/tmp missing'],
    ['a production package needs its install script', () => ({ ...inputs, lockPackages: { ...inputs.lockPackages, 'node_modules/yaml': { hasInstallScript: true } } }), 'node_modules/yaml has an install script'],
  ])('finds it when %s', (_, broken, message) => {
    expect(checkImages(broken()).join('\n')).toContain(message);
  });

  it('reads .dockerignore like docker: last match wins, a directory covers its files', () => {
    const ignored = dockerignore('*\n!api\n!package.json\n**/*.test.ts\n');
    expect(['api/index.ts', 'api/crds/common.ts', 'package.json'].map(ignored)).toEqual([false, false, false]);
    expect(['runner/cli/bin.ts', 'api/x.test.ts', 'x.test.ts', 'node_modules/yaml/index.js'].map(ignored)).toEqual([true, true, true, true]);
  });
});

describe('scripts/version.sh', { timeout: 30_000 }, () => {
  it.each([
    ['v1.2.3', '1.2.3'],
    ['v10.0.1', '10.0.1'],
    ['v1.2.3-4-g56789ab', '0.0.0-v1.2.3-4-g56789ab'],
    ['v1.2.3-dirty', '0.0.0-v1.2.3-dirty'],
    ['v1.2.3-rc.1', '0.0.0-v1.2.3-rc.1'],
    ['56789ab', '0.0.0-g56789ab'],
    ['0123456-dirty', '0.0.0-g0123456-dirty'],
    ['release/2026', '0.0.0-release-2026'],
  ])('git describe %s -> %s', (describe, version) => {
    expect(sh('bash', ['scripts/version.sh', describe])).toMatchObject({ status: 0, stdout: `${version}\n` });
  });

  it.each(['', 'v1.2.3..x', 'x.012'])('refuses %j: no SemVer pre-release', (describe) => {
    expect(sh('bash', ['scripts/version.sh', describe])).toMatchObject({ status: 1, stdout: '' });
  });

  it('gives versions helm accepts as chart versions', () => {
    const dir = mkdtempSync(join(tmpdir(), 'images-test-'));
    try {
      mkdirSync(join(dir, 'c'));
      writeFileSync(join(dir, 'c', 'Chart.yaml'), 'apiVersion: v2\nname: c\nversion: 0.1.0\n');
      for (const describe of ['v1.2.3', 'v1.2.3-4-g56789ab-dirty', '0123456']) {
        const version = sh('bash', ['scripts/version.sh', describe]).stdout.trim();
        const r = sh(join(ROOT, 'node_modules/.bin/helm'), ['package', join(dir, 'c'), '--version', version, '--app-version', version, '--destination', join(dir, 'out')]);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('make images and make publish', { timeout: 30_000 }, () => {
  const source = 'https://github.com/db-backup-controller/db-backup-controller';
  const build = (file: string, ref: string, args: string[] = []) =>
    `docker build --file images/${file}.Dockerfile --tag ${ref}${args.map((a) => ` --build-arg ${a}`).join('')} --build-arg VERSION=1.2.3 --build-arg REVISION=abc123 .`;

  it('builds every image, tagged for the registry and version (DRY_RUN=1)', () => {
    const r = sh('bash', ['scripts/build-images.sh'], { DRY_RUN: '1', IMAGE_REGISTRY: 'registry.example:5000/dbb', VERSION: '1.2.3', REVISION: 'abc123' });
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      build('controller', 'registry.example:5000/dbb/controller:1.2.3'),
      ...['13', '14', '15', '16', '17'].map((v) => build('runner-postgresql', `registry.example:5000/dbb/backup-runner-postgresql:${v}-1.2.3`, [`PG_MAJOR=${v}`])),
      build('runner-mysql', 'registry.example:5000/dbb/backup-runner-mysql:10.11-1.2.3', ['MARIADB_VERSION=10.11']),
      // One image per tool, for every server version; the package list is one argument.
      build('runner-tool', 'registry.example:5000/dbb/backup-runner-redis:1.2.3', ['TOOL=redis', 'TOOL_PACKAGES=redis-server\\ redis-tools']),
      build('runner-tool', 'registry.example:5000/dbb/backup-runner-etcd:1.2.3', ['TOOL=etcd', 'TOOL_PACKAGES=etcd-server\\ etcd-client']),
      '',
    ]);
  });

  it('through make: the chart\'s registry by default, a local tag for minikube, a subset, the OCI source of a fork', () => {
    const r = sh('make', ['--no-print-directory', '-s', 'images', 'DRY_RUN=1', 'IMAGE_VERSION=1.2.3', 'REVISION=abc123', 'IMAGES=controller runner-postgresql-16', `SOURCE=${source}-fork`]);
    expect(r.stderr).not.toContain('rror');
    expect(r.stdout.split('\n')).toEqual([
      `docker build --file images/controller.Dockerfile --tag ghcr.io/db-backup-controller/controller:1.2.3 --tag localhost/db-backup-controller/controller:dev --build-arg VERSION=1.2.3 --build-arg REVISION=abc123 --build-arg SOURCE=${source}-fork .`,
      `docker build --file images/runner-postgresql.Dockerfile --tag ghcr.io/db-backup-controller/backup-runner-postgresql:16-1.2.3 --tag localhost/db-backup-controller/backup-runner-postgresql:16-dev --build-arg PG_MAJOR=16 --build-arg VERSION=1.2.3 --build-arg REVISION=abc123 --build-arg SOURCE=${source}-fork .`,
      '',
    ]);
  });

  it('pushes every image, then packages the chart with that version and pushes it to <registry>/charts (DRY_RUN=1)', () => {
    const r = sh('make', ['--no-print-directory', '-s', 'publish', 'DRY_RUN=1', 'IMAGE_VERSION=1.2.3', 'IMAGE_REGISTRY=registry.example:5000/dbb']);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'docker push registry.example:5000/dbb/controller:1.2.3',
      ...['13', '14', '15', '16', '17'].map((v) => `docker push registry.example:5000/dbb/backup-runner-postgresql:${v}-1.2.3`),
      'docker push registry.example:5000/dbb/backup-runner-mysql:10.11-1.2.3',
      'docker push registry.example:5000/dbb/backup-runner-redis:1.2.3',
      'docker push registry.example:5000/dbb/backup-runner-etcd:1.2.3',
      'helm package charts/db-backup-controller --version 1.2.3 --app-version 1.2.3 --destination dist/charts',
      'helm push dist/charts/db-backup-controller-1.2.3.tgz oci://registry.example:5000/dbb/charts',
      '',
    ]);
  });

  it('make version prints what git describe maps to', () => {
    const expected = sh('bash', ['scripts/version.sh']).stdout;
    expect(expected).toMatch(/^(\d+\.\d+\.\d+|0\.0\.0-\S+)\n$/);
    expect(sh('make', ['--no-print-directory', '-s', 'version']).stdout).toBe(expected);
  });

  it('refuses without a Docker engine, naming what is needed', () => {
    const r = sh('bash', ['scripts/build-images.sh'], { DOCKER: '/nonexistent/docker', VERSION: '1.2.3' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('/nonexistent/docker is not installed: make images needs a Docker engine');
  });

  it('refuses to publish with a helm older than 3.8 (the npm helm is 3.6), before pushing anything', () => {
    const r = sh('bash', ['scripts/publish.sh', 'chart'], { HELM: join(ROOT, 'node_modules/.bin/helm'), VERSION: '1.2.3' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/is helm v3\.6\.\d+, which cannot push to an OCI registry: publishing the chart needs helm >= 3\.8/);
  });

  it('refuses an invalid registry', () => {
    const r = sh('bash', ['scripts/build-images.sh'], { DRY_RUN: '1', IMAGE_REGISTRY: 'Registry.Example/x', VERSION: '1.2.3' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('registry "Registry.Example/x" is not <host>[:port][/namespace...] in lower case');
  });
});

describe('shell scripts', { timeout: 30_000 }, () => {
  it.each(SCRIPTS)('bash -n %s', (script) => {
    expect(sh('bash', ['-n', script])).toMatchObject({ status: 0, stderr: '' });
  });

  it('pass shellcheck', () => {
    const r = sh('shellcheck', SCRIPTS);
    if (r.status === null) throw new Error('shellcheck is not installed: make lint-scripts installs it (apt-get install shellcheck, as root)');
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('.github/workflows/publish.yml', () => {
  const text = readFileSync(join(ROOT, '.github/workflows/publish.yml'), 'utf8');
  const workflow = YAML.parse(text) as { on: { push: { tags: string[] }; pull_request: unknown }; jobs: Record<string, { steps: { run?: string }[] }> };

  it('publishes on v* tags and tests pull requests with make test', () => {
    expect(workflow.on.push.tags).toEqual(['v*']);
    expect(workflow.on).toHaveProperty('pull_request');
    expect(Object.values(workflow.jobs).some((j) => j.steps.some((s) => s.run?.trim() === 'make test'))).toBe(true);
  });

  it('uses only what the image plan gives each matrix entry', () => {
    const plan = sh('node', ['scripts/image-plan.mjs', '--version', '1.2.3', '--format', 'json']);
    const include = (JSON.parse(plan.stdout) as { include: Record<string, string>[] }).include;
    expect(include).toHaveLength(inputs.matrix.images.length);
    const expressions = [...text.matchAll(/\$\{\{([^}]*)\}\}/g)].map((m) => m[1]!);
    const used = expressions.flatMap((e) => [...e.matchAll(/\bmatrix\.(\w+)/g)].map((m) => m[1]));
    expect(used.length).toBeGreaterThan(0);
    for (const key of used) expect(Object.keys(include[0]!)).toContain(key);
  });

  it('runs only scripts that exist', () => {
    for (const [, script] of text.matchAll(/\b(scripts\/[\w.-]+)/g)) expect(readdirSync(join(ROOT, 'scripts'))).toContain(script!.slice('scripts/'.length));
  });
});
