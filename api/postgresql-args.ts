/**
 * Extra pg_dump / pg_restore arguments (engine.postgresql.dumpArgs and
 * restoreArgs), read the way the tools read them (getopt_long), then held
 * against an allowlist. Pure: argv in, verdicts out.
 *
 * Reading them like the tool matters because getopt_long accepts more than
 * the spelled-out names: a unique prefix of a long option (`--fil=/x` is
 * `--file=/x`), bundled short options (`-vf/x` is `-v -f /x`), a short
 * option's value attached or in the next argument, `--` ending the options,
 * and positional arguments anywhere (the database name for pg_dump, the input
 * file for pg_restore). A plain deny-list of spellings cannot see through
 * these; an allowlist over the parsed options can.
 *
 * The tables list every option the tools know (PostgreSQL 12 to 18, the
 * union), so that each argument is split exactly where the tool splits it.
 * Only the options in ALLOWED_* pass, written with their full long name or
 * their short letter.
 */

export interface OptionSpec {
  /** Long name without the dashes. */
  long?: string;
  /** Short letter. */
  short?: string;
  /** Whether the option takes a value (required_argument); none of these tools has optional values. */
  arg: boolean;
}

export interface ToolOptions {
  tool: 'pg_dump' | 'pg_restore';
  options: readonly OptionSpec[];
  /** What a positional argument means to this tool. */
  positional: string;
}

const o = (long: string | undefined, short: string | undefined, arg = false): OptionSpec => ({
  ...(long !== undefined ? { long } : {}),
  ...(short !== undefined ? { short } : {}),
  arg,
});

/** pg_dump: short options "abBcCd:e:E:f:F:h:j:n:N:Op:RsS:t:T:U:vwWxZ:" plus every long option. */
export const PG_DUMP: ToolOptions = {
  tool: 'pg_dump',
  positional: 'the database to dump',
  options: [
    o('data-only', 'a'), o('blobs', 'b'), o('large-objects', 'b'), o('no-blobs', 'B'), o('no-large-objects', 'B'),
    o('clean', 'c'), o('create', 'C'), o('dbname', 'd', true), o('extension', 'e', true), o('encoding', 'E', true),
    o('file', 'f', true), o('format', 'F', true), o('host', 'h', true), o('jobs', 'j', true), o('schema', 'n', true),
    o('exclude-schema', 'N', true), o('no-owner', 'O'), o('port', 'p', true), o('no-reconnect', 'R'), o('schema-only', 's'),
    o('superuser', 'S', true), o('table', 't', true), o('exclude-table', 'T', true), o('username', 'U', true),
    o('verbose', 'v'), o('no-password', 'w'), o('password', 'W'), o('no-privileges', 'x'), o('no-acl', 'x'),
    o('compress', 'Z', true), o('help', undefined), o('version', undefined),
    o('attribute-inserts', undefined), o('binary-upgrade', undefined), o('column-inserts', undefined),
    o('disable-dollar-quoting', undefined), o('disable-triggers', undefined), o('enable-row-security', undefined),
    o('exclude-table-data', undefined, true), o('extra-float-digits', undefined, true), o('if-exists', undefined),
    o('inserts', undefined), o('lock-wait-timeout', undefined, true), o('no-table-access-method', undefined),
    o('no-tablespaces', undefined), o('quote-all-identifiers', undefined), o('load-via-partition-root', undefined),
    o('role', undefined, true), o('section', undefined, true), o('serializable-deferrable', undefined),
    o('snapshot', undefined, true), o('strict-names', undefined), o('use-set-session-authorization', undefined),
    o('no-comments', undefined), o('no-publications', undefined), o('no-security-labels', undefined),
    o('no-subscriptions', undefined), o('no-toast-compression', undefined), o('no-unlogged-table-data', undefined),
    o('no-sync', undefined), o('on-conflict-do-nothing', undefined), o('rows-per-insert', undefined, true),
    o('include-foreign-data', undefined, true), o('table-and-children', undefined, true),
    o('exclude-table-and-children', undefined, true), o('exclude-table-data-and-children', undefined, true),
    o('sync-method', undefined, true), o('filter', undefined, true), o('exclude-extension', undefined, true),
    o('no-data', undefined), o('no-schema', undefined), o('no-statistics', undefined), o('statistics-only', undefined),
    o('with-data', undefined), o('with-schema', undefined), o('with-statistics', undefined), o('sequence-data', undefined),
    o('no-policies', undefined),
  ],
};

/** pg_restore: short options "acCd:ef:F:h:I:j:lL:n:N:Op:P:RsS:t:T:U:vwWx1" plus every long option. */
export const PG_RESTORE: ToolOptions = {
  tool: 'pg_restore',
  positional: 'the archive file to read',
  options: [
    o('data-only', 'a'), o('clean', 'c'), o('create', 'C'), o('dbname', 'd', true), o('exit-on-error', 'e'),
    o('file', 'f', true), o('format', 'F', true), o('host', 'h', true), o('index', 'I', true), o('jobs', 'j', true),
    o('list', 'l'), o('use-list', 'L', true), o('schema', 'n', true), o('exclude-schema', 'N', true), o('no-owner', 'O'),
    o('port', 'p', true), o('function', 'P', true), o('no-reconnect', 'R'), o('schema-only', 's'),
    o('superuser', 'S', true), o('table', 't', true), o('trigger', 'T', true), o('username', 'U', true),
    o('verbose', 'v'), o('no-password', 'w'), o('password', 'W'), o('no-privileges', 'x'), o('no-acl', 'x'),
    o('single-transaction', '1'), o('help', undefined), o('version', undefined),
    o('if-exists', undefined), o('disable-triggers', undefined), o('enable-row-security', undefined),
    o('no-data-for-failed-tables', undefined), o('no-table-access-method', undefined), o('no-tablespaces', undefined),
    o('role', undefined, true), o('section', undefined, true), o('strict-names', undefined),
    o('use-set-session-authorization', undefined), o('no-comments', undefined), o('no-publications', undefined),
    o('no-security-labels', undefined), o('no-subscriptions', undefined), o('filter', undefined, true),
    o('transaction-size', undefined, true), o('exclude-database', undefined, true), o('globals-only', 'g'),
    o('no-globals', undefined), o('no-data', undefined), o('no-schema', undefined), o('no-statistics', undefined),
    o('statistics-only', undefined), o('with-data', undefined), o('with-schema', undefined), o('with-statistics', undefined),
    o('no-policies', undefined),
  ],
};

/**
 * What may be passed, by long name (the short letter of the same option is
 * accepted too): what to include or leave out, and how long to wait for
 * locks. Nothing that moves the output, the input, the connection, the
 * format, the compression or the transaction the runner sets.
 */
export const ALLOWED_DUMP_OPTIONS: readonly string[] = [
  'table', 'exclude-table', 'schema', 'exclude-schema', 'exclude-table-data', 'table-and-children',
  'exclude-table-and-children', 'exclude-table-data-and-children', 'extension', 'exclude-extension', 'strict-names',
  'no-owner', 'no-privileges', 'no-acl', 'no-comments', 'no-publications', 'no-subscriptions', 'no-security-labels',
  'no-tablespaces', 'no-table-access-method', 'no-toast-compression', 'no-unlogged-table-data', 'blobs', 'large-objects',
  'no-blobs', 'no-large-objects', 'schema-only', 'data-only', 'section', 'lock-wait-timeout', 'enable-row-security',
  'load-via-partition-root', 'quote-all-identifiers', 'verbose',
];

export const ALLOWED_RESTORE_OPTIONS: readonly string[] = [
  'table', 'schema', 'exclude-schema', 'index', 'function', 'trigger', 'strict-names', 'no-owner', 'no-privileges',
  'no-acl', 'no-comments', 'no-publications', 'no-subscriptions', 'no-security-labels', 'no-tablespaces',
  'no-table-access-method', 'no-data-for-failed-tables', 'disable-triggers', 'enable-row-security', 'schema-only',
  'data-only', 'section', 'verbose',
];

/** One argument as the tool reads it. `index` is where it starts in the list. */
export type ParsedArg =
  | { kind: 'option'; index: number; option: OptionSpec; written: string; value?: string; abbreviated: boolean }
  | { kind: 'positional'; index: number; value: string }
  | { kind: 'end-of-options'; index: number }
  | { kind: 'unknown'; index: number; written: string; reason: string };

function longName(spec: OptionSpec): string {
  return spec.long !== undefined ? `--${spec.long}` : `-${spec.short!}`;
}

/** Resolves `--name` as getopt_long does: exact match, else a unique prefix. */
function resolveLong(name: string, tool: ToolOptions): { spec?: OptionSpec; abbreviated: boolean; reason?: string } {
  const exact = tool.options.find((s) => s.long === name);
  if (exact) return { spec: exact, abbreviated: false };
  const matches = tool.options.filter((s) => s.long?.startsWith(name));
  // getopt_long accepts a prefix shared by options that behave the same (e.g. two names for one short letter).
  const distinct = new Map(matches.map((s) => [`${s.short ?? s.long}:${s.arg}`, s]));
  if (distinct.size === 1) return { spec: matches[0], abbreviated: true };
  if (distinct.size > 1) return { abbreviated: true, reason: `ambiguous: ${tool.tool} could read it as ${matches.map(longName).join(' or ')}` };
  return { abbreviated: false, reason: `${tool.tool} has no such option` };
}

/**
 * Splits `args` into options, values and positionals exactly as getopt_long
 * (with argument permutation, as glibc does by default) would.
 */
export function parseToolArgs(args: readonly string[], tool: ToolOptions): ParsedArg[] {
  const out: ParsedArg[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push({ kind: 'end-of-options', index: i });
      for (let j = i + 1; j < args.length; j++) out.push({ kind: 'positional', index: j, value: args[j]! });
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const r = resolveLong(name, tool);
      if (!r.spec) {
        out.push({ kind: 'unknown', index: i, written: arg, reason: r.reason! });
        continue;
      }
      const start = i;
      let value: string | undefined;
      if (r.spec.arg) {
        if (eq !== -1) value = arg.slice(eq + 1);
        else if (i + 1 < args.length) value = args[++i];
      } else if (eq !== -1) {
        out.push({ kind: 'unknown', index: i, written: arg, reason: `${longName(r.spec)} takes no value` });
        continue;
      }
      out.push({ kind: 'option', index: start, option: r.spec, written: arg, ...(value !== undefined ? { value } : {}), abbreviated: r.abbreviated });
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A bundle of short options; the first that takes a value takes the rest of the bundle, or the next argument.
      const start = i;
      for (let k = 1; k < arg.length; k++) {
        const letter = arg[k]!;
        const spec = tool.options.find((s) => s.short === letter);
        if (!spec) {
          out.push({ kind: 'unknown', index: start, written: `-${letter}`, reason: `${tool.tool} has no such option` });
          continue;
        }
        if (!spec.arg) {
          out.push({ kind: 'option', index: start, option: spec, written: `-${letter}`, abbreviated: false });
          continue;
        }
        let value: string | undefined;
        if (k + 1 < arg.length) value = arg.slice(k + 1);
        else if (i + 1 < args.length) value = args[++i];
        out.push({ kind: 'option', index: start, option: spec, written: `-${letter}`, ...(value !== undefined ? { value } : {}), abbreviated: false });
        break;
      }
      continue;
    }
    out.push({ kind: 'positional', index: i, value: arg });
  }
  return out;
}

export interface ArgProblem {
  /** Field path with the argument's index, e.g. `engine.postgresql.dumpArgs[2]`. */
  path: string;
  /** The argument as written in the config. */
  argument: string;
  message: string;
}

/**
 * Every argument of `args` that is not an allowed option written in full, with
 * the rule it breaks. An empty list means the tool will see only allowed
 * options, each with its value.
 */
export function argProblems(field: string, args: readonly string[], tool: ToolOptions, allowed: readonly string[]): ArgProblem[] {
  const problems: ArgProblem[] = [];
  const allow = new Set(allowed);
  const add = (index: number, message: string): void => {
    problems.push({ path: `${field}[${index}]`, argument: args[index]!, message });
  };
  for (const p of parseToolArgs(args, tool)) {
    switch (p.kind) {
      case 'end-of-options':
        add(p.index, `"--" is not allowed: it would turn the arguments the runner adds after it into ${tool.positional}`);
        break;
      case 'positional':
        add(p.index, `positional arguments are not allowed: ${tool.tool} would read "${p.value}" as ${tool.positional}`);
        break;
      case 'unknown':
        add(p.index, `${p.written}: ${p.reason}`);
        break;
      case 'option': {
        const name = longName(p.option);
        const as = p.written.split('=')[0]!;
        if (!allow.has(p.option.long ?? '')) {
          add(p.index, `${as === name ? name : `${as} (${tool.tool} reads it as ${name})`} is not allowed here: the runner sets the connection, input, output, format, compression and transaction itself; see docs/configuration.md for the options that are`);
        } else if (p.abbreviated) {
          add(p.index, `${as} is an abbreviation of ${name}: write the full option name`);
        } else if (p.option.arg && p.value === undefined) {
          add(p.index, `${p.written} needs a value in the same argument (${name}=VALUE) or the next one`);
        }
      }
    }
  }
  return problems;
}

/**
 * The problems of a PostgreSQL block's dumpArgs and restoreArgs as field
 * errors under `at` (e.g. `engine.postgresql` in a runner config,
 * `spec.engine.postgresql` in a DatabaseBackup): the runner checks its config
 * file with it, and the controller a DatabaseBackup, so a bad argument is
 * refused with its path before any runner is deployed.
 */
export function postgresqlArgErrors(at: string, block: { dumpArgs?: readonly string[]; restoreArgs?: readonly string[] }): { path: string; message: string }[] {
  return [
    ...argProblems(`${at}.dumpArgs`, block.dumpArgs ?? [], PG_DUMP, ALLOWED_DUMP_OPTIONS),
    ...argProblems(`${at}.restoreArgs`, block.restoreArgs ?? [], PG_RESTORE, ALLOWED_RESTORE_OPTIONS),
  ].map((p) => ({ path: p.path, message: `"${p.argument}": ${p.message}` }));
}
