import { BackupError } from '../errors.js';
import type { ListedBackup } from './list.js';

/** Which backup to restore: exactly one way of choosing. */
export type Selector = { kind: 'latest' } | { kind: 'id'; id: string } | { kind: 'time'; at: Date };

/**
 * Pure: picks a backup from a listing sorted oldest first. `time` takes the
 * newest backup consistent at or before the instant, never a newer one.
 */
export function selectBackup(backups: readonly ListedBackup[], sel: Selector): ListedBackup {
  if (backups.length === 0) throw new BackupError('NO_BACKUPS', 'no backups exist in any location');
  switch (sel.kind) {
    case 'latest':
      return backups[backups.length - 1]!;
    case 'id': {
      const found = backups.find((b) => b.id === sel.id);
      if (!found) throw new BackupError('BACKUP_NOT_FOUND', `backup ${sel.id} not found (run "backup-runner list" to see the ids)`, { details: { id: sel.id } });
      return found;
    }
    case 'time': {
      const at = sel.at.getTime();
      let pick: ListedBackup | undefined;
      for (const b of backups) if (Date.parse(b.manifest.consistentAt) <= at) pick = b;
      if (!pick) {
        const first = backups[0]!.manifest.consistentAt;
        throw new BackupError('NO_BACKUP_BEFORE_TIME', `no backup is consistent at or before ${sel.at.toISOString()}; the earliest is consistent at ${first}`, {
          details: { requested: sel.at.toISOString(), earliest: first },
        });
      }
      return pick;
    }
  }
}
