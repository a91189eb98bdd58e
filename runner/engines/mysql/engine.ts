/**
 * MariaDB and MySQL logical backups with mariadb-dump / mysqldump and the
 * mariadb / mysql client. Plans come from plan.ts; this file runs them.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { MysqlConnection } from '../../../api/index.js';
import { mysqlDatabaseErrors } from '../../../api/mysql-args.js';
import { resolveOptionalSecret } from '../../config/secrets.js';
import { BackupError, isBackupError, toBackupError, type ErrorCode } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { CallOptions } from '../../storage/types.js';
import { capture, minimalEnv, run } from '../../util/process.js';
import { feedProcess } from '../feed.js';
import { dropCreatedDatabase, targetNotEmpty, throwIfAborted, withOutcome } from '../outcome.js';
import type { DumpHandle, DumpOptions, Engine, ProbeResult, RestoreOptions, RestoreTargetOutcome, TargetState } from '../types.js';
import { classifyFailure, type FailureContext } from './classify.js';
import {
  dropCommandFor,
  dumpPlan,
  optionFile,
  parseServerVersion,
  parseToolVersion,
  queryPlan,
  restorePlan,
  toolCandidates,
  toolProblem,
  withOptions,
  type CommandPlan,
  type MysqlTools,
  type MysqlVersion,
} from './plan.js';
import { DumpWatcher } from './scan.js';
import { CLOCK_SQL, PROBE_SQL, createDatabaseSql, databaseDefaultsSql, databaseExistsSql, dropDatabaseSql, objectCountSql, parseClock, parseCount, parseDefaults, parseProbe } from './sql.js';

/**
 * `magic`: mariadb-dump 10.11.8 and later open with the sandbox-mode line; older
 * ones and mysqldump with their name. Options that drop the header are refused
 * in dumpArgs, so every dump the runner stores starts with one of these.
 */
export const DUMP_FORMAT = {
  format: 'mysql-sql',
  extension: 'sql',
  compressed: false,
  magic: ['/*M!999999\\- enable the sandbox mode */', '-- MariaDB dump', '-- MySQL dump'],
  refuse: [
    {
      pattern: /^(?:-- Current Database: |USE |CREATE DATABASE )/m,
      why: 'a dump of several databases (mysqldump --databases or --all-databases): it would switch to other databases of the server; dump the one database without --databases',
    },
  ],
} as const;

export const INSTALL_HINT = 'install the MariaDB client (Debian: apt-get install mariadb-client) or set engine.mysql.binDir to the directory of mariadb-dump and mariadb';

interface Resolved {
  tools: MysqlTools;
  version: MysqlVersion;
}

interface Server {
  version: MysqlVersion;
  binlog: boolean;
}

export class MysqlEngine implements Engine {
  readonly name = 'mysql';
  readonly dumpsIntoPipe = false;
  readonly database: string;
  private readonly log: Logger;
  private password?: Promise<string | undefined>;
  private resolved?: Promise<Resolved>;
  private server?: Server;

  /**
   * @param conn the validated, frozen `engine.mysql` block (its dumpArgs and restoreArgs already checked against the allowlist)
   * @param env where password `env` sources are read, and PATH/HOME for the tools
   * @throws BackupError CONFIG_INVALID for a database name the dump tool cannot dump
   */
  constructor(
    private readonly conn: Readonly<MysqlConnection>,
    logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    // The config loader checks this too; an engine built directly still fails at startup, not at 3 am.
    const bad = mysqlDatabaseErrors('engine.mysql', conn.database)[0];
    if (bad) throw new BackupError('CONFIG_INVALID', `${bad.path}: ${bad.message}`);
    this.database = conn.database;
    this.log = logger.child({ host: conn.host, port: conn.port, database: conn.database });
  }

  /** Like the constructor, but reads the password now, so a bad secret fails at startup. */
  static async create(conn: Readonly<MysqlConnection>, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<MysqlEngine> {
    const engine = new MysqlEngine(conn, logger, env);
    await engine.secret();
    return engine;
  }

  private secret(): Promise<string | undefined> {
    this.password ??= resolveOptionalSecret(this.conn.password, 'engine.mysql.password', this.env);
    return this.password;
  }

  /** The first tool pair that answers --version (mariadb-dump, then mysqldump), resolved once. */
  private tools(signal?: AbortSignal): Promise<Resolved> {
    this.resolved ??= (async () => {
      let last: unknown;
      for (const tools of toolCandidates(this.conn.binDir)) {
        try {
          const text = await capture(tools.dump, ['--version'], { env: minimalEnv(this.env), signal });
          const version = parseToolVersion(text);
          if (!version) throw new BackupError('TOOL_MISSING', `cannot read a version from "${text.trim().slice(0, 100)}" (${tools.dump} --version)`);
          return { tools, version };
        } catch (err) {
          last = err;
          if (!isBackupError(err, 'TOOL_MISSING')) throw err;
        }
      }
      throw new BackupError('TOOL_MISSING', `neither mariadb-dump nor mysqldump was found: ${INSTALL_HINT}`, { cause: last });
    })();
    this.resolved.catch(() => (this.resolved = undefined)); // a failed lookup is retried next time
    return this.resolved;
  }

  private failure(tool: string, database: string, fallback: ErrorCode, password: string | undefined): FailureContext {
    return { tool, host: this.conn.host, port: this.conn.port, user: this.conn.user, database, password, fallback };
  }

  /** A private directory holding the option file for one run; removed by the returned function. */
  private async optionsDir(flavor: MysqlVersion['flavor']): Promise<{ path: string; remove: () => Promise<void> }> {
    const dir = await mkdtemp(join(this.env.TMPDIR ?? tmpdir(), 'mysql-'));
    await chmod(dir, 0o700);
    const path = join(dir, 'client.cnf');
    await writeFile(path, optionFile(this.conn, flavor, await this.secret()), { mode: 0o600 });
    return { path, remove: () => rm(dir, { recursive: true, force: true }) };
  }

  /** Runs `plan` with the option file filled in; `run` gets the ready plan. The file is removed after `settled`. */
  private async planned<T>(plan: (r: Resolved) => CommandPlan, fn: (ready: CommandPlan, r: Resolved) => { value: T; settled: Promise<unknown> }, signal?: AbortSignal): Promise<T> {
    const r = await this.tools(signal);
    const opts = await this.optionsDir(r.version.flavor);
    let out: { value: T; settled: Promise<unknown> };
    try {
      out = fn(withOptions(plan(r), opts.path), r);
    } catch (err) {
      await opts.remove();
      throw err;
    }
    void out.settled.then(opts.remove, opts.remove).catch(() => undefined);
    return out.value;
  }

  /** Runs `sql` (on stdin) with the client and returns its output. */
  private async query(sql: string, opts: { database?: string; signal?: AbortSignal; fallback?: ErrorCode } = {}): Promise<string> {
    const password = await this.secret();
    const database = opts.database;
    const fail = this.failure('mariadb', database ?? this.conn.database, opts.fallback ?? 'DB_QUERY_FAILED', password);
    const result = await this.planned(
      (r) => queryPlan(r.tools, database),
      (plan) => {
        const p = run(plan.command, plan.args, { env: minimalEnv(this.env), signal: opts.signal, stdin: 'pipe', classify: (code, stderr) => classifyFailure(stderr, code, fail) });
        const out: Buffer[] = [];
        p.stdout?.on('data', (c: Buffer) => out.push(c));
        p.stdin?.on('error', () => undefined); // it may exit before reading (e.g. cannot connect): its exit says why
        p.stdin?.end(sql);
        const value = p.exited.then(() => Buffer.concat(out).toString('utf8'));
        return { value, settled: p.exited.catch(() => undefined) };
      },
      opts.signal,
    );
    return result;
  }

  async probe(opts: CallOptions = {}): Promise<ProbeResult> {
    const { version: tool, tools } = await this.tools(opts.signal);
    const answer = parseProbe(await this.query(PROBE_SQL, { database: this.conn.database, signal: opts.signal }));
    const server = parseServerVersion(answer.version);
    if (!server) throw new BackupError('DB_QUERY_FAILED', `cannot read the server version from "${answer.version.slice(0, 100)}"`);
    const problem = toolProblem(tool, server);
    if (problem) throw new BackupError(problem.code, `${tools.dump}: ${problem.message}`, { details: { serverVersion: answer.version, toolVersion: tool.version, tool: tools.dump } });
    this.server = { version: server, binlog: answer.binlog };
    this.log.debug({ serverVersion: answer.version, toolVersion: tool.version, binlog: answer.binlog }, 'probed the MariaDB/MySQL server');
    return { serverVersion: answer.version, toolVersion: `${tool.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${tool.version}` };
  }

  /**
   * Starts the dump and returns its stream (passed through a watcher that
   * reads the snapshot marker and the binlog position). consistentAt is the
   * server's clock read as soon as the dump shows its snapshot was taken: an
   * instant at or after it.
   */
  async dump(opts: DumpOptions = {}): Promise<DumpHandle> {
    throwIfAborted(opts.signal);
    if (!this.server) await this.probe(opts);
    const server = this.server!;
    const password = await this.secret();
    const fail = this.failure('mariadb-dump', this.conn.database, 'DUMP_FAILED', password);
    let snapshot: Promise<Date> | undefined;
    const clock = (): Promise<Date> =>
      this.query(CLOCK_SQL, { signal: opts.signal }).then(parseClock, (err: unknown) => {
        this.log.warn({ err }, 'cannot read the server clock after the snapshot; consistentAt is this runner\'s clock');
        return new Date();
      });
    const watcher = new DumpWatcher({
      onSnapshot: () => {
        snapshot = clock();
      },
    });
    const handle = await this.planned(
      (r) => dumpPlan(this.conn, r.tools, { tool: r.version, binlog: server.binlog }),
      (plan) => {
        this.log.debug({ command: plan.command, args: plan.args.slice(1) }, 'starting the dump');
        const p = run(plan.command, plan.args, { env: minimalEnv(this.env), signal: opts.signal, stdin: 'ignore', stdout: 'pipe', classify: (code, stderr) => classifyFailure(stderr, code, fail) });
        pipeline(p.stdout!, watcher).catch((err: unknown) => watcher.destroy(toBackupError(err, 'DUMP_FAILED')));
        const done = p.exited.catch((err: unknown) => {
          throw isBackupError(err, 'TOOL_MISSING') ? new BackupError('TOOL_MISSING', `${plan.command} was not found: ${INSTALL_HINT}`, { cause: err }) : err;
        });
        done.catch(() => undefined); // observed by the caller
        const ended = Promise.all([done, finished(watcher, { readable: false })]);
        const consistentAt = ended.then(() => snapshot ?? clock());
        consistentAt.catch(() => undefined);
        const position = ended.then(() => {
          const at = watcher.position();
          if (server.binlog && !at) this.log.warn('the server writes a binary log but the dump recorded no position; the manifest will have none');
          return at ? { ...at } : undefined;
        });
        position.catch(() => undefined);
        const h: DumpHandle = { ...DUMP_FORMAT, magic: [...DUMP_FORMAT.magic], stream: watcher, consistentAt, done, position };
        return { value: h, settled: done.catch(() => undefined) };
      },
      opts.signal,
    );
    return handle;
  }

  async inspectTarget(database: string, opts: CallOptions = {}): Promise<TargetState> {
    const exists = parseCount(await this.query(databaseExistsSql(database), { signal: opts.signal }), 'the database lookup') > 0;
    if (!exists) return { database, exists: false, hasData: false };
    const objects = parseCount(await this.query(objectCountSql(database), { signal: opts.signal }), 'the data check');
    return { database, exists: true, hasData: objects > 0 };
  }

  /**
   * Replays a dump into `database`. MariaDB and MySQL commit every DDL
   * statement, so no restore is one transaction; instead:
   * - a database that did not exist is created, and dropped again on failure;
   * - an existing empty database is emptied again on failure (dropped and
   *   created with its character set and collation);
   * - a database holding data is refused (TARGET_NOT_EMPTY) unless `force`:
   *   then each object the dump holds is dropped and recreated (other objects
   *   are kept), and a failure says the database is partly replaced.
   */
  async restore(input: Readable, opts: RestoreOptions): Promise<void> {
    const { database, force, signal } = opts;
    throwIfAborted(signal);
    const target = await this.inspectTarget(database, { signal });
    if (target.hasData && !force) throw targetNotEmpty(database, `${this.conn.host}:${this.conn.port}`);
    const defaults = target.exists && !target.hasData ? parseDefaults(await this.query(databaseDefaultsSql(database), { signal })) : undefined;
    if (!target.exists) {
      await this.query(createDatabaseSql(database), { signal, fallback: 'RESTORE_FAILED' });
      this.log.info({ target: database }, 'created the target database');
    }
    const password = await this.secret();
    const fail = this.failure('mariadb', database, 'RESTORE_FAILED', password);
    try {
      await this.planned(
        (r) => restorePlan(this.conn, r.tools, database),
        (plan) => {
          this.log.debug({ command: plan.command, args: plan.args.slice(1) }, 'starting the restore');
          const value = feedProcess({ ...plan, env: minimalEnv(this.env) }, input, { classify: (code, stderr) => classifyFailure(stderr, code, fail), signal });
          return { value, settled: value.catch(() => undefined) };
        },
        signal,
      );
    } catch (err) {
      const outcome = !target.exists ? await this.dropCreated(database) : defaults ? await this.empty(database, defaults) : partial(database);
      throw withOutcome(toBackupError(err, 'RESTORE_FAILED'), outcome);
    }
    this.log.info({ target: database, replaced: target.hasData }, 'restore finished');
  }

  private dropCreated(database: string): Promise<RestoreTargetOutcome> {
    return dropCreatedDatabase(database, () => this.query(dropDatabaseSql(database)), dropCommandFor(this.conn, database), this.log);
  }

  /** Drops and recreates a database that was empty before the failed restore (grants on it are kept: they are stored by name). */
  private async empty(database: string, defaults: { charset: string; collation: string }): Promise<RestoreTargetOutcome> {
    try {
      await this.query(`${dropDatabaseSql(database)} ${createDatabaseSql(database, defaults)}`);
      this.log.info({ target: database }, 'emptied the database again after the failed restore');
      return { database, state: 'emptied' };
    } catch (err) {
      this.log.error({ err, target: database }, 'could not empty the database after the failed restore');
      return { database, state: 'partial', detail: `it was empty, the failed restore wrote part of the backup into it, and removing that failed (${toBackupError(err, 'DB_QUERY_FAILED').message})` };
    }
  }
}

function partial(database: string): RestoreTargetOutcome {
  return {
    database,
    state: 'partial',
    detail: 'MariaDB/MySQL commit each table as it is restored, so the tables, views, routines and events of the backup up to the failure were replaced and the rest are as they were',
  };
}
