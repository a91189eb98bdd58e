/**
 * An engine defined by a command (the bring-your-own-tool contract,
 * api/engine-contract.ts): every operation is one call of the tool, the dump
 * travelling on its stdout and stdin, its answer on descriptor 3.
 */
import type { Readable } from 'node:stream';
import type { CommandConnection } from '../../../api/index.js';
import { resolveOptionalSecret } from '../../config/secrets.js';
import { BackupError, toBackupError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { CallOptions as EngineCallOptions } from '../../storage/types.js';
import { feedRunning } from '../feed.js';
import { throwIfAborted, withOutcome } from '../outcome.js';
import { isServerSide, type SourceObject } from '../../../api/engine-contract.js';
import type { DumpFormat, DumpHandle, DumpOptions, Engine, ProbeResult, RestoreOptions, RestoreReport, ServerBackup, ServerPlace, ServerSideEngine, TargetState } from '../types.js';
import { callTool, type CallDeps, type CallOptions } from './call.js';
import { consistentInstant, dumpFormatOf } from './protocol.js';

export class CommandEngine implements Engine {
  readonly name: string;
  readonly database: string;
  readonly dumpsIntoPipe = true;
  /** The formats the definition declares; the first is what backup writes. */
  readonly formats: readonly DumpFormat[];
  readonly dumpsCompressed: boolean;
  readonly serverSide?: ServerSideEngine;

  private constructor(
    private readonly block: Readonly<CommandConnection>,
    private readonly password: string | undefined,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.name = block.definition.name;
    this.database = block.database ?? block.definition.name;
    this.formats = block.definition.formats.map(dumpFormatOf);
    this.dumpsCompressed = this.formats[0]!.compressed;
    if (isServerSide(block.definition)) this.serverSide = this.serverSideOf();
  }

  /** Reads the password now, so a bad secret fails at startup. */
  static async create(block: Readonly<CommandConnection>, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<CommandEngine> {
    const password = await resolveOptionalSecret(block.password, 'engine.command.password', env);
    return new CommandEngine(block, password, logger, env);
  }

  private deps(): CallDeps {
    return { block: this.block, password: this.password, logger: this.log, env: this.env };
  }

  private call<V extends Parameters<typeof callTool>[0]>(verb: V, opts: CallOptions): ReturnType<typeof callTool<V>> {
    return callTool(verb, this.deps(), opts);
  }

  async probe(opts: EngineCallOptions = {}): Promise<ProbeResult> {
    throwIfAborted(opts.signal);
    const { result } = await this.call('probe', { signal: opts.signal });
    const r = await result;
    if (!r) throw new BackupError('DB_UNREACHABLE', `${this.name} probe: the tool exited 0 but wrote no result (serverVersion, toolVersion) on descriptor 3`);
    return { serverVersion: r.serverVersion, toolVersion: r.toolVersion };
  }

  async dump(opts: DumpOptions = {}): Promise<DumpHandle> {
    throwIfAborted(opts.signal);
    if (opts.stream) throw new BackupError('INTERNAL', `the ${this.name} engine dumps one stream`);
    if (this.serverSide) throw new BackupError('USAGE', `the ${this.name} engine's database server writes its backups into a location itself: it produces no dump stream`);
    const started = new Date();
    const { process: p, result } = await this.call('backup', { signal: opts.signal, stdout: opts.output ?? 'pipe' });
    const done = result.then(() => undefined);
    done.catch(() => undefined);
    const settled = result.then((r) => ({ r, ended: new Date() }));
    settled.catch(() => undefined);
    const consistentAt = settled.then(({ r, ended }) => {
      const c = consistentInstant(r?.consistentAt, started, ended);
      if (!c.believed) this.log.warn({ claimed: r?.consistentAt }, 'the tool claimed a consistency instant outside its own run: the end of the run is recorded instead');
      return c.at;
    });
    consistentAt.catch(() => undefined);
    const position = settled.then(({ r }) => (r?.position && Object.keys(r.position).length > 0 ? r.position : undefined));
    position.catch(() => undefined);
    const format = this.formats[0]!;
    return { ...format, magic: [...format.magic], ...(p.stdout ? { stream: p.stdout } : {}), consistentAt, done, position };
  }

  async inspectTarget(database: string, opts: EngineCallOptions = {}): Promise<TargetState> {
    throwIfAborted(opts.signal);
    // A tool that cannot tell is told `force` with the restore and refuses a target with data itself.
    if (!this.block.definition.verbs.includes('inspect')) return { database, exists: true, hasData: false };
    const { result } = await this.call('inspect', { signal: opts.signal, restore: { database, force: false, format: this.formats[0]!.format, engine: {}, consistentAt: '' } });
    const r = await result;
    if (!r) throw new BackupError('DB_QUERY_FAILED', `${this.name} inspect: the tool exited 0 but wrote no result (exists, hasData) on descriptor 3`);
    return { database, exists: r.exists, hasData: r.hasData };
  }

  async restore(input: Readable, opts: RestoreOptions): Promise<RestoreReport | void> {
    throwIfAborted(opts.signal);
    if (this.serverSide) throw new BackupError('USAGE', `the ${this.name} engine's database server restores its backups from a location itself: it reads no dump stream`);
    const call = await this.call('restore', { signal: opts.signal, stdin: 'pipe', restore: this.restoreRequest(opts) });
    try {
      await feedRunning(call.process, input, call.result);
      return this.restored(await call.result, opts);
    } catch (err) {
      throw this.restoreFailure(err, opts.database);
    }
  }

  private restoreRequest(opts: RestoreOptions): NonNullable<CallOptions['restore']> {
    const format = opts.format ?? this.formats[0]!.format;
    if (!this.formats.some((f) => f.format === format)) {
      throw new BackupError('FORMAT_MISMATCH', `${this.name} restores ${this.formats.map((f) => f.format).join(', ')}, not ${format}; nothing was changed`);
    }
    return { database: opts.database, force: opts.force, format, engine: { ...(opts.backup?.engine ?? {}) }, consistentAt: opts.backup?.consistentAt ?? '' };
  }

  private restored(r: { conflicts?: string[] } | undefined, opts: RestoreOptions): RestoreReport | undefined {
    this.log.info({ target: opts.database, replaced: opts.force }, 'restore finished');
    return r?.conflicts && r.conflicts.length > 0 ? { conflicts: r.conflicts } : undefined;
  }

  /** A failed restore's error, saying what the target holds now: what the tool said, else `partial` (never "unchanged" by default). */
  private restoreFailure(err: unknown, database: string): BackupError {
    const e = toBackupError(err, 'RESTORE_FAILED');
    const said = (e.details as { toolTarget?: { state: 'unchanged' | 'emptied' | 'partial'; detail?: string } } | undefined)?.toolTarget;
    // A refusal that changed nothing stays a refusal; one that did (data appeared while restoring) says what it left.
    if (e.code === 'TARGET_NOT_EMPTY' && (!said || said.state === 'unchanged')) return e;
    const unknown = e.code === 'ABORTED' ? 'the restore was stopped part way: the target may hold part of the backup' : `the ${this.name} tool did not say what the failed restore left`;
    return withOutcome(e, said && e.code !== 'ABORTED' ? { database, ...said } : { database, state: 'partial', detail: unknown });
  }

  /** `output: location`: the database server writes the backup below the place the request names, and reads it back from there. */
  private serverSideOf(): ServerSideEngine {
    return {
      backup: async (place: ServerPlace, opts: EngineCallOptions = {}): Promise<ServerBackup> => {
        throwIfAborted(opts.signal);
        const started = new Date();
        const { result } = await this.call('backup', { signal: opts.signal, destination: place });
        const r = await result;
        const c = consistentInstant(r?.consistentAt, started, new Date());
        if (!c.believed) this.log.warn({ claimed: r?.consistentAt }, 'the tool claimed a consistency instant outside its own run: the end of the run is recorded instead');
        return { consistentAt: c.at, format: this.formats[0]!.format, ...(r?.position && Object.keys(r.position).length > 0 ? { position: r.position } : {}) };
      },
      restore: async (place: ServerPlace, objects: readonly SourceObject[], opts: RestoreOptions): Promise<RestoreReport | void> => {
        throwIfAborted(opts.signal);
        const restore = { ...this.restoreRequest(opts), objects: [...objects] };
        try {
          const call = await this.call('restore', { signal: opts.signal, restore, source: place });
          return this.restored(await call.result, opts);
        } catch (err) {
          throw this.restoreFailure(err, opts.database);
        }
      },
    };
  }
}
