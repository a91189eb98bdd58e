/** The SQL the MariaDB / MySQL engine runs, and readers of its answers. Pure. */
import { BackupError } from '../../errors.js';
import { ident, text } from './plan.js';

/** Server version, whether it writes a binary log, and its clock (UTC, microseconds). */
export const PROBE_SQL = "SELECT VERSION(), @@log_bin, DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ');";

/** The server's clock, read after a snapshot was taken: an instant at or after it. */
export const CLOCK_SQL = "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ');";

export interface Probe {
  version: string;
  binlog: boolean;
  now: Date;
}

function fields(out: string, what: string, n: number): string[] {
  const line = out.split('\n').find((l) => l.trim() !== '');
  const f = line?.split('\t') ?? [];
  if (f.length !== n) throw new BackupError('DB_QUERY_FAILED', `unexpected answer to ${what}: ${JSON.stringify(out.slice(0, 200))}`);
  return f;
}

export function parseClock(out: string): Date {
  const [at] = fields(out, 'the clock query', 1);
  const d = new Date(at!);
  if (Number.isNaN(d.getTime())) throw new BackupError('DB_QUERY_FAILED', `unexpected answer to the clock query: ${JSON.stringify(at)}`);
  return d;
}

export function parseProbe(out: string): Probe {
  const [version, logBin, now] = fields(out, 'the version query', 3);
  return { version: version!, binlog: logBin === '1', now: parseClock(now!) };
}

/** 1 when the database exists, else 0. */
export function databaseExistsSql(database: string): string {
  return `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${text(database)};`;
}

/** How many tables, views, routines and events the database holds (triggers live on tables). */
export function objectCountSql(database: string): string {
  const db = text(database);
  return (
    `SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${db})` +
    ` + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${db})` +
    ` + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${db});`
  );
}

/** The default character set and collation of a database, to create an emptied one alike. */
export function databaseDefaultsSql(database: string): string {
  return `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${text(database)};`;
}

export function parseDefaults(out: string): { charset: string; collation: string } {
  const [charset, collation] = fields(out, 'the database defaults query', 2);
  return { charset: charset!, collation: collation! };
}

export function parseCount(out: string, what: string): number {
  const [n] = fields(out, what, 1);
  const v = Number(n);
  if (!Number.isInteger(v)) throw new BackupError('DB_QUERY_FAILED', `unexpected answer to ${what}: ${JSON.stringify(n)}`);
  return v;
}

/** Names are never interpolated raw: charset and collation come from the server but are still checked. */
const WORD = /^[A-Za-z0-9_]+$/;

export function createDatabaseSql(database: string, defaults?: { charset: string; collation: string }): string {
  const d = defaults && WORD.test(defaults.charset) && WORD.test(defaults.collation) ? ` CHARACTER SET ${defaults.charset} COLLATE ${defaults.collation}` : ' CHARACTER SET utf8mb4';
  return `CREATE DATABASE ${ident(database)}${d};`;
}

export function dropDatabaseSql(database: string): string {
  return `DROP DATABASE IF EXISTS ${ident(database)};`;
}
