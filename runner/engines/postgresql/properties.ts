/**
 * A database's own properties, which a dump of its contents does not hold: its settings (`ALTER DATABASE ...
 * SET`), its grants (`GRANT CONNECT ON DATABASE ...`) and its comment. A whole-server backup records them per
 * database (read from the catalog with the list of databases); a restore that creates the database gives them
 * back, with statements the runner builds itself (nothing recorded runs as written). Pure.
 */
import type { DatabaseProperties } from '../../manifest.js';

/** What the restore sends: one statement (psql variables for every value) and what it restores, for reports. */
export interface PropertyStatement {
  sql: string;
  vars: Record<string, string>;
  what: string;
}

/** A configuration parameter's name: a word, or a custom class and a word (`app.tenant`). */
const GUC_NAME = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*$/;

/**
 * The parameters whose value is a list of quoted elements (PostgreSQL's GUC_LIST_QUOTE ones a database can
 * set): their stored value is `"$user", public`, and each element must be given as its own literal, or the
 * whole text would become one element.
 */
const LIST_QUOTE = new Set(['search_path', 'temp_tablespaces', 'local_preload_libraries', 'session_preload_libraries']);

/** The database-level privileges a grant can name. */
const PRIVILEGES = new Set(['CONNECT', 'CREATE', 'TEMPORARY']);

/**
 * Splits a list value as PostgreSQL stores it (SplitGUCList): elements separated by commas and white space,
 * each either a double-quoted identifier (`""` for a quote) or a bare word. Undefined when it is not that shape.
 */
export function splitGucList(value: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < value.length && /\s/.test(value[i]!)) i++;
  };
  skipSpace();
  if (i === value.length) return [];
  for (;;) {
    let element = '';
    if (value[i] === '"') {
      i++;
      for (;;) {
        if (i >= value.length) return undefined;
        if (value[i] === '"') {
          if (value[i + 1] === '"') {
            element += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        element += value[i++];
      }
    } else {
      while (i < value.length && value[i] !== ',' && !/\s/.test(value[i]!)) element += value[i++];
      if (element === '') return undefined;
    }
    out.push(element);
    skipSpace();
    if (i === value.length) return out;
    if (value[i] !== ',') return undefined;
    i++;
    skipSpace();
  }
}

/**
 * The statements that give `database` (just created by the restore) the recorded properties: the settings; the
 * grants unless `noOwner` (a restore without ownership and privileges), replacing the default ones (PUBLIC may
 * connect and create temporary tables) when the recorded database had its own; the comment. A recorded value
 * the runner cannot express safely is left out and said in `skipped`.
 */
export function propertyStatements(database: string, props: DatabaseProperties, opts: { noOwner?: boolean } = {}): { statements: PropertyStatement[]; skipped: string[] } {
  const statements: PropertyStatement[] = [];
  const skipped: string[] = [];
  for (const setting of props.settings ?? []) {
    const eq = setting.indexOf('=');
    const name = eq > 0 ? setting.slice(0, eq) : '';
    const value = setting.slice(eq + 1);
    if (!GUC_NAME.test(name)) {
      skipped.push(`database "${database}": setting ${JSON.stringify(setting.slice(0, 80))} is not name=value: not restored`);
      continue;
    }
    const elements = LIST_QUOTE.has(name.toLowerCase()) ? splitGucList(value) : [value];
    if (elements === undefined || elements.length === 0) {
      skipped.push(`database "${database}": setting ${name} has a list value the runner cannot read (${JSON.stringify(value.slice(0, 80))}): not restored`);
      continue;
    }
    const vars: Record<string, string> = { db: database };
    elements.forEach((e, k) => (vars[`v${k}`] = e));
    // The name is checked above and written as it is (a parameter name cannot be a psql variable); every value is one.
    statements.push({ sql: `ALTER DATABASE :"db" SET ${name} TO ${elements.map((_, k) => `:'v${k}'`).join(', ')};\n`, vars, what: `setting ${name}` });
  }
  if (props.grants && !opts.noOwner) {
    statements.push({ sql: `REVOKE ALL ON DATABASE :"db" FROM PUBLIC;\n`, vars: { db: database }, what: 'the default grants to PUBLIC' });
    for (const g of props.grants) {
      if (!PRIVILEGES.has(g.privilege)) {
        skipped.push(`database "${database}": privilege ${JSON.stringify(g.privilege.slice(0, 40))} is not a database privilege: not restored`);
        continue;
      }
      const to = g.grantee === null ? 'PUBLIC' : `:"grantee"`;
      statements.push({
        sql: `GRANT ${g.privilege} ON DATABASE :"db" TO ${to}${g.grantable ? ' WITH GRANT OPTION' : ''};\n`,
        vars: { db: database, ...(g.grantee === null ? {} : { grantee: g.grantee }) },
        what: `${g.privilege} to ${g.grantee === null ? 'PUBLIC' : `"${g.grantee}"`}`,
      });
    }
  }
  if (props.comment !== undefined) statements.push({ sql: `COMMENT ON DATABASE :"db" IS :'comment';\n`, vars: { db: database, comment: props.comment }, what: 'the comment' });
  return { statements, skipped };
}

/**
 * The properties column of LIST_DATABASES_SQL (one JSON object per database), checked: a server's answer of
 * another shape is an error, not a guess.
 */
export function parseProperties(json: string, database: string): DatabaseProperties {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error(`the properties of database "${database}" are not JSON`);
  }
  const r = raw as { settings?: unknown; grants?: unknown; comment?: unknown };
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (typeof raw !== 'object' || raw === null || !strings(r.settings ?? [])) throw new Error(`the settings of database "${database}" are not a list of text`);
  const grants = r.grants;
  const grantOk = (g: unknown) => {
    const x = g as { grantee?: unknown; privilege?: unknown; grantable?: unknown };
    return typeof g === 'object' && g !== null && (x.grantee === null || typeof x.grantee === 'string') && typeof x.privilege === 'string' && typeof x.grantable === 'boolean';
  };
  if (grants !== null && grants !== undefined && !(Array.isArray(grants) && grants.every(grantOk))) throw new Error(`the grants of database "${database}" are not a list of grants`);
  if (r.comment !== null && r.comment !== undefined && typeof r.comment !== 'string') throw new Error(`the comment of database "${database}" is not text`);
  return {
    ...((r.settings as string[] | undefined)?.length ? { settings: r.settings as string[] } : {}),
    ...(Array.isArray(grants) ? { grants: (grants as { grantee: string | null; privilege: string; grantable: boolean }[]).map((g) => ({ grantee: g.grantee, privilege: g.privilege, grantable: g.grantable })) } : {}),
    ...(typeof r.comment === 'string' ? { comment: r.comment } : {}),
  };
}
