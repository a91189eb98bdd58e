/**
 * Static checks of the container images, for machines without a Docker engine (this project's development
 * machines have none): images/matrix.json against the chart's values and the image the controller picks, each
 * Dockerfile against the matrix, the runner pod's security context and package.json, and each image's files
 * against everything its entry point imports. test/unit/images.test.ts runs it, so `make test` does;
 * `npx tsx scripts/check-images.ts` (make check-images) prints the problems.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pickImage } from '../controller/render/objects.js';
import { validateSettings } from '../controller/settings.js';
import { checkDockerfile, type ImageKind } from './check-dockerfile.js';
import { parseDockerfile } from './dockerfile.js';
import { chartValues, ENGINE_ARG, loadInputs, type CheckInputs, type MatrixImage } from './image-inputs.js';

export { loadInputs, ROOT, type CheckInputs } from './image-inputs.js';
export { dockerignore } from './image-sources.js';

/** Every problem found, in words; empty when the images are consistent. */
export function checkImages(inputs: CheckInputs): string[] {
  const problems = [...checkMatrix(inputs), ...checkTools(inputs), ...checkVersions(inputs), ...checkControllerChoice(inputs), ...checkEngineImages(inputs), ...checkLock(inputs)];
  const byDockerfile = new Map<string, MatrixImage[]>();
  for (const image of inputs.matrix.images) byDockerfile.set(image.dockerfile, [...(byDockerfile.get(image.dockerfile) ?? []), image]);
  for (const [path, images] of byDockerfile) {
    const text = inputs.dockerfiles.get(path);
    if (text === undefined) continue; // reported by checkMatrix
    const kinds = [...new Set(images.map(kindOf))];
    if (kinds.length > 1) problems.push(`${path}: built for several kinds of image (${kinds.join(', ')}); one Dockerfile per engine, one for every tool`);
    problems.push(...checkDockerfile(inputs, parseDockerfile(text), kinds[0]!).map((p) => `${path}: ${p}`));
  }
  return problems;
}

/** What a matrix image is: the controller, a built-in engine's runner (its engine) or a shipped tool's runner. */
function kindOf(image: MatrixImage): ImageKind {
  return image.engine ?? (image.tool ? 'tool' : 'controller');
}

/**
 * A shipped tool's runner per tool that asks for one (tools/<name>/definition.ts `image`), with the tool's
 * packages as its build arguments; an engine in the chart's values per such tool, and none for another.
 */
function checkTools({ matrix, tools, values }: CheckInputs): string[] {
  const problems: string[] = [];
  const wanted = Object.entries(tools).filter(([, image]) => image);
  for (const image of matrix.images.filter((i) => i.tool !== undefined)) {
    const tool = tools[image.tool!];
    if (!tool) {
      problems.push(`images/matrix.json: ${image.name}: tool "${image.tool}" has no image in tools/index.ts (tools with one: ${wanted.map(([n]) => n).join(', ') || 'none'})`);
      continue;
    }
    const args = { TOOL: image.tool!, TOOL_PACKAGES: tool.packages.join(' ') };
    if (JSON.stringify(image.buildArgs) !== JSON.stringify(args)) problems.push(`images/matrix.json: ${image.name}: buildArgs must be ${JSON.stringify(args)} (tools/${image.tool}/definition.ts), not ${JSON.stringify(image.buildArgs ?? {})}`);
    if (image.engine !== undefined || image.engineVersion !== undefined) problems.push(`images/matrix.json: ${image.name}: a tool's runner has no engine or engineVersion (one image serves every server version)`);
  }
  for (const [name] of wanted) {
    const built = matrix.images.filter((i) => i.tool === name).length;
    if (built !== 1) problems.push(`images/matrix.json: ${built} images for tool ${name}; exactly one expected (tools/${name}/definition.ts asks for an image)`);
  }
  const shipped = chartValues(values).shippedEngines;
  for (const [name] of wanted) if (!(name in shipped)) problems.push(`values.yaml: engines.${name} missing: the chart ships the tool ${name} with an image`);
  for (const name of Object.keys(shipped)) if (!tools[name]) problems.push(`values.yaml: engines.${name}: no tool of that name ships an image (tools/index.ts)`);
  return problems;
}

function duplicates(list: string[]): string[] {
  return [...new Set(list.filter((x, i) => list.indexOf(x) !== i))];
}

function checkMatrix({ matrix, dockerfiles }: CheckInputs): string[] {
  const problems = duplicates(matrix.images.map((i) => i.name)).map((d) => `images/matrix.json: image name "${d}" appears more than once`);
  for (const image of matrix.images) {
    if (!dockerfiles.has(image.dockerfile)) problems.push(`images/matrix.json: ${image.name}: ${image.dockerfile} does not exist`);
    if (!image.engine) continue;
    const arg = ENGINE_ARG[image.engine];
    if (!arg) problems.push(`images/matrix.json: ${image.name}: unknown engine "${image.engine}" (known: ${Object.keys(ENGINE_ARG).join(', ')})`);
    else if (JSON.stringify(image.buildArgs) !== JSON.stringify({ [arg]: image.engineVersion })) {
      problems.push(`images/matrix.json: ${image.name}: buildArgs must be { "${arg}": "${image.engineVersion}" }, not ${JSON.stringify(image.buildArgs ?? {})}`);
    }
  }
  for (const path of dockerfiles.keys()) {
    if (!matrix.images.some((i) => i.dockerfile === path)) problems.push(`${path}: no image in images/matrix.json builds it`);
  }
  const controllers = matrix.images.filter((i) => kindOf(i) === 'controller').length;
  if (controllers !== 1) problems.push(`images/matrix.json: ${controllers} images without an engine or a tool; exactly one (the controller) expected`);
  return problems;
}

/** The chart's runner.<engine>.versions and the matrix's runners: the same versions, each once; the default among them. */
function checkVersions({ matrix, values }: CheckInputs): string[] {
  const problems: string[] = [];
  const { engines } = chartValues(values);
  const matrixEngines = new Set(matrix.images.flatMap((i) => (i.engine ? [i.engine] : [])));
  for (const engine of new Set([...engines.keys(), ...matrixEngines])) {
    const chart = engines.get(engine)?.versions ?? [];
    const built = matrix.images.filter((i) => i.engine === engine).map((i) => i.engineVersion ?? '(none)');
    for (const d of duplicates(chart)) problems.push(`values.yaml: runner.${engine}.versions lists "${d}" twice`);
    for (const d of duplicates(built)) problems.push(`images/matrix.json: ${engine} ${d} appears twice`);
    for (const v of chart.filter((x) => !built.includes(x))) problems.push(`values.yaml: runner.${engine}.versions has "${v}", but images/matrix.json builds no ${engine} ${v} runner`);
    for (const v of built.filter((x) => !chart.includes(x))) problems.push(`images/matrix.json: builds ${engine} ${v}, but values.yaml runner.${engine}.versions does not list it`);
    const def = engines.get(engine)?.defaultVersion;
    if (def !== undefined && !chart.includes(def)) problems.push(`values.yaml: runner.${engine}.defaultVersion "${def}" is not in runner.${engine}.versions`);
  }
  return problems;
}

/** `<registry>/<repository>`, or the repository alone when the registry is empty (the chart's _helpers.tpl). */
function repositoryRef(registry: string | undefined, repository: string): string {
  return registry ? `${registry}/${repository}` : repository;
}

/**
 * The controller's settings as the chart renders them (templates/_helpers.tpl: runnerImage and settings), then
 * the image controller/render/objects.ts picks for every listed version and for none (the default): each must
 * be a published image, the exact version's.
 */
function checkControllerChoice({ matrix, values, plan }: CheckInputs): string[] {
  const problems: string[] = [];
  const version = '1.2.3';
  const refs = new Map(plan(version).map((p) => [p.ref, p.name]));
  const { image, runnerImage, engines: all } = chartValues(values);
  // The chart gives the controller no images for an engine without versions (its DatabaseBackups: RunnerImageNotFound).
  const engines = [...all].filter(([, e]) => e.versions.length > 0);
  if (image.tag) problems.push(`values.yaml: image.tag "${image.tag}" pins the controller's tag; leave it empty so the published chart's appVersion names its images`);
  if (runnerImage.tag) problems.push(`values.yaml: runner.image.tag "${runnerImage.tag}" pins the runners' tag; leave it empty (the chart's appVersion)`);

  const controllerRef = `${repositoryRef(image.registry, image.repository ?? '')}:${image.tag || version}`;
  if (!refs.has(controllerRef)) problems.push(`the chart's controller image ${controllerRef} is not built by images/matrix.json (${[...refs.keys()].join(', ')})`);

  const runnerRef = (engine: string, v: string) =>
    `${repositoryRef(runnerImage.registry, `${runnerImage.repositoryPrefix ?? ''}-${engine}`)}:${v}-${runnerImage.tag || version}`;
  const runnerImages = Object.fromEntries(
    engines.map(([engine, e]) => [engine, { defaultVersion: e.defaultVersion, images: Object.fromEntries(e.versions.map((v) => [v, runnerRef(engine, v)])) }]),
  );
  const settings = validateSettings({ runnerImages });
  if (!settings.ok) return [...problems, `the chart's runner images are not valid controller settings: ${JSON.stringify(settings.errors)}`];

  for (const [engine, e] of engines) {
    for (const want of [...e.versions, undefined]) {
      const label = want === undefined ? `a ${engine} DatabaseBackup without a version (default ${e.defaultVersion})` : `${engine} ${want}`;
      const picked = pickImage(settings.value.runnerImages[engine as 'postgresql' | 'mysql'], engine, want);
      if (!('image' in picked)) {
        problems.push(`${label}: the controller picks no image (${picked.problem.message})`);
        continue;
      }
      const name = refs.get(picked.image);
      const expected = matrix.images.find((i) => i.engine === engine && i.engineVersion === (want ?? e.defaultVersion))?.name;
      if (!name) problems.push(`${label}: the controller picks ${picked.image}, which images/matrix.json does not build`);
      else if (name !== expected) problems.push(`${label}: the controller picks ${name}, not ${expected ?? 'an exact match'}`);
    }
  }
  return problems;
}

/** Every shipped engine's image (templates/_helpers.tpl toolImage) is built, as its tool's runner. */
function checkEngineImages({ matrix, values, plan }: CheckInputs): string[] {
  const version = '1.2.3';
  const refs = new Map(plan(version).map((p) => [p.ref, p.name]));
  const { runnerImage, shippedEngines } = chartValues(values);
  return Object.entries(shippedEngines).flatMap(([tool, e]) => {
    if (!e?.enabled) return [];
    const ref = `${repositoryRef(runnerImage.registry, `${runnerImage.repositoryPrefix ?? ''}-${tool}`)}:${runnerImage.tag || version}`;
    const expected = matrix.images.find((i) => i.tool === tool)?.name;
    return refs.get(ref) && refs.get(ref) === expected ? [] : [`values.yaml: engines.${tool} runs in ${ref}, which images/matrix.json does not build as tool ${tool}'s runner`];
  });
}

/** The Dockerfiles install production packages without scripts, on the build platform, for every platform. */
function checkLock({ lockPackages }: CheckInputs): string[] {
  return Object.entries(lockPackages).flatMap(([path, p]) => {
    if (!path || p.dev) return [];
    if (p.hasInstallScript) return [`package-lock.json: ${path} has an install script, which npm ci --ignore-scripts in images/ skips`];
    if (p.os || p.cpu) return [`package-lock.json: ${path} is platform-specific, but images/ install node_modules once on the build platform`];
    return [];
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const problems = checkImages(loadInputs());
  process.stdout.write(problems.length === 0 ? 'images: consistent\n' : `${problems.map((p) => `- ${p}`).join('\n')}\n`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}

