/**
 * Pure: the SQL and the storage URLs the CockroachDB tool hands the cluster, and what it reads in the
 * cluster's answers. Every value from outside (names, URLs, keys, the passphrase) reaches a statement only as
 * a quoted literal or identifier.
 */
import type { Destination } from '../../api/engine-contract.js';
import { ToolFailure } from '../sdk.js';

export interface CrdbConfig {
  sslmode: 'disable' | 'require' | 'verify-ca' | 'verify-full';
  revisionHistory: boolean;
  encryptionPassphraseFile?: string;
}

/** The DatabaseBackup's config with its defaults (the runner checked it against the definition's schema). */
export function configOf(raw: Record<string, unknown>): CrdbConfig {
  const sslmode = (raw.sslmode as CrdbConfig['sslmode'] | undefined) ?? 'verify-full';
  return { sslmode, revisionHistory: raw.revisionHistory === true, ...(typeof raw.encryptionPassphraseFile === 'string' ? { encryptionPassphraseFile: raw.encryptionPassphraseFile } : {}) };
}

function refuseNul(s: string, what: string): void {
  if (s.includes('\0')) throw new ToolFailure('CONFIG_INVALID', `${what} holds a NUL character`);
}

/** A SQL string literal (CockroachDB always has standard_conforming_strings on: only the quote is special). */
export function literal(s: string, what = 'a value'): string {
  refuseNul(s, what);
  return `'${s.replace(/'/g, "''")}'`;
}

/** A SQL identifier, quoted. */
export function ident(s: string, what = 'a name'): string {
  refuseNul(s, what);
  return `"${s.replace(/"/g, '""')}"`;
}

/** The keys a credentials file holds (the tenant's own), for the URL and for redaction. */
export interface StorageKeys {
  /** S3: accessKeyId, secretAccessKey, sessionToken; GCS: the key JSON's text. */
  values: Record<string, string>;
}

function encodePath(prefix: string): string {
  return prefix
    .replace(/\/+$/, '')
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

/**
 * The URL of the destination in CockroachDB's external storage syntax: `s3://bucket/path?AUTH=specified&...` with
 * the tenant's keys, or `AUTH=implicit` (the nodes' own identity) for `credentials.source: server`. A filesystem
 * destination is refused: the cluster's nodes cannot write the runner pod's disk.
 */
export function storageUrl(dest: Destination, keys: StorageKeys | undefined): string {
  const path = `${dest.bucket ?? ''}/${encodePath(dest.prefix ?? '')}`;
  const params = new URLSearchParams();
  const implicit = dest.credentials?.source === 'server';
  if (!implicit && !keys) throw new ToolFailure('CONFIG_INVALID', `location "${dest.location}": no credentials for the cluster to write it with`);
  if (dest.type === 's3') {
    if (implicit) params.set('AUTH', 'implicit');
    else {
      params.set('AUTH', 'specified');
      params.set('AWS_ACCESS_KEY_ID', keys!.values.accessKeyId ?? '');
      params.set('AWS_SECRET_ACCESS_KEY', keys!.values.secretAccessKey ?? '');
      if (keys!.values.sessionToken) params.set('AWS_SESSION_TOKEN', keys!.values.sessionToken);
    }
    if (dest.region) params.set('AWS_REGION', dest.region);
    if (dest.endpoint) params.set('AWS_ENDPOINT', dest.endpoint);
    return `s3://${path}?${params.toString()}`;
  }
  if (dest.type === 'gcs') {
    if (implicit) params.set('AUTH', 'implicit');
    else {
      params.set('AUTH', 'specified');
      params.set('CREDENTIALS', Buffer.from(keys!.values.key ?? '', 'utf8').toString('base64'));
    }
    return `gs://${path}?${params.toString()}`;
  }
  throw new ToolFailure('CONFIG_INVALID', `location "${dest.location}" is a ${dest.type} location: a CockroachDB cluster's nodes write S3 or GCS only`);
}

/** What one backup holds: one database, or the whole cluster (no database configured). */
export type Scope = { kind: 'database'; name: string } | { kind: 'cluster' };

/** The position a backup records, so a restore knows what the backup holds whatever the configuration says later. */
export function positionOf(scope: Scope, jobId: string | undefined): Record<string, string> {
  return { scope: scope.kind === 'cluster' ? 'cluster' : 'database', ...(scope.kind === 'database' ? { database: scope.name } : {}), ...(jobId ? { jobId } : {}) };
}

/** The scope a backup's recorded position names (a backup without one: the scope configured now). */
export function scopeOfPosition(position: unknown, configured: Scope): Scope {
  const p = (position && typeof position === 'object' ? position : {}) as Record<string, unknown>;
  if (p.scope === 'cluster') return { kind: 'cluster' };
  if (p.scope === 'database' && typeof p.database === 'string' && p.database !== '') return { kind: 'database', name: p.database };
  return configured;
}

function options(cfg: CrdbConfig, passphrase: string | undefined, extra: string[] = []): string {
  const opts = [...extra, ...(passphrase !== undefined ? [`encryption_passphrase = ${literal(passphrase, 'the encryption passphrase')}`] : [])];
  return opts.length > 0 ? ` WITH ${opts.join(', ')}` : '';
}

/** `BACKUP [DATABASE x] INTO '<url>' AS OF SYSTEM TIME '<instant>' [WITH ...]`: consistent to exactly `asOf`. */
export function backupStatement(scope: Scope, url: string, asOf: string, cfg: CrdbConfig, passphrase: string | undefined): string {
  const what = scope.kind === 'database' ? `DATABASE ${ident(scope.name, 'the database name')} ` : '';
  return `BACKUP ${what}INTO ${literal(url)} AS OF SYSTEM TIME ${literal(asOf)}${options(cfg, passphrase, cfg.revisionHistory ? ['revision_history'] : [])};`;
}

/**
 * The backup's own subdirectory below the collection (`/2026/12/04-101500.00`), from the objects the runner
 * verified: restore reads exactly that backup, never what a `LATEST` file written later points to. Undefined
 * when the objects name no `<YYYY>/<MM>/<DD-HHMMSS.ss>/BACKUP_MANIFEST`.
 */
export function backupSubdir(objects: readonly { path: string }[]): string | undefined {
  const dirs = objects.map((o) => /^(\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2})\/BACKUP_MANIFEST$/.exec(o.path)?.[1]).filter((d): d is string => d !== undefined);
  return dirs.length === 1 ? `/${dirs[0]}` : undefined;
}

/** `RESTORE [DATABASE x] FROM '<subdir>' IN '<url>' [WITH new_db_name = ..., ...]`: the one backup below the source. */
export function restoreStatement(scope: Scope, url: string, subdir: string, newName: string | undefined, cfg: CrdbConfig, passphrase: string | undefined): string {
  const what = scope.kind === 'database' ? `DATABASE ${ident(scope.name, 'the database name')} ` : '';
  const rename = newName !== undefined ? [`new_db_name = ${literal(newName, 'the target database name')}`] : [];
  return `RESTORE ${what}FROM ${literal(subdir, 'the backup subdirectory')} IN ${literal(url)}${options(cfg, passphrase, rename)};`;
}

/**
 * Cancels the BACKUP or RESTORE jobs whose description names `prefix` (this backup's own directory, so no other
 * job matches): what a stopped call sends, since a job goes on in the cluster when its session ends.
 */
export function cancelJobsStatement(kind: 'BACKUP' | 'RESTORE', prefix: string): string {
  const pattern = `%${prefix.replace(/\/+$/, '').replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return `CANCEL JOBS (SELECT job_id FROM [SHOW JOBS] WHERE job_type = ${literal(kind)} AND status IN ('pending', 'running', 'paused') AND description LIKE ${literal(pattern, 'the backup directory')} ESCAPE '\\');`;
}

/** `ALTER DATABASE a RENAME TO b;` */
export function renameStatement(from: string, to: string): string {
  return `ALTER DATABASE ${ident(from)} RENAME TO ${ident(to)};`;
}

/** `DROP DATABASE IF EXISTS a CASCADE;` */
export function dropStatement(name: string): string {
  return `DROP DATABASE IF EXISTS ${ident(name)} CASCADE;`;
}

/** How many user databases the cluster holds (one row), or whether one database exists (one row: t or f). */
export function existsStatement(scope: Scope): string {
  if (scope.kind === 'cluster') return "SELECT count(*) FROM pg_catalog.pg_database WHERE datname NOT IN ('defaultdb', 'postgres', 'system');";
  return `SELECT count(*) > 0 FROM pg_catalog.pg_database WHERE datname = ${literal(scope.name, 'the database name')};`;
}

/**
 * How many tables, views and sequences a database that exists holds: its own information_schema (in CockroachDB
 * each database has one; an unqualified one would be the connection's database's).
 */
export function tablesStatement(name: string): string {
  return `SELECT count(*) FROM ${ident(name, 'the database name')}.information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'crdb_internal', 'pg_extension');`;
}

/** `CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, ...)` -> `23.1.11`. */
export function serverVersionOf(text: string): string {
  const m = /CockroachDB (?:CCL|OSS)? ?v(\d+\.\d+\.\d+)/.exec(text);
  if (!m) throw new ToolFailure('TOOL_INCOMPATIBLE', `the server is not CockroachDB (version(): ${JSON.stringify(text.slice(0, 120))})`);
  return m[1]!;
}

/** `psql (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)` -> `15.8`. */
export function psqlVersionOf(text: string): string {
  const m = /\(PostgreSQL\) (\d+(?:\.\d+)*)/.exec(text);
  if (!m) throw new ToolFailure('TOOL_INCOMPATIBLE', `psql --version said ${JSON.stringify(text.slice(0, 120))}`);
  return m[1]!;
}

/** The contract's error code for what psql printed, or undefined for any other failure. */
export function errorCode(stderr: string): string | undefined {
  if (/password authentication failed|authentication failed|certificate/i.test(stderr)) return 'DB_AUTH_FAILED';
  if (/could not connect|connection refused|could not translate host name|timeout expired|no route to host/i.test(stderr)) return 'DB_UNREACHABLE';
  if (/database "[^"]*" does not exist/i.test(stderr)) return 'DB_NOT_FOUND';
  return undefined;
}

/**
 * `text` with every secret in it replaced (psql echoes failed statements, which carry the URL's keys): each known
 * secret in every form, and whatever follows a key's name in a URL or the passphrase option, however it is cut.
 */
export function redactAll(text: string, secrets: readonly string[]): string {
  const known = [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length).reduce((t, s) => t.split(s).join('[redacted]'), text);
  return known
    .replace(/\b(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|CREDENTIALS)=[^&'\s]*/g, '$1=[redacted]')
    .replace(/(encryption_passphrase\s*=\s*)'(?:[^']|'')*('|$)/gm, "$1'[redacted]'");
}
