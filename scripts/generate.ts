/**
 * Writes the chart's generated files, or with --check compares them with the committed files and exits 1
 * naming every stale or missing one:
 * - the CRD templates under charts/db-backup-controller/templates/crds/, from the schemas in api/crds/;
 * - the shipped engines under charts/db-backup-controller/engines/, from tools/ (scripts/engine-files.ts).
 *
 *   npx tsx scripts/generate.ts [--check]
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRD_DIR, renderCrds } from '../api/crds/manifests.js';
import { ENGINE_DIR, renderEngineFiles } from './engine-files.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Each generated directory with every file it must hold, and nothing else. */
function generated(): { dir: string; files: { path: string; text: string }[] }[] {
  return [
    { dir: CRD_DIR, files: renderCrds().map((f) => ({ path: f.path, text: f.template })) },
    { dir: ENGINE_DIR, files: renderEngineFiles() },
  ];
}

/** Problems of the committed files compared with freshly rendered ones; empty when current. */
export function staleGeneratedFiles(repoRoot = root): string[] {
  const problems: string[] = [];
  for (const { dir, files } of generated()) {
    for (const f of files) {
      const at = join(repoRoot, f.path);
      if (!existsSync(at)) problems.push(`${f.path} is missing`);
      else if (readFileSync(at, 'utf8') !== f.text) problems.push(`${f.path} is stale`);
    }
    const expected = new Set(files.map((f) => f.path));
    if (!existsSync(join(repoRoot, dir))) continue;
    for (const name of readdirSync(join(repoRoot, dir))) {
      const path = relative(repoRoot, join(repoRoot, dir, name));
      if (!expected.has(path)) problems.push(`${path} is not generated from any source (remove it)`);
    }
  }
  return problems;
}

function main(args: string[]): number {
  if (args.includes('--check')) {
    const problems = staleGeneratedFiles();
    if (problems.length === 0) return 0;
    process.stderr.write(`generated files are out of date:\n${problems.map((p) => `  - ${p}`).join('\n')}\nrun \`make generate\` (npx tsx scripts/generate.ts) and commit the result\n`);
    return 1;
  }
  for (const f of generated().flatMap((g) => g.files)) {
    const at = join(root, f.path);
    mkdirSync(dirname(at), { recursive: true });
    writeFileSync(at, f.text);
    process.stdout.write(`wrote ${f.path}\n`);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
