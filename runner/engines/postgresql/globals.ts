/**
 * Replaying a server's globals (pg_dumpall --globals-only) into another
 * server without harming what is there. Pure: the line filter; the engine
 * runs psql.
 *
 * - A role that already exists is left exactly as it is: its CREATE ROLE,
 *   ALTER ROLE (attributes, password, settings) and COMMENT ON ROLE lines
 *   are not replayed, and it is reported as a conflict. Restoring never
 *   changes the password of a role the target server has.
 * - The dump's own `\restrict` / `\unrestrict` lines are dropped: the engine
 *   puts psql in restricted mode itself, with a key the input cannot know.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

const IDENT = String.raw`("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const ROLE_LINE = new RegExp(String.raw`^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE) ${IDENT}(?:[ ;]|$)`);
const DUMP_RESTRICT = /^\\(?:restrict|unrestrict)\s/;

/** The role a line of a globals dump creates or changes (unquoted), if it is such a line. */
export function roleOfLine(line: string): string | undefined {
  const m = ROLE_LINE.exec(line);
  if (!m) return undefined;
  const id = m[1]!;
  return id.startsWith('"') ? id.slice(1, -1).replace(/""/g, '"') : id.toLowerCase();
}

/** Whether a line is kept when replaying into a server that has `existing` roles; `skipped` collects the roles left alone. */
export function keepLine(line: string, existing: ReadonlySet<string>, skipped: Set<string>): boolean {
  if (DUMP_RESTRICT.test(line)) return false;
  const role = roleOfLine(line);
  if (role !== undefined && existing.has(role)) {
    skipped.add(role);
    return false;
  }
  return true;
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

/** A globals dump for psql in restricted mode, without the lines of roles the target has (keepLine). */
export class GlobalsFilter extends RestrictedSql {
  readonly skipped: Set<string>;

  constructor(existing: ReadonlySet<string>, restrictKey: string) {
    const skipped = new Set<string>();
    super(restrictKey, (l) => keepLine(l, existing, skipped));
    this.skipped = skipped;
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
