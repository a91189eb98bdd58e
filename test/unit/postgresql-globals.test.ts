/** Replaying a server's globals: roles the target has are left alone, the dump's own restrict lines dropped, psql's errors read back without statements. */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { GlobalsFilter, keepLine, replayErrors, roleOfLine } from '../../runner/engines/postgresql/globals.js';

describe('roleOfLine', () => {
  it.each([
    ['CREATE ROLE app;', 'app'],
    ["ALTER ROLE app WITH LOGIN PASSWORD 'SCRAM-SHA-256$...';", 'app'],
    ['ALTER ROLE "We""ird" SET search_path TO x;', 'We"ird'],
    ["COMMENT ON ROLE App IS 'x';", 'app'],
    ['GRANT readers TO app GRANTED BY postgres;', undefined],
    ['CREATE TABLESPACE t OWNER app LOCATION \'/x\';', undefined],
    ['CREATE ROLE application;', 'application'],
  ])('%s -> %s', (line, role) => {
    expect(roleOfLine(line)).toBe(role);
  });
});

describe('keepLine', () => {
  it('drops every line about an existing role, and the dump\'s own restrict lines', () => {
    const skipped = new Set<string>();
    const existing = new Set(['postgres', 'app']);
    const lines = ['\\restrict abc', 'CREATE ROLE app;', "ALTER ROLE app WITH PASSWORD 'x';", 'CREATE ROLE application;', 'GRANT readers TO app;', '\\unrestrict abc', '\\! rm -rf /'];
    expect(lines.filter((l) => keepLine(l, existing, skipped))).toEqual(['CREATE ROLE application;', 'GRANT readers TO app;', '\\! rm -rf /']);
    expect([...skipped]).toEqual(['app']);
  });
});

describe('GlobalsFilter', () => {
  it('starts with its own restrict line and filters across chunk boundaries', async () => {
    const input = Buffer.from("CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nCREATE ROLE other;\nCOMMENT ON ROLE other IS 'Ünïcødé ☃';");
    // Byte chunks, so that multi-byte characters are split between them.
    for (const size of [1, 5, 1000]) {
      const chunks = Array.from({ length: Math.ceil(input.length / size) }, (_, i) => input.subarray(i * size, (i + 1) * size));
      const f = new GlobalsFilter(new Set(['app']), 'KEY');
      let out = '';
      await pipeline(Readable.from(chunks), f, new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) }));
      expect(out).toBe("\\restrict KEY\nCREATE ROLE other;\nCOMMENT ON ROLE other IS 'Ünïcødé ☃';\n");
      expect([...f.skipped]).toEqual(['app']);
    }
  });
});

describe('replayErrors', () => {
  it('keeps the server\'s message, not the statement; a refused backslash command is named', () => {
    const stderr = ['psql:<stdin>:3: ERROR:  role "readers" does not exist', 'psql:<stdin>:7: backslash commands are restricted; only \\unrestrict is allowed', 'some notice'].join('\n');
    expect(replayErrors(stderr)).toEqual(['role "readers" does not exist', 'a psql command in the dump was refused (restricted mode): only SQL is replayed']);
  });
});
