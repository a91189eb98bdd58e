import { describe, expect, it } from 'vitest';
import {
  ALLOWED_DUMP_OPTIONS,
  ALLOWED_RESTORE_OPTIONS,
  PG_DUMP,
  PG_RESTORE,
  argProblems,
  parseToolArgs,
  type ParsedArg,
} from '../../api/postgresql-args.js';

const DUMP = 'engine.postgresql.dumpArgs';
const RESTORE = 'engine.postgresql.restoreArgs';

/** The parse as [option long name or kind, value] pairs: what the tool would act on. */
function read(p: ParsedArg[]): [string, string | undefined][] {
  return p.map((a) => {
    switch (a.kind) {
      case 'option':
        return [a.option.long ?? a.option.short!, a.value];
      case 'positional':
        return ['(positional)', a.value];
      case 'end-of-options':
        return ['--', undefined];
      case 'unknown':
        return ['(unknown)', a.written];
    }
  });
}

describe('parseToolArgs reads arguments the way getopt_long does', () => {
  it.each<{ args: string[]; expected: [string, string | undefined][] }>([
    // --fil is --file to pg_dump 12-16 and ambiguous (--file, --filter) to 17: refused either way.
    { args: ['--fil=/path'], expected: [['(unknown)', '--fil=/path']] },
    { args: ['--compre=9'], expected: [['compress', '9']] },
    { args: ['--fo', 'p'], expected: [['format', 'p']] },
    { args: ['-vf/path'], expected: [['verbose', undefined], ['file', '/path']] },
    { args: ['-vf', '/path'], expected: [['verbose', undefined], ['file', '/path']] },
    { args: ['-f/path'], expected: [['file', '/path']] },
    { args: ['--file', '/path'], expected: [['file', '/path']] },
    { args: ['-Fp'], expected: [['format', 'p']] },
    { args: ['-Z9'], expected: [['compress', '9']] },
    { args: ['--compress=9'], expected: [['compress', '9']] },
    { args: ['-t', '-f/path'], expected: [['table', '-f/path']] },
    { args: ['-tf'], expected: [['table', 'f']] },
    { args: ['--table', '--file=/x'], expected: [['table', '--file=/x']] },
    { args: ['otherdb'], expected: [['(positional)', 'otherdb']] },
    { args: ['--no-owner', 'otherdb', '-x'], expected: [['no-owner', undefined], ['(positional)', 'otherdb'], ['no-privileges', undefined]] },
    { args: ['--', '-f/path'], expected: [['--', undefined], ['(positional)', '-f/path']] },
    { args: ['-'], expected: [['(positional)', '-']] },
    { args: ['--schema', 'a'], expected: [['schema', 'a']] },
    { args: ['--schema-o'], expected: [['schema-only', undefined]] },
    { args: ['-Q'], expected: [['(unknown)', '-Q']] },
  ])('pg_dump $args', ({ args, expected }) => {
    expect(read(parseToolArgs(args, PG_DUMP))).toEqual(expected);
  });

  it('marks abbreviations and keeps full names unmarked', () => {
    const [abbrev] = parseToolArgs(['--no-ow'], PG_DUMP);
    const [full] = parseToolArgs(['--no-owner'], PG_DUMP);
    expect(abbrev).toMatchObject({ kind: 'option', abbreviated: true });
    expect(full).toMatchObject({ kind: 'option', abbreviated: false });
  });

  it('reads -T as a trigger for pg_restore and as an excluded table for pg_dump', () => {
    expect(read(parseToolArgs(['-Tx'], PG_RESTORE))).toEqual([['trigger', 'x']]);
    expect(read(parseToolArgs(['-Tx'], PG_DUMP))).toEqual([['exclude-table', 'x']]);
  });
});

describe('argProblems: only allowed options, written in full, pass', () => {
  it.each<{ name: string; args: string[]; path: string; rule: RegExp }>([
    { name: 'abbreviated --file', args: ['--fil=/path'], path: `${DUMP}[0]`, rule: /ambiguous: pg_dump could read it as --file or --filter/ },
    { name: 'abbreviated --format', args: ['--form=plain'], path: `${DUMP}[0]`, rule: /--form \(pg_dump reads it as --format\) is not allowed/ },
    { name: 'bundled -v with -f', args: ['-vf/path'], path: `${DUMP}[0]`, rule: /-f \(pg_dump reads it as --file\) is not allowed/ },
    { name: 'attached -f value', args: ['-f/path'], path: `${DUMP}[0]`, rule: /--file/ },
    { name: '--file with the next argument', args: ['--file', '/path'], path: `${DUMP}[0]`, rule: /--file is not allowed/ },
    { name: 'a positional database name', args: ['--no-owner', 'otherdb'], path: `${DUMP}[1]`, rule: /positional arguments are not allowed: pg_dump would read "otherdb" as the database to dump/ },
    { name: '-- then an option', args: ['--', '-f/path'], path: `${DUMP}[0]`, rule: /"--" is not allowed/ },
    { name: 'a bare --', args: ['--'], path: `${DUMP}[0]`, rule: /"--" is not allowed/ },
    { name: 'plain format', args: ['-Fp'], path: `${DUMP}[0]`, rule: /--format/ },
    { name: '--compress=9', args: ['--compress=9'], path: `${DUMP}[0]`, rule: /--compress is not allowed/ },
    { name: '-Z9', args: ['-Z9'], path: `${DUMP}[0]`, rule: /--compress/ },
    { name: 'abbreviation of an allowed option', args: ['--lock-wait=5s'], path: `${DUMP}[0]`, rule: /--lock-wait is an abbreviation of --lock-wait-timeout: write the full option name/ },
    { name: 'ambiguous prefix', args: ['--no-s'], path: `${DUMP}[0]`, rule: /ambiguous/ },
    { name: 'unknown long option', args: ['--frobnicate'], path: `${DUMP}[0]`, rule: /pg_dump has no such option/ },
    { name: 'unknown short option', args: ['-Q'], path: `${DUMP}[0]`, rule: /-Q: pg_dump has no such option/ },
    { name: 'value-taking option last (would eat the runner\'s own arguments)', args: ['-t'], path: `${DUMP}[0]`, rule: /needs a value/ },
    { name: 'value on an option without one', args: ['--no-owner=yes'], path: `${DUMP}[0]`, rule: /takes no value/ },
    { name: 'snapshot', args: ['--snapshot=x'], path: `${DUMP}[0]`, rule: /--snapshot is not allowed/ },
    { name: 'another host', args: ['-hother'], path: `${DUMP}[0]`, rule: /--host/ },
    { name: 'another database by option', args: ['--dbname=postgresql://evil/db'], path: `${DUMP}[0]`, rule: /--dbname is not allowed/ },
    { name: 'jobs', args: ['-j4'], path: `${DUMP}[0]`, rule: /--jobs/ },
    { name: 'a filter file', args: ['--filter=/etc/passwd'], path: `${DUMP}[0]`, rule: /--filter is not allowed/ },
    { name: 'an empty argument', args: [''], path: `${DUMP}[0]`, rule: /positional/ },
  ])('pg_dump refuses $name', ({ args, path, rule }) => {
    const problems = argProblems(DUMP, args, PG_DUMP, ALLOWED_DUMP_OPTIONS);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]!.path).toBe(path);
    expect(problems[0]!.message).toMatch(rule);
  });

  it.each<{ name: string; args: string[]; rule: RegExp }>([
    { name: 'an input file (positional)', args: ['/tmp/other.dump'], rule: /would read "\/tmp\/other.dump" as the archive file to read/ },
    { name: 'a value-taking option that would eat the runner\'s -d', args: ['--table'], rule: /needs a value/ },
    { name: '-f (output to a file instead of the database)', args: ['-f/tmp/x'], rule: /--file/ },
    { name: 'abbreviated --dbname', args: ['--dbn=other'], rule: /--dbname/ },
    { name: '--create in a bundle', args: ['-OC'], rule: /--create/ },
    { name: 'a use-list file', args: ['-L', '/tmp/list'], rule: /--use-list/ },
    { name: '--clean (only --force decides)', args: ['--clean'], rule: /--clean is not allowed/ },
    { name: 'jobs', args: ['--jobs=2'], rule: /--jobs/ },
    { name: 'list', args: ['-l'], rule: /--list/ },
    { name: '-- before the runner\'s own -d', args: ['--'], rule: /"--" is not allowed/ },
  ])('pg_restore refuses $name', ({ args, rule }) => {
    const problems = argProblems(RESTORE, args, PG_RESTORE, ALLOWED_RESTORE_OPTIONS);
    expect(problems[0]?.path).toBe(`${RESTORE}[0]`);
    expect(problems[0]?.message).toMatch(rule);
  });

  it.each([
    [['--exclude-table=audit.*', '--no-comments']],
    [['-t', 'orders', '-T', 'audit.*', '-n', 'public', '-N', 'tmp']],
    [['-Ox', '--lock-wait-timeout=30s', '--exclude-table-data', 'logs']],
    [['--extension=postgis', '--strict-names', '--no-publications', '--no-subscriptions']],
    [['-tf']],
  ])('pg_dump accepts %j', (args) => {
    expect(argProblems(DUMP, args, PG_DUMP, ALLOWED_DUMP_OPTIONS)).toEqual([]);
  });

  it.each([[['--no-owner', '--no-privileges']], [['-O', '-x', '--no-comments']], [['-n', 'public', '--section=data']]])('pg_restore accepts %j', (args) => {
    expect(argProblems(RESTORE, args, PG_RESTORE, ALLOWED_RESTORE_OPTIONS)).toEqual([]);
  });

  it('reports every bad argument with its own index', () => {
    const problems = argProblems(DUMP, ['--no-owner', '-Fp', '--no-comments', '--fil=/x'], PG_DUMP, ALLOWED_DUMP_OPTIONS);
    expect(problems.map((p) => [p.path, p.argument])).toEqual([
      [`${DUMP}[1]`, '-Fp'],
      [`${DUMP}[3]`, '--fil=/x'],
    ]);
  });

  it('no allowed name is a prefix of an option outside the allowlist (a tool version without it would read it as that one)', () => {
    for (const [tool, allowed] of [[PG_DUMP, ALLOWED_DUMP_OPTIONS], [PG_RESTORE, ALLOWED_RESTORE_OPTIONS]] as const) {
      const risky = allowed.flatMap((a) => tool.options.filter((o) => o.long !== undefined && o.long !== a && o.long.startsWith(a) && !allowed.includes(o.long)).map((o) => `${a} -> ${o.long!}`));
      expect(risky, tool.tool).toEqual([]);
    }
  });

  it('every allowed option is one the tool knows, by its full long name', () => {
    for (const [tool, allowed] of [[PG_DUMP, ALLOWED_DUMP_OPTIONS], [PG_RESTORE, ALLOWED_RESTORE_OPTIONS]] as const) {
      for (const name of allowed) expect(tool.options.some((s) => s.long === name), `${tool.tool} --${name}`).toBe(true);
    }
  });
});
