/**
 * A database's own settings, grants and comment (runner/engines/postgresql/properties.ts): reading the list
 * values PostgreSQL stores, the statements a restore sends (every value a psql variable, nothing recorded run as
 * written), and the checks on what the server answered.
 */
import { describe, expect, it } from 'vitest';
import { Value } from '@sinclair/typebox/value';
import { parseProperties, propertyStatements, splitGucList } from '../../runner/engines/postgresql/properties.js';
import { ManifestStream } from '../../runner/manifest.js';

describe('list values as PostgreSQL stores them', () => {
  it.each<[string, string[] | undefined]>([
    ['"$user", public', ['$user', 'public']],
    ['public', ['public']],
    ['', []],
    ['  a ,b,  "c d"  ', ['a', 'b', 'c d']],
    ['"Odd ""Schema""", x', ['Odd "Schema"', 'x']],
    ['"a,b"', ['a,b']],
    ['"unterminated', undefined],
    ['a,,b', undefined],
    ['a b', undefined],
    ['a,', undefined],
  ])('%j', (value, elements) => {
    expect(splitGucList(value)).toEqual(elements);
  });
});

describe('the statements of a restore', () => {
  const props = {
    settings: ['search_path="$user", public', "app.tenant=acme'; DROP TABLE x; --", 'app.user=u1', 'work_mem=8MB'],
    grants: [
      { grantee: null, privilege: 'TEMPORARY', grantable: false },
      { grantee: 'readers', privilege: 'CONNECT', grantable: false },
      { grantee: 'Odd "Role"', privilege: 'CREATE', grantable: true },
    ],
    comment: "the CRM\nit's ours",
  };

  it('builds each from psql variables, names included: settings and comment before the owner, the grants after it', () => {
    const { before, grants, skipped } = propertyStatements('crm', props, { owner: 'app' });
    expect(skipped).toEqual([]);
    expect(before).toEqual([
      { sql: `ALTER DATABASE :"db" SET :"guc" TO :'v0', :'v1';\n`, vars: { db: 'crm', guc: 'search_path', v0: '$user', v1: 'public' }, what: 'setting search_path' },
      { sql: `ALTER DATABASE :"db" SET :"guc" TO :'v0';\n`, vars: { db: 'crm', guc: 'app.tenant', v0: "acme'; DROP TABLE x; --" }, what: 'setting app.tenant' },
      // A reserved word in a name: quoted as an identifier, it is a name like any other.
      { sql: `ALTER DATABASE :"db" SET :"guc" TO :'v0';\n`, vars: { db: 'crm', guc: 'app.user', v0: 'u1' }, what: 'setting app.user' },
      { sql: `ALTER DATABASE :"db" SET :"guc" TO :'v0';\n`, vars: { db: 'crm', guc: 'work_mem', v0: '8MB' }, what: 'setting work_mem' },
      { sql: `COMMENT ON DATABASE :"db" IS :'comment';\n`, vars: { db: 'crm', comment: "the CRM\nit's ours" }, what: 'the comment' },
    ]);
    expect(grants).toEqual([
      { sql: `REVOKE ALL ON DATABASE :"db" FROM PUBLIC;\n`, vars: { db: 'crm' }, what: 'the default grants to PUBLIC' },
      { sql: `REVOKE ALL ON DATABASE :"db" FROM :"owner";\n`, vars: { db: 'crm', owner: 'app' }, what: "the owner's default grants" },
      { sql: `GRANT TEMPORARY ON DATABASE :"db" TO PUBLIC;\n`, vars: { db: 'crm' }, what: 'TEMPORARY to PUBLIC' },
      { sql: `GRANT CONNECT ON DATABASE :"db" TO :"grantee";\n`, vars: { db: 'crm', grantee: 'readers' }, what: 'CONNECT to "readers"' },
      { sql: `GRANT CREATE ON DATABASE :"db" TO :"grantee" WITH GRANT OPTION;\n`, vars: { db: 'crm', grantee: 'Odd "Role"' }, what: 'CREATE to "Odd "Role""' },
    ]);
  });

  it('leaves the grants out without ownership and privileges, and keeps the defaults when none were recorded', () => {
    const no = propertyStatements('crm', props, { noOwner: true });
    expect([...no.before, ...no.grants].map((s) => s.what)).toEqual(['setting search_path', 'setting app.tenant', 'setting app.user', 'setting work_mem', 'the comment']);
    const c = propertyStatements('crm', { comment: 'x' });
    expect([...c.before, ...c.grants].map((s) => s.what)).toEqual(['the comment']);
    // Recorded as revoked from everyone: the defaults go and nothing is granted.
    expect(propertyStatements('crm', { grants: [] }).grants.map((s) => s.sql)).toEqual([`REVOKE ALL ON DATABASE :"db" FROM PUBLIC;\n`]);
  });

  it('skips, and says so, what cannot be written safely or should not be restored', () => {
    const { before, grants, skipped } = propertyStatements('crm', {
      settings: ['work_mem TO 1; DROP DATABASE x; --=1', '=x', 'search_path="unterminated', 'session_preload_libraries=evil', 'default_transaction_read_only=on'],
      grants: [{ grantee: 'x', privilege: 'ALL; DROP DATABASE crm', grantable: false }],
    });
    expect(before).toEqual([]);
    expect(grants.map((s) => s.what)).toEqual(['the default grants to PUBLIC']);
    expect(skipped).toEqual([
      'database "crm": setting "work_mem TO 1; DROP DATABASE x; --=1" is not name=value: not restored',
      'database "crm": setting "=x" is not name=value: not restored',
      'database "crm": setting search_path has a list value the runner cannot read ("\\"unterminated"): not restored',
      'database "crm": setting session_preload_libraries not restored: a library the target may lack would fail every connection to it (set it by hand: ALTER DATABASE ... SET session_preload_libraries = ...)',
      'database "crm": setting default_transaction_read_only not restored: it would make a later restore into it fail (set it by hand: ALTER DATABASE ... SET default_transaction_read_only = ...)',
      'database "crm": privilege "ALL; DROP DATABASE crm" is not a database privilege: not restored',
    ]);
  });
});

describe('what the server answered', () => {
  it('reads the properties column, leaving out what is the default', () => {
    expect(parseProperties('{"settings" : null, "grants" : null, "comment" : null}', 'a')).toEqual({ properties: {}, omitted: [] });
    expect(parseProperties('{"settings" : ["work_mem=8MB"], "grants" : [], "comment" : "x"}', 'a').properties).toEqual({ settings: ['work_mem=8MB'], grants: [], comment: 'x' });
    expect(parseProperties('{"settings" : null, "grants" : [{"grantee" : null, "privilege" : "CONNECT", "grantable" : false}], "comment" : null}', 'a').properties).toEqual({
      grants: [{ grantee: null, privilege: 'CONNECT', grantable: false }],
    });
  });

  it('leaves out, and says so, what a manifest cannot hold: a tenant\'s huge comment or setting never makes the backup unreadable', () => {
    const json = JSON.stringify({ settings: ['work_mem=8MB', `app.blob=${'x'.repeat(70_000)}`], grants: null, comment: 'c'.repeat(20_000) });
    const r = parseProperties(json, 'a');
    expect(r.properties).toEqual({ settings: ['work_mem=8MB'] });
    expect(r.omitted).toEqual([
      'database "a": 1 setting(s) (empty, over 8192 bytes, or past the first 100) not recorded: larger than a manifest holds',
      'database "a": the comment (over 16384 characters) not recorded: larger than a manifest holds',
    ]);
    // What is recorded passes the manifest's own schema.
    const m = { stream: { name: 'a', kind: 'database', format: 'pg_dump-custom', consistentAt: '2026-12-04T10:00:00Z', properties: r.properties } };
    expect(Value.Check(ManifestStream, m.stream)).toBe(true);
  });

  it.each([
    ['not JSON', 'the properties of database "a" are not JSON'],
    ['{"settings": "work_mem=1"}', 'the settings of database "a" are not a list of text'],
    ['{"grants": [{"grantee": 1, "privilege": "CONNECT", "grantable": false}]}', 'the grants of database "a" are not a list of grants'],
    ['{"comment": 5}', 'the comment of database "a" is not text'],
    ['null', 'the settings of database "a" are not a list of text'],
  ])('refuses %s', (json, message) => {
    expect(() => parseProperties(json, 'a')).toThrow(message);
  });
});
