/**
 * The SQL the engine sends through psql, and parsers for psql's unaligned,
 * tuples-only output (columns separated by FIELD_SEP). Pure. Values from the
 * outside world reach SQL only as psql variables (:'db', :"db"), which psql
 * quotes itself.
 */
import { BackupError } from '../../errors.js';
import { FIELD_SEP } from './plan.js';

/**
 * The first statement of every transaction of the runner's own SQL (runPsql, the snapshot session): a database
 * owner who sets `search_path = evil, pg_catalog` on their database cannot have a function of theirs named like
 * a catalog one run by the runner's (often superuser) session. A statement rather than a startup option, which
 * connection poolers refuse; SET LOCAL, so a pooled connection keeps nothing of it.
 */
export const SAFE_SEARCH_PATH_SQL = 'SET LOCAL search_path = pg_catalog, pg_temp;\n';

export const PROBE_SQL = `SELECT pg_catalog.current_setting('server_version_num'), pg_catalog.current_setting('server_version');\n`;

/**
 * Opens the transaction whose snapshot the dump imports. The snapshot is taken
 * when the SELECT starts; clock_timestamp() is read while it runs, so the
 * reported instant is at or after the snapshot, never before it.
 */
export const EXPORT_SNAPSHOT_SQL =
  'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n' +
  SAFE_SEARCH_PATH_SQL +
  `SELECT pg_catalog.pg_export_snapshot(), pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');\n`;

/**
 * The databases a whole-server backup can dump (those that accept connections, templates excepted), each with
 * its owner and its own properties as one JSON object (properties.ts): its settings for every role
 * (pg_db_role_setting with setrole 0), its grants (null when it has the default ones; grantee null for
 * PUBLIC) and its comment. JSON keeps every value on one line.
 */
export const LIST_DATABASES_SQL = `SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba), pg_catalog.json_build_object(
  'settings', (SELECT pg_catalog.json_agg(c) FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) AS c
               WHERE s.setdatabase = d.oid AND s.setrole = 0),
  'grants', CASE WHEN d.datacl IS NULL THEN NULL ELSE COALESCE(
              (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
                 'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
                 'privilege', a.privilege_type, 'grantable', a.is_grantable) ORDER BY a.grantee, a.privilege_type)
               FROM pg_catalog.aclexplode(d.datacl) AS a), '[]'::json) END,
  'comment', pg_catalog.shobj_description(d.oid, 'pg_database'))
FROM pg_catalog.pg_database d WHERE d.datallowconn AND NOT d.datistemplate ORDER BY d.datname;\n`;

/** Gives a restored database its owner back. */
export const SET_OWNER_SQL = `ALTER DATABASE :"db" OWNER TO :"owner";\n`;

/** Whether this user may read role passwords (pg_authid: superusers only). */
export const CAN_READ_PASSWORDS_SQL = `SELECT pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT');\n`;

/** The roles of the server. */
export const LIST_ROLES_SQL = `SELECT rolname FROM pg_catalog.pg_roles ORDER BY rolname;\n`;

/** Variable: db. Prints 1 when the database exists, else 0. */
export const DATABASE_EXISTS_SQL = `SELECT pg_catalog.count(*) FROM pg_catalog.pg_database WHERE datname = :'db';\n`;

/** Variable: db. Template0 so the archive never collides with objects a customised template1 holds. */
export const CREATE_DATABASE_SQL = `CREATE DATABASE :"db" TEMPLATE template0;\n`;

/** Variable: db. WITH (FORCE) (PostgreSQL 13+) ends sessions a failed restore may still leave for a moment. */
export function dropDatabaseSql(serverMajor: number): string {
  return serverMajor >= 13 ? `DROP DATABASE IF EXISTS :"db" WITH (FORCE);\n` : `DROP DATABASE IF EXISTS :"db";\n`;
}

const USER_NAMESPACES = `(SELECT oid FROM pg_catalog.pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
     AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%')`;

function notExtensionMember(catalog: string, alias: string): string {
  return `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
     WHERE d.classid = '${catalog}'::regclass AND d.objid = ${alias}.oid AND d.deptype = 'e')`;
}

/**
 * Run inside the target database. Prints t when it holds any relation (table,
 * view, sequence, ...), function, type or large object outside the system
 * schemas, not counting objects that belong to extensions. Array and
 * multirange types are created with their base type and are not counted alone.
 */
export const HAS_DATA_SQL = `SELECT
  EXISTS (SELECT 1 FROM pg_catalog.pg_class c
          WHERE c.relnamespace IN ${USER_NAMESPACES} AND ${notExtensionMember('pg_class', 'c')})
  OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
          WHERE p.pronamespace IN ${USER_NAMESPACES} AND ${notExtensionMember('pg_proc', 'p')})
  OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t
          WHERE t.typnamespace IN ${USER_NAMESPACES} AND t.typrelid = 0 AND t.typtype <> 'm'
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)
            AND ${notExtensionMember('pg_type', 't')})
  OR EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata);\n`;

export function parseRows(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split(FIELD_SEP));
}

/** The single value of a one-row, one-column result. */
export function parseScalar(stdout: string, what: string): string {
  const rows = parseRows(stdout);
  const value = rows[0]?.[0];
  if (rows.length !== 1 || value === undefined) {
    throw new BackupError('DB_QUERY_FAILED', `unexpected answer to ${what}: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  return value;
}

export function parseProbe(stdout: string): { num: number; text: string } {
  const row = parseRows(stdout)[0];
  const num = Number(row?.[0]);
  if (!row || !Number.isInteger(num) || num <= 0) {
    throw new BackupError('DB_QUERY_FAILED', `unexpected answer to the server version query: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  return { num, text: row[1] ?? String(num) };
}

export interface ExportedSnapshot {
  snapshotId: string;
  /** Server clock when the snapshot was exported, rounded up to the millisecond (never before the snapshot). */
  consistentAt: Date;
}

/** Parses `00000003-0000001B-1<SEP>2026-11-21T14:22:50.057689Z`; undefined when the line is not that. */
export function parseSnapshotLine(line: string): ExportedSnapshot | undefined {
  const [id, ts] = line.trim().split(FIELD_SEP);
  if (!id || !ts || !/^[0-9A-F]+(-[0-9A-F]+)+$/i.test(id)) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{6})Z$/.exec(ts);
  if (!m) return undefined;
  const whole = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(whole)) return undefined;
  const micros = Number(m[2]);
  return { snapshotId: id, consistentAt: new Date(whole + Math.ceil(micros / 1000)) };
}
