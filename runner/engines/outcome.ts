import type { RestoreTargetOutcome } from './types.js';

/** Pure: what a failed restore left in the target, as a sentence for the error message. */
export function describeTargetOutcome(t: RestoreTargetOutcome): string {
  switch (t.state) {
    case 'unchanged':
      return `database "${t.database}" is unchanged (nothing was committed: the restore runs in one transaction)`;
    case 'dropped':
      return `database "${t.database}" was created for this restore and dropped again`;
    case 'left':
      return `database "${t.database}" was created for this restore and could NOT be dropped (${t.dropError ?? 'unknown error'}); drop it with: ${t.dropCommand ?? ''}`;
  }
}
