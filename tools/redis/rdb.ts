/** Pure: what the Redis tool reads from RDB files, INFO replies and redis-cli output. */

/** The RDB format version an RDB file's header names (`REDIS0010` -> 10), or undefined when it is no RDB file. */
export function rdbVersion(head: Buffer): number | undefined {
  if (head.length < 9 || head.subarray(0, 5).toString('latin1') !== 'REDIS') return undefined;
  const digits = head.subarray(5, 9).toString('latin1');
  return /^\d{4}$/.test(digits) ? Number(digits) : undefined;
}

/** The RDB version a DUMP payload was written with (its last 10 bytes: version, little-endian, then CRC64). */
export function payloadRdbVersion(payload: Buffer): number | undefined {
  return payload.length >= 10 ? payload.readUInt16LE(payload.length - 10) : undefined;
}

/** `field:value` lines of an INFO reply. */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return out;
}

/** Keys per database of an `INFO keyspace` reply (`db0:keys=3,expires=1,...`). */
export function keyspace(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const [field, value] of parseInfo(text)) {
    const db = /^db(\d+)$/.exec(field);
    const keys = /(?:^|,)keys=(\d+)/.exec(value);
    if (db && keys) out.set(Number(db[1]), Number(keys[1]));
  }
  return out;
}

/** `redis-cli 7.0.15` / `Redis server v=7.0.15 sha=...` -> `7.0.15` */
export function toolVersion(text: string): string | undefined {
  return /(?:^redis-cli |v=)(\d+\.\d+\.\d+)/m.exec(text)?.[1];
}
