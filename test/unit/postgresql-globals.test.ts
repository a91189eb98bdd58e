/**
 * Restoring a server's globals: only roles the target lacks are created, by SQL the runner builds from the
 * dump's exact shapes; nothing of the dump runs as written. Includes the attacks: a value with a line break
 * that smuggles a statement, spellings the old line filter missed, memberships of existing roles.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { planGlobals, replayErrors, RestrictedSql } from '../../runner/engines/postgresql/globals.js';

const DUMP = [
  '--',
  '-- PostgreSQL database cluster dump',
  '--',
  '',
  '\\restrict abc',
  '',
  'SET default_transaction_read_only = off;',
  "SET client_encoding = 'UTF8';",
  '',
  'CREATE ROLE app;',
  "ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==';",
  'CREATE ROLE postgres;',
  "ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:x$y:z';",
  'CREATE ROLE "Odd ""Name""";',
  'ALTER ROLE "Odd ""Name""" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3;',
  "COMMENT ON ROLE app IS 'the app''s role';",
  "ALTER ROLE app SET search_path TO 'x';",
  'GRANT "Odd ""Name""" TO app WITH ADMIN OPTION GRANTED BY postgres;',
  'GRANT app TO postgres GRANTED BY postgres;',
  "CREATE TABLESPACE fast OWNER postgres LOCATION '/fast';",
  '\\unrestrict abc',
  '',
].join('\n');

describe('planGlobals', () => {
  it('creates the roles the target lacks, with attributes, password hash, comment and memberships, in SQL it builds', () => {
    expect(planGlobals(DUMP, new Set(['postgres']))).toEqual({
      statements: [
        'CREATE ROLE "app";',
        `ALTER ROLE "app" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==';`,
        'CREATE ROLE "Odd ""Name""";',
        'ALTER ROLE "Odd ""Name""" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3;',
        "COMMENT ON ROLE \"app\" IS 'the app''s role';",
        'GRANT "Odd ""Name""" TO "app" WITH ADMIN OPTION;',
      ],
      notes: [
        'role "postgres" exists: left as it is',
        'role "app": its settings (ALTER ROLE ... SET) are not restored',
        'role "postgres" exists: its membership in "app" was not changed',
        'tablespace "fast" is not restored: create it on the target',
      ],
    });
  });

  it('a value with a line break cannot smuggle a statement: the continuation line never runs', () => {
    const dump = ['CREATE ROLE app;', "ALTER ROLE app SET search_path TO 'a", ";ALTER ROLE postgres PASSWORD $$pwned$$;--';", ''].join('\n');
    for (const existing of [new Set<string>(), new Set(['app'])]) {
      const plan = planGlobals(dump, existing);
      expect(plan.statements.join('\n')).not.toMatch(/pwned|postgres/);
      expect(plan.notes).toContain('line 3: not a statement pg_dumpall writes for roles: not restored');
    }
  });

  it.each([
    'alter role postgres password $$pwned$$;',
    "ALTER USER postgres PASSWORD 'pwned';",
    "ALTER ROLE CURRENT_USER PASSWORD 'pwned';",
    "ALTER ROLE  postgres WITH LOGIN PASSWORD 'pwned';",
    " ALTER ROLE postgres WITH LOGIN PASSWORD 'pwned';",
    "ALTER ROLE postgres WITH LOGIN PASSWORD 'pwned';",
    "ALTER ROLE nobody WITH LOGIN PASSWORD 'pwned';",
    "ALTER ROLE app WITH LOGIN PASSWORD 'x'; ALTER ROLE postgres PASSWORD 'pwned';",
    "DO $$ BEGIN EXECUTE 'ALTER ROLE postgres PASSWORD ''pwned'''; END $$;",
    '\\! touch /tmp/pwned',
    'SELECT 1; \\! touch /tmp/pwned',
  ])('a planted line changes no existing role and runs nothing: %s', (line) => {
    const plan = planGlobals(`CREATE ROLE app;\n${line}\n`, new Set(['postgres']));
    expect(plan.statements.join('\n')).not.toMatch(/pwned|postgres|touch/);
  });

  it('a full pg_dumpall (it connects to databases) is refused before anything runs', () => {
    expect(() => planGlobals(`${DUMP}\n\\connect template1\n`, new Set())).toThrow(/full pg_dumpall, not the globals/);
  });

  it('unknown attributes are not passed on', () => {
    expect(planGlobals("CREATE ROLE a;\nALTER ROLE a WITH LOGIN SUPERDUPER;\n", new Set()).statements).toEqual(['CREATE ROLE "a";']);
  });
});

describe('RestrictedSql', () => {
  it('starts with its own restrict line, drops the input\'s, and decodes characters split between byte chunks', async () => {
    const input = Buffer.from("\\restrict theirs\nCOMMENT ON ROLE other IS 'Ünïcødé ☃';\n\\unrestrict theirs\nSELECT 1;");
    for (const size of [1, 5, 1000]) {
      const chunks = Array.from({ length: Math.ceil(input.length / size) }, (_, i) => input.subarray(i * size, (i + 1) * size));
      let out = '';
      await pipeline(Readable.from(chunks), new RestrictedSql('KEY'), new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) }));
      expect(out).toBe("\\restrict KEY\nCOMMENT ON ROLE other IS 'Ünïcødé ☃';\nSELECT 1;\n");
    }
  });
});

describe('replayErrors', () => {
  it('keeps the server\'s message, not the statement; a refused backslash command is named', () => {
    const stderr = ['psql:<stdin>:3: ERROR:  role "readers" does not exist', 'psql:<stdin>:7: backslash commands are restricted; only \\unrestrict is allowed', 'some notice'].join('\n');
    expect(replayErrors(stderr)).toEqual(['role "readers" does not exist', 'a psql command in the dump was refused (restricted mode): only SQL is replayed']);
  });
});
