/**
 * The controller's part of a DatabaseBackup's status: observedGeneration
 * and four conditions, five with WAL archiving. Pure.
 * - ConfigValid: the spec, its storage class and the Secrets fit together.
 * - RunnerAvailable: the runner Deployment has an available pod.
 * - Ready: both, i.e. the runner runs the current spec.
 * - LastBackupSucceeded: the last finished backup reached every location,
 *   read from status.lastBackup (which the runner writes). While a backup
 *   runs it keeps saying how the one before ended.
 * - PITRReady (only a DatabaseBackup whose spec archives WAL: physical
 *   PostgreSQL with wal.archive on; a status.recovery left from before is not read): a
 *   point-in-time recovery reaches every instant of the recoverable window,
 *   read from status.recovery alone.
 * A condition keeps its lastTransitionTime while its status stays the same.
 */
import type { V1Deployment } from '@kubernetes/client-node';
import type { Condition, DatabaseBackup, DatabaseBackupStatus } from '../api/crds/index.js';
import type { LocationAccess } from './render/runner-config.js';

export interface Problem {
  reason: string;
  message: string;
}

export interface ControllerStatus {
  observedGeneration?: number;
  conditions: Condition[];
  /** Per location, who can read its credentials; absent: leave what is stored. */
  credentials?: LocationAccess[];
}

export interface StatusFacts {
  /** Why the spec cannot be run; undefined when it is valid and applied. */
  problem?: Problem;
  /** The runner Deployment as observed (undefined: not there). */
  deployment?: V1Deployment;
  /** Where each location's credentials are (the runner as applied now; [] when revoked); undefined: unchanged. */
  access?: LocationAccess[];
  /** The runner was removed because the DatabaseBackup may no longer use its storage. */
  revoked?: boolean;
  /** The last backup as the runner reported it. */
  lastBackup?: DatabaseBackupStatus['lastBackup'];
  /** The spec asks for continuous WAL archiving (see archivesWal). */
  walArchive?: boolean;
  /** WAL archiving and the recoverable window as the runner reported them. */
  recovery?: DatabaseBackupStatus['recovery'];
  now: Date;
}

type Draft = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/** The longest condition message the CRDs accept (status.conditions[].message). */
export const MAX_CONDITION_MESSAGE = 32768;

/**
 * A message that fits a condition: a longer one (an API server's answer listing a hostile spec's every
 * error) is cut and says how much was left out, so that the status can still be written.
 */
export function fitMessage(message: string): string {
  if (message.length <= MAX_CONDITION_MESSAGE) return message;
  const keep = MAX_CONDITION_MESSAGE - 64;
  return `${message.slice(0, keep)} ... (${message.length - keep} more characters)`;
}

function runnerCondition(d: V1Deployment | undefined, revoked: boolean): Draft {
  if (!d && revoked) return { type: 'RunnerAvailable', status: 'False', reason: 'RunnerRevoked', message: 'no runner: the DatabaseBackup may not use its storage (see ConfigValid)' };
  if (!d) return { type: 'RunnerAvailable', status: 'False', reason: 'RunnerNotCreated', message: 'the runner Deployment does not exist yet' };
  const name = d.metadata?.name ?? '';
  const progressing = d.status?.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.status === 'False') {
    return { type: 'RunnerAvailable', status: 'False', reason: 'RolloutFailed', message: `deployment ${name}: ${progressing.message ?? progressing.reason ?? ''}` };
  }
  if ((d.status?.availableReplicas ?? 0) >= 1) {
    return { type: 'RunnerAvailable', status: 'True', reason: 'RunnerAvailable', message: `deployment ${name} has an available runner pod` };
  }
  const available = d.status?.conditions?.find((c) => c.type === 'Available');
  const detail = available?.message ? `: ${available.message}` : '';
  return { type: 'RunnerAvailable', status: 'False', reason: 'RunnerUnavailable', message: `deployment ${name} has no available runner pod yet${detail}` };
}

export const BACKUP_CONDITION = 'LastBackupSucceeded';

/** The LastBackupSucceeded condition from the runner's lastBackup; `before` is the stored one (kept while a backup runs). */
export function backupCondition(last: StatusFacts['lastBackup'], before?: Pick<Condition, 'status' | 'reason' | 'message'>): Draft {
  const type = BACKUP_CONDITION;
  if (!last) return { type, status: 'Unknown', reason: 'NoBackupYet', message: 'no backup has run yet' };
  const at = last.finishedAt ? ` at ${last.finishedAt}` : '';
  switch (last.status) {
    case 'Running':
      if (before && before.status !== 'Unknown') return { type, status: before.status, reason: before.reason, message: before.message };
      return { type, status: 'Unknown', reason: 'FirstBackupRunning', message: `backup ${last.id} is running${last.startedAt ? ` since ${last.startedAt}` : ''}` };
    case 'Succeeded':
      return { type, status: 'True', reason: 'Succeeded', message: `backup ${last.id} finished${at} and is stored in every location` };
    case 'PartiallySucceeded':
      return { type, status: 'False', reason: 'PartiallySucceeded', message: `backup ${last.id} finished${at} but ${last.message ?? 'is not stored in every location'}` };
    case 'Failed':
      return { type, status: 'False', reason: 'BackupFailed', message: `backup ${last.id} failed${at}: ${last.message ?? 'see the runner log'}` };
  }
}

export const PITR_CONDITION = 'PITRReady';

type Recovery = NonNullable<DatabaseBackupStatus['recovery']>;

/** True when the spec asks for continuous WAL archiving: a physical PostgreSQL backup whose wal.archive is not false (it defaults to true). */
export function archivesWal(spec: Pick<DatabaseBackup['spec'], 'engine'> | undefined): boolean {
  const pg = spec?.engine?.type === 'postgresql' ? spec.engine.postgresql : undefined;
  return pg?.mode === 'physical' && pg.wal?.archive !== false;
}

/** What status.recovery.gaps says, for a message; '' without a gap. */
function gapsText(gaps: number): string {
  if (gaps <= 0) return '';
  return `${gaps} stretch${gaps === 1 ? '' : 'es'} of WAL found missing since the runner started (status.recovery.gaps): a point-in-time recovery cannot cross ${gaps === 1 ? 'it' : 'them'}`;
}

/** PITRReady while the WAL archiver does not stream (Restarting, Stopped): the window does not grow. */
function notStreaming(r: Recovery): Draft {
  const gaps = gapsText(r.gaps ?? 0);
  const also = gaps ? `; ${gaps}` : '';
  if (r.walArchiving === 'Restarting') {
    return {
      type: PITR_CONDITION,
      status: 'False',
      reason: 'WALArchivingRestarting',
      message: `the WAL archiver failed and the runner restarts it: ${r.message ?? 'see the runner log'}; the recoverable window does not grow until it streams again${also}`,
    };
  }
  // The runner writes status.recovery.message only while it restarts the archiver; one stored now is from then.
  return { type: PITR_CONDITION, status: 'False', reason: 'WALArchivingStopped', message: `the runner reports the WAL archiver stopped: the recoverable window does not grow until it streams again${also}` };
}

/** A location counts as behind when it stored WAL this long before the one that stored last (times are to the minute). */
const BEHIND_MS = 5 * 60_000;

/**
 * Pure: the locations whose archive falls behind the others': one that stored no WAL since the runner started
 * while another did, or that stored last BEHIND_MS or more before the newest. Relative to each other, so an idle
 * server (nothing stored anywhere) reads as no location behind.
 */
export function locationsBehind(r: Recovery): string[] {
  const locs = r.locations ?? [];
  const times = locs.map((l) => (l.lastStoredAt ? Date.parse(l.lastStoredAt) : undefined));
  const newest = Math.max(...times.filter((t): t is number => t !== undefined && Number.isFinite(t)));
  if (!Number.isFinite(newest)) return [];
  return locs.filter((_, i) => times[i] === undefined || newest - times[i] >= BEHIND_MS).map((l) => l.name);
}

/**
 * The PITRReady condition, from status.recovery alone; undefined for a DatabaseBackup that does not
 * archive WAL (the spec does not ask and the runner reported nothing). Its messages name no instant, so
 * that the minute-by-minute advance of recoverableUntil changes nothing here (no status write, no
 * reconcile): the window itself is in status.recovery.
 */
export function pitrCondition(walArchive: boolean, r: Recovery | undefined): Draft | undefined {
  const type = PITR_CONDITION;
  // Archiving turned off: a status.recovery left from before says nothing of now.
  if (!walArchive) return undefined;
  if (!r) return walArchive ? { type, status: 'Unknown', reason: 'NotReported', message: 'the spec archives WAL but the runner has not reported status.recovery yet' } : undefined;
  if (r.walArchiving !== 'Streaming') return notStreaming(r);
  const gaps = r.gaps ?? 0;
  if (gaps > 0) {
    return {
      type,
      status: 'False',
      reason: 'WALGapDetected',
      message: `${gapsText(gaps)}, so not every instant from recoverableFrom to recoverableUntil is reachable; the runner takes a base backup at once after a gap (see LastBackupSucceeded), and the instants after that base backup are recoverable. The count, and this condition, stay until the runner restarts`,
    };
  }
  const behind = locationsBehind(r);
  if (behind.length > 0) {
    return {
      type,
      status: 'False',
      reason: 'LocationBehind',
      message: `${behind.map((n) => `location "${n}"`).join(', ')} stored no WAL for ${BEHIND_MS / 60_000} minutes or more while another did (a location failing: see the runner's log and status.locations): the window stored in every location (recoverableUntil) does not grow; a recovery reads the locations that hold the WAL`,
    };
  }
  if (!r.recoverableFrom) return { type, status: 'False', reason: 'NoBaseBackup', message: 'WAL is streaming but no base backup is stored yet: a point-in-time recovery starts from one (the next backup takes it)' };
  if (!r.recoverableUntil) {
    return { type, status: 'False', reason: 'NoWALArchived', message: 'WAL is streaming but none is reported stored in every location yet: a restore reaches only the end of a base backup' };
  }
  return { type, status: 'True', reason: 'WALStreaming', message: 'WAL is streaming with no gap: a point-in-time recovery reaches any instant from recoverableFrom to recoverableUntil (status.recovery)' };
}

/** True when the runner's status.recovery reads as another PITRReady (the controller then writes the condition again). */
export function pitrChanged(walArchive: boolean, before: Recovery | undefined, now: Recovery | undefined): boolean {
  return JSON.stringify(pitrCondition(walArchive, before)) !== JSON.stringify(pitrCondition(walArchive, now));
}

export function desiredConditions(facts: StatusFacts, current: readonly Condition[] = []): Draft[] {
  const config: Draft = facts.problem
    ? { type: 'ConfigValid', status: 'False', reason: facts.problem.reason, message: facts.problem.message }
    : { type: 'ConfigValid', status: 'True', reason: 'Applied', message: 'the runner has the current spec' };
  const runner = runnerCondition(facts.deployment, facts.revoked === true);
  // Ready says the runner runs the current spec, nothing about how its work goes: like
  // LastBackupSucceeded, PITRReady is not part of it. A WAL gap or a restarting archiver needs no
  // other runner, and a Ready that followed them would read as "the runner is broken" (and
  // backup_ready, the REASON column and tooling waiting for Ready would say so too).
  const ready: Draft = facts.problem
    ? { type: 'Ready', status: 'False', reason: facts.problem.reason, message: facts.problem.message }
    : runner.status === 'True'
      ? { type: 'Ready', status: 'True', reason: 'Ready', message: 'the runner is available and runs the current spec' }
      : { type: 'Ready', status: 'False', reason: runner.reason, message: runner.message };
  const pitr = pitrCondition(facts.walArchive === true, facts.recovery);
  return [ready, config, runner, backupCondition(facts.lastBackup, current.find((c) => c.type === BACKUP_CONDITION)), ...(pitr ? [pitr] : [])];
}

/** The status the controller wants, reusing transition times from `current`. */
export function controllerStatus(backup: DatabaseBackup, facts: StatusFacts): ControllerStatus {
  const current = backup.status?.conditions ?? [];
  const generation = backup.metadata.generation;
  const conditions = desiredConditions(facts, current).map((c): Condition => {
    const before = current.find((x) => x.type === c.type);
    const lastTransitionTime = before && before.status === c.status ? before.lastTransitionTime : facts.now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    return { ...c, message: fitMessage(c.message), lastTransitionTime, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
  });
  return { ...(generation !== undefined ? { observedGeneration: generation } : {}), conditions, ...(facts.access ? { credentials: facts.access } : {}) };
}

/** True when `access` says something else than what status.credentials holds. */
export function accessChanged(stored: DatabaseBackupStatus['credentials'], access: readonly LocationAccess[]): boolean {
  const key = (l: readonly { location: string; source: string; readableBy: string }[]) => JSON.stringify(l.map((a) => [a.location, a.source, a.readableBy]));
  return key(stored ?? []) !== key(access);
}

/** True when the stored status already says what `desired` says. */
export function statusUpToDate(obj: { status?: { observedGeneration?: number; conditions?: Condition[]; credentials?: DatabaseBackupStatus['credentials'] } }, desired: ControllerStatus): boolean {
  const s = obj.status;
  if (s?.observedGeneration !== desired.observedGeneration) return false;
  if (desired.credentials && accessChanged(s?.credentials, desired.credentials)) return false;
  const current = s?.conditions ?? [];
  return (
    desired.conditions.every((c) => {
      const x = current.find((y) => y.type === c.type);
      return x && x.status === c.status && x.reason === c.reason && x.message === c.message && x.observedGeneration === c.observedGeneration;
    }) && current.length === desired.conditions.length
  );
}

/** The Ready condition of a storage class: valid, and every referenced Secret key present. */
export function classStatus(sc: ClusterObject, problem: Problem | undefined, locations: number, now: Date): ControllerStatus {
  return readyStatus(sc, problem, `${locations} location${locations === 1 ? '' : 's'}, every referenced Secret key present`, now);
}

type ClusterObject = { metadata: { generation?: number }; status?: { conditions?: Condition[] } };

/** The Ready condition of a cluster-scoped resource of ours: False with the problem, or True (reason Valid) saying what it holds. */
export function readyStatus(obj: ClusterObject, problem: Problem | undefined, healthy: string, now: Date): ControllerStatus {
  const generation = obj.metadata.generation;
  const draft: Draft = problem ? { type: 'Ready', status: 'False', reason: problem.reason, message: problem.message } : { type: 'Ready', status: 'True', reason: 'Valid', message: healthy };
  const before = obj.status?.conditions?.find((c) => c.type === 'Ready');
  const lastTransitionTime = before && before.status === draft.status ? before.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const gen = generation !== undefined ? { observedGeneration: generation } : {};
  return { ...gen, conditions: [{ ...draft, message: fitMessage(draft.message), lastTransitionTime, ...gen }] };
}

/**
 * The Event a new backup result deserves, judged against the stored
 * LastBackupSucceeded condition: every new failure (its message names the
 * backup), and the first success after none or after failures. Routine
 * successes make no Event.
 */
export function backupEvent(backup: Pick<DatabaseBackup, 'status'>): { type: 'Normal' | 'Warning'; reason: string; message: string } | undefined {
  const before = backup.status?.conditions?.find((c) => c.type === BACKUP_CONDITION);
  const now = backupCondition(backup.status?.lastBackup, before);
  if (now.status === 'False' && before?.message !== fitMessage(now.message)) return { type: 'Warning', reason: now.reason, message: now.message };
  if (now.status === 'True' && before?.status !== 'True') return { type: 'Normal', reason: before?.status === 'False' ? 'BackupRecovered' : 'BackupSucceeded', message: now.message };
  return undefined;
}

/**
 * An API server's refusal with its errors in a fixed order. It lists the errors of an invalid object
 * (`<Kind> "<name>" is invalid: [<path>: <error>, ...]`) in map order, which differs from one try to the
 * next; sorted, the same refusal reads the same, so it is one problem (one Event, one status write).
 */
export function stableRefusal(message: string): string {
  const m = /^(.* is invalid: )\[(.*)\]$/s.exec(message);
  if (!m) return message;
  const errors = m[2]!.split(/, (?=(?:spec|metadata)[.[])/);
  return `${m[1]!}[${errors.sort().join(', ')}]`;
}

/** An Event the controller records about an object. */
export interface EventDraft {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/**
 * The Event a change of an object's problem deserves, as the core Event recorder would count it once:
 * a Warning for a new problem (another reason or message than `before`), one Normal `Recovered` when the
 * problem is gone, nothing while the same problem continues or nothing is wrong. `before` is the last
 * problem reported (undefined: none; null: nothing known, i.e. a new object, which needs no recovery).
 */
export function problemEvent(before: Problem | undefined | null, now: Problem | undefined, healthy: string): EventDraft | undefined {
  if (now) {
    if (before && before.reason === now.reason && fitMessage(before.message) === fitMessage(now.message)) return undefined;
    return { type: 'Warning', reason: now.reason, message: now.message };
  }
  if (!before) return undefined;
  return { type: 'Normal', reason: 'Recovered', message: `${healthy} (was ${before.reason}: ${before.message})` };
}

/** The problem a stored condition reports: its reason and message when False, undefined when True, null when there is none. */
export function storedProblem(c: Pick<Condition, 'status' | 'reason' | 'message'> | undefined): Problem | undefined | null {
  if (!c) return null;
  return c.status === 'False' ? { reason: c.reason, message: c.message } : undefined;
}
