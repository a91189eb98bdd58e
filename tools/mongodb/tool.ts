/**
 * The MongoDB engine, through the tool contract, with MongoDB Database Tools (mongodump and mongorestore
 * 100.3.0 or later) and no MongoDB client library. Untested against a real server here: MongoDB's server and
 * tools are not in Debian; test/integration/mongodb-tool.test.ts checks what this tool hands stand-in
 * programs, not what MongoDB does with it.
 *
 * - backup: `mongodump --archive` to stdout, uncompressed (the runner compresses). One database (the target's
 *   `database`) or, when none is configured, the whole server. With config `oplog: true` (whole servers of a
 *   replica set only) the dump is a point-in-time copy as of its end; without it each collection is read at its
 *   own moment and the dump is not consistent across collections: consistentAt is then the end of the dump, a
 *   best-effort bound, and the manifest's engine.position says `consistency: best-effort`.
 * - restore: `mongorestore --archive` reading the dump from stdin, after the archive's prelude (the list of
 *   namespaces mongodump writes before any document) has been read and checked: only the backup's database
 *   (`--nsInclude`), renamed with `--nsFrom`/`--nsTo` for another target database, `--oplogReplay` when the
 *   archive carries an oplog, `--drop` only with force. Without force a target holding a collection or view
 *   is refused before mongorestore starts (the target is read first even with force: an unreachable target or
 *   refused credentials fail with nothing written). A failure after mongorestore started is `partial`, except
 *   for one database restored without force that, read again, holds no collection (`unchanged`).
 * - inspect and probe: what the target holds, and its version, come from the prelude of a mongodump archive of
 *   it, read from a mongodump that is stopped as soon as its prelude has arrived (no client library, no
 *   mongosh): the namespaces it would dump, and the server version its header records.
 *
 * The password is in a 0600 YAML file given with --config (never on a command line or in the environment); a
 * client certificate and key are joined into one 0600 PEM file for --sslPEMKeyFile.
 *
 * Not covered: sharded clusters through mongos with --oplog (mongodump refuses it), authentication other than
 * a user and password (X.509, Kerberos, LDAP, AWS), and users and roles of one database (a whole-server backup
 * carries them in admin).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ToolResult } from '../../api/engine-contract.js';
import { type Handlers, type ToolContext, ToolFailure } from '../sdk.js';
import { databasesOf, hasOplog, type Prelude, PreludeReader, targetState } from './archive.js';
import {
  backupPosition,
  backupScope,
  CONFIG_FILE,
  configFileText,
  configOf,
  connectionArgs,
  type ConnectionFiles,
  connectionProblem,
  dbNameError,
  dumpArgs,
  dumpedScope,
  errorCode,
  failureText,
  type MongoConfig,
  PEM_FILE,
  preludeArgs,
  type RestorePlan,
  restoreArgs,
  restorePlan,
  serverVersionOf,
  supportsConfigFile,
  targetOf,
  toolVersion,
} from './args.js';

const INSTALL_HINT = 'MongoDB Database Tools 100.3.0 or later (not in Debian: https://www.mongodb.com/try/download/database-tools)';
/** How long a stopped mongodump has before SIGKILL. */
const STOP_GRACE_MS = 5000;

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The same failure, saying what the target was left in. */
function leaving(err: unknown, target: NonNullable<ToolFailure['target']>): ToolFailure {
  const f = err instanceof ToolFailure ? err : new ToolFailure(errorCode(messageOf(err)), messageOf(err));
  return new ToolFailure(f.code, f.message, target);
}

/** The last `max` characters of a stream's text. */
function tail(max = 64 * 1024): { add: (chunk: Buffer) => void; text: () => string } {
  let text = '';
  return {
    add: (chunk) => {
      text = (text + chunk.toString('utf8')).slice(-max);
    },
    text: () => text,
  };
}

/** Sends a program's stderr lines to the log, prefixed with its name, and keeps their tail for a failure. */
function logged(child: ChildProcess, program: string, ctx: ToolContext): () => string {
  const said = tail();
  let pending = '';
  child.stderr!.on('data', (c: Buffer) => {
    said.add(c);
    const lines = (pending + c.toString('utf8')).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) ctx.log(`${program}: ${line.trim()}`);
  });
  child.stderr!.once('end', () => pending.trim() && ctx.log(`${program}: ${pending.trim()}`));
  return said.text;
}

/** Resolves with a child's exit once its pipes are closed; a program that could not be started is TOOL_INCOMPATIBLE. */
async function closed(child: ChildProcess, program: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  try {
    const [code, signal] = (await Promise.race([once(child, 'close'), once(child, 'error').then(([e]) => Promise.reject(e as Error))])) as [number | null, NodeJS.Signals | null];
    return { code, signal };
  } catch (err) {
    throw new ToolFailure('TOOL_INCOMPATIBLE', `${program} is needed and could not be run (${INSTALL_HINT}): ${messageOf(err)}`);
  }
}

const exitText = (e: { code: number | null; signal: NodeJS.Signals | null }): string => (e.code === null ? `was killed by ${e.signal ?? 'a signal'}` : `exited with ${e.code}`);

/** The installed version of `program`; with a password it must read --config (100.3.0 and later). */
async function installedVersion(program: 'mongodump' | 'mongorestore', withPassword: boolean): Promise<string> {
  const child = spawn(program, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = tail();
  child.stdout.on('data', out.add);
  child.stderr.on('data', out.add);
  await closed(child, program);
  const version = toolVersion(out.text(), program);
  if (!version) throw new ToolFailure('TOOL_INCOMPATIBLE', `${program} did not say its version (${INSTALL_HINT}): ${out.text().trim().slice(0, 200)}`);
  if (withPassword && !supportsConfigFile(version)) {
    throw new ToolFailure('TOOL_INCOMPATIBLE', `${program} ${version} cannot read the password from a --config file (MongoDB Database Tools 100.3.0 or later can); the password is never put on a command line`);
  }
  return version;
}

function readable(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ToolFailure('CONFIG_INVALID', `the TLS ${what} file ${path} cannot be read: ${messageOf(err)}`);
  }
}

/** Writes the call's --config file (the password) and client PEM file into its private directory; both 0600. */
function connectionFiles(ctx: ToolContext): ConnectionFiles {
  const { target, workDir } = ctx.request;
  const problem = connectionProblem(target, ctx.password !== undefined);
  if (problem) throw new ToolFailure('CONFIG_INVALID', problem);
  const files: ConnectionFiles = {};
  if (ctx.password !== undefined) {
    files.config = join(workDir, CONFIG_FILE);
    writeFileSync(files.config, configFileText(ctx.password), { mode: 0o600, flag: 'wx' });
  }
  const tls = target.tls;
  if (tls?.certFile && tls.keyFile) {
    // --sslPEMKeyFile takes the certificate and its key in one file.
    const cert = readable(tls.certFile, 'certificate');
    const key = readable(tls.keyFile, 'key');
    files.pem = join(workDir, PEM_FILE);
    writeFileSync(files.pem, Buffer.concat([cert, cert.at(-1) === 0x0a ? Buffer.alloc(0) : Buffer.from('\n'), key]), { mode: 0o600, flag: 'wx' });
  } else if (tls?.certFile) {
    files.pem = tls.certFile;
  }
  return files;
}

function connection(ctx: ToolContext, cfg: MongoConfig): string[] {
  return connectionArgs(ctx.request.target, cfg, connectionFiles(ctx));
}

/**
 * The prelude of a mongodump archive of `database` (undefined: the whole server) on the target: mongodump lists
 * every namespace, writes them and the server's version, and is stopped as soon as that has arrived (it has
 * started reading the first documents by then; they are discarded). Its failure is the target's: unreachable,
 * refused credentials, missing rights.
 */
async function readPrelude(connectionArgv: string[], database: string | undefined): Promise<Prelude> {
  const child = spawn('mongodump', preludeArgs(connectionArgv, database), { stdio: ['ignore', 'pipe', 'pipe'] });
  const said = tail();
  child.stderr.on('data', said.add);
  const reader = new PreludeReader();
  let prelude: Prelude | undefined;
  let bad: unknown;
  let kill: NodeJS.Timeout | undefined;
  const stop = (): void => {
    child.stdout.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    }
  };
  child.stdout.on('data', (c: Buffer) => {
    if (prelude || bad) return;
    try {
      prelude = reader.push(c);
    } catch (err) {
      bad = err;
    }
    if (prelude || bad) stop();
  });
  let exit: Awaited<ReturnType<typeof closed>>;
  try {
    exit = await closed(child, 'mongodump');
  } finally {
    clearTimeout(kill);
  }
  if (prelude) return prelude;
  if (bad) throw new ToolFailure('FAILED', `mongodump --archive did not write a mongodump archive: ${messageOf(bad)}`);
  const why = failureText(said.text());
  throw new ToolFailure(errorCode(why), `mongodump ${exitText(exit)} before it had listed what ${database === undefined ? 'the server' : `the database "${database}"`} holds${why ? `: ${why}` : ''}`);
}

async function probe(ctx: ToolContext): Promise<ToolResult<'probe'>> {
  const cfg = configOf(ctx.request.config);
  const scope = backupScope(ctx.request.target, cfg);
  const version = await installedVersion('mongodump', ctx.password !== undefined);
  const prelude = await readPrelude(connection(ctx, cfg), scope.database);
  const serverVersion = serverVersionOf(prelude.serverVersion);
  if (!serverVersion) throw new ToolFailure('TOOL_INCOMPATIBLE', `mongodump ${version} could not read the server's version (its archive says "${prelude.serverVersion.slice(0, 64)}")`);
  return { serverVersion, toolVersion: version };
}

/** The dump ends consistent (with --oplog) at its end: the end of the run is the bound, and only a best-effort one without --oplog. */
async function backup(ctx: ToolContext): Promise<ToolResult<'backup'>> {
  const cfg = configOf(ctx.request.config);
  const scope = backupScope(ctx.request.target, cfg);
  const args = dumpArgs(connection(ctx, cfg), scope, cfg);
  if (!cfg.oplog) ctx.log('without config oplog: true the dump is not a point-in-time copy: each collection is read at its own moment, writes during the dump may be partly in it');
  const child = spawn('mongodump', args, { stdio: ['ignore', 'inherit', 'pipe'] });
  const said = logged(child, 'mongodump', ctx);
  const exit = await closed(child, 'mongodump');
  const consistentAt = new Date().toISOString();
  if (exit.code !== 0) {
    const why = failureText(said());
    throw new ToolFailure(errorCode(why), `mongodump --archive ${exitText(exit)}${why ? `: ${why}` : ''}`);
  }
  return { consistentAt, position: backupPosition(scope, cfg) };
}

async function inspect(ctx: ToolContext): Promise<ToolResult<'inspect'>> {
  const cfg = configOf(ctx.request.config);
  const database = targetOf({ engine: ctx.request.engine, configured: ctx.request.target.database, requested: ctx.request.restore?.database });
  const bad = database !== undefined ? dbNameError(database) : undefined;
  if (bad) throw new ToolFailure('CONFIG_INVALID', `the database "${database}" ${bad}`);
  const state = targetState(await readPrelude(connection(ctx, cfg), database), database);
  return { exists: state.exists, hasData: state.hasData };
}

/** Reads the input until its prelude has arrived: the prelude, and the chunks read (to be passed on as they were). */
function readHead(input: Readable): Promise<{ prelude: Prelude; chunks: Buffer[] }> {
  const reader = new PreludeReader();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const done = (): void => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.pause();
    };
    const onData = (c: Buffer): void => {
      chunks.push(c);
      try {
        const prelude = reader.push(c);
        if (!prelude) return;
        done();
        resolve({ prelude, chunks });
      } catch (err) {
        done();
        reject(new ToolFailure('FAILED', `the input is not a mongodump archive: ${messageOf(err)}`));
      }
    };
    const onEnd = (): void => {
      done();
      reject(new ToolFailure('FAILED', 'the input ended before the end of its archive prelude: not a whole mongodump archive'));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
  });
}

/** The archive must hold what the plan restores: a backup restored under another name holds that one database only. */
function checkArchive(plan: RestorePlan, prelude: Prelude, ctx: ToolContext): void {
  const dbs = databasesOf(prelude);
  if (plan.source === undefined) return;
  const others = dbs.filter((db) => db !== plan.source);
  if (plan.into !== plan.source && others.length > 0) {
    throw new ToolFailure('CONFIG_INVALID', `the backup holds the databases ${dbs.join(', ')}: only a backup of one database is restored under another name`);
  }
  if (others.length > 0) ctx.log(`the backup also holds ${others.join(', ')}: only "${plan.source}" is restored (--nsInclude)`);
  if (hasOplog(prelude)) ctx.log(`the backup carries an oplog, which is replayed only when the whole server is restored: "${plan.source}" is restored as dumped, not point-in-time`);
}

function describeTarget(plan: RestorePlan): string {
  return plan.into === undefined ? 'the server' : `the database "${plan.into}"`;
}

/** Whether (and what) the target holds, read again after a failure; undefined when it cannot be read. */
async function holdingAfter(connectionArgv: string[], plan: RestorePlan): Promise<string[] | undefined> {
  try {
    return targetState(await readPrelude(connectionArgv, plan.into), plan.into).holding;
  } catch {
    return undefined;
  }
}

/** What a mongorestore that failed after starting left: nothing when the target, read again, holds nothing (without force); else partial. */
async function failedRestore(failure: ToolFailure, connectionArgv: string[], plan: RestorePlan, force: boolean): Promise<ToolFailure> {
  if (force) return leaving(failure, { state: 'partial', detail: `mongorestore --drop failed part way: collections of the backup in ${describeTarget(plan)} may have been dropped and partly restored` });
  const holding = await holdingAfter(connectionArgv, plan);
  if (holding !== undefined && holding.length === 0) {
    // One database is restored without admin (--nsInclude): no collection left is nothing written. A whole server's users and roles are not seen that way.
    if (plan.into !== undefined) return leaving(failure, { state: 'unchanged', detail: `read again after the failure, ${describeTarget(plan)} holds no collection: nothing of the backup was kept` });
    return leaving(failure, { state: 'partial', detail: 'read again after the failure, the server holds no collection of its own, but users and roles of the backup (admin) may have been written' });
  }
  const what = holding === undefined ? 'it could not be read again' : `it now holds ${holding.length} collections (${holding.slice(0, 5).join(', ')}${holding.length > 5 ? ', ...' : ''})`;
  return leaving(failure, { state: 'partial', detail: `mongorestore failed part way into ${describeTarget(plan)}, which was empty: ${what}` });
}

/** Everything before mongorestore starts, each failure leaving the target unchanged: the plan, the input's prelude, the tools, the target's state. */
async function prepareRestore(ctx: ToolContext, cfg: MongoConfig, force: boolean): Promise<{ plan: RestorePlan; head: { prelude: Prelude; chunks: Buffer[] }; connectionArgv: string[]; oplogReplay: boolean }> {
  const req = ctx.request.restore;
  const plan = restorePlan({ engine: ctx.request.engine, configured: ctx.request.target.database, requested: req?.database, dumped: dumpedScope(req?.engine) });
  const head = await readHead(process.stdin);
  checkArchive(plan, head.prelude, ctx);
  const oplogReplay = plan.source === undefined && hasOplog(head.prelude);
  const version = await installedVersion('mongorestore', ctx.password !== undefined);
  const dumpedWith = req?.engine.toolVersion;
  if (typeof dumpedWith === 'string' && dumpedWith !== version) ctx.log(`the backup was written by mongodump ${dumpedWith}, this is mongorestore ${version}: MongoDB advises the same version of both`);
  const connectionArgv = connection(ctx, cfg);
  // Read even with force: a target that cannot be reached or refuses the credentials fails here, with nothing written.
  const state = targetState(await readPrelude(connectionArgv, plan.into), plan.into);
  if (!force && state.hasData) {
    const shown = `${state.holding.slice(0, 5).join(', ')}${state.holding.length > 5 ? ', ...' : ''}`;
    throw new ToolFailure('TARGET_NOT_EMPTY', `${describeTarget(plan)} already holds ${state.holding.length} collections or views (${shown}); nothing was changed. Use --force to replace the collections the backup holds (mongorestore --drop; others are kept)`);
  }
  return { plan, head, connectionArgv, oplogReplay };
}

async function restore(ctx: ToolContext): Promise<ToolResult<'restore'>> {
  const cfg = configOf(ctx.request.config);
  const force = ctx.request.restore?.force ?? false;
  let prepared: Awaited<ReturnType<typeof prepareRestore>>;
  try {
    prepared = await prepareRestore(ctx, cfg, force);
  } catch (err) {
    throw leaving(err, { state: 'unchanged' });
  }
  const { plan, head, connectionArgv, oplogReplay } = prepared;
  const child = spawn('mongorestore', restoreArgs(connectionArgv, plan, { force, oplogReplay }), { stdio: ['pipe', 'ignore', 'pipe'] });
  // Told to stop (the runner's SIGTERM, e.g. when its input failed), mongorestore is killed before its stdin could close: it never takes a cut input for a whole one.
  const onSignal = (): void => {
    child.kill('SIGKILL');
    process.exit(143);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const said = logged(child, 'mongorestore', ctx);
  const feeding = pipeline(
    async function* () {
      yield* head.chunks;
      for await (const chunk of process.stdin) yield chunk as Buffer;
    },
    child.stdin,
  ).catch((err: unknown) => err);
  let exit: Awaited<ReturnType<typeof closed>>;
  try {
    exit = await closed(child, 'mongorestore');
  } catch (err) {
    process.stdin.destroy();
    throw leaving(err, { state: 'unchanged' }); // it never ran
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
  }
  if (exit.code !== 0) {
    // The rest of the input is not read: the runner learns of the failure now, not after feeding the whole dump.
    process.stdin.destroy();
    const why = failureText(said());
    throw await failedRestore(new ToolFailure(errorCode(why), `mongorestore --archive ${exitText(exit)}${why ? `: ${why}` : ''}`), connectionArgv, plan, force);
  }
  // mongorestore may stop reading once it has the whole archive (EPIPE on the rest): only its own verdict counts then.
  const fed = await feeding;
  if (fed !== undefined) ctx.log(`mongorestore finished before the whole input was passed to it: ${messageOf(fed)}`);
  ctx.log(`restored ${plan.source === undefined ? 'the whole server' : `"${plan.source}"${plan.into !== plan.source ? ` as "${plan.into}"` : ''}`}${oplogReplay ? ', with its oplog replayed' : ''}`);
  return {};
}

export const handlers: Handlers = { probe, backup, restore, inspect };
