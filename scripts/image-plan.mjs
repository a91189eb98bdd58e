#!/usr/bin/env node
// The image plan: images/matrix.json + a registry + a version -> each image's Dockerfile, build arguments and
// reference. The one place that turns the matrix into image names: scripts/build-images.sh and
// scripts/publish.sh read its tsv, .github/workflows/publish.yml its json, and test/unit/images.test.ts checks
// the references against the ones the chart gives the controller. Plain Node, no dependencies, so a release job
// needs no npm ci for it.
//
//   node scripts/image-plan.mjs --version V [--registry R] [--local-registry L --local-tag T] [--only 'A B'] [--format F]
//
//   --registry R        registry and namespace the images are published under (default: the matrix's registry)
//   --local-registry L  also tag every image L/<repository>:<local tag> (make images, for minikube); with --local-tag
//   --only 'A B'        only these images (names from the matrix, space- or comma-separated)
//   --format tsv        (default) per image: name, Dockerfile, reference, local reference or -, build args (K=V,...) or -
//   --format json       {"include":[{name, dockerfile, ref, buildArgs: "K=V\n...", platforms: "a,b"}]}: a job matrix
//   --format chart      chart directory, chart name, oci://<registry>/<chart repository>
//
// A runner is tagged <engineVersion>-<version>, the controller <version>, as the chart's _helpers.tpl expects.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
// SemVer 2 without build metadata ('+' is not allowed in an image tag).
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-((0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$/;
const REGISTRY = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

function fail(message) {
  process.stderr.write(`image-plan: ${message}\n`);
  process.exit(2);
}

function tagOf(image, version) {
  const tag = image.engineVersion ? `${image.engineVersion}-${version}` : version;
  if (!TAG.test(tag)) fail(`"${tag}" (image ${image.name}) is not a valid image tag`);
  return tag;
}

const { values: opts } = parseArgs({
  options: {
    version: { type: 'string' },
    registry: { type: 'string' },
    'local-registry': { type: 'string' },
    'local-tag': { type: 'string' },
    only: { type: 'string' },
    format: { type: 'string', default: 'tsv' },
  },
});
const matrix = JSON.parse(readFileSync(join(ROOT, 'images/matrix.json'), 'utf8'));
const registry = opts.registry || matrix.registry;
if (!REGISTRY.test(registry)) fail(`registry "${registry}" is not <host>[:port][/namespace...] in lower case`);

if (opts.format === 'chart') {
  const chartName = /^name:\s*"?([^"\s]+)"?\s*$/m.exec(readFileSync(join(ROOT, matrix.chart.path, 'Chart.yaml'), 'utf8'))?.[1];
  if (!chartName) fail(`no name in ${matrix.chart.path}/Chart.yaml`);
  process.stdout.write(`${matrix.chart.path}\t${chartName}\toci://${registry}/${matrix.chart.repository}\n`);
  process.exit(0);
}

if (!opts.version || !SEMVER.test(opts.version)) fail(`--version "${opts.version ?? ''}" is not a SemVer 2 version (see scripts/version.sh)`);
const localRegistry = opts['local-registry'] || '';
if (localRegistry && !REGISTRY.test(localRegistry)) fail(`local registry "${localRegistry}" is not <host>[:port][/namespace...] in lower case`);
if (localRegistry && !opts['local-tag']) fail('--local-registry needs --local-tag');

const only = (opts.only ?? '').split(/[\s,]+/).filter(Boolean);
const unknown = only.filter((name) => !matrix.images.some((image) => image.name === name));
if (unknown.length > 0) fail(`no image named ${unknown.join(', ')} in images/matrix.json (${matrix.images.map((i) => i.name).join(', ')})`);

const plan = matrix.images
  .filter((image) => only.length === 0 || only.includes(image.name))
  .map((image) => ({
    name: image.name,
    dockerfile: image.dockerfile,
    ref: `${registry}/${image.repository}:${tagOf(image, opts.version)}`,
    localRef: localRegistry ? `${localRegistry}/${image.repository}:${tagOf(image, opts['local-tag'])}` : '',
    buildArgs: Object.entries(image.buildArgs ?? {}).map(([k, v]) => `${k}=${v}`),
  }));

if (opts.format === 'json') {
  const platforms = matrix.platforms.join(',');
  const include = plan.map((p) => ({ name: p.name, dockerfile: p.dockerfile, ref: p.ref, buildArgs: p.buildArgs.join('\n'), platforms }));
  process.stdout.write(`${JSON.stringify({ include })}\n`);
} else if (opts.format === 'tsv') {
  for (const p of plan) process.stdout.write(`${[p.name, p.dockerfile, p.ref, p.localRef || '-', p.buildArgs.join(',') || '-'].join('\t')}\n`);
} else {
  fail(`--format "${opts.format}": tsv, json or chart`);
}
