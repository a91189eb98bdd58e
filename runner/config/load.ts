import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseDocument, type YAMLError } from 'yaml';
import { type FieldError, type RunnerConfig, validateRunnerConfig } from '../../api/index.js';
import { engineArgErrors as blockArgErrors } from '../../api/engine-args.js';
import { BackupError } from '../errors.js';

/**
 * What each YAML problem is, in words that never quote the file: a config
 * holds credentials (`password: { value: ... }`), and the parser's own
 * messages and excerpts would print the line around the mistake.
 */
const YAML_PROBLEMS: Record<string, string> = {
  ALIAS_PROPS: 'an alias cannot have an anchor or a tag',
  BAD_ALIAS: 'an alias refers to no anchor',
  BAD_DIRECTIVE: 'bad directive',
  BAD_DQ_ESCAPE: 'invalid escape sequence in a double-quoted string',
  BAD_INDENT: 'bad indentation',
  BAD_PROP_ORDER: 'anchor and tag in the wrong order',
  BAD_SCALAR_START: 'a plain value cannot start with this character',
  BLOCK_AS_IMPLICIT_KEY: 'nested mapping where a value was expected (indentation or a missing quote?)',
  BLOCK_IN_FLOW: 'block collection inside a flow collection',
  DUPLICATE_KEY: 'duplicate key',
  IMPOSSIBLE: 'unreadable document',
  KEY_OVER_1024_CHARS: 'key longer than 1024 characters',
  MISSING_CHAR: 'missing closing quote or bracket',
  MULTILINE_IMPLICIT_KEY: 'key spans several lines',
  MULTIPLE_ANCHORS: 'several anchors on one node',
  MULTIPLE_DOCS: 'several YAML documents in one file',
  MULTIPLE_TAGS: 'several tags on one node',
  NON_STRING_KEY: 'key that is not a string',
  TAB_AS_INDENT: 'tab used for indentation',
  TAG_RESOLVE_FAILED: 'unknown tag',
  UNEXPECTED_TOKEN: 'unexpected character',
  BAD_COLLECTION_TYPE: 'wrong collection type for its tag',
};

function describeYamlError(e: YAMLError): string {
  const at = e.linePos?.[0] ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
  return `${YAML_PROBLEMS[e.code] ?? 'syntax error'}${at} (${e.code})`;
}

/** Object keys that would reach an object's prototype in code that copies the config. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Pure: every `__proto__`, `constructor` or `prototype` key in `data`, by path. */
export function forbiddenKeyErrors(data: unknown, path = ''): FieldError[] {
  if (Array.isArray(data)) return data.flatMap((v, i) => forbiddenKeyErrors(v, `${path}[${i}]`));
  if (typeof data !== 'object' || data === null) return [];
  const errors: FieldError[] = [];
  for (const key of Reflect.ownKeys(data)) {
    if (typeof key !== 'string') continue;
    const at = path ? `${path}.${key}` : key;
    if (FORBIDDEN_KEYS.has(key)) errors.push({ path: at, message: `the key "${key}" is not allowed anywhere in the configuration` });
    else errors.push(...forbiddenKeyErrors((data as Record<string, unknown>)[key], at));
  }
  return errors;
}

/** The engine block's dumpArgs / restoreArgs against its tools' allowlists (api/engine-args.ts). */
function engineArgErrors(cfg: Readonly<RunnerConfig>): FieldError[] {
  return blockArgErrors('engine', cfg.engine);
}

function invalid(source: string, errors: readonly FieldError[]): BackupError {
  const lines = errors.map((e) => `  - ${e.path}: ${e.message}`).join('\n');
  return new BackupError('CONFIG_INVALID', `${source}: invalid configuration:\n${lines}`, { details: { errors } });
}

/**
 * Parses YAML (or JSON) config text and validates it; every problem is
 * reported at once. Syntax errors name the line, column and kind of mistake,
 * never the text around it (it may be a credential).
 */
export function parseConfig(text: string, source: string): Readonly<RunnerConfig> {
  let data: unknown;
  try {
    const doc = parseDocument(text, { prettyErrors: true, logLevel: 'silent', uniqueKeys: true }) // prettyErrors: for linePos; the messages are not used;
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) {
      throw new BackupError('CONFIG_INVALID', `${source}: not valid YAML: ${problems.map(describeYamlError).join('; ')}`);
    }
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof BackupError) throw err;
    // toJS errors (an unresolved alias, an alias bomb) quote names from the file: keep only their kind.
    throw new BackupError('CONFIG_INVALID', `${source}: not valid YAML: ${err instanceof ReferenceError ? 'an alias refers to no anchor' : 'the document cannot be read'}`);
  }
  const keys = forbiddenKeyErrors(data);
  if (keys.length > 0) throw invalid(source, keys);
  const result = validateRunnerConfig(data);
  if (!result.ok) throw invalid(source, result.errors);
  const args = engineArgErrors(result.value);
  if (args.length > 0) throw invalid(source, args);
  return result.value;
}

/**
 * A fingerprint of a validated config (canonical JSON, sha256): two files
 * that load to the same settings have the same digest. Compared between a
 * CLI command and the daemon it talks to; never printed in full.
 */
export function configDigest(config: Readonly<RunnerConfig>): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]))
        : v;
  return createHash('sha256').update(JSON.stringify(canonical(config))).digest('hex');
}

export async function loadConfig(path: string): Promise<Readonly<RunnerConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new BackupError('CONFIG_INVALID', `cannot read config file ${path} (${code}); pass --config or set BACKUP_RUNNER_CONFIG`, { cause: err });
  }
  return parseConfig(text, path);
}
