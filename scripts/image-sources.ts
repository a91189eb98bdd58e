/**
 * The sources an image is built from and runs: what imports what (syntax only), .dockerignore's verdict, and
 * the check that the build stage and the image get every file they need.
 */
import { isBuiltin } from 'node:module';
import { posix } from 'node:path';
import ts from 'typescript';
import type { CheckInputs } from './image-inputs.js';

/** Every file reachable through relative imports (types included) from `starts`, and the imported ones that do not exist. */
function closure(inputs: CheckInputs, starts: string[]): { files: Map<string, string>; missing: string[] } {
  const files = new Map<string, string>();
  const missing: string[] = [];
  const queue = [...starts];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (files.has(file) || missing.includes(file)) continue;
    const text = inputs.readSource(file);
    if (text === undefined) {
      missing.push(file);
      continue;
    }
    files.set(file, text);
    for (const { spec } of moduleImports(file, text)) {
      if (spec.startsWith('.')) queue.push(posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts'));
    }
  }
  return { files, missing };
}

const some = (files: string[]) => `${files.length} file(s) (${files.slice(0, 3).join(', ')}${files.length > 3 ? ', …' : ''})`;
const topDir = (file: string) => file.split('/')[0]!;

/**
 * The build stage compiles every source in the directories it copies (tsconfig.build.json), so whatever those
 * import must be there as well. At run time, every file the entry point imports must be in the image, and
 * every package it loads a production dependency (the image has no others).
 */
export function checkSources(inputs: CheckInputs, entry: string, distDirs: string[], contextDirs: string[]): string[] {
  const problems: string[] = [];
  const ignored = dockerignore(inputs.dockerignore);

  const compiled = closure(inputs, contextDirs.flatMap((d) => inputs.listSources(d)).filter((f) => !ignored(f)));
  const outside = [...compiled.files.keys()].filter((f) => !contextDirs.includes(topDir(f)) || ignored(f));
  if (outside.length > 0) problems.push(`the build stage compiles ${contextDirs.join('/, ')}/, which import ${some(outside)} it does not copy`);
  if (compiled.missing.length > 0) problems.push(`the build stage's sources import ${some(compiled.missing)} that do not exist`);

  const run = closure(inputs, [entry]);
  const notCopied = [...run.files.keys()].filter((f) => !distDirs.includes(topDir(f)));
  const notInContext = [...run.files.keys()].filter(ignored);
  if (run.missing.length > 0) problems.push(`${entry} imports ${some(run.missing)} that do not exist`);
  if (notCopied.length > 0) problems.push(`${entry} imports ${some(notCopied)} outside what the image copies, dist/{${distDirs.join(',')}}`);
  if (notInContext.length > 0) problems.push(`${entry} imports ${some(notInContext)} that .dockerignore keeps out of the build context`);
  for (const [file, text] of run.files) {
    for (const { spec, typeOnly } of moduleImports(file, text)) {
      if (spec.startsWith('.') || typeOnly || isBuiltin(spec)) continue;
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if (!(pkg in inputs.packageJson.dependencies)) problems.push(`${file} imports ${spec}, which is not in package.json dependencies (the image has production packages only)`);
    }
  }
  return problems;
}

const importsCache = new Map<string, { spec: string; typeOnly: boolean }[]>();

/**
 * The module specifiers a file imports, statically and dynamically; typeOnly: `import type` and the like, which
 * the compiler needs but Node never loads. Syntax only (the compiler also drops imports used only as types
 * without saying so: those count as run-time ones here, the stricter reading). Cached by text.
 */
function moduleImports(file: string, text: string): { spec: string; typeOnly: boolean }[] {
  const key = `${file}\0${text}`;
  const cached = importsCache.get(key);
  if (cached) return cached;
  const found: { spec: string; typeOnly: boolean }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const c = node.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
      const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      found.push({ spec: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ spec: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      found.push({ spec: node.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS));
  importsCache.set(key, found);
  return found;
}

/** .dockerignore semantics: patterns in order, the last match wins, `!` re-includes, a matched directory covers its files. */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const exclude = !l.startsWith('!');
      const pattern = (exclude ? l : l.slice(1)).replace(/^\/+|\/+$/g, '');
      const source = pattern
        .split(/(\*\*\/|\*\*|\*|\?)/)
        .map((part) => ({ '**/': '(.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' })[part] ?? part.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
        .join('');
      return { exclude, re: new RegExp(`^${source}(/.*)?$`) };
    });
  return (path) => rules.reduce((ignored, r) => (r.re.test(path) ? r.exclude : ignored), false);
}
