/**
 * mongodump archives for the MongoDB tool's tests: a minimal BSON writer (strings, int32, and raw elements for
 * the types the reader must skip) and an archive of magic, header, one prelude entry per namespace, terminator
 * and a body.
 */
export type Field = [string, string | number] | [string, number, Buffer];

export function cstring(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

export function bson(fields: Field[]): Buffer {
  const body = fields.map((f) => {
    if (f.length === 3) return Buffer.concat([Buffer.from([f[1]]), cstring(f[0]), f[2]]);
    const [name, value] = f;
    if (typeof value === 'number') {
      const v = Buffer.alloc(4);
      v.writeInt32LE(value);
      return Buffer.concat([Buffer.from([0x10]), cstring(name), v]);
    }
    const s = cstring(value);
    const len = Buffer.alloc(4);
    len.writeInt32LE(s.length);
    return Buffer.concat([Buffer.from([0x02]), cstring(name), len, s]);
  });
  const doc = Buffer.concat([Buffer.alloc(4), ...body, Buffer.from([0])]);
  doc.writeInt32LE(doc.length, 0);
  return doc;
}

export const MAGIC = Buffer.from([0x6d, 0xe2, 0x99, 0x81]);
export const TERMINATOR = Buffer.from([0xff, 0xff, 0xff, 0xff]);

/** An archive listing `namespaces` ([db, collection, type?]) in its prelude, then `body` (stand-in documents). */
export function archive(namespaces: [string, string, string?][], opts: { serverVersion?: string; body?: Buffer } = {}): Buffer {
  return Buffer.concat([
    MAGIC,
    bson([['concurrent_collections', 4], ['version', '0.1'], ['server_version', opts.serverVersion ?? '7.0.14'], ['tool_version', '100.9.4']]),
    ...namespaces.map(([db, collection, type]) => bson([['db', db], ['collection', collection], ['metadata', '{"indexes":[]}'], ['size', 42], ...(type ? [['type', type] as Field] : [])])),
    TERMINATOR,
    opts.body ?? Buffer.alloc(0),
  ]);
}
