import { BackupError, EXIT, type ExitCode } from '../errors.js';
import type { ProgressListener, Runtime } from '../runtime.js';
import { renderBackup, renderImport, renderListing, renderMirror, renderRekey, renderRestore, renderRetention, renderVerify, toJson } from '../render.js';
import { type ImportSource, runImport } from './import.js';
import { runBackup, type Trigger } from './backup.js';
import { type MirrorResult, type MirrorScope, runMirror } from './mirror.js';
import { runRekey } from './rekey.js';
import { type Listing, listBackups, withRecovery } from './list.js';
import { runRestore } from './restore.js';
import type { Owner } from '../engines/types.js';
import type { Selector } from './select.js';
import { verify } from './verify.js';

/** Everything the runner can be asked to do, locally or through the daemon. */
export type Operation =
  | { kind: 'backup'; trigger: Trigger }
  | { kind: 'list' }
  | {
      kind: 'restore';
      selector: Selector;
      targetDatabase?: string;
      force: boolean;
      allowIncompleteListing?: boolean;
      identities?: readonly string[];
      databases?: readonly string[];
      skipGlobals?: boolean;
      noOwner?: boolean;
      /** A physical base backup's data directory: always this process's (the CLI runs such a restore itself, never the daemon). */
      dataDir?: string;
      owner?: Owner;
      /** With dataDir: start a server on it and follow its recovery to the promotion (restore --start). */
      start?: boolean;
      /** With dataDir: the shell command (before `%f %p`) that fetches WAL, written as the recovery's restore_command. */
      walFetchCommand?: string;
    }
  | { kind: 'verify'; id?: string; identities?: readonly string[] }
  | { kind: 'retention'; dryRun: boolean }
  | { kind: 'mirror'; to?: string; from?: string; scope: MirrorScope; dryRun: boolean; identities?: readonly string[] }
  | { kind: 'rekey'; location?: string; id?: string; dryRun: boolean; identities?: readonly string[] }
  | { kind: 'import'; source: ImportSource; targetDatabase?: string; force: boolean; keep: boolean };

/** A finished operation as the CLI shows it: the same whether it ran here or in the daemon. */
export interface Outcome {
  exitCode: ExitCode;
  /** JSON-safe result for `--output json`. */
  json: unknown;
  /** Human summary. */
  text: string;
}

export interface PerformOptions {
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** backup: told the backup's id once it is chosen. */
  onStarted?: (backup: { id: string; startedAt: Date }) => void;
  /** mirror: asked between backups; true stops the pass there (healing gives way to a waiting backup). */
  yieldIf?: () => boolean;
}

function outcome(exitCode: ExitCode, result: unknown, text: string): Outcome {
  return { exitCode, json: JSON.parse(toJson(result)) as unknown, text };
}

/**
 * A listing where no location could be listed is no listing: "no backups"
 * would be a lie. ALL_LOCATIONS_FAILED with every location's error.
 */
function throwIfNothingReadable(rt: Runtime, l: Listing): void {
  const unlisted = new Set(l.problems.filter((p) => p.key === undefined).map((p) => p.location));
  if (rt.locations.length === 0 || !rt.locations.every((loc) => unlisted.has(loc.name))) return;
  const problems = l.problems.map((p) => ({ location: p.location, code: p.error.code, message: p.error.message }));
  throw new BackupError('ALL_LOCATIONS_FAILED', `no location could be read: ${problems.map((p) => `${p.location}: ${p.code}: ${p.message}`).join('; ')}`, {
    details: { problems },
  });
}

/** 0 when nothing of `total` failed, 3 when some did, 1 when all did. */
function partialExit(failed: number, total: number): ExitCode {
  return failed === 0 ? EXIT.OK : failed < total ? EXIT.PARTIAL : EXIT.FAILED;
}

/** 0 when every target got what it lacked; 3 when some did (or some backups were copied); 1 when nothing could be. */
function mirrorExit(r: MirrorResult): ExitCode {
  const failed = r.locations.filter((l) => l.error || l.failed.length > 0).length;
  if (failed === 0) return EXIT.OK;
  return failed < r.locations.length || r.locations.some((l) => l.copied.length > 0) ? EXIT.PARTIAL : EXIT.FAILED;
}

/** One kind of operation: how it runs, what its result means as an exit code, how it reads. */
interface OperationSpec<K extends Operation['kind'], R> {
  run(rt: Runtime, op: Extract<Operation, { kind: K }>, opts: PerformOptions): Promise<R>;
  exitCode(result: R): ExitCode;
  render(result: R): string;
  /** Changes nothing: the daemon answers it at once, beside a running operation. */
  readOnly?(op: Extract<Operation, { kind: K }>): boolean;
  /** Fields only the runner itself sets (never on the wire), and what a request gets for them. */
  internal?: Partial<Extract<Operation, { kind: K }>>;
}

/** Checks an entry against its own result type, then forgets that type: the table holds every kind. */
const spec = <K extends Operation['kind'], R>(s: OperationSpec<K, R>): OperationSpec<K, unknown> => s;

/** Every operation: the one table (`perform`, the daemon and the control protocol read it). */
export const OPERATIONS: { readonly [K in Operation['kind']]: OperationSpec<K, unknown> } = {
  backup: spec({
    run: (rt, op, opts) => runBackup(rt, { trigger: op.trigger, ...opts }),
    exitCode: (r) => (r.status === 'Succeeded' ? EXIT.OK : r.status === 'PartiallySucceeded' ? EXIT.PARTIAL : (r.error?.exitCode ?? EXIT.FAILED)),
    render: renderBackup,
    internal: { trigger: 'manual' },
  }),
  list: spec({
    run: async (rt, _op, opts) => {
      const l = await listBackups(rt, opts);
      throwIfNothingReadable(rt, l);
      return withRecovery(rt, l, opts);
    },
    exitCode: (l) => (l.problems.length > 0 || l.recovery?.some((r) => r.error) ? EXIT.PARTIAL : EXIT.OK),
    render: renderListing,
    readOnly: () => true,
  }),
  restore: spec({
    run: (rt, { kind: _kind, ...req }, opts) => runRestore(rt, { ...req, allowIncompleteListing: req.allowIncompleteListing ?? false, ...opts }),
    exitCode: () => EXIT.OK,
    render: renderRestore,
  }),
  verify: spec({
    run: (rt, { kind: _kind, ...req }, opts) => verify(rt, { ...req, ...opts }),
    exitCode: (v) => (v.ok ? EXIT.OK : v.checks.some((c) => c.status === 'corrupt' || c.status === 'missing') ? EXIT.INTEGRITY : EXIT.FAILED),
    render: renderVerify,
  }),
  retention: spec({
    run: async (rt, op, opts) => (await import('./retention.js')).runRetention(rt, { dryRun: op.dryRun, ...opts }),
    exitCode: (r) => (r.locations.some((l) => l.error || l.failed.length > 0) ? EXIT.FAILED : EXIT.OK),
    render: renderRetention,
    readOnly: (op) => op.dryRun,
  }),
  mirror: spec({
    run: (rt, { kind: _kind, ...req }, opts) => runMirror(rt, { ...req, ...opts }),
    exitCode: mirrorExit,
    render: renderMirror,
    readOnly: (op) => op.dryRun,
    internal: { scope: 'all' },
  }),
  rekey: spec({
    run: (rt, { kind: _kind, ...req }, opts) => runRekey(rt, { ...req, ...opts }),
    exitCode: (r) => partialExit(r.objects.filter((o) => o.status === 'failed').length, r.objects.filter((o) => o.status !== 'current').length),
    render: renderRekey,
    readOnly: (op) => op.dryRun,
  }),
  import: spec({
    run: (rt, { kind: _kind, ...req }, opts) => runImport(rt, { ...req, ...opts }),
    exitCode: (r) => (r.kept?.status === 'PartiallySucceeded' ? EXIT.PARTIAL : EXIT.OK),
    render: renderImport,
  }),
};

function specOf<K extends Operation['kind']>(kind: K): OperationSpec<K, unknown> {
  return OPERATIONS[kind];
}

/** Whether an operation changes nothing (the daemon answers it at once, beside a running one). */
export function isReadOnly(op: Operation): boolean {
  return specOf(op.kind).readOnly?.(op) ?? false;
}

/** The fields of an operation only the runner sets (e.g. a backup's trigger), with what a request from the control socket gets. */
export function internalFields(kind: Operation['kind']): Record<string, unknown> {
  return { ...specOf(kind).internal };
}

/** Runs one operation and turns its result into an exit code and both renderings. Throws BackupErrors. */
export async function perform(rt: Runtime, op: Operation, opts: PerformOptions = {}): Promise<Outcome> {
  const s = specOf(op.kind);
  const result = await s.run(rt, op, opts);
  return outcome(s.exitCode(result), result, s.render(result));
}
