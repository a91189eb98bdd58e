/**
 * Extra mariadb-dump / mysqldump and mariadb / mysql arguments
 * (engine.mysql.dumpArgs and restoreArgs), held against an allowlist of exact
 * spellings. Pure: argv in, verdicts out.
 *
 * The MySQL family reads options with my_getopt, which accepts far more than
 * the documented names: any unique prefix of a long option, `_` for `-`,
 * `--loose-`, `--skip-`, `--enable-`, `--disable-` and `--maximum-` prefixes,
 * short options bundled or with attached values, and option files
 * (`--defaults-file`, `--defaults-extra-file`) that bring in anything. So
 * nothing is parsed here: an argument passes only when it is written exactly
 * `--NAME` or `--NAME=VALUE` with NAME in the list below. Any other spelling
 * of an allowed option is refused too, which costs a user a rewrite and
 * nobody their server (`--plugin-dir`, `--tab` or `--result-file` would load
 * code or write files in the runner's pod).
 */

/** How an allowed option is written: a flag, or NAME=VALUE. */
type Shape = 'flag' | 'value';

/**
 * Dump options that select what is dumped or how rows are written. Nothing
 * that moves the output, the connection, the consistency (the transaction)
 * the header a stored dump is recognised by (`--compact`, `--skip-comments`),
 * or the DROP ... IF EXISTS a forced restore relies on (`--skip-add-drop-table`).
 */
export const ALLOWED_MYSQL_DUMP_OPTIONS: Readonly<Record<string, Shape>> = {
  'ignore-table': 'value',
  'ignore-table-data': 'value',
  where: 'value',
  'no-data': 'flag',
  'no-create-info': 'flag',
  'skip-triggers': 'flag',
  'skip-routines': 'flag',
  'skip-events': 'flag',
  'skip-extended-insert': 'flag',
  'complete-insert': 'flag',
  'insert-ignore': 'flag',
  'order-by-primary': 'flag',
  'skip-tz-utc': 'flag',
  'max-allowed-packet': 'value',
  'net-buffer-length': 'value',
  'no-tablespaces': 'flag',
};

/** Restore options: packet sizes only; `--force` (go on after an error) would turn a failed restore into a partial one. */
export const ALLOWED_MYSQL_RESTORE_OPTIONS: Readonly<Record<string, Shape>> = {
  'max-allowed-packet': 'value',
  'net-buffer-length': 'value',
};

function problems(field: string, args: readonly string[], tool: string, allowed: Readonly<Record<string, Shape>>): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  args.forEach((arg, i) => {
    const path = `${field}[${i}]`;
    const m = /^--([a-z][a-z0-9-]*)(=(.*))?$/s.exec(arg);
    const shape = m ? allowed[m[1]!] : undefined;
    const names = Object.keys(allowed).join(', ');
    if (!m || !Object.hasOwn(allowed, m[1]!)) {
      out.push({
        path,
        message: `"${arg}": only these ${tool} options are allowed, written in full as --NAME or --NAME=VALUE: ${names} (the runner sets the connection, output, transaction and format itself)`,
      });
    } else if (shape === 'value' && m[2] === undefined) {
      out.push({ path, message: `"${arg}": needs its value in the same argument (--${m[1]!}=VALUE)` });
    } else if (shape === 'flag' && m[2] !== undefined) {
      out.push({ path, message: `"${arg}": --${m[1]!} takes no value` });
    }
  });
  return out;
}

/**
 * The problems of a MySQL/MariaDB block's dumpArgs and restoreArgs as field
 * errors under `at` (`engine.mysql` in a runner config, `spec.engine.mysql` in
 * a DatabaseBackup).
 */
export function mysqlArgErrors(at: string, block: { dumpArgs?: readonly string[]; restoreArgs?: readonly string[] }): { path: string; message: string }[] {
  return [
    ...problems(`${at}.dumpArgs`, block.dumpArgs ?? [], 'mariadb-dump', ALLOWED_MYSQL_DUMP_OPTIONS),
    ...problems(`${at}.restoreArgs`, block.restoreArgs ?? [], 'mariadb', ALLOWED_MYSQL_RESTORE_OPTIONS),
  ];
}

/**
 * The database a MySQL/MariaDB block backs up: mariadb-dump --events cannot
 * select a database whose name holds a quote or a backslash (it quotes the
 * name wrongly), so such a name is refused where it is written.
 */
export function mysqlDatabaseErrors(at: string, database: string | undefined): { path: string; message: string }[] {
  return database !== undefined && /['\\]/.test(database)
    ? [{ path: `${at}.database`, message: `"${database}" holds ' or \\, which mariadb-dump cannot dump the events of; rename the database (restoring into such a name works)` }]
    : [];
}
