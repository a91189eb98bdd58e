/**
 * The checks of one Dockerfile in images/: non-root, no HEALTHCHECK, labels, entry point, the files the image
 * gets, and for a runner its client tools. See scripts/check-images.ts.
 */
import { validateSettings } from '../controller/settings.js';
import { argDefinitions, copies, execForm, keyValues, type Dockerfile, type Stage } from './dockerfile.js';
import { chartValues, ENGINE_ARG, type CheckInputs } from './image-inputs.js';
import { checkSources } from './image-sources.js';

/** Instructions no Dockerfile in images/ uses, and why. */
const FORBIDDEN: Record<string, string> = {
  HEALTHCHECK: 'Kubernetes probes check health (/healthz, /readyz)',
  VOLUME: 'the pod mounts what it needs (/tmp is an emptyDir)',
  ADD: 'COPY only: nothing fetched from URLs at build time',
};
/** The package.json bin each kind of image runs. */
const DEPLOYABLE = { controller: 'db-backup-controller', runner: 'backup-runner' } as const;

function aptPackages(stage: Stage): string[] {
  return stage.instructions
    .filter((i) => i.keyword === 'RUN')
    .flatMap((i) => i.args.split(/;|&&/))
    .flatMap((command) => {
      const m = /apt-get\s+install\s+(.*)$/.exec(command.trim());
      if (!m) return [];
      const words = m[1]!.split(/\s+/);
      return words.filter((w, k) => w && !w.startsWith('-') && words[k - 1] !== '-t').map((w) => w.replace(/"/g, ''));
    });
}

/** The controller's image, a built-in engine's runner (the engine's name), or the runner of a shipped tool. */
export type ImageKind = 'controller' | 'tool' | (string & {});

export function checkDockerfile(inputs: CheckInputs, df: Dockerfile, kind: ImageKind): string[] {
  const final = df.stages.at(-1);
  if (!final) return ['no FROM'];
  const forbidden = df.stages.flatMap((s) => s.instructions).filter((i) => i.keyword in FORBIDDEN);
  const bin = inputs.packageJson.bin[kind === 'controller' ? DEPLOYABLE.controller : DEPLOYABLE.runner];
  return [
    ...forbidden.map((i) => `line ${i.line}: ${i.keyword}: ${FORBIDDEN[i.keyword]}`),
    ...checkUser(final),
    ...checkEntryPoint(final, bin),
    ...checkLabels(inputs, final),
    ...checkFiles(inputs, df, final, bin),
    ...(kind === 'controller' ? [] : checkRunnerEnv(final)),
    ...(kind === 'controller' ? [] : kind === 'tool' ? checkToolRunner(df, final) : checkRunner(inputs, df, final, kind)),
  ];
}

/** Every runner: HOME on the writable /tmp, and its version where backup-runner reads it. */
function checkRunnerEnv(final: Stage): string[] {
  const env = keyValues(final, 'ENV');
  const problems: string[] = [];
  if (env.get('HOME') !== '/tmp') problems.push('ENV HOME=/tmp missing: the root filesystem is read-only, /tmp is the writable emptyDir');
  if (env.get('RUNNER_VERSION') !== '${VERSION}') problems.push('ENV RUNNER_VERSION="${VERSION}" missing (backup-runner version and the manifests report it)');
  return problems;
}

/** A shipped tool's runner: the tool's packages (TOOL_PACKAGES) and zstd installed, the tool named in a label. */
function checkToolRunner(df: Dockerfile, final: Stage): string[] {
  const problems: string[] = [];
  const installed = df.stages.flatMap(aptPackages);
  for (const p of ['${TOOL_PACKAGES}', 'zstd'].filter((x) => !installed.includes(x))) problems.push(`apt-get install of ${p} missing (installed: ${installed.join(' ') || 'nothing'})`);
  for (const arg of ['TOOL', 'TOOL_PACKAGES']) {
    if (df.globalArgs.has(arg) || df.stages.some((s) => s.instructions.some((i) => i.keyword === 'ARG' && argDefinitions(i.args).some(([k, v]) => k === arg && v !== undefined)))) {
      problems.push(`ARG ${arg} has a default: images/matrix.json passes it per tool`);
    }
  }
  if (keyValues(final, 'LABEL').get('io.dbbackup.runner.tool') !== '${TOOL}') problems.push('LABEL io.dbbackup.runner.tool="${TOOL}" missing in the final stage');
  return problems;
}

/** Non-root: the controller's runnerUser (the runner pod's uid and gid); nothing in the final stage runs as root. */
function checkUser(final: Stage): string[] {
  const problems: string[] = [];
  const defaults = validateSettings({});
  const uid = defaults.ok ? String(defaults.value.runnerUser) : '(controller settings invalid)';
  const users = final.instructions.filter((i) => i.keyword === 'USER');
  if (users.length === 0) problems.push(`the final stage sets no USER (${uid}:${uid} expected)`);
  for (const u of users.filter((x) => x.args !== uid && x.args !== `${uid}:${uid}`)) problems.push(`line ${u.line}: USER ${u.args} in the final stage (only ${uid}:${uid})`);
  const firstRun = final.instructions.find((i) => i.keyword === 'RUN');
  if (firstRun && (users.length === 0 || firstRun.line < users[0]!.line)) problems.push(`line ${firstRun.line}: RUN in the final stage before USER ${uid} runs as root`);
  return problems;
}

/** The package.json bin of this kind of image, run by node (the Deployment passes only args). */
function checkEntryPoint(final: Stage, bin: string | undefined): string[] {
  const entry = execForm(final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1)?.args ?? '');
  if (bin && entry?.[0]?.endsWith('/node') && entry.at(-1) === `/app/${bin}`) return [];
  return [`ENTRYPOINT must be ["<node>", "/app/${bin ?? '?'}"] (exec form), not ${JSON.stringify(entry ?? 'shell form or none')}`];
}

/** OCI labels from build arguments, and one source URL everywhere. */
function checkLabels(inputs: CheckInputs, final: Stage): string[] {
  const problems: string[] = [];
  const labels = keyValues(final, 'LABEL');
  const args = new Map(final.instructions.filter((i) => i.keyword === 'ARG').flatMap((i) => argDefinitions(i.args)));
  for (const [label, arg] of [['source', 'SOURCE'], ['version', 'VERSION'], ['revision', 'REVISION']] as const) {
    if (labels.get(`org.opencontainers.image.${label}`) !== `\${${arg}}`) problems.push(`LABEL org.opencontainers.image.${label}="\${${arg}}" missing in the final stage`);
    if (!args.has(arg)) problems.push(`ARG ${arg} missing in the final stage`);
  }
  const home = /^home:\s*(\S+)/m.exec(inputs.chartYaml)?.[1];
  if (args.get('SOURCE') !== inputs.matrix.source || home !== inputs.matrix.source) {
    problems.push(`ARG SOURCE default "${args.get('SOURCE')}", images/matrix.json source "${inputs.matrix.source}" and Chart.yaml home "${home}" differ`);
  }
  return problems;
}

/** What the final stage copies: production node_modules, package.json ("type": "module"), the compiled directories. */
function checkFiles(inputs: CheckInputs, df: Dockerfile, final: Stage, bin: string | undefined): string[] {
  const problems: string[] = [];
  const stage = (name: string | undefined) => df.stages.find((s) => s.name === name);
  const finalCopies = copies(final);
  const modules = finalCopies.find((c) => /(^|\/)node_modules\/?$/.test(c.dest));
  const modulesRun = stage(modules?.from)?.instructions.find((i) => i.keyword === 'RUN' && /npm ci\b/.test(i.args));
  if (!modulesRun || !/--omit=dev/.test(modulesRun.args) || !/--ignore-scripts/.test(modulesRun.args)) {
    problems.push('the final stage must copy node_modules from a stage that runs npm ci --omit=dev --ignore-scripts');
  }
  if (!finalCopies.some((c) => c.sources.some((s) => /(^|\/)package\.json$/.test(s)))) problems.push('the final stage does not copy package.json (Node needs its "type": "module")');
  const distCopies = finalCopies.filter((c) => c.sources.some((s) => /\/dist\//.test(s)));
  const distDirs = distCopies.flatMap((c) => c.sources.map((s) => /\/dist\/([^/]+)\/?$/.exec(s)?.[1] ?? s));
  const build = stage(distCopies[0]?.from);
  const contextPaths = build ? copies(build).filter((c) => !c.from).flatMap((c) => c.sources.map((s) => s.replace(/\/$/, ''))) : [];
  if (!build?.instructions.some((i) => i.keyword === 'RUN' && /npm run build\b/.test(i.args))) problems.push('the stage the compiled code comes from does not run npm run build');
  for (const d of distDirs.filter((x) => !contextPaths.includes(x))) problems.push(`dist/${d} is copied, but its sources ${d}/ are not copied into the build stage`);
  const contextDirs = contextPaths.filter((p) => inputs.listSources(p).length > 0);
  if (bin) problems.push(...checkSources(inputs, bin.replace(/^dist\//, '').replace(/\.js$/, '.ts'), distDirs, contextDirs));
  return problems;
}

function checkRunner(inputs: CheckInputs, df: Dockerfile, final: Stage, engine: string): string[] {
  const problems: string[] = [];
  const arg = ENGINE_ARG[engine] ?? '?';
  const env = keyValues(final, 'ENV');
  const def = chartValues(inputs.values).engines.get(engine)?.defaultVersion;
  if (df.globalArgs.get(arg) !== def) problems.push(`ARG ${arg} defaults to "${df.globalArgs.get(arg)}", not the chart's runner.${engine}.defaultVersion "${def}"`);
  if (!final.instructions.some((i) => i.keyword === 'ARG' && argDefinitions(i.args).some(([k]) => k === arg))) problems.push(`ARG ${arg} missing in the final stage`);

  const installed = df.stages.flatMap(aptPackages);
  // PostgreSQL: the server package too, for restores only (restore --start, pg_waldump), never a cluster of its own.
  const want = engine === 'postgresql' ? [`postgresql-client-\${${arg}}`, `postgresql-\${${arg}}`, 'zstd'] : ['mariadb-client', 'zstd'];
  for (const p of want.filter((x) => !installed.includes(x))) problems.push(`apt-get install of ${p} missing (installed: ${installed.join(' ') || 'nothing'})`);
  if (engine === 'postgresql') {
    const runs = df.stages.flatMap((s) => s.instructions).filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    if (!/create_main_cluster = false/.test(runs)) problems.push('the server package is installed without create_main_cluster = false: installing it would create a cluster in the image');
    if (!/https:\/\/apt\.postgresql\.org\/pub\/repos\/apt bookworm-pgdg main/.test(runs)) problems.push('the PGDG repository (apt.postgresql.org, bookworm-pgdg) is not configured');
    if (!env.get('PATH')?.startsWith(`/usr/lib/postgresql/\${${arg}}/bin:`)) problems.push(`ENV PATH must start with /usr/lib/postgresql/\${${arg}}/bin (the tools of this version, not Debian's wrapper)`);
  }
  if (engine === 'mysql') {
    for (const p of installed.filter((x) => /^(mariadb|mysql)-server/.test(x))) problems.push(`installs the MariaDB/MySQL server (${p}); the runner needs the client only`);
  }
  return problems;
}
