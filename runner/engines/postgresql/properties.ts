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
 * Settings a restore leaves out, and why: each can make the database unusable for later connections or
 * restores (a library the target lacks fails every connection; a read-only default or replica role breaks a
 * later restore). pg_dump restores them as they are; here they are reported instead.
 */
const HAZARDOUS: Record<string, string> = {
  session_preload_libraries: 'a library the target may lack would fail every connection to it',
  local_preload_libraries: 'a library the target may lack would fail every connection to it',
  session_replication_role: 'it changes how triggers and foreign keys behave for every session',
  default_transaction_read_only: 'it would make a later restore into it fail',
};

/**
 * The statements that give `database` (just created by the restore) the recorded properties, in two groups:
 * `before` its owner is set (settings and comment: the restoring user may alter only a database it owns), and
 * `grants` after it (as pg_dump orders them: the default grants to PUBLIC and the owner's own are revoked when
 * the recorded database had grants of its own, then each recorded grant is given; grants made by a superuser
 * are recorded as the owner's). No grants with `noOwner` (a restore without ownership and privileges). A
 * recorded value the runner cannot express safely, or should not restore, is left out and said in `skipped`.
 */
export function propertyStatements(database: string, props: DatabaseProperties, opts: { noOwner?: boolean; owner?: string } = {}): { before: PropertyStatement[]; grants: PropertyStatement[]; skipped: string[] } {
  const before: PropertyStatement[] = [];
  const grants: PropertyStatement[] = [];
  const skipped: string[] = [];
  for (const setting of props.settings ?? []) {
    const eq = setting.indexOf('=');
    const name = eq > 0 ? setting.slice(0, eq) : '';
    const value = setting.slice(eq + 1);
    if (!GUC_NAME.test(name)) {
      skipped.push(`database "${database}": setting ${JSON.stringify(setting.slice(0, 80))} is not name=value: not restored`);
      continue;
    }
    const hazard = HAZARDOUS[name.toLowerCase()];
    if (hazard) {
      skipped.push(`database "${database}": setting ${name} not restored: ${hazard} (set it by hand: ALTER DATABASE ... SET ${name} = ...)`);
      continue;
    }
    const elements = LIST_QUOTE.has(name.toLowerCase()) ? splitGucList(value) : [value];
    if (elements === undefined || elements.length === 0) {
      skipped.push(`database "${database}": setting ${name} has a list value the runner cannot read (${JSON.stringify(value.slice(0, 80))}): not restored`);
      continue;
    }
    const vars: Record<string, string> = { db: database, guc: name };
    elements.forEach((e, k) => (vars[`v${k}`] = e));
    before.push({ sql: `ALTER DATABASE :"db" SET :"guc" TO ${elements.map((_, k) => `:'v${k}'`).join(', ')};\n`, vars, what: `setting ${name}` });
  }
  if (props.comment !== undefined) before.push({ sql: `COMMENT ON DATABASE :"db" IS :'comment';\n`, vars: { db: database, comment: props.comment }, what: 'the comment' });
  if (props.grants && !opts.noOwner) {
    grants.push({ sql: `REVOKE ALL ON DATABASE :"db" FROM PUBLIC;\n`, vars: { db: database }, what: 'the default grants to PUBLIC' });
    if (opts.owner !== undefined) grants.push({ sql: `REVOKE ALL ON DATABASE :"db" FROM :"owner";\n`, vars: { db: database, owner: opts.owner }, what: 'the owner\'s default grants' });
    for (const g of props.grants) {
      if (!PRIVILEGES.has(g.privilege)) {
        skipped.push(`database "${database}": privilege ${JSON.stringify(g.privilege.slice(0, 40))} is not a database privilege: not restored`);
        continue;
      }
      const to = g.grantee === null ? 'PUBLIC' : `:"grantee"`;
      grants.push({
        sql: `GRANT ${g.privilege} ON DATABASE :"db" TO ${to}${g.grantable ? ' WITH GRANT OPTION' : ''};\n`,
        vars: { db: database, ...(g.grantee === null ? {} : { grantee: g.grantee }) },
        what: `${g.privilege} to ${g.grantee === null ? 'PUBLIC' : `"${g.grantee}"`}`,
      });
    }
  }
  return { before, grants, skipped };
}

/**
 * What a backup records of one database's properties at most: every value travels to psql as one argument
 * (the kernel refuses one of 128 KiB), and a manifest is read whole by every listing, so a database owner's
 * values are kept small; what is larger is left out and said. (runner/manifest.ts reads larger ones.)
 */
const MAX_SETTINGS = 100;
const MAX_SETTING_BYTES = 8192;
const MAX_COMMENT_CHARS = 16384;
const MAX_GRANTS = 1000;

type RawGrant = { grantee: string | null; privilege: string; grantable: boolean };
type RawProperties = { settings?: string[] | null; grants?: RawGrant[] | null; comment?: string | null };

/** The properties column as the server must answer it, or an error naming what is not. */
function checkShape(json: string, database: string): RawProperties {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error(`the properties of database "${database}" are not JSON`);
  }
  const r = raw as { settings?: unknown; grants?: unknown; comment?: unknown };
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (typeof raw !== 'object' || raw === null || !strings(r.settings ?? [])) throw new Error(`the settings of database "${database}" are not a list of text`);
  const grantOk = (g: unknown) => {
    const x = g as { grantee?: unknown; privilege?: unknown; grantable?: unknown };
    return typeof g === 'object' && g !== null && (x.grantee === null || typeof x.grantee === 'string') && typeof x.privilege === 'string' && typeof x.grantable === 'boolean';
  };
  if (r.grants !== null && r.grants !== undefined && !(Array.isArray(r.grants) && r.grants.every(grantOk))) throw new Error(`the grants of database "${database}" are not a list of grants`);
  if (r.comment !== null && r.comment !== undefined && typeof r.comment !== 'string') throw new Error(`the comment of database "${database}" is not text`);
  return r as RawProperties;
}

/**
 * The properties column of LIST_DATABASES_SQL (one JSON object per database), checked: a server's answer of
 * another shape is an error, not a guess. A database owner may set values larger than a manifest holds: those
 * are left out and said in `omitted`, so they never make the backup unreadable.
 */
export function parseProperties(json: string, database: string): { properties: DatabaseProperties; omitted: string[] } {
  const r = checkShape(json, database);
  const omitted: string[] = [];
  const all = r.settings ?? [];
  const settings = all.filter((x) => x.length > 0 && Buffer.byteLength(x) <= MAX_SETTING_BYTES).slice(0, MAX_SETTINGS);
  if (settings.length < all.length) omitted.push(`${all.length - settings.length} setting(s) (empty, over ${MAX_SETTING_BYTES} bytes, or past the first ${MAX_SETTINGS})`);
  const list = r.grants ?? undefined;
  if (list && list.length > MAX_GRANTS) omitted.push(`the grants (${list.length}, over ${MAX_GRANTS})`);
  const comment = r.comment ?? undefined;
  if (comment !== undefined && comment.length > MAX_COMMENT_CHARS) omitted.push(`the comment (over ${MAX_COMMENT_CHARS} characters)`);
  const fits = (g: RawGrant) => (g.grantee === null || (g.grantee.length > 0 && g.grantee.length <= 256)) && g.privilege.length > 0 && g.privilege.length <= 64;
  return {
    properties: {
      ...(settings.length > 0 ? { settings } : {}),
      ...(list && list.length <= MAX_GRANTS ? { grants: list.filter(fits).map((g) => ({ grantee: g.grantee, privilege: g.privilege, grantable: g.grantable })) } : {}),
      ...(comment !== undefined && comment.length <= MAX_COMMENT_CHARS ? { comment } : {}),
    },
    omitted: omitted.map((o) => `database "${database}": ${o} not recorded: larger than a manifest holds`),
  };
}
