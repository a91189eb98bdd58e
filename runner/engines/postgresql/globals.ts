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

/** A line filter over a globals dump (keepLine), preceded by the restrict line that makes psql refuse every backslash command. */
export class GlobalsFilter extends Transform {
  private rest = '';
  readonly skipped = new Set<string>();

  constructor(
    private readonly existing: ReadonlySet<string>,
    restrictKey: string,
  ) {
    super();
    this.push(`\\restrict ${restrictKey}\n`);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const lines = (this.rest + chunk.toString('utf8')).split('\n');
    this.rest = lines.pop()!;
    const kept = lines.filter((l) => keepLine(l, this.existing, this.skipped));
    cb(null, kept.length > 0 ? `${kept.join('\n')}\n` : undefined);
  }

  override _flush(cb: TransformCallback): void {
    cb(null, this.rest !== '' && keepLine(this.rest, this.existing, this.skipped) ? `${this.rest}\n` : undefined);
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
