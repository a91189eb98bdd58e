/**
 * Writes the CRD chart templates under charts/db-backup-controller/templates/crds/, or with
 * --check compares them with the committed files and exits 1 naming every
 * stale or missing one.
 *
 *   npx tsx api/crds/generate.ts [--check]
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRD_DIR, renderCrds } from './manifests.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Problems of the committed files compared with freshly rendered ones; empty when current. */
export function staleCrdFiles(repoRoot = root): string[] {
  const rendered = renderCrds();
  const problems: string[] = [];
  for (const f of rendered) {
    const at = join(repoRoot, f.path);
    if (!existsSync(at)) problems.push(`${f.path} is missing`);
    else if (readFileSync(at, 'utf8') !== f.template) problems.push(`${f.path} is stale`);
  }
  const dir = join(repoRoot, CRD_DIR);
  const expected = new Set(rendered.map((f) => f.path));
  if (existsSync(dir)) {
    for (const name of readdirSync(dir)) {
      const path = relative(repoRoot, join(dir, name));
      if (!expected.has(path)) problems.push(`${path} is not generated from any schema (remove it)`);
    }
  }
  return problems;
}

function main(args: string[]): number {
  if (args.includes('--check')) {
    const problems = staleCrdFiles();
    if (problems.length === 0) return 0;
    process.stderr.write(`generated CRDs are out of date:\n${problems.map((p) => `  - ${p}`).join('\n')}\nrun \`make generate\` (npx tsx api/crds/generate.ts) and commit the result\n`);
    return 1;
  }
  for (const f of renderCrds()) {
    const at = join(root, f.path);
    mkdirSync(dirname(at), { recursive: true });
    writeFileSync(at, f.template);
    process.stdout.write(`wrote ${f.path}\n`);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
