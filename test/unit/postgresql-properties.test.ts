/**
 * A database's own settings, grants and comment (runner/engines/postgresql/properties.ts): reading the list
 * values PostgreSQL stores, the statements a restore sends (every value a psql variable, nothing recorded run as
 * written), and the checks on what the server answered.
 */
import { describe, expect, it } from 'vitest';
import { parseProperties, propertyStatements, splitGucList } from '../../runner/engines/postgresql/properties.js';

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
    settings: ['search_path="$user", public', "app.tenant=acme'; DROP TABLE x; --", 'work_mem=8MB'],
    grants: [
      { grantee: null, privilege: 'TEMPORARY', grantable: false },
      { grantee: 'readers', privilege: 'CONNECT', grantable: false },
      { grantee: 'Odd "Role"', privilege: 'CREATE', grantable: true },
    ],
    comment: "the CRM\nit's ours",
  };

  it('builds each from psql variables: settings, the default grants replaced, the grants, the comment', () => {
    const { statements, skipped } = propertyStatements('crm', props);
    expect(skipped).toEqual([]);
    expect(statements).toEqual([
      { sql: `ALTER DATABASE :"db" SET search_path TO :'v0', :'v1';\n`, vars: { db: 'crm', v0: '$user', v1: 'public' }, what: 'setting search_path' },
      { sql: `ALTER DATABASE :"db" SET app.tenant TO :'v0';\n`, vars: { db: 'crm', v0: "acme'; DROP TABLE x; --" }, what: 'setting app.tenant' },
      { sql: `ALTER DATABASE :"db" SET work_mem TO :'v0';\n`, vars: { db: 'crm', v0: '8MB' }, what: 'setting work_mem' },
      { sql: `REVOKE ALL ON DATABASE :"db" FROM PUBLIC;\n`, vars: { db: 'crm' }, what: 'the default grants to PUBLIC' },
      { sql: `GRANT TEMPORARY ON DATABASE :"db" TO PUBLIC;\n`, vars: { db: 'crm' }, what: 'TEMPORARY to PUBLIC' },
      { sql: `GRANT CONNECT ON DATABASE :"db" TO :"grantee";\n`, vars: { db: 'crm', grantee: 'readers' }, what: 'CONNECT to "readers"' },
      { sql: `GRANT CREATE ON DATABASE :"db" TO :"grantee" WITH GRANT OPTION;\n`, vars: { db: 'crm', grantee: 'Odd "Role"' }, what: 'CREATE to "Odd "Role""' },
      { sql: `COMMENT ON DATABASE :"db" IS :'comment';\n`, vars: { db: 'crm', comment: "the CRM\nit's ours" }, what: 'the comment' },
    ]);
  });

  it('leaves the grants out without ownership and privileges, and keeps the defaults when none were recorded', () => {
    expect(propertyStatements('crm', props, { noOwner: true }).statements.map((s) => s.what)).toEqual(['setting search_path', 'setting app.tenant', 'setting work_mem', 'the comment']);
    expect(propertyStatements('crm', { comment: 'x' }).statements.map((s) => s.what)).toEqual(['the comment']);
    // Recorded as revoked from everyone: the defaults go and nothing is granted.
    expect(propertyStatements('crm', { grants: [] }).statements.map((s) => s.sql)).toEqual([`REVOKE ALL ON DATABASE :"db" FROM PUBLIC;\n`]);
  });

  it('skips, and says so, what cannot be written safely: a name that is not a parameter, a privilege that is not a database one, an unreadable list', () => {
    const { statements, skipped } = propertyStatements('crm', {
      settings: ['work_mem TO 1; DROP DATABASE x; --=1', '=x', 'search_path="unterminated'],
      grants: [{ grantee: 'x', privilege: 'ALL; DROP DATABASE crm', grantable: false }],
    });
    expect(statements.map((s) => s.what)).toEqual(['the default grants to PUBLIC']);
    expect(skipped).toEqual([
      'database "crm": setting "work_mem TO 1; DROP DATABASE x; --=1" is not name=value: not restored',
      'database "crm": setting "=x" is not name=value: not restored',
      'database "crm": setting search_path has a list value the runner cannot read ("\\"unterminated"): not restored',
      'database "crm": privilege "ALL; DROP DATABASE crm" is not a database privilege: not restored',
    ]);
  });
});

describe('what the server answered', () => {
  it('reads the properties column, leaving out what is the default', () => {
    expect(parseProperties('{"settings" : null, "grants" : null, "comment" : null}', 'a')).toEqual({});
    expect(parseProperties('{"settings" : ["work_mem=8MB"], "grants" : [], "comment" : "x"}', 'a')).toEqual({ settings: ['work_mem=8MB'], grants: [], comment: 'x' });
    expect(parseProperties('{"settings" : null, "grants" : [{"grantee" : null, "privilege" : "CONNECT", "grantable" : false}], "comment" : null}', 'a')).toEqual({
      grants: [{ grantee: null, privilege: 'CONNECT', grantable: false }],
    });
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
