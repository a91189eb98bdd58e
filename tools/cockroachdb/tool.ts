/**
 * The CockroachDB engine, through the tool contract, as a server-side engine (`output: location`): the
 * cluster's nodes write and read the backup themselves; the tool only speaks SQL to the cluster, with psql.
 * Untested against a real cluster here (CockroachDB is not in Debian): test/integration/cockroachdb-tool.test.ts
 * checks what this tool hands a stand-in psql, not what CockroachDB does with it.
 *
 * - backup: reads `cluster_logical_timestamp()`, then `BACKUP [DATABASE x] INTO '<destination>' AS OF SYSTEM
 *   TIME <that timestamp>`: the backup is consistent to exactly that instant, which is its consistentAt. One
 *   database (the target's `database`) or, when none is configured, the whole cluster. The destination URL
 *   carries the tenant's own keys (`AUTH=specified`) or none (`AUTH=implicit`: the nodes' own identity).
 *   The manifest's engine.position records the scope and the job id.
 * - restore of a database: `RESTORE DATABASE x FROM '<subdir>' IN '<source>' WITH new_db_name = <scratch>`
 *   (the backup's own subdirectory, from the objects the runner verified: never what a LATEST file written
 *   later points to), then the scratch database takes the target's place one step at a time: the target (if
 *   any) renamed aside, the scratch renamed to the target, the old one dropped; each step's failure says what
 *   it left. A failed RESTORE drops the scratch database: the target is as it was. Without force a target that
 *   exists is refused first (CockroachDB restores only into a database it creates). Into another name:
 *   `--target-database`.
 * - restore of a cluster: `RESTORE FROM '<subdir>' IN '<source>'`, into a cluster with no user database only.
 * - inspect: whether the database exists and holds a table, view or sequence; probe: `version()`.
 *
 * Secrets never reach a command line or the environment: the password is in a 0600 pgpass file, every
 * statement (with the storage keys and the passphrase in it) in a 0600 file psql reads with -f, and psql's
 * messages are logged with those secrets removed.
 *
 * A stopped call (SIGTERM) cancels its BACKUP or RESTORE job (CANCEL JOBS of the jobs naming this backup's
 * directory) before the tool exits: a job goes on in the cluster when its session ends.
 *
 * Not covered: incremental backups (each backup is a full one into its own directory), S3 path-style
 * addressing (CockroachDB chooses it), locality-aware backups, and restoring tables of a backup one by one.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { secretEncodings, type Destination, type ToolResult } from '../../api/engine-contract.js';
import { type Handlers, requireConfiguredTarget, type ToolContext, ToolFailure } from '../sdk.js';
import {
  backupStatement,
  cancelJobsStatement,
  configOf,
  type CrdbConfig,
  errorCode,
  backupSubdir,
  dropStatement,
  existsStatement,
  renameStatement,
  tablesStatement,
  positionOf,
  psqlVersionOf,
  redactAll,
  restoreStatement,
  type Scope,
  scopeOfPosition,
  serverVersionOf,
  storageUrl,
  type StorageKeys,
} from './sql.js';

const INSTALL_HINT = 'psql (Debian postgresql-client) is needed to reach CockroachDB';

/** What one call knows: its request, its secrets (to keep out of every message), and how many statements it ran. */
interface Session {
  ctx: ToolContext;
  cfg: CrdbConfig;
  secrets: string[];
  statements: number;
  /** The database psql connects to (never the one a restore renames or drops). */
  connectTo: string;
}

function sessionOf(ctx: ToolContext): Session {
  return { ctx, cfg: configOf(ctx.request.config), secrets: ctx.password ? [ctx.password] : [], statements: 0, connectTo: 'defaultdb' };
}

/** The scope the configuration names: its database, or (none) the whole cluster. */
function configuredScope(ctx: ToolContext): Scope {
  const db = ctx.request.target.database;
  return db ? { kind: 'database', name: db } : { kind: 'cluster' };
}

/** A pgpass line matching any server: `\` and `:` escaped. */
function pgpassLine(password: string): string {
  return `*:*:*:*:${password.replace(/\\/g, '\\\\').replace(/:/g, '\\:')}\n`;
}

/** psql's environment: connection settings only (PATH for psql itself), the password as a 0600 pgpass file. */
function psqlEnv(s: Session): NodeJS.ProcessEnv {
  const { request, password } = s.ctx;
  const t = request.target;
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: request.workDir, PGCONNECT_TIMEOUT: '15', PGAPPNAME: 'db-backup-tool', PGSSLMODE: s.cfg.sslmode, PGDATABASE: s.connectTo };
  if (t.host) env.PGHOST = t.host;
  if (t.port) env.PGPORT = String(t.port);
  if (t.user) env.PGUSER = t.user;
  if (t.tls?.caFile) env.PGSSLROOTCERT = t.tls.caFile;
  if (t.tls?.certFile) env.PGSSLCERT = t.tls.certFile;
  if (t.tls?.keyFile) env.PGSSLKEY = t.tls.keyFile;
  if (password !== undefined) {
    const file = join(request.workDir, 'pgpass');
    writeFileSync(file, pgpassLine(password), { mode: 0o600, flag: 'w' });
    env.PGPASSFILE = file;
  }
  return env;
}

/** Runs `sql` (from a 0600 file) with psql; resolves to its rows, fields split on `|`. */
async function psql(s: Session, sql: string, fallback: string): Promise<string[][]> {
  const file = join(s.ctx.request.workDir, `statement-${++s.statements}.sql`);
  writeFileSync(file, `${sql}\n`, { mode: 0o600, flag: 'wx' });
  // VERBOSITY=terse: an error is never followed by the statement's text (which carries the keys).
  const child = spawn('psql', ['-X', '-q', '-A', '-t', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=terse', '-f', file], { env: psqlEnv(s), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 1_048_576) stderr += c.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new ToolFailure('TOOL_INCOMPATIBLE', INSTALL_HINT) : err));
    child.once('close', resolve);
  });
  // Redacted before it is cut: a secret across the cut would leave its tail.
  const said = redactAll(stderr.trim(), s.secrets).slice(-16_384);
  if (said) s.ctx.log(said);
  if (code !== 0) throw new ToolFailure(errorCode(said) ?? fallback, said || `psql exited with code ${code}`);
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('|'));
}

/** The keys a credentials file holds, recorded as secrets of the session (raw and as the URL encodes them). */
function keysOf(s: Session, dest: Destination): StorageKeys | undefined {
  if (dest.credentials?.source !== 'file') return undefined;
  const text = readFileSync(dest.credentials.file, 'utf8');
  const values: Record<string, string> = dest.type === 'gcs' ? { key: text } : (JSON.parse(text) as Record<string, string>);
  for (const v of Object.values(values)) s.secrets.push(...secretEncodings(v));
  return { values };
}

/** The passphrase the cluster encrypts with (config encryptionPassphraseFile), a secret of the session. */
function passphraseOf(s: Session): string | undefined {
  const file = s.cfg.encryptionPassphraseFile;
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ToolFailure('CONFIG_INVALID', `config encryptionPassphraseFile ${file} cannot be read: ${(err as Error).message}`);
  }
  if (text === '') throw new ToolFailure('CONFIG_INVALID', `config encryptionPassphraseFile ${file} is empty`);
  s.secrets.push(text);
  return text;
}

async function probe(ctx: ToolContext): Promise<ToolResult<'probe'>> {
  const s = sessionOf(ctx);
  const [[version]] = (await psql(s, 'SELECT version();', 'DB_UNREACHABLE')) as [[string]];
  const tool = await new Promise<string>((resolve, reject) => {
    const p = spawn('psql', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    p.once('error', () => reject(new ToolFailure('TOOL_INCOMPATIBLE', INSTALL_HINT)));
    p.once('close', () => resolve(out));
  });
  return { serverVersion: serverVersionOf(version ?? ''), toolVersion: psqlVersionOf(tool) };
}

/** An HLC timestamp (`<nanoseconds>.<logical>`) as an instant, to the millisecond (rounded down: never later than it). */
function instantOf(hlc: string): Date {
  const nanos = /^(\d+)(\.\d+)?$/.exec(hlc)?.[1];
  if (!nanos) throw new ToolFailure('DUMP_FAILED', `cluster_logical_timestamp() said ${JSON.stringify(hlc.slice(0, 64))}`);
  return new Date(Number(BigInt(nanos) / 1_000_000n));
}

async function backup(ctx: ToolContext): Promise<ToolResult<'backup'>> {
  const s = sessionOf(ctx);
  const dest = ctx.request.destination;
  if (!dest) throw new ToolFailure('CONFIG_INVALID', 'the request names no destination: the cockroachdb engine is a server-side engine (output: location)');
  const url = storageUrl(dest, keysOf(s, dest));
  const passphrase = passphraseOf(s);
  const scope = configuredScope(ctx);
  const [[hlc]] = (await psql(s, 'SELECT cluster_logical_timestamp()::STRING;', 'DUMP_FAILED')) as [[string]];
  const rows = await whileCancellable(s, cancelJobsStatement('BACKUP', dest.prefix ?? dest.path ?? ''), () => psql(s, backupStatement(scope, url, hlc ?? '', s.cfg, passphrase), 'DUMP_FAILED'));
  const [jobId, status] = rows[0] ?? [];
  if (status !== undefined && status !== 'succeeded') throw new ToolFailure('DUMP_FAILED', `BACKUP job ${jobId ?? '?'} ended ${status}`);
  return { consistentAt: instantOf(hlc ?? '').toISOString(), position: positionOf(scope, jobId) };
}

/**
 * Runs `work` (a statement that starts a job) so that a stopped call stops the job too: told to stop (the
 * runner's SIGTERM, SIGKILL 10 s later), the tool sends `cancel` (which names this backup's directory only)
 * before it exits, since the cluster goes on with a job whose session ended.
 */
async function whileCancellable<T>(s: Session, cancel: string, work: () => Promise<T>): Promise<T> {
  const onSignal = (): void => {
    s.ctx.log('stopped: cancelling the job in the cluster');
    void psql(s, cancel, 'ABORTED')
      .catch((err: unknown) => s.ctx.log(`the job could not be cancelled: ${(err as Error).message}`))
      .finally(() => process.exit(1));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    return await work();
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
  }
}

/** Whether the scope's target exists and holds data (a cluster: any user database). */
async function targetState(s: Session, scope: Scope): Promise<{ exists: boolean; hasData: boolean }> {
  const [[first]] = (await psql(s, existsStatement(scope), 'DB_QUERY_FAILED')) as [[string]];
  if (scope.kind === 'cluster') return { exists: true, hasData: Number(first ?? '0') > 0 };
  if (first !== 't' && first !== 'true') return { exists: false, hasData: false };
  const [[tables]] = (await psql(s, tablesStatement(scope.name), 'DB_QUERY_FAILED')) as [[string]];
  return { exists: true, hasData: Number(tables ?? '0') > 0 };
}

/** The scope inspect and restore act on: the restore's database, or the cluster when the configuration backs up the cluster. */
function targetScope(ctx: ToolContext): Scope {
  const configured = configuredScope(ctx);
  if (configured.kind === 'cluster') return configured;
  return { kind: 'database', name: ctx.request.restore?.database ?? configured.name };
}

async function inspect(ctx: ToolContext): Promise<ToolResult<'inspect'>> {
  return targetState(sessionOf(ctx), targetScope(ctx));
}

function leaving(err: unknown, target: NonNullable<ToolFailure['target']>): ToolFailure {
  const f = err instanceof ToolFailure ? err : new ToolFailure('RESTORE_FAILED', err instanceof Error ? err.message : String(err));
  return new ToolFailure(f.code, f.message, target);
}

/** What a restore reads: the source's URL, the backup's own subdirectory, the passphrase. */
interface Source {
  url: string;
  /** The copy's directory in its bucket, which the RESTORE job's description names. */
  prefix: string;
  subdir: string;
  passphrase: string | undefined;
}

async function restoreCluster(s: Session, src: Source): Promise<ToolResult<'restore'>> {
  requireConfiguredTarget(s.ctx, 'a whole-cluster backup', 'the configured cluster as a whole');
  if ((await targetState(s, { kind: 'cluster' })).hasData) {
    throw new ToolFailure('TARGET_NOT_EMPTY', 'a whole-cluster backup restores only into a cluster without user databases (CockroachDB refuses any other); nothing was changed', { state: 'unchanged' });
  }
  try {
    await whileCancellable(s, cancelJobsStatement('RESTORE', src.prefix), () => psql(s, restoreStatement({ kind: 'cluster' }, src.url, src.subdir, undefined, s.cfg, src.passphrase), 'RESTORE_FAILED'));
  } catch (err) {
    throw leaving(err, { state: 'partial', detail: 'the cluster restore failed: CockroachDB reverts a failed RESTORE job, but what it left was not checked' });
  }
  return {};
}

/**
 * Puts the restored scratch database in the target's place, one step at a time, each saying what it left: the
 * target (when it exists) is renamed aside, the scratch database takes its name, and the old one is dropped.
 */
async function replaceTarget(s: Session, scratch: string, target: string, exists: boolean): Promise<ToolResult<'restore'>> {
  const aside = `${target.slice(0, 40)}_previous_${randomBytes(4).toString('hex')}`;
  if (exists) {
    try {
      await psql(s, renameStatement(target, aside), 'RESTORE_FAILED');
    } catch (err) {
      // The rename may have committed although psql failed: what exists now is said, never assumed.
      const targetThere = await targetState(s, { kind: 'database', name: target }).then((t) => t.exists, () => undefined);
      const left = await dropScratch(s, scratch);
      throw leaving(err, {
        state: targetThere === true ? 'unchanged' : 'partial',
        detail: `"${target}" could not be renamed aside${targetThere === false ? ` and is no longer there under its name (look for "${aside}")` : targetThere === undefined ? ' (whether it is still there could not be checked)' : ''}; the restored copy (${scratch}) was ${left ? 'not dropped' : 'dropped'}${left ?? ''}`,
      });
    }
  }
  try {
    await psql(s, renameStatement(scratch, target), 'RESTORE_FAILED');
  } catch (err) {
    const back = exists ? await psql(s, renameStatement(aside, target), 'RESTORE_FAILED').then(() => true, () => false) : true;
    throw leaving(err, {
      state: back ? 'unchanged' : 'partial',
      detail: back ? `the restored copy is database "${scratch}"; "${target}" is as it was` : `"${target}" is now named "${aside}", and the restored copy is "${scratch}": rename one of them to "${target}"`,
    });
  }
  if (!exists) return {};
  try {
    await psql(s, dropStatement(aside), 'RESTORE_FAILED');
    return {};
  } catch (err) {
    return { conflicts: [`the database "${target}" held before the restore is kept as "${aside}" (dropping it failed: ${(err as Error).message}): drop it when it is no longer needed`] };
  }
}

/** Drops a scratch database; a failure is logged and named, never thrown. */
async function dropScratch(s: Session, scratch: string): Promise<string | undefined> {
  try {
    await psql(s, dropStatement(scratch), 'RESTORE_FAILED');
    return undefined;
  } catch (err) {
    s.ctx.log(`the scratch database ${scratch} could not be dropped: ${(err as Error).message}`);
    return `; the scratch database "${scratch}" could not be dropped: drop it by hand`;
  }
}

async function restoreDatabase(s: Session, from: Scope & { kind: 'database' }, target: string, src: Source): Promise<ToolResult<'restore'>> {
  const force = s.ctx.request.restore?.force === true;
  const state = await targetState(s, { kind: 'database', name: target });
  if (state.exists && !force) {
    throw new ToolFailure('TARGET_NOT_EMPTY', `database "${target}" exists${state.hasData ? ' and holds data' : ''} (CockroachDB restores only into a database it creates); nothing was changed. Re-run with --force to replace it, or restore under another name with --target-database`, {
      state: 'unchanged',
    });
  }
  const scratch = `${target.slice(0, 40)}_restore_${randomBytes(4).toString('hex')}`;
  try {
    await whileCancellable(s, cancelJobsStatement('RESTORE', src.prefix), () => psql(s, restoreStatement(from, src.url, src.subdir, scratch, s.cfg, src.passphrase), 'RESTORE_FAILED'));
  } catch (err) {
    const left = await dropScratch(s, scratch);
    throw leaving(err, { state: 'unchanged', detail: `the backup was restored into a scratch database (${scratch}), never into "${target}"${left ?? ''}` });
  }
  return replaceTarget(s, scratch, target, state.exists);
}

/** What the restore reads, checked before anything is written (a failure here leaves the target unchanged). */
function sourceOf(s: Session, r: NonNullable<ToolContext['request']['restore']>): Source {
  if (!r.source) throw new ToolFailure('CONFIG_INVALID', 'the request names no source: the cockroachdb engine is a server-side engine (output: location)');
  const subdir = backupSubdir(r.objects ?? []);
  if (!subdir) throw new ToolFailure('CONFIG_INVALID', 'the backup names no <YYYY>/<MM>/<DD-HHMMSS.ss>/BACKUP_MANIFEST: it is not one CockroachDB backup');
  return { url: storageUrl(r.source, keysOf(s, r.source)), prefix: r.source.prefix ?? '', subdir, passphrase: passphraseOf(s) };
}

async function restore(ctx: ToolContext): Promise<ToolResult<'restore'>> {
  const s = sessionOf(ctx);
  const r = ctx.request.restore!;
  let src: Source;
  try {
    src = sourceOf(s, r);
  } catch (err) {
    throw leaving(err, { state: 'unchanged' });
  }
  const from = scopeOfPosition((r.engine as { position?: unknown }).position, configuredScope(ctx));
  // A database cannot be renamed or dropped by a session connected to it.
  if (from.kind === 'database' && (r.database ?? from.name) === 'defaultdb') s.connectTo = 'postgres';
  if (from.kind === 'cluster') return restoreCluster(s, src);
  return restoreDatabase(s, from, r.database ?? from.name, src);
}

export const handlers: Handlers = { probe, backup, inspect, restore };
