/**
 * The MongoDB tool's pure parts (tools/mongodb/args.ts, archive.ts, definition.ts): the arguments mongodump
 * and mongorestore get, the --config file, where a restore goes, the archive prelude. No MongoDB runs here:
 * archives are built byte by byte from the format's specification (mongo-tools common/archive/spec.md).
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { definitionErrors, toolConfigErrors } from '../../api/engine-contract.js';
import { ArchiveError, bsonStrings, databasesOf, hasOplog, isServerNamespace, PreludeReader, targetState, type Prelude } from '../../tools/mongodb/archive.js';
import {
  backupPosition,
  backupScope,
  configFileText,
  configOf,
  connectionArgs,
  connectionProblem,
  dbNameError,
  dumpArgs,
  dumpedScope,
  errorCode,
  failureText,
  nsPattern,
  preludeArgs,
  restoreArgs,
  restorePlan,
  serverVersionOf,
  supportsConfigFile,
  targetOf,
  toolVersion,
  yamlQuoted,
} from '../../tools/mongodb/args.js';
import { definition, MONGODUMP_ARCHIVE_MAGIC } from '../../tools/mongodb/definition.js';
import { TOOLS } from '../../tools/index.js';
import { ToolFailure } from '../../tools/sdk.js';
import { archive as buildArchive, bson, cstring, MAGIC, TERMINATOR } from '../mongodb-archive.js';

// The first namespace segment: a header and one document, which the prelude reader never looks at.
const FIRST_SEGMENT = Buffer.concat([bson([['db', 'shop'], ['collection', 'orders']]), bson([['_id', 1]])]);

function archive(namespaces: [string, string, string?][], serverVersion = '7.0.14'): Buffer {
  return buildArchive(namespaces, { serverVersion, body: FIRST_SEGMENT });
}

describe('the definition', () => {
  it('declares the archive magic as stored: 0x8199e26d little-endian (mongo-tools common/archive)', () => {
    expect(MONGODUMP_ARCHIVE_MAGIC).toBe('6de29981');
    expect(Buffer.from(MONGODUMP_ARCHIVE_MAGIC, 'hex').readUInt32LE(0)).toBe(0x8199e26d);
    expect(definition.formats).toEqual([{ format: 'mongodb-archive', extension: 'archive', compressed: false, magicHex: ['6de29981'] }]);
  });

  it('is a valid definition, shipped without an image of its own (MongoDB tools are not in Debian)', () => {
    expect(definitionErrors(definition, 'definition')).toEqual([]);
    expect(TOOLS.mongodb).toMatchObject({ definition });
    expect(TOOLS.mongodb!.image).toBeUndefined();
    expect(definition.command).toEqual(['db-backup-tool', 'mongodb']);
  });

  it.each([
    [{}, []],
    [{ oplog: true, authenticationDatabase: 'users', numParallelCollections: 16 }, []],
    [{ oplog: 'yes' }, [{ path: 'config.oplog', message: 'must be boolean' }]],
    [{ numParallelCollections: 17 }, [{ path: 'config.numParallelCollections', message: 'must be <= 16' }]],
    [{ numParallelCollections: 0 }, [{ path: 'config.numParallelCollections', message: 'must be >= 1' }]],
    [{ authenticationDatabase: '' }, [{ path: 'config.authenticationDatabase', message: 'must NOT have fewer than 1 characters' }]],
    [{ gzip: true }, [{ path: 'config.gzip', message: 'is not a setting of this engine' }]],
  ])('config %j: %j', (config, errors) => {
    expect(toolConfigErrors(definition.configSchema, config, 'config', 'schema')).toEqual(errors);
  });

  it('defaults: no oplog, credentials in admin, mongodump\'s own parallelism', () => {
    expect(configOf({})).toEqual({ oplog: false, authenticationDatabase: 'admin' });
    expect(configOf({ oplog: true, authenticationDatabase: 'shop', numParallelCollections: 2 })).toEqual({ oplog: true, authenticationDatabase: 'shop', numParallelCollections: 2 });
  });
});

describe('the --config file', () => {
  it.each([
    ['plain', 's3cret'],
    ['YAML syntax', 'a: b # c\n- d'],
    ['quotes and backslashes', 'he said "\\n" and \' left'],
    ['leading and trailing spaces', '  spaced  '],
    ['control characters', 'tab\there\u0000nul\u007fdel\u2028ls'],
    ['non-ASCII', 'pässwörd-密码'],
    ['astral', 'key-\u{1f511}'],
    ['empty', ''],
    ['YAML keywords', 'null'],
  ])('holds a %s password as one ASCII double-quoted scalar that reads back exactly', (_what, password) => {
    const text = configFileText(password);
    expect(text).toMatch(/^password: "[\x20-\x7e]*"\n$/);
    expect(parse(text)).toEqual({ password });
  });

  it.each([
    ['abc', '"abc"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ['\n', '"\\u000a"'],
    ['é', '"\\u00e9"'],
    ['\u{1f600}', '"\\U0001f600"'],
  ])('yamlQuoted(%j) is %s', (s, quoted) => {
    expect(yamlQuoted(s)).toBe(quoted);
  });
});

describe('connection arguments', () => {
  const cfg = configOf({});

  it('name host, port, user and authentication database; the password only through the --config file', () => {
    const args = connectionArgs({ host: 'mongo.shop.svc', port: 27018, user: 'backup', passwordFile: '/tmp/x/password', database: 'shop' }, cfg, { config: '/tmp/x/mongo-tools.yaml' });
    expect(args).toEqual(['--host=mongo.shop.svc', '--port=27018', '--username=backup', '--authenticationDatabase=admin', '--config=/tmp/x/mongo-tools.yaml']);
  });

  it('default to 127.0.0.1:27017 without authentication', () => {
    expect(connectionArgs({}, cfg, {})).toEqual(['--host=127.0.0.1', '--port=27017']);
  });

  it('with TLS: --ssl, the CA file and the client PEM (certificate and key in one file)', () => {
    expect(connectionArgs({ host: 'h', tls: { caFile: '/tls/ca.crt', certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' } }, configOf({ authenticationDatabase: 'users' }), { pem: '/tmp/x/client.pem' })).toEqual([
      '--host=h',
      '--port=27017',
      '--ssl',
      '--sslCAFile=/tls/ca.crt',
      '--sslPEMKeyFile=/tmp/x/client.pem',
    ]);
  });

  it.each([
    ['a user without a password (the tools would prompt on stdin, the dump during a restore)', { user: 'backup' }, false, /needs a password/],
    ['a password without a user', {}, true, /without a user/],
    ['a key without a certificate', { tls: { keyFile: '/k' } }, false, /key file without a certificate/],
  ])('refuse %s', (_what, target, hasPassword, message) => {
    expect(connectionProblem(target, hasPassword)).toMatch(message);
  });

  it.each([[{ user: 'backup' }, true], [{}, false], [{ tls: { certFile: '/c', keyFile: '/k' } }, false]])('accept %j (password: %s)', (target, hasPassword) => {
    expect(connectionProblem(target, hasPassword)).toBeUndefined();
  });
});

describe('backup arguments', () => {
  const conn = ['--host=h', '--port=27017'];

  it('one database: the archive on stdout, uncompressed', () => {
    const scope = backupScope({ database: 'shop' }, configOf({}));
    expect(scope).toEqual({ database: 'shop' });
    const args = dumpArgs(conn, scope, configOf({ numParallelCollections: 2 }));
    expect(args).toEqual(['--archive', '--host=h', '--port=27017', '--db=shop', '--numParallelCollections=2']);
    expect(args.some((a) => a.startsWith('--gzip') || a.startsWith('--archive='))).toBe(false);
  });

  it('the whole server with the oplog: point-in-time', () => {
    const cfg = configOf({ oplog: true });
    const scope = backupScope({}, cfg);
    expect(dumpArgs(conn, scope, cfg)).toEqual(['--archive', '--host=h', '--port=27017', '--oplog']);
    expect(backupPosition(scope, cfg)).toEqual({ scope: 'server', consistency: 'oplog' });
  });

  it('records what it dumped, and says a dump without the oplog is best effort', () => {
    expect(backupPosition({ database: 'shop' }, configOf({}))).toEqual({ scope: 'database', database: 'shop', consistency: 'best-effort' });
  });

  it('refuses the oplog with one database before anything runs (mongodump: "--oplog mode only supported on full dumps")', () => {
    expect(() => backupScope({ database: 'shop' }, configOf({ oplog: true }))).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/oplog: true needs a backup of the whole server/) }));
  });

  it('refuses a database name MongoDB does not take', () => {
    expect(() => backupScope({ database: 'shop.orders' }, configOf({}))).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('reads a target\'s prelude with the same connection, for one database or the server', () => {
    expect(preludeArgs(conn, 'shop')).toEqual(['--archive', '--host=h', '--port=27017', '--db=shop']);
    expect(preludeArgs(conn, undefined)).toEqual(['--archive', '--host=h', '--port=27017']);
  });
});

describe('database names', () => {
  it.each([
    ['shop', undefined],
    ['my-db_2', undefined],
    ['star*db', undefined],
    ['', 'is empty'],
    ['a'.repeat(64), 'is longer than 63 bytes'],
    ['a.b', 'holds one of / \\ . space " $ or NUL'],
    ['a b', 'holds one of / \\ . space " $ or NUL'],
    ['a$b', 'holds one of / \\ . space " $ or NUL'],
    ['a/b', 'holds one of / \\ . space " $ or NUL'],
  ])('dbNameError(%j) is %j', (name, error) => {
    expect(dbNameError(name)).toBe(error);
  });

  it.each([
    ['shop', 'shop.*'],
    ['star*db', 'star\\*db.*'],
  ])('nsPattern(%j) is %s (mongorestore ns.Escape)', (db, pattern) => {
    expect(nsPattern(db)).toBe(pattern);
  });
});

describe('where a restore goes', () => {
  const engine = 'mongodb';

  it.each([
    ['no database configured: the runner requests the engine name, which means the server', { requested: 'mongodb' }, undefined],
    ['no database configured, another requested', { requested: 'other' }, 'other'],
    ['configured, same requested', { configured: 'shop', requested: 'shop' }, 'shop'],
    ['configured, another requested', { configured: 'shop', requested: 'shop_copy' }, 'shop_copy'],
    ['configured, none requested', { configured: 'shop' }, 'shop'],
    ['a database literally named like the engine, configured', { configured: 'mongodb', requested: 'mongodb' }, 'mongodb'],
  ])('targetOf: %s', (_what, args, expected) => {
    expect(targetOf({ engine, ...args })).toBe(expected);
  });

  it.each([
    ['a server backup into the server', { requested: 'mongodb', dumped: {} }, {}],
    ['a database backup into itself', { configured: 'shop', requested: 'shop', dumped: { database: 'shop' } }, { source: 'shop', into: 'shop' }],
    ['a database backup under another name', { configured: 'shop', requested: 'shop_copy', dumped: { database: 'shop' } }, { source: 'shop', into: 'shop_copy' }],
    ['a database backup into the configured database (renamed)', { configured: 'orders', requested: 'orders', dumped: { database: 'shop' } }, { source: 'shop', into: 'orders' }],
    ['a database backup, no database configured any more: into the same database', { requested: 'mongodb', dumped: { database: 'shop' } }, { source: 'shop', into: 'shop' }],
    ['a dump made elsewhere (no position): as configured', { configured: 'shop', requested: 'shop', dumped: undefined }, { source: 'shop', into: 'shop' }],
    ['a dump made elsewhere, no database configured: the server', { requested: 'mongodb', dumped: undefined }, {}],
  ])('restorePlan: %s', (_what, args, plan) => {
    expect(restorePlan({ engine, ...args })).toEqual(plan);
  });

  it.each([
    ['a server backup into one database', { requested: 'other', dumped: {} }, /holds the whole server.*not into the database "other"/],
    ['a server backup while a database is configured', { configured: 'shop', requested: 'shop', dumped: {} }, /holds the whole server/],
    ['a rename into admin', { configured: 'shop', requested: 'admin', dumped: { database: 'shop' } }, /admin database is the server's own/],
    ['a rename of admin', { configured: 'admin', requested: 'x', dumped: { database: 'admin' } }, /admin database is the server's own/],
    ['a target name MongoDB does not take', { configured: 'shop', requested: 'a.b', dumped: { database: 'shop' } }, /the target database "a.b" holds one of/],
  ])('restorePlan refuses %s, target unchanged', (_what, args, message) => {
    let thrown: unknown;
    try {
      restorePlan({ engine, ...args });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ToolFailure);
    expect(thrown).toMatchObject({ code: 'CONFIG_INVALID', target: { state: 'unchanged' } });
    expect((thrown as Error).message).toMatch(message);
  });

  it.each([
    [{ position: { scope: 'server', consistency: 'oplog' } }, {}],
    [{ position: { scope: 'database', database: 'shop', consistency: 'best-effort' } }, { database: 'shop' }],
    [{ position: { scope: 'database' } }, undefined],
    [{}, undefined],
    [undefined, undefined],
  ])('dumpedScope(%j) is %j', (engineBlock, scope) => {
    expect(dumpedScope(engineBlock)).toEqual(scope);
  });

  const conn = ['--host=h', '--port=27017'];
  it('restores only the backup\'s database, from stdin, stopping at the first failed insert', () => {
    expect(restoreArgs(conn, { source: 'shop', into: 'shop' }, { force: false, oplogReplay: false })).toEqual(['--archive', ...conn, '--nsInclude=shop.*', '--stopOnError']);
  });

  it('renames with --nsFrom/--nsTo, drops only with force', () => {
    expect(restoreArgs(conn, { source: 'shop', into: 'shop_copy' }, { force: true, oplogReplay: false })).toEqual(['--archive', ...conn, '--nsInclude=shop.*', '--nsFrom=shop.*', '--nsTo=shop_copy.*', '--drop', '--stopOnError']);
  });

  it('replays the oplog of a whole-server backup', () => {
    expect(restoreArgs(conn, {}, { force: false, oplogReplay: true })).toEqual(['--archive', ...conn, '--oplogReplay', '--stopOnError']);
  });
});

describe('tool output', () => {
  it.each([
    ['mongodump version: 100.9.4\ngit version: 7d2c0f5\nGo version: go1.21.6\n', 'mongodump', '100.9.4'],
    ['mongorestore version: 100.10.0\n', 'mongorestore', '100.10.0'],
    ['mongodump version: r4.2.24\ngit version: x\n', 'mongodump', '4.2.24'],
    ['mongodump version: built-without-version-string\n', 'mongodump', undefined],
    ['mongorestore version: 100.9.4\n', 'mongodump', undefined],
    ['bash: mongodump: command not found', 'mongodump', undefined],
  ])('toolVersion(%j, %s) is %s', (text, program, version) => {
    expect(toolVersion(text, program)).toBe(version);
  });

  it.each([
    ['100.3.0', true],
    ['100.9.4', true],
    ['100.10.0', true],
    ['101.0.0', true],
    ['100.2.1', false],
    ['4.2.24', false],
  ])('supportsConfigFile(%s) is %s', (version, yes) => {
    expect(supportsConfigFile(version)).toBe(yes);
  });

  it.each([
    ['7.0.14', '7.0.14'],
    ['8.0.0-rc1', '8.0.0-rc1'],
    ['unknown', undefined],
    ['', undefined],
    ['7.0 beta', undefined],
  ])('serverVersionOf(%j) is %s', (said, version) => {
    expect(serverVersionOf(said)).toBe(version);
  });

  it.each([
    ["can't create session: failed to connect to mongodb://h:27017/: connection() error occurred during connection handshake: auth error: sasl conversation error: unable to authenticate using mechanism \"SCRAM-SHA-256\": (AuthenticationFailed) Authentication failed.", 'DB_AUTH_FAILED'],
    ['error reading database: (Unauthorized) not authorized on shop to execute command { listCollections: 1 }', 'DB_AUTH_FAILED'],
    ["can't create session: could not connect to server: server selection error: server selection timeout, current topology: { Type: Single, Servers: [{ Addr: h:27017, Type: Unknown, Last error: dial tcp 10.0.0.1:27017: connect: connection refused }, ] }", 'DB_UNREACHABLE'],
    ['x509: certificate signed by unknown authority', 'DB_UNREACHABLE'],
    ['shop.orders: error restoring from archive: E11000 duplicate key error', 'FAILED'],
  ])('errorCode(%j) is %s', (text, code) => {
    expect(errorCode(text)).toBe(code);
  });

  it('failureText takes the last Failed: line, without its timestamp', () => {
    const stderr = '2024-05-01T10:00:00.123+0000\twriting shop.orders to archive on stdout\n2024-05-01T10:00:01.456+0000\tFailed: error writing data for collection `shop.orders` to disk: broken pipe\n';
    expect(failureText(stderr)).toBe('error writing data for collection `shop.orders` to disk: broken pipe');
    expect(failureText('one\ntwo\nthree\nfour\n')).toBe('two three four');
    expect(failureText('')).toBe('');
  });
});

describe('BSON fields', () => {
  it('reads top-level strings and skips every other type', () => {
    const objectId = Buffer.alloc(12, 7);
    const nested = bson([['x', 'inner strings are not top-level']]);
    const binary = Buffer.concat([Buffer.from([3, 0, 0, 0, 0]), Buffer.from('abc')]);
    const double = Buffer.alloc(8);
    double.writeDoubleLE(1.5);
    const doc = bson([
      ['a', 'first'],
      ['d', 0x01, double],
      ['o', 0x03, nested],
      ['arr', 0x04, bson([['0', 1]])],
      ['bin', 0x05, binary],
      ['oid', 0x07, objectId],
      ['t', 0x08, Buffer.from([1])],
      ['n', 0x0a, Buffer.alloc(0)],
      ['re', 0x0b, Buffer.concat([cstring('^a'), cstring('i')])],
      ['l', 0x12, Buffer.alloc(8)],
      ['dec', 0x13, Buffer.alloc(16)],
      ['z', 'last'],
      ['ü', 'UTF-8 ✓'],
    ]);
    expect(bsonStrings(doc)).toEqual({ a: 'first', z: 'last', ü: 'UTF-8 ✓' });
  });

  it.each([
    ['a length prefix that does not match', (() => {
      const d = bson([['a', 'b']]);
      d.writeInt32LE(d.length + 1, 0);
      return d;
    })()],
    ['an unknown type', bson([['x', 0x42, Buffer.alloc(4)]])],
    ['a string running past the end', (() => {
      const d = bson([['a', 'bc']]);
      d.writeInt32LE(100, 7);
      return d;
    })()],
    ['too short', Buffer.from([4, 0, 0, 0])],
  ])('refuses %s', (_what, doc) => {
    expect(() => bsonStrings(doc)).toThrow(ArchiveError);
  });
});

describe('the archive prelude', () => {
  const whole = archive([
    ['admin', 'system.version'],
    ['shop', 'orders', 'collection'],
    ['shop', 'big_orders', 'view'],
    ['', 'oplog'],
  ]);

  it('reads the header and every namespace, up to the terminator', () => {
    const prelude = new PreludeReader().push(whole);
    expect(prelude).toEqual({
      formatVersion: '0.1',
      serverVersion: '7.0.14',
      toolVersion: '100.9.4',
      namespaces: [
        { db: 'admin', collection: 'system.version' },
        { db: 'shop', collection: 'orders', type: 'collection' },
        { db: 'shop', collection: 'big_orders', type: 'view' },
        { db: '', collection: 'oplog' },
      ],
      bytes: whole.indexOf(TERMINATOR) + 4,
    });
    expect(hasOplog(prelude!)).toBe(true);
    expect(databasesOf(prelude!)).toEqual(['admin', 'shop']);
  });

  it('arriving a byte at a time, answers once the terminator is in', () => {
    const reader = new PreludeReader();
    const end = whole.indexOf(TERMINATOR) + 4;
    for (let i = 0; i < end - 1; i++) expect(reader.push(whole.subarray(i, i + 1))).toBeUndefined();
    expect(reader.push(whole.subarray(end - 1, end))?.namespaces).toHaveLength(4);
  });

  it('an empty database: a header and the terminator', () => {
    const prelude = new PreludeReader().push(archive([]));
    expect(prelude?.namespaces).toEqual([]);
  });

  it.each([
    ['an RDB file', Buffer.from('REDIS0011')],
    ['a gzip stream (mongodump --gzip output compressed as a whole)', Buffer.from([0x1f, 0x8b, 0x08, 0])],
    ['a BSON file (mongodump --out)', bson([['_id', 1]])],
  ])('refuses %s from its first bytes', (_what, input) => {
    expect(() => new PreludeReader().push(input.subarray(0, 1))).toThrow(/not a mongodump archive/);
  });

  it('refuses a prelude past its limit', () => {
    const reader = new PreludeReader(100);
    expect(() => reader.push(Buffer.concat([MAGIC, bson([['version', 'x'.repeat(200)]]).subarray(0, 150)]))).toThrow(/larger than 100 bytes/);
  });

  it('refuses an entry without db and collection', () => {
    const input = Buffer.concat([MAGIC, bson([['version', '0.1']]), bson([['db', 'shop']]), TERMINATOR]);
    expect(() => new PreludeReader().push(input)).toThrow(/without db and collection/);
  });

  it('refuses a terminator before the header', () => {
    expect(() => new PreludeReader().push(Buffer.concat([MAGIC, TERMINATOR]))).toThrow(/no header/);
  });
});

describe('what a target holds', () => {
  const prelude = (namespaces: [string, string, string?][]): Prelude => new PreludeReader().push(archive(namespaces))!;

  it.each<[string, [string, string, string?][], string | undefined, { exists: boolean; hasData: boolean }]>([
    ['a new server: admin\'s users and version, local, config', [['admin', 'system.users'], ['admin', 'system.version'], ['local', 'startup_log'], ['config', 'system.sessions']], undefined, { exists: true, hasData: false }],
    ['a server with an application database', [['admin', 'system.version'], ['shop', 'orders']], undefined, { exists: true, hasData: true }],
    ['a server with a collection in admin', [['admin', 'settings']], undefined, { exists: true, hasData: true }],
    ['a database that does not exist', [], 'shop', { exists: false, hasData: false }],
    ['a database with a collection', [['shop', 'orders']], 'shop', { exists: true, hasData: true }],
    ['a database with only a view', [['shop', 'v', 'view']], 'shop', { exists: true, hasData: true }],
    ['a database with only system collections', [['shop', 'system.js']], 'shop', { exists: true, hasData: false }],
  ])('%s', (_what, namespaces, database, expected) => {
    const state = targetState(prelude(namespaces), database);
    expect({ exists: state.exists, hasData: state.hasData }).toEqual(expected);
  });

  it('names what it holds', () => {
    expect(targetState(prelude([['shop', 'orders'], ['shop', 'system.views'], ['crm', 'people']]), undefined).holding).toEqual(['shop.orders', 'crm.people']);
  });

  it.each([
    [{ db: '', collection: 'oplog' }, true],
    [{ db: 'local', collection: 'oplog.rs' }, true],
    [{ db: 'config', collection: 'transactions' }, true],
    [{ db: 'admin', collection: 'system.roles' }, true],
    [{ db: 'shop', collection: 'system.buckets.metrics' }, true],
    [{ db: 'shop', collection: 'metrics', type: 'timeseries' }, false],
  ])('isServerNamespace(%j) is %s', (ns, yes) => {
    expect(isServerNamespace(ns)).toBe(yes);
  });
});
