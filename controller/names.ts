/**
 * Names and labels of the objects the controller owns. Pure.
 *
 * Every owned object of one DatabaseBackup shares one name (the runner
 * name). It must be a DNS-1035 label (a Service name: starts with a letter,
 * at most 63 characters, no dots), so long or dotted DatabaseBackup names
 * are shortened with a hash that keeps them unique.
 */
import { createHash } from 'node:crypto';

export const MANAGED_BY = 'db-backup-controller';
export const FIELD_MANAGER = 'db-backup-controller';
export const RUNNER_APP = 'backup-runner';

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_PART_OF = 'app.kubernetes.io/part-of';
export const LABEL_BACKUP = 'dbbackup.io/database-backup';
export const ANNOTATION_CONFIG_HASH = 'dbbackup.io/config-hash';

/** The label selector of every object the controller owns. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

/** `<name>-runner`, or a shortened form with a hash when that is not a DNS-1035 label. */
export function runnerName(backupName: string): string {
  const plain = `${backupName}-runner`;
  if (plain.length <= 63 && DNS1035.test(plain)) return plain;
  const cleaned = backupName.replace(/[^-a-z0-9]/g, '-').replace(/^[^a-z]+/, '').slice(0, 45).replace(/-+$/, '');
  return `${cleaned || 'db'}-runner-${shortHash(backupName)}`;
}

/** A label value for a DatabaseBackup name (names up to 253 characters do not fit in 63). */
export function backupLabelValue(backupName: string): string {
  if (backupName.length <= 63 && LABEL_VALUE.test(backupName)) return backupName;
  return `${backupName.slice(0, 54).replace(/[^A-Za-z0-9]+$/, '')}-${shortHash(backupName)}`;
}

export function selectorLabels(backupName: string): Record<string, string> {
  return { [LABEL_NAME]: RUNNER_APP, [LABEL_INSTANCE]: runnerName(backupName) };
}

export function commonLabels(backupName: string): Record<string, string> {
  return {
    ...selectorLabels(backupName),
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_PART_OF]: MANAGED_BY,
    [LABEL_BACKUP]: backupLabelValue(backupName),
  };
}

/** Queue key of a DatabaseBackup. */
export function backupKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function parseKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
