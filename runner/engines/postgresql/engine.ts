/**
 * PostgreSQL logical backups with pg_dump (custom format, uncompressed) and
 * pg_restore. Plans come from plan.ts; this file runs them.
 */
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PostgresqlConnection } from '../../../api/index.js';
import { resolveOptionalSecret } from '../../config/secrets.js';
import { BackupError, isBackupError, toBackupError, type ErrorCode } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { CallOptions } from '../../storage/types.js';
import { run } from '../../util/process.js';
import type { DataDirectoryOptions, DataDirectoryReport, DumpHandle, DumpOptions, Engine, HousekeepingDeps, HousekeepingTask, ServiceDeps, ServiceSpec, ProbeResult, RestoreOptions, RestoreReport, RestoreTargetOutcome, StreamSpec, TargetState } from '../types.js';
import { RestrictedSql, planGlobals, replayErrors } from './globals.js';
import { feedProcess } from '../feed.js';
import { classifyFailure, isConnectionFailure, redact, type FailureContext } from './classify.js';
import { exportSnapshot, runPsql, type SnapshotSession } from './psql.js';
import { runPgRestore } from './restore.js';
import { dropCreatedDatabase, targetNotEmpty, throwIfAborted, withOutcome } from '../outcome.js';
import { checkConnectionArgs, dropCommandFor, globalsRestorePlan, plainRestorePlan, isToolTooOld, pgDumpallGlobalsPlan, pgDumpPlan, pgRestorePlan, psqlCanRestrict, psqlPlan, serverVersionFromNum, toolPaths, type PgTools, type PgVersion } from './plan.js';
import { SET_OWNER_SQL, CAN_READ_PASSWORDS_SQL, CREATE_DATABASE_SQL, DATABASE_EXISTS_SQL, HAS_DATA_SQL, LIST_DATABASES_SQL, LIST_ROLES_SQL, PROBE_SQL, dropDatabaseSql, parseProbe, parseRows, parseScalar } from './sql.js';
import { DEBIAN_ROOT, findDebianBinDir, readToolVersion, withInstallHint } from './tools.js';
import { startBasebackup } from './physical/basebackup.js';
import { BASEBACKUP_FORMAT, pgBasebackupPlan } from './physical/plan.js';
import { findServer } from './physical/recover.js';
import { checkDataDirectory, restoreDataDirectory } from './physical/restore.js';
import { archiveSlotName, walArchiver } from './physical/archiver.js';
import { PgWalServer } from './physical/wal-server.js';
import { archivesThrough, dropArchiveSlot, slotHousekeeping, type SlotDropResult } from './physical/slot-cleanup.js';
import { parseProperties, propertyStatements, type PropertyStatement } from './properties.js';

/** `magic`: every custom-format archive starts with these bytes (pg_backup_archiver.c). */
export const DUMP_FORMAT = { format: 'pg_dump-custom', extension: 'dump', compressed: false, magic: ['PGDMP'] } as const;

/** A globals dump larger than this is no globals dump: refused before it is parsed. */
const MAX_GLOBALS_BYTES = 64 * 1024 * 1024;

/** Reads a whole stream as UTF-8, refusing one longer than `max` bytes. */
async function readAll(input: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of input as AsyncIterable<Buffer | string>) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    n += b.length;
    if (n > max) throw new BackupError('FORMAT_MISMATCH', `the globals are larger than ${max / 1048576} MiB: not a globals dump`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A plain-format dump (pg_dump -Fp): written by other tools and imported, never by this runner's backups. */
export const PLAIN_FORMAT = { format: 'pg_dump-plain', extension: 'sql', compressed: false, magic: ['--\n-- PostgreSQL database dump\n--'] } as const;

/** A server's globals as pg_dumpall --globals-only writes them (plain SQL under its own header). */
export const GLOBALS_FORMAT = { format: 'pg_dumpall-globals', extension: 'sql', compressed: false, magic: ['--\n-- PostgreSQL database cluster dump\n--'], holds: 'globals' } as const;

export interface PostgresqlEngineOptions {
  /**
   * Export a snapshot from a separate session so the dump's consistency
   * instant is exact (default). Turn off behind a transaction-mode pooler,
   * where pg_dump cannot import it; consistentAt is then when pg_dump ends.
   */
  exportSnapshot?: boolean;
  /** Searched for newer client tools when the ones on PATH are older than the server. */
  debianRoot?: string;
}

interface QueryOptions {
  database?: string;
  vars?: Record<string, string>;
  signal?: AbortSignal;
  fallback?: ErrorCode;
  /** CREATE and DROP DATABASE, which cannot run in a transaction (and call no function a search_path could redirect). */
  outsideTransaction?: boolean;
}

export class PostgresqlEngine implements Engine {
  readonly name = 'postgresql';
  /** pg_dump writes into the compressor's pipe; a base backup's tar passes through here, read for its backup_label and size. */
  get dumpsIntoPipe(): boolean {
    return this.conn.mode !== 'physical';
  }
  /** A whole-server configuration's databases, or the one database: a restore of a whole-server backup is bound to them. */
  configuredDatabases(): 'all' | readonly string[] {
    return this.conn.databases ?? [this.conn.database];
  }

  /** A whole-server configuration with its globals (the default); a one-database configuration has none. */
  configuredGlobals(): boolean {
    return this.conn.databases !== undefined && this.conn.globals !== false;
  }

  /** A whole server: databases dumped at a time (each with its own snapshot session, so nothing is shared between them). */
  get streamConcurrency(): number {
    return this.conn.parallel ?? 2;
  }
  readonly database: string;
  private readonly log: Logger;
  private tools: PgTools;
  private password?: Promise<string | undefined>;
  private server?: PgVersion;
  private maintenanceDb?: string;
  /** Whether the globals stream includes role passwords (decided by `streams`). */
  private rolePasswords?: boolean;

  /**
   * @param conn the validated, frozen `engine.postgresql` block
   * @param env where password `env` sources are read, and PATH/HOME for the tools
   * @throws BackupError CONFIG_INVALID when dumpArgs or restoreArgs hold options the runner sets itself
   */
  constructor(
    private readonly conn: Readonly<PostgresqlConnection>,
    logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly options: PostgresqlEngineOptions = {},
  ) {
    checkConnectionArgs(conn); // bad extra arguments fail at startup, before any session or database exists
    this.database = conn.database;
    this.log = logger.child({ host: conn.host, port: conn.port, database: conn.database });
    this.tools = toolPaths(conn.binDir);
  }

  /** Like the constructor, but reads the password now, so a bad secret fails at startup. */
  static async create(conn: Readonly<PostgresqlConnection>, logger: Logger, env: NodeJS.ProcessEnv = process.env, options: PostgresqlEngineOptions = {}): Promise<PostgresqlEngine> {
    const engine = new PostgresqlEngine(conn, logger, env, options);
    await engine.secret();
    return engine;
  }

  /** The password, resolved once. */
  private secret(): Promise<string | undefined> {
    this.password ??= resolveOptionalSecret(this.conn.password, 'engine.postgresql.password', this.env);
    return this.password;
  }

  private failure(tool: string, database: string, fallback: ErrorCode, password: string | undefined): FailureContext {
    return { tool, host: this.conn.host, port: this.conn.port, user: this.conn.user, database, password, fallback };
  }

  private async query(sql: string, opts: QueryOptions = {}): Promise<string> {
    const password = await this.secret();
    const database = opts.database ?? this.conn.database;
    const plan = psqlPlan(this.conn, { password, database, vars: opts.vars, tools: this.tools, base: this.env });
    return runPsql(plan, sql, this.failure('psql', database, opts.fallback ?? 'DB_QUERY_FAILED', password), opts.signal, opts.outsideTransaction);
  }

  async probe(opts: CallOptions = {}): Promise<ProbeResult> {
    const server = serverVersionFromNum(parseProbe(await this.query(PROBE_SQL, opts)).num);
    this.server = server;
    const toolOf = (t: PgTools): string => (this.conn.mode === 'physical' ? t.pgBasebackup : t.pgDump);
    let tool = await readToolVersion(toolOf(this.tools), this.env, opts.signal);
    if (isToolTooOld(tool, server) && this.conn.binDir === undefined) {
      const newer = await findDebianBinDir(server.major, this.env, this.options.debianRoot ?? DEBIAN_ROOT);
      if (newer) {
        this.log.info({ binDir: newer.binDir, found: tool.version, using: newer.version.version }, 'pg_dump on PATH is older than the server; using a newer installed version');
        this.tools = toolPaths(newer.binDir);
        tool = newer.version;
      }
    }
    if (isToolTooOld(tool, server)) {
      throw new BackupError(
        'TOOL_TOO_OLD',
        `${basename(toolOf(this.tools))} ${tool.version} (${toolOf(this.tools)}) is older than the server (PostgreSQL ${server.version}) and cannot back it up. ` +
          `Install the PostgreSQL ${server.major} client tools (Debian: apt-get install postgresql-client-${server.major}) and set engine.postgresql.binDir to their bin directory, or use a runner image built for PostgreSQL ${server.major} or newer.`,
        { details: { serverVersion: server.version, toolVersion: tool.version, tool: toolOf(this.tools) } },
      );
    }
    this.log.debug({ serverVersion: server.version, toolVersion: tool.version }, 'probed PostgreSQL');
    return { serverVersion: server.version, toolVersion: tool.version };
  }

  /**
   * Starts pg_dump on an exported snapshot, writing into `opts.output` when
   * given, else into a stream returned to the caller. Aborting `signal` kills
   * pg_dump and the snapshot session. The snapshot session ends when pg_dump
   * exits, success or not.
   */
  async dump(opts: DumpOptions = {}): Promise<DumpHandle> {
    throwIfAborted(opts.signal);
    if (opts.stream?.kind === 'globals') return this.dumpGlobals(opts);
    if (opts.stream && opts.stream.name !== this.conn.database) return this.forDatabase(opts.stream.name).dump({ ...opts, stream: undefined });
    const password = await this.secret();
    if (this.conn.mode === 'physical') {
      const plan = pgBasebackupPlan(this.conn, { password, tools: this.tools, base: this.env });
      // Recorded with the backup: how its WAL is named and counted when the archive is read to recover past it.
      const walSegmentSize = await this.walServer().segmentSize(opts.signal);
      this.log.debug({ command: plan.command, args: plan.args }, 'starting pg_basebackup');
      return startBasebackup(plan, this.failure('pg_basebackup', this.conn.database, 'DUMP_FAILED', password), opts.signal, { walSegmentSize });
    }
    const session = this.options.exportSnapshot === false ? undefined : await this.trySnapshot(password, opts.signal);
    const plan = pgDumpPlan(this.conn, { password, snapshot: session?.snapshotId, tools: this.tools, base: this.env });
    this.log.debug({ command: plan.command, args: plan.args }, 'starting pg_dump');
    const fail = this.failure('pg_dump', this.conn.database, 'DUMP_FAILED', password);
    const p = run(plan.command, plan.args, {
      env: plan.env,
      signal: opts.signal,
      stdin: 'ignore',
      stdout: opts.output ?? 'pipe',
      classify: (code, stderr) => classifyFailure(stderr, code, fail),
    });
    const done = p.exited
      .catch((err: unknown) => {
        throw withInstallHint(err, plan.command);
      })
      .finally(async () => {
        await session?.close().catch((err: unknown) => this.log.warn({ err }, 'snapshot session did not end cleanly'));
      });
    done.catch(() => undefined); // observed by the caller; never an unhandled rejection
    // Without a snapshot, pg_dump's own snapshot is taken some time before it exits: its exit is an upper bound.
    const consistentAt = session ? Promise.resolve(session.consistentAt) : done.then(() => new Date());
    consistentAt.catch(() => undefined);
    return { ...DUMP_FORMAT, ...(p.stdout ? { stream: p.stdout } : {}), consistentAt, done };
  }

  /**
   * With `databases` configured: the globals (unless `globals: false`), then every database of the server
   * (`all`: those that accept connections, templates excepted) or the ones listed, each a stream.
   * A listed database that does not exist fails the backup (DB_NOT_FOUND) before anything is dumped.
   */
  async streams(opts: CallOptions = {}): Promise<StreamSpec[] | undefined> {
    const wanted = this.conn.databases;
    if (wanted === undefined) return undefined;
    const rows = parseRows(await this.query(LIST_DATABASES_SQL, { signal: opts.signal }));
    const present = rows.map((r) => r[0]!);
    if (rows.some((r) => r.length !== 3) || new Set(present).size !== present.length) {
      throw new BackupError('DUMP_FAILED', `a database name on ${this.conn.host}:${this.conn.port} holds a line break: such a server cannot be backed up whole here; list its databases in engine.postgresql.databases`);
    }
    const owners = new Map(rows.map((r) => [r[0]!, r[1]!]));
    const properties = new Map(rows.map((r) => [r[0]!, r[2]!]));
    const missing = wanted === 'all' ? [] : wanted.filter((d) => !present.includes(d));
    if (missing.length > 0) {
      throw new BackupError('DB_NOT_FOUND', `engine.postgresql.databases: ${missing.map((d) => `"${d}"`).join(', ')} ${missing.length === 1 ? 'does' : 'do'} not exist on ${this.conn.host}:${this.conn.port} (it has ${present.join(', ')})`, {
        details: { missing },
      });
    }
    const databases = wanted === 'all' ? present : wanted;
    this.rolePasswords = this.conn.globals === false ? false : parseScalar(await this.query(CAN_READ_PASSWORDS_SQL, { signal: opts.signal }), 'the privilege check') === 't';
    const propertiesOf = (name: string) => {
      try {
        const { properties: p, omitted } = parseProperties(properties.get(name) ?? '', name);
        for (const o of omitted) this.log.warn(o);
        return Object.keys(p).length > 0 ? { properties: p } : {};
      } catch (err) {
        throw new BackupError('DB_QUERY_FAILED', `${(err as Error).message} (the list of databases of ${this.conn.host}:${this.conn.port})`);
      }
    };
    return [
      ...(this.conn.globals === false ? [] : [{ name: 'globals', kind: 'globals' as const }]),
      ...databases.map((name) => ({ name, kind: 'database' as const, ...(owners.get(name) ? { owner: owners.get(name)! } : {}), ...propertiesOf(name) })),
    ];
  }

  /** The same engine for another database of the server: tools, password and server version shared. */
  private forDatabase(database: string): PostgresqlEngine {
    const e = new PostgresqlEngine({ ...this.conn, database, databases: undefined }, this.log, this.env, this.options);
    e.tools = this.tools;
    e.password = this.password;
    e.server = this.server;
    return e;
  }

  /**
   * pg_dumpall --globals-only. Role password hashes are included when this user may read them (a superuser);
   * otherwise the roles are dumped without passwords, with a warning. consistentAt is when it ended.
   */
  private async dumpGlobals(opts: DumpOptions): Promise<DumpHandle> {
    const password = await this.secret();
    const rolePasswords = this.rolePasswords ?? false;
    if (!rolePasswords) this.log.warn('this user may not read role passwords (pg_authid): the globals are dumped without them');
    const plan = pgDumpallGlobalsPlan(this.conn, { password, tools: this.tools, base: this.env, rolePasswords });
    const fail = this.failure('pg_dumpall', this.conn.database, 'DUMP_FAILED', password);
    const p = run(plan.command, plan.args, { env: plan.env, signal: opts.signal, stdin: 'ignore', stdout: opts.output ?? 'pipe', classify: (code, stderr) => classifyFailure(stderr, code, fail) });
    const done = p.exited.catch((err: unknown) => {
      throw withInstallHint(err, plan.command);
    });
    done.catch(() => undefined);
    const consistentAt = done.then(() => new Date());
    consistentAt.catch(() => undefined);
    return { ...GLOBALS_FORMAT, magic: [...GLOBALS_FORMAT.magic], ...(p.stdout ? { stream: p.stdout } : {}), consistentAt, done };
  }

  /**
   * Restores globals: the roles the server lacks are created, with their attributes, password hash, comment
   * and memberships, by SQL the runner builds from the dump (planGlobals: nothing of the dump runs as
   * written); roles that exist are left exactly as they are and reported. psql runs in restricted mode too.
   */
  private async restoreGlobals(input: Readable, signal?: AbortSignal): Promise<RestoreReport> {
    await this.requireRestrict(signal);
    const dump = await readAll(input, MAX_GLOBALS_BYTES);
    const existing = new Set(parseRows(await this.maintenance((db) => this.query(LIST_ROLES_SQL, { database: db, signal }))).map((r) => r[0]!));
    const planned = planGlobals(dump, existing);
    const password = await this.secret();
    const plan = globalsRestorePlan(this.conn, { password, database: this.maintenanceDb ?? 'postgres', tools: this.tools, base: this.env });
    let stderr = '';
    const fail = this.failure('psql', this.maintenanceDb ?? 'postgres', 'RESTORE_FAILED', password);
    const sql = new RestrictedSql(randomBytes(24).toString('hex'));
    sql.end(planned.statements.map((l) => `${l}\n`).join(''));
    const p = run(plan.command, plan.args, { env: plan.env, signal, stdin: 'pipe', stdout: 'ignore', onStderr: (c) => (stderr += c.toString('utf8')), classify: (code, err) => classifyFailure(err, code, fail) });
    const feeding = pipeline(sql, p.stdin!).catch((err: unknown) => err);
    await p.exited;
    const fed = await feeding;
    if (fed !== undefined && !(fed instanceof Error && /EPIPE/.test(fed.message))) throw toBackupError(fed, 'RESTORE_FAILED');
    const conflicts = [...planned.notes, ...replayErrors(redact(stderr, password))];
    this.log.info({ statements: planned.statements.length, conflicts: conflicts.length }, 'globals restored');
    return { conflicts };
  }

  /** Exports a snapshot, or returns undefined (after a warning) when the server or a pooler will not. */
  private async trySnapshot(password: string | undefined, signal?: AbortSignal): Promise<SnapshotSession | undefined> {
    const plan = psqlPlan(this.conn, { password, tools: this.tools, base: this.env });
    try {
      const session = await exportSnapshot(plan, this.failure('psql', this.conn.database, 'DB_QUERY_FAILED', password), signal);
      this.log.debug({ snapshot: session.snapshotId, consistentAt: session.consistentAt }, 'exported snapshot');
      return session;
    } catch (err) {
      const e = toBackupError(err, 'DB_QUERY_FAILED');
      if (isConnectionFailure(e)) throw e;
      this.log.warn({ err: e }, 'cannot export a snapshot; dumping without one: consistentAt will be when pg_dump ends (an upper bound)');
      return undefined;
    }
  }

  async inspectTarget(database: string, opts: CallOptions = {}): Promise<TargetState> {
    if (!(await this.databaseExists(database, opts.signal))) return { database, exists: false, hasData: false };
    const answer = parseScalar(await this.query(HAS_DATA_SQL, { database, signal: opts.signal }), 'the data check');
    return { database, exists: true, hasData: answer === 't' };
  }

  private async databaseExists(database: string, signal?: AbortSignal): Promise<boolean> {
    const answer = await this.maintenance((db) => this.query(DATABASE_EXISTS_SQL, { database: db, vars: { db: database }, signal }));
    return parseScalar(answer, 'the database lookup') !== '0';
  }

  /**
   * Runs `fn` connected to a maintenance database: `postgres`, else the
   * configured one, else template1 (the first that accepts the connection is
   * remembered).
   */
  private async maintenance<T>(fn: (database: string) => Promise<T>): Promise<T> {
    const candidates = [...new Set([this.maintenanceDb, 'postgres', this.conn.database, 'template1'].filter((d): d is string => d !== undefined))];
    let last: unknown;
    for (const db of candidates) {
      try {
        const result = await fn(db);
        this.maintenanceDb = db;
        return result;
      } catch (err) {
        last = err;
        const cannotUse = isBackupError(err, 'DB_NOT_FOUND') || (isBackupError(err) && /permission denied for database|CONNECT privilege/i.test(err.message));
        if (!cannotUse) throw err;
      }
    }
    throw last;
  }

  /**
   * Restores into `database` in ONE transaction (pg_restore
   * --single-transaction --exit-on-error): if anything fails, including a
   * truncated or corrupt input, an existing database is left exactly as it
   * was, and a database this call created is dropped again.
   *
   * Refuses (TARGET_NOT_EMPTY) when the target holds data, unless `force`:
   * then the objects the archive contains are dropped and recreated
   * (--clean --if-exists); other objects in the database are kept.
   *
   * `input` is the uncompressed archive. An unread OS pipe (e.g. a
   * decompressor's stdout) becomes pg_restore's stdin directly; any other
   * stream is piped in, and if it fails pg_restore is killed before it can
   * commit.
   */
  async restore(input: Readable, opts: RestoreOptions): Promise<RestoreReport | void> {
    const { database, force, signal } = opts;
    throwIfAborted(signal);
    if (opts.format === BASEBACKUP_FORMAT.format) throw new BackupError('USAGE', 'a physical base backup restores into a data directory (--data-dir), not into a database');
    if (opts.stream?.kind === 'globals') return this.restoreGlobals(input, signal);
    const target = await this.inspectTarget(database, { signal });
    if (target.hasData && !force) throw targetNotEmpty(database, `${this.conn.host}:${this.conn.port}`);
    if (!target.exists) {
      await this.maintenance((db) => this.query(CREATE_DATABASE_SQL, { database: db, vars: { db: database }, signal, fallback: 'RESTORE_FAILED', outsideTransaction: true }));
      this.log.info({ target: database }, 'created the target database');
    }
    try {
      if (opts.format === PLAIN_FORMAT.format) await this.runPlainRestore(input, database, signal);
      else await this.runRestore(input, database, target.hasData, signal, opts.noOwner);
    } catch (err) {
      const outcome: RestoreTargetOutcome = target.exists ? { database, state: 'unchanged', detail: 'nothing was committed: the restore runs in one transaction' } : await this.dropCreated(database);
      throw withOutcome(toBackupError(err, 'RESTORE_FAILED'), outcome);
    }
    this.log.info({ target: database, replaced: target.hasData }, 'restore committed');
    // What belongs to the database itself goes to one the restore created; an existing one keeps its own.
    if (target.exists) return;
    const owner = opts.noOwner ? undefined : opts.stream?.owner;
    const props = propertyStatements(database, opts.stream?.properties ?? {}, { noOwner: opts.noOwner, ...(owner !== undefined ? { owner } : {}) });
    // Settings and comment while the restoring user still owns it, then the owner, then the grants (pg_dump's order).
    const conflicts = [...props.skipped, ...(await this.runProperties(database, props.before, signal))];
    if (owner !== undefined) {
      try {
        await this.maintenance((db) => this.query(SET_OWNER_SQL, { database: db, vars: { db: database, owner }, signal }));
      } catch (err) {
        const why = toBackupError(err, 'DB_QUERY_FAILED').message;
        this.log.warn({ target: database, owner, err }, 'the restored database could not be given its owner back');
        conflicts.push(`database "${database}" is owned by the restoring user, not "${owner}" (${why})`);
      }
    }
    conflicts.push(...(await this.runProperties(database, props.grants, signal)));
    return conflicts.length > 0 ? { conflicts } : undefined;
  }

  /**
   * Runs statements giving a database the restore created its recorded settings, comment or grants, one at a
   * time; each one the server refuses (a role that does not exist here, a setting this user may not set) is
   * reported and the others still run.
   */
  private async runProperties(database: string, statements: readonly PropertyStatement[], signal?: AbortSignal): Promise<string[]> {
    const conflicts: string[] = [];
    for (const st of statements) {
      try {
        await this.maintenance((db) => this.query(st.sql, { database: db, vars: st.vars, signal }));
      } catch (err) {
        if (signal?.aborted) throw err;
        conflicts.push(`database "${database}": ${st.what} not restored (${toBackupError(err, 'DB_QUERY_FAILED').message})`);
      }
    }
    if (statements.length > 0) this.log.info({ target: database, statements: statements.length, refused: conflicts.length }, 'database properties restored');
    return conflicts;
  }

  /** A plain-format dump through psql in restricted mode (no backslash command of the input runs), in one transaction. */
  private async runPlainRestore(input: Readable, database: string, signal?: AbortSignal): Promise<void> {
    await this.requireRestrict(signal);
    const password = await this.secret();
    const plan = plainRestorePlan(this.conn, { password, database, tools: this.tools, base: this.env });
    const sql = new RestrictedSql(randomBytes(24).toString('hex'));
    input.once('error', (err) => sql.destroy(err));
    await feedProcess(plan, input.pipe(sql), { classify: (code, stderr) => classifyFailure(stderr, code, this.failure('psql', database, 'RESTORE_FAILED', password)), signal });
  }

  /** The server side of WAL archiving (slot, position, pg_receivewal). */
  private walServer(): PgWalServer {
    return new PgWalServer({
      conn: this.conn,
      tools: () => this.tools,
      password: () => this.secret(),
      env: this.env,
      log: this.log,
      query: (sql, vars, signal) => this.query(sql, { vars, ...(signal ? { signal } : {}) }),
    });
  }

  /** Physical, with WAL archiving on (the default): the WAL archiver (physical/archiver.ts). */
  services(deps: ServiceDeps): ServiceSpec[] {
    if (this.conn.mode !== 'physical' || this.conn.wal?.archive === false) return [];
    const server = this.walServer();
    const settings = { slot: this.conn.wal?.slot ?? archiveSlotName(deps.owner), partialIntervalMs: (this.conn.wal?.partialSeconds ?? 15) * 1000 };
    return [walArchiver(server, deps.walStore, settings, deps.spool, deps.logger.child({ service: 'wal-archiver', slot: settings.slot }))];
  }

  /**
   * Start-up housekeeping: a configuration whose archiver does not stream through the DatabaseBackup's own slot
   * (WAL archiving off, or mode logical) drops that slot when an earlier configuration left it, unless something
   * streams from it (physical/slot-cleanup.ts). No name but archiveSlotName's is ever looked at.
   */
  housekeeping(deps: HousekeepingDeps): HousekeepingTask[] {
    const slot = archiveSlotName(deps.owner);
    if (archivesThrough(this.conn, slot)) return [];
    return [slotHousekeeping(this.walServer(), slot, this.conn.user, deps.logger.child({ task: 'wal-slot', slot }))];
  }

  /** Whether this configuration's WAL archiver streams through the DatabaseBackup's own slot (archiveSlotName). */
  archivesThroughOwnSlot(owner: HousekeepingDeps['owner']): boolean {
    return archivesThrough(this.conn, archiveSlotName(owner));
  }

  /** `backup-runner wal-slot drop`: drops the DatabaseBackup's own archive slot (archiveSlotName, never another name); SLOT_ACTIVE while something streams from it. */
  dropArchiveSlot(owner: HousekeepingDeps['owner'], signal?: AbortSignal): Promise<SlotDropResult> {
    return dropArchiveSlot(this.walServer(), archiveSlotName(owner), signal);
  }

  /** The directory (physical/restore.ts), and with --start the server of the backup's major version (physical/recover.ts), before anything is read. */
  async checkDataDirectory(opts: DataDirectoryOptions): Promise<{ fresh: boolean }> {
    if (opts.start) await findServer(opts.backup.engine.serverVersion, this.conn.binDir, this.env);
    const prepared = await checkDataDirectory(opts);
    if (opts.start && process.getuid?.() === 0 && (prepared.owner?.uid ?? 0) === 0) {
      throw new BackupError('USAGE', `restore --start: ${opts.dataDir} would belong to root, and PostgreSQL never runs as root: give --owner UID[:GID] (the database's user) or run the restore as that user; nothing was changed`);
    }
    return { fresh: !prepared.replaced && prepared.resume === undefined };
  }

  /** Lays a physical base backup into a data directory (physical/restore.ts). */
  restoreDataDirectory(input: Readable, opts: DataDirectoryOptions): Promise<DataDirectoryReport> {
    return restoreDataDirectory(input, opts, { pgVerifybackup: this.tools.pgVerifybackup, ...(this.conn.binDir ? { binDir: this.conn.binDir } : {}), env: this.env, log: this.log });
  }

  /** Refuses to replay SQL with a psql that cannot refuse the input's backslash commands. */
  private async requireRestrict(signal?: AbortSignal): Promise<void> {
    const v = await readToolVersion(this.tools.psql, this.env, signal);
    if (!psqlCanRestrict(v)) {
      throw new BackupError('TOOL_TOO_OLD', `replaying SQL needs a psql with \\restrict (13.22, 14.19, 15.14, 16.10, 17.6 or later); ${this.tools.psql} is ${v.version}: use a newer runner image (a whole-server restore can leave the roles out with --skip-globals)`);
    }
  }

  private async runRestore(input: Readable, database: string, clean: boolean, signal?: AbortSignal, noOwner?: boolean): Promise<void> {
    const password = await this.secret();
    const plan = pgRestorePlan(this.conn, { password, database, force: clean, noOwner, tools: this.tools, base: this.env });
    this.log.debug({ command: plan.command, args: plan.args }, 'starting pg_restore');
    await runPgRestore(plan, input, this.failure('pg_restore', database, 'RESTORE_FAILED', password), signal);
  }

  /**
   * Drops a database this engine created for a restore that then failed, and
   * says whether it is gone. Never masks the restore's error.
   */
  private dropCreated(database: string): Promise<RestoreTargetOutcome> {
    const drop = async (): Promise<void> => {
      const major = this.server?.major ?? serverVersionFromNum(parseProbe(await this.query(PROBE_SQL)).num).major;
      await this.maintenance((db) => this.query(dropDatabaseSql(major), { database: db, vars: { db: database }, outsideTransaction: true }));
    };
    return dropCreatedDatabase(database, drop, dropCommandFor(this.conn, database), this.log);
  }
}
