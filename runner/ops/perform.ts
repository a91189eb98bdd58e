import { BackupError, EXIT, type ExitCode } from '../errors.js';
import type { ProgressListener, Runtime } from '../runtime.js';
import { renderBackup, renderListing, renderMirror, renderRekey, renderRestore, renderRetention, renderVerify, toJson } from '../render.js';
import { runBackup, type Trigger } from './backup.js';
import { type MirrorResult, type MirrorScope, runMirror } from './mirror.js';
import { runRekey } from './rekey.js';
import { type Listing, listBackups } from './list.js';
import { runRestore } from './restore.js';
import type { Selector } from './select.js';
import { verify } from './verify.js';

/** Everything the runner can be asked to do, locally or through the daemon. */
export type Operation =
  | { kind: 'backup'; trigger: Trigger }
  | { kind: 'list' }
  | { kind: 'restore'; selector: Selector; targetDatabase?: string; force: boolean; allowIncompleteListing?: boolean; identities?: readonly string[] }
  | { kind: 'verify'; id?: string; identities?: readonly string[] }
  | { kind: 'retention'; dryRun: boolean }
  | { kind: 'mirror'; to?: string; from?: string; scope: MirrorScope; dryRun: boolean; identities?: readonly string[] }
  | { kind: 'rekey'; location?: string; id?: string; dryRun: boolean; identities?: readonly string[] };

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

/** Runs one operation and turns its result into an exit code and both renderings. Throws BackupErrors. */
export async function perform(rt: Runtime, op: Operation, opts: PerformOptions = {}): Promise<Outcome> {
  switch (op.kind) {
    case 'backup': {
      const r = await runBackup(rt, { trigger: op.trigger, ...opts });
      const code = r.status === 'Succeeded' ? EXIT.OK : r.status === 'PartiallySucceeded' ? EXIT.PARTIAL : (r.error?.exitCode ?? EXIT.FAILED);
      return outcome(code, r, renderBackup(r));
    }
    case 'list': {
      const l = await listBackups(rt, opts);
      throwIfNothingReadable(rt, l);
      return outcome(l.problems.length > 0 ? EXIT.PARTIAL : EXIT.OK, l, renderListing(l));
    }
    case 'restore': {
      const { kind: _kind, ...req } = op;
      const r = await runRestore(rt, { ...req, allowIncompleteListing: op.allowIncompleteListing ?? false, ...opts });
      return outcome(EXIT.OK, r, renderRestore(r));
    }
    case 'verify': {
      const v = await verify(rt, { ...(op.id ? { id: op.id } : {}), ...(op.identities ? { identities: op.identities } : {}), ...opts });
      const code = v.ok ? EXIT.OK : v.checks.some((c) => c.status === 'corrupt' || c.status === 'missing') ? EXIT.INTEGRITY : EXIT.FAILED;
      return outcome(code, v, renderVerify(v));
    }
    case 'retention': {
      const { runRetention } = await import('./retention.js');
      const r = await runRetention(rt, { dryRun: op.dryRun, ...opts });
      return outcome(r.locations.some((l) => l.error || l.failed.length > 0) ? EXIT.FAILED : EXIT.OK, r, renderRetention(r));
    }
    case 'mirror': {
      const { kind: _kind, ...req } = op;
      const r = await runMirror(rt, { ...req, ...opts });
      return outcome(mirrorExit(r), r, renderMirror(r));
    }
    case 'rekey': {
      const { kind: _kind, ...req } = op;
      const r = await runRekey(rt, { ...req, ...opts });
      return outcome(partialExit(r.objects.filter((o) => o.status === 'failed').length, r.objects.length), r, renderRekey(r));
    }
  }
}
