import { randomBytes } from 'node:crypto';

const ID_PATTERN = /^(\d{8}T\d{6}Z)-[0-9a-f]{4}$/;

/** `20261121T101500Z-3fa1`: UTC to the second plus a short random suffix; sorts by time. */
export function newBackupId(now: Date, random: () => Buffer = () => randomBytes(2)): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${random().toString('hex').slice(0, 4)}`;
}

export function isBackupId(s: string): boolean {
  return ID_PATTERN.test(s);
}
