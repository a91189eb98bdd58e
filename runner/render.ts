import type { BackupError } from './errors.js';
import { MAX_CLOCK_SKEW_MS, storedBytes } from './manifest.js';
import type { BackupResult } from './ops/backup.js';
import type { Listing } from './ops/list.js';
import type { LocationRecovery } from './ops/wal-window.js';
import type { MirrorResult } from './ops/mirror.js';
import type { RekeyResult } from './ops/rekey.js';
import type { RestoreResult } from './ops/restore.js';
import type { ImportResult } from './ops/import.js';
import type { RetentionResult } from './ops/retention.js';
import type { VerifyResult } from './ops/verify.js';
import type { DataDirectoryReport, RecoveryOutcome } from './engines/types.js';

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n');
}

const errorText = (e?: BackupError): string => (e ? `${e.code}: ${e.message}` : '');

export function renderBackup(r: BackupResult): string {
  const lines = [`backup ${r.id}: ${r.status} in ${((r.finishedAt.getTime() - r.startedAt.getTime()) / 1000).toFixed(1)}s`];
  if (r.manifest) {
    for (const o of r.manifest.objects) {
      const what = o.stream ? `${o.stream.kind === 'globals' ? 'globals' : `database "${o.stream.name}"`}: ` : '';
      lines.push(`  ${what}${o.name} ${humanBytes(o.size)} sha256 ${o.sha256.slice(0, 16)}…  consistent at ${o.stream?.consistentAt ?? r.manifest.consistentAt}`);
    }
  }
  for (const l of r.locations) lines.push(`  ${l.location}: ${l.status}${l.error ? ` (${errorText(l.error)})` : ''}`);
  if (r.status === 'Failed' && r.error) lines.push(`  error: ${errorText(r.error)}`);
  return lines.join('\n');
}

export function renderListing(l: Listing): string {
  const out: string[] = [];
  if (l.backups.length === 0) out.push('no backups');
  else {
    const rows = [['ID', 'CONSISTENT AT', 'SIZE', 'ENGINE', 'TRIGGER', 'LOCATIONS']];
    for (const b of l.backups) {
      const m = b.manifest;
      // An encrypted copy is marked: `s3(age)`.
      const where = b.copies.map((c) => (c.manifest.objects.some((o) => o.encryption.scheme !== 'none') ? `${c.location}(age)` : c.location));
      rows.push([b.id, m.consistentAt, humanBytes(storedBytes(m)), `${m.engine.name} ${m.engine.serverVersion}`, m.trigger, where.join(',')]);
    }
    out.push(table(rows));
  }
  if (l.future.length > 0) {
    out.push(`\nFUTURE-DATED manifests (more than ${MAX_CLOCK_SKEW_MS / 60_000} min ahead of this clock): never restored by --latest or --to-time, not planned by retention, not counted`);
    const rows = [['ID', 'FUTURE FIELD', 'AT', 'LOCATIONS']];
    for (const f of l.future) rows.push([f.id, f.field, f.at, f.locations.join(',')]);
    out.push(table(rows));
  }
  if (l.recovery) out.push(...renderRecovery(l.recovery));
  for (const p of l.problems) out.push(`warning: ${p.location}${p.key ? ` ${p.key}` : ''}: ${errorText(p.error)}`);
  if (l.signatures === 'not checked' && l.backups.length > 0) out.push('note: manifest signatures are not checked (no signing.verify key): whoever may write into these prefixes could plant a backup');
  return out.join('\n');
}

const iso = (d: Date | string): string => (typeof d === 'string' ? d : d.toISOString());

/** Per location: the window a point-in-time recovery from its own WAL archive reaches, and its gaps. */
function renderRecovery(locations: readonly LocationRecovery[]): string[] {
  const out = ['\npoint-in-time recovery, per location (from its own WAL archive):'];
  const rows = [['LOCATION', 'RECOVERABLE FROM', 'RECOVERABLE UNTIL', 'LAST SEGMENT', 'TIMELINE', 'GAPS']];
  for (const r of locations) {
    const last = r.error ? 'not listed' : r.lastSegment ? `${r.lastSegment}${r.lastPartial ? ' (partial)' : ''}` : 'no WAL archived';
    rows.push([r.location, r.from ? iso(r.from) : '-', r.until ? iso(r.until) : '-', last, r.timeline === undefined ? '-' : String(r.timeline), r.error || r.objects === 0 ? '-' : String(r.gaps.length)]);
  }
  out.push(table(rows));
  for (const r of locations) {
    if (r.error) out.push(`warning: ${r.location}: its WAL archive could not be listed: ${errorText(r.error)}`);
    if (r.objects === 0) continue;
    for (const g of r.gaps) {
      const then = g.resumesAt ? `nothing after ${iso(g.after)} is recoverable before ${iso(g.resumesAt)} (the next base backup)` : `nothing after ${iso(g.after)} is recoverable until a base backup is taken after it`;
      out.push(`  gap in ${r.location} at segment ${g.at}: ${then}`);
    }
  }
  return out;
}

export function renderRestore(r: RestoreResult): string {
  if (r.dataDirectory) return renderDataDirectory(r, r.dataDirectory);
  const lines = r.streams
    ? [`restored backup ${r.backup.id} (consistent at ${r.backup.manifest.consistentAt}) from ${r.location}:`]
    : [`restored backup ${r.backup.id} (consistent at ${r.backup.manifest.consistentAt}) into database "${r.database}" from ${r.location}`];
  for (const s of r.streams ?? []) {
    const status = s.status !== 'outside configuration' ? s.status : s.kind === 'globals' ? 'not restored: this configuration backs up no globals' : 'not restored: not in this configuration (restore it with --database)';
    lines.push(`  ${s.kind === 'globals' ? 'globals (roles, tablespaces)' : `database "${s.stream}"${s.database !== s.stream ? ` into "${s.database ?? ''}"` : ''}`}: ${status}`);
    for (const c of s.conflicts ?? []) lines.push(`    ${c}`);
  }
  for (const c of r.conflicts ?? []) lines.push(`  note: ${c}`);
  for (const s of r.skipped) lines.push(`  skipped ${s.location}: ${s.status} (${errorText(s.error)})`);
  for (const u of r.unreadable) lines.push(`  warning: ${u.location}${u.key ? ` ${u.key}` : ''} could not be read (${u.code}: ${u.message}); a newer backup may be there (--allow-incomplete-listing)`);
  return lines.join('\n');
}

function renderDataDirectory(r: RestoreResult, d: DataDirectoryReport): string {
  const major = r.backup.manifest.engine.serverVersion.split('.')[0] ?? '';
  const lines = [
    `restored base backup ${r.backup.id} (consistent at ${r.backup.manifest.consistentAt}) into data directory ${d.dataDir} from ${r.location}: ${d.files} files, ${humanBytes(d.bytes)}${d.verified === 'pg_verifybackup' ? ', verified by pg_verifybackup' : ''}`,
    ...(d.recovered
      ? renderRecovered(d.recovered, d.recovery?.targetTime, major, d.dataDir)
      : [
          d.recovery && r.walArchive
            ? `  start PostgreSQL ${major} on it: it fetches WAL from the archive (through segment ${r.walArchive.lastWal}, stored ${r.walArchive.until.toISOString()}), recovers to ${d.recovery.targetTime ?? "the archive's end"} and promotes`
            : `  start PostgreSQL ${major} on it: it recovers to the end of the backup with the WAL the backup holds`,
        ]),
  ];
  for (const n of d.notes) lines.push(`  note: ${n}`);
  for (const s of r.skipped) lines.push(`  skipped ${s.location}: ${s.status} (${errorText(s.error)})`);
  for (const u of r.unreadable) lines.push(`  warning: ${u.location}${u.key ? ` ${u.key}` : ''} could not be read (${u.code}: ${u.message}); a newer backup may be there (--allow-incomplete-listing)`);
  return lines.join('\n');
}

/** restore --start: the instant the recovery actually reached, beside the one asked for. */
function renderRecovered(o: RecoveryOutcome, asked: string | undefined, major: string, dir: string): string[] {
  const reached = o.lastTransactionAt ? `the last transaction replayed committed at ${o.lastTransactionAt}` : 'no transaction was replayed past the base backup';
  const target = asked ? ` (asked: ${asked})` : '';
  const excluded = o.firstExcludedAt ? `; the next one, committed at ${o.firstExcludedAt}, is left out` : '';
  const end = o.archiveEndedBeforeTarget ? `; the archive holds no commit after it, so its end is the state at ${asked ?? 'the target'}` : '';
  return [
    `  recovered by PostgreSQL ${o.server}: ${o.segments} WAL segment${o.segments === 1 ? '' : 's'} replayed, ${reached}${target}${excluded}${end}`,
    o.promoted
      ? `  promoted${o.timeline !== undefined ? ` onto timeline ${o.timeline}` : ''} and shut down cleanly, the recovery settings removed: start PostgreSQL ${major} on ${dir} (the database's own server)`
      : `  recovered to the end of the backup and shut down cleanly: start PostgreSQL ${major} on ${dir} (the database's own server)`,
  ];
}

export function renderImport(r: ImportResult): string {
  const what = `${r.format}${r.compression === 'none' ? '' : `, ${r.compression}`}${r.sourceServerVersion ? `, from server ${r.sourceServerVersion}` : ''}`;
  const lines = [`imported ${r.source} (${what}) into database "${r.database}"`];
  if (r.kept) lines.push(`  kept as backup ${r.kept.id} in ${r.kept.locations.join(', ')}${r.kept.status === 'PartiallySucceeded' ? ' (not every location: see the log)' : ''}`);
  return lines.join('\n');
}

export function renderVerify(v: VerifyResult): string {
  if (v.checks.length === 0) return 'no backups to verify';
  const rows = [['BACKUP', 'LOCATION', 'OBJECT', 'STATUS', 'DETAIL']];
  for (const c of v.checks) rows.push([c.backupId, c.location, c.object, c.status.toUpperCase(), c.error ? errorText(c.error) : (c.contents ?? '')]);
  return `${table(rows)}\n${v.ok ? 'all objects intact' : 'verification FAILED'}`;
}

export function renderMirror(r: MirrorResult): string {
  const lines: string[] = [];
  for (const t of r.locations) {
    if (t.error && t.planned.length === 0) {
      lines.push(`${t.location}: ${errorText(t.error)}`);
      continue;
    }
    if (t.planned.length === 0 && t.skipped.length === 0) {
      lines.push(`${t.location}: holds every backup the others hold`);
      continue;
    }
    if (r.dryRun) {
      lines.push(`${t.location}: would copy ${t.planned.length} backup(s) (dry run)`);
      for (const p of t.planned) lines.push(`  ${p.id} from ${p.from} (${p.mode})`);
    } else {
      lines.push(`${t.location}: copied ${t.copied.length} of ${t.planned.length} backup(s)`);
      for (const c of t.copied) lines.push(`  ${c.id} from ${c.from} (${c.mode}, ${humanBytes(c.bytes)})`);
      for (const f of t.failed) lines.push(`  FAILED ${f.id}: ${errorText(f.error)}`);
      if (t.error && !t.failed.some((f) => f.error === t.error)) lines.push(`  error: ${errorText(t.error)}`);
    }
    for (const s of t.skipped) lines.push(`  skipped ${s.id}: ${s.reason}`);
  }
  return lines.length > 0 ? lines.join('\n') : 'no location to fill';
}

export function renderRekey(r: RekeyResult): string {
  const lines: string[] = [];
  const count = (status: string) => r.objects.filter((o) => o.status === status).length;
  if (r.objects.length === 0) lines.push('no encrypted object to re-wrap');
  else {
    const rows = [['BACKUP', 'LOCATION', 'OBJECT', 'STATUS', 'DETAIL']];
    for (const o of r.objects) {
      const detail = o.error ? errorText(o.error) : o.status === 'current' ? '' : `${o.newName ?? ''}${o.serverSide ? ' (copied by the server)' : ''} for ${(o.to ?? []).join(', ')}`;
      rows.push([o.backupId, o.location, o.object, o.status.toUpperCase(), detail]);
    }
    lines.push(table(rows));
    lines.push(r.dryRun ? `${count('planned')} object(s) would be re-wrapped (dry run), ${count('current')} already current` : `${count('rekeyed')} re-wrapped and checked, ${count('current')} already current, ${count('failed')} failed`);
  }
  for (const k of r.leftovers) lines.push(`${r.dryRun ? 'would remove' : 'removed'} ${k}: left by an interrupted rekey, not named by its manifest`);
  return lines.join('\n');
}

/** JSON-safe view of results: errors become {code, message, …}, dates ISO strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Error && 'toJSON' in v ? (v as BackupError).toJSON() : v), 2);
}

export interface StatusView {
  namespace: string;
  name: string;
  version: string;
  startedAt: string;
  running: { kind: string; source: string; startedAt?: string } | null;
  waiting: { kind: string; source: string }[];
  schedule: { cron?: string; interval?: string; timeZone: string; suspended: boolean; nextRunAt: string | null } | null;
  lastBackup: { id: string; status: string; finishedAt: string; locations: { location: string; status: string; error?: { code: string; message: string } }[] } | null;
  locations: { name: string; backupsStored: number; lastSuccessAt?: string; backupsBehind?: number; behindSince?: string }[];
}

export function renderStatus(s: StatusView): string {
  const lines = [`runner ${s.namespace}/${s.name} (version ${s.version}, up since ${s.startedAt})`];
  lines.push(`  running:   ${s.running ? `${s.running.kind} (${s.running.source}) since ${s.running.startedAt}` : 'nothing'}`);
  if (s.waiting.length > 0) lines.push(`  waiting:   ${s.waiting.map((w) => `${w.kind} (${w.source})`).join(', ')}`);
  if (s.schedule) {
    const what = s.schedule.cron ? `cron "${s.schedule.cron}" in ${s.schedule.timeZone}` : `every ${s.schedule.interval}`;
    lines.push(`  schedule:  ${what}${s.schedule.suspended ? ' (suspended)' : ''}; next run ${s.schedule.nextRunAt ?? 'none'}`);
  } else lines.push('  schedule:  none (backups run on command only)');
  if (s.lastBackup) {
    lines.push(`  last:      ${s.lastBackup.id} ${s.lastBackup.status} at ${s.lastBackup.finishedAt}`);
    for (const l of s.lastBackup.locations) if (l.error) lines.push(`             ${l.location}: ${l.error.code}: ${l.error.message}`);
  }
  const rows = [['LOCATION', 'BACKUPS', 'LAST SUCCESS', 'BEHIND']];
  for (const l of s.locations) rows.push([l.name, String(l.backupsStored), l.lastSuccessAt ?? 'never', l.backupsBehind ? `${l.backupsBehind} (since ${l.behindSince ?? '?'})` : '0']);
  lines.push(table(rows).replace(/^/gm, '  '));
  return lines.join('\n');
}

export function renderRetention(r: RetentionResult): string {
  const out: string[] = [r.dryRun ? 'retention plan (dry run: nothing removed)' : 'retention applied'];
  for (const l of r.locations) {
    out.push(`\n${l.location}:${l.error ? ` ${errorText(l.error)}` : ''}`);
    if (!l.plan) continue;
    const rows = [['ACTION', 'BACKUP', 'CONSISTENT AT', 'REASONS']];
    for (const k of l.plan.keep) rows.push(['keep', k.id, k.time.toISOString(), k.reasons.join(', ')]);
    for (const x of l.plan.remove) rows.push([r.dryRun ? 'would remove' : l.failed.includes(x.id) ? 'FAILED' : 'removed', x.id, x.time.toISOString(), '']);
    out.push(table(rows).replace(/^/gm, '  '));
    out.push(...sweptNotes(l, r.dryRun));
  }
  return out.join('\n');
}

/** What retention removed in a location beside backups: leftovers, multipart uploads, WAL. */
function sweptNotes(l: RetentionResult['locations'][number], dryRun: boolean): string[] {
  const out: string[] = [];
  if (l.orphansRemoved > 0) out.push(`  ${dryRun ? 'would remove' : 'removed'} ${l.orphansRemoved} leftover(s) of unfinished backups (data without a manifest, temp files)`);
  if (l.multipart && !l.multipart.supported) out.push(`  ${l.multipart.note ?? 'incomplete multipart uploads cannot be listed here'}`);
  else if (l.multipart && l.multipart.aborted > 0) out.push(`  ${dryRun ? 'would abort' : 'aborted'} ${l.multipart.aborted} incomplete multipart upload(s) older than the grace period`);
  if (l.multipart && l.multipart.failed.length > 0) out.push(`  could not abort ${l.multipart.failed.length} incomplete multipart upload(s): ${errorText(l.multipart.failed[0]!.error)}`);
  if (l.walRemoved) out.push(`  ${dryRun ? 'would remove' : 'removed'} ${l.walRemoved} WAL archive object(s) no kept base backup needs`);
  return out;
}
