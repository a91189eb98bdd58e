/**
 * Restoring a server's globals (pg_dumpall --globals-only) into another
 * server without harming what is there. Pure: the parser and the SQL it
 * builds; the engine runs psql.
 *
 * Nothing of the dump is replayed as written. Each line is read against the
 * exact shapes pg_dumpall writes for roles, and the runner builds its own
 * statements from what it read (identifiers and literals quoted anew):
 * - `CREATE ROLE r;`, `ALTER ROLE r WITH <attributes> [PASSWORD '<hash>'];`
 *   and `COMMENT ON ROLE r IS '...';` for roles the target does not have;
 * - `GRANT a TO r [WITH ADMIN OPTION] ...;` when `r` is such a new role.
 * A role that already exists is left exactly as it is (attributes, password,
 * comment, memberships) and reported as a conflict. Role settings
 * (`ALTER ROLE r SET ...`), tablespaces and anything else are reported as
 * not restored; a line that continues a statement of the line before (a
 * value holding a line break) is never run. A `\connect` (a full pg_dumpall,
 * not globals) refuses the whole input before anything runs.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { BackupError } from '../../errors.js';

const IDENT = String.raw`("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)`;
const LITERAL = String.raw`'((?:[^'\n]|'')*)'`;
const ATTRIBUTES = new Set(['SUPERUSER', 'NOSUPERUSER', 'INHERIT', 'NOINHERIT', 'CREATEROLE', 'NOCREATEROLE', 'CREATEDB', 'NOCREATEDB', 'LOGIN', 'NOLOGIN', 'REPLICATION', 'NOREPLICATION', 'BYPASSRLS', 'NOBYPASSRLS']);

const CREATE = new RegExp(`^CREATE ROLE ${IDENT};$`);
const ALTER_WITH = new RegExp(`^ALTER ROLE ${IDENT} WITH ((?:[A-Z]+ ?)+?)(?: CONNECTION LIMIT (-?\\d+))?(?: PASSWORD ${LITERAL})?(?: VALID UNTIL ${LITERAL})?;$`);
const COMMENT = new RegExp(`^COMMENT ON ROLE ${IDENT} IS ${LITERAL};$`);
const GRANT = new RegExp(`^GRANT ${IDENT} TO ${IDENT}( WITH ADMIN OPTION)?(?: WITH INHERIT (?:TRUE|FALSE))?(?: WITH SET (?:TRUE|FALSE))?(?: GRANTED BY ${IDENT})?;$`);
const ROLE_SETTING = new RegExp(`^ALTER ROLE ${IDENT} (?:IN DATABASE ${IDENT} )?SET `);
const TABLESPACE = new RegExp(`^(?:CREATE|ALTER) TABLESPACE ${IDENT}`);
const DUMP_RESTRICT = /^\\(?:restrict|unrestrict)\s/;
const IGNORED = /^(?:--.*|\s*|SET [a-z_]+ = [^;\n]*;|\\(?:restrict|unrestrict) \S+)$/;

/** An identifier as written (quoted or not), unquoted. */
function unquote(id: string): string {
  return id.startsWith('"') ? id.slice(1, -1).replace(/""/g, '"') : id;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export interface GlobalsPlan {
  /** SQL the runner built, in order. */
  statements: string[];
  /** What was left out, for the report (never a password). */
  notes: string[];
}

/** Pure: the statements that create the dump's roles the target lacks, and what was left out. Throws on a full pg_dumpall. */
export function planGlobals(dump: string, existing: ReadonlySet<string>): GlobalsPlan {
  const statements: string[] = [];
  const notes: string[] = [];
  const created = new Set<string>();
  const note = (n: string): void => {
    if (!notes.includes(n)) notes.push(n);
  };
  dump.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (IGNORED.test(line)) return;
    if (/^\\connect\b/.test(line)) {
      throw new BackupError('FORMAT_MISMATCH', `line ${i + 1} connects to a database: this is a full pg_dumpall, not the globals of one (pg_dumpall --globals-only); nothing was restored`);
    }
    let m: RegExpExecArray | null;
    if ((m = CREATE.exec(line))) {
      const role = unquote(m[1]!);
      if (existing.has(role)) return note(`role "${role}" exists: left as it is`);
      created.add(role);
      statements.push(`CREATE ROLE ${ident(role)};`);
    } else if ((m = ALTER_WITH.exec(line))) {
      const role = unquote(m[1]!);
      if (!created.has(role)) return note(existing.has(role) ? `role "${role}" exists: left as it is` : `line ${i + 1}: ALTER ROLE of a role the dump does not create: not restored`);
      const attrs = m[2]!.trim().split(' ');
      if (attrs.some((a) => !ATTRIBUTES.has(a))) return note(`line ${i + 1}: role "${role}" has attributes this runner does not know: not restored`);
      const parts = [...attrs, ...(m[3] !== undefined ? [`CONNECTION LIMIT ${Number(m[3])}`] : []), ...(m[4] !== undefined ? [`PASSWORD ${literal(m[4].replace(/''/g, "'"))}`] : []), ...(m[5] !== undefined ? [`VALID UNTIL ${literal(m[5].replace(/''/g, "'"))}`] : [])];
      statements.push(`ALTER ROLE ${ident(role)} WITH ${parts.join(' ')};`);
    } else if ((m = COMMENT.exec(line))) {
      const role = unquote(m[1]!);
      if (created.has(role)) statements.push(`COMMENT ON ROLE ${ident(role)} IS ${literal(m[2]!.replace(/''/g, "'"))};`);
    } else if ((m = GRANT.exec(line))) {
      const [granted, member] = [unquote(m[1]!), unquote(m[2]!)];
      if (!created.has(member)) return note(`role "${member}" exists: its membership in "${granted}" was not changed`);
      statements.push(`GRANT ${ident(granted)} TO ${ident(member)}${m[3] ?? ''};`);
    } else if ((m = ROLE_SETTING.exec(line))) {
      note(`role "${unquote(m[1]!)}": its settings (ALTER ROLE ... SET) are not restored`);
    } else if ((m = TABLESPACE.exec(line))) {
      note(`tablespace "${unquote(m[1]!)}" is not restored: create it on the target`);
    } else {
      note(`line ${i + 1}: not a statement pg_dumpall writes for roles: not restored`);
    }
  });
  return { statements, notes };
}

/**
 * SQL for psql, line by line: preceded by the restrict line that makes psql refuse every backslash command
 * (a key the input cannot know), the input's own `\\restrict` / `\\unrestrict` lines dropped, and any other
 * line dropped when `keep` says so.
 */
export class RestrictedSql extends Transform {
  private rest = '';
  /** A character split across chunks is decoded whole. */
  private readonly decoder = new StringDecoder('utf8');

  constructor(
    restrictKey: string,
    private readonly keep: (line: string) => boolean = () => true,
  ) {
    super();
    this.push(`\\restrict ${restrictKey}\n`);
  }

  private kept(line: string): boolean {
    return !DUMP_RESTRICT.test(line) && this.keep(line);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const lines = (this.rest + this.decoder.write(chunk)).split('\n');
    this.rest = lines.pop()!;
    const kept = lines.filter((l) => this.kept(l));
    cb(null, kept.length > 0 ? `${kept.join('\n')}\n` : undefined);
  }

  override _flush(cb: TransformCallback): void {
    this.rest += this.decoder.end();
    cb(null, this.rest !== '' && this.kept(this.rest) ? `${this.rest}\n` : undefined);
  }
}


/**
 * The errors psql reported while replaying, without its prefix (`psql:<stdin>:12: ERROR:  role "x" does not
 * exist` -> `role "x" does not exist`); a refused backslash command says the input held one.
 */
export function replayErrors(stderr: string): string[] {
  const out: string[] = [];
  for (const raw of stderr.split('\n')) {
    const l = raw.trim().replace(/^psql:[^:]*:\d+: /, '');
    if (/^(ERROR|FATAL):/.test(l)) out.push(l.replace(/^(ERROR|FATAL):\s+/, ''));
    else if (/backslash commands are restricted/.test(l)) out.push('a psql command in the dump was refused (restricted mode): only SQL is replayed');
  }
  return out;
}
