import type { BackupError } from '../errors.js';
import type { BackupResult } from '../ops/backup.js';
import type { Listing } from '../ops/list.js';
import type { RestoreResult } from '../ops/restore.js';
import type { VerifyResult } from '../ops/verify.js';

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
    const o = r.manifest.objects[0]!;
    lines.push(`  ${o.name} ${humanBytes(o.size)} sha256 ${o.sha256.slice(0, 16)}…  consistent at ${r.manifest.consistentAt}`);
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
      rows.push([b.id, m.consistentAt, humanBytes(m.objects.reduce((s, o) => s + o.size, 0)), `${m.engine.name} ${m.engine.serverVersion}`, m.trigger, b.locations.join(',')]);
    }
    out.push(table(rows));
  }
  for (const p of l.problems) out.push(`warning: ${p.location}${p.key ? ` ${p.key}` : ''}: ${errorText(p.error)}`);
  return out.join('\n');
}

export function renderRestore(r: RestoreResult): string {
  const lines = [`restored backup ${r.backup.id} (consistent at ${r.backup.manifest.consistentAt}) into database "${r.database}" from ${r.location}`];
  for (const s of r.skipped) lines.push(`  skipped ${s.location}: ${s.status} (${errorText(s.error)})`);
  return lines.join('\n');
}

export function renderVerify(v: VerifyResult): string {
  if (v.checks.length === 0) return 'no backups to verify';
  const rows = [['BACKUP', 'LOCATION', 'OBJECT', 'STATUS', 'DETAIL']];
  for (const c of v.checks) rows.push([c.backupId, c.location, c.object, c.status.toUpperCase(), errorText(c.error)]);
  return `${table(rows)}\n${v.ok ? 'all objects intact' : 'verification FAILED'}`;
}

/** JSON-safe view of results: errors become {code, message, …}, dates ISO strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Error && 'toJSON' in v ? (v as BackupError).toJSON() : v), 2);
}
