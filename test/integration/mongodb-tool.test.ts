/**
 * CONTRACT PLUMBING ONLY, NOT A MONGODB TEST. MongoDB's server and tools are not in Debian, so no MongoDB runs
 * here: `mongodump` and `mongorestore` are stand-in bash scripts written into a temp directory on PATH. They
 * record what the shipped tool (`db-backup-tool mongodb`, run by the runner's CommandEngine as a separate
 * process speaking the contract) hands them: argv, the --config file's contents and mode, the bytes on stdin;
 * and answer with archives built here byte by byte. What this checks is the tool's side of that exchange:
 * the password only in a 0600 file, the dump passed through untouched both ways, refusals before anything is
 * started, honest target states. Whether real mongodump/mongorestore do the right thing with those arguments
 * is not tested here (docs/engines.md says so).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CommandConnection } from '../../api/index.js';
import { CommandEngine } from '../../runner/engines/command/index.js';
import { definition } from '../../tools/mongodb/definition.js';
import { rejection, shippedToolCommand } from '../engine-helpers.js';
import { archive, bson } from '../mongodb-archive.js';

const PASSWORD = 'pa ss"wörd: #1\\';

/** A stand-in archive with a body large enough that it takes several pipe buffers. */
const SHOP = archive([['shop', 'orders'], ['shop', 'customers']], { body: Buffer.concat([bson([['db', 'shop'], ['collection', 'orders']]), Buffer.alloc(300_000, 0x5a)]) });
const EMPTY = archive([]);
const SERVER = archive([['admin', 'system.version'], ['shop', 'orders'], ['', 'oplog']], { body: Buffer.alloc(1000, 0x11) });
const NEW_SERVER = archive([['admin', 'system.users'], ['admin', 'system.version'], ['local', 'startup_log']]);

let dir = '';
let bin = '';
let log = '';
let fix = '';

/** The stand-ins: each call records itself in a directory of its own under `log`, named so that calls sort in order. */
function stubs(): Record<string, string> {
  const record = `
call="${log}/$(date +%s%N).$(basename "$0")"
mkdir "$call"
printf '%s\\n' "$@" > "$call/argv"
echo $$ > "$call/pid"
for a in "$@"; do
  case $a in
    --config=*) f=\${a#--config=}; cp "$f" "$call/config"; stat -c %a "$f" > "$call/config.mode" ;;
    --sslPEMKeyFile=*) f=\${a#--sslPEMKeyFile=}; cp "$f" "$call/pem"; stat -c %a "$f" > "$call/pem.mode" ;;
    --db=*) db=\${a#--db=} ;;
  esac
done
env > "$call/env"
mode=$(cat "${fix}/$(basename "$0").mode" 2>/dev/null || echo ok)
`;
  return {
    mongodump: `#!/bin/bash
# STAND-IN for mongodump (a test fixture, not MongoDB): records its call, writes a prepared archive.
set -u
if [ "\${1:-}" = --version ]; then printf 'mongodump version: 100.9.4\\ngit version: stand-in\\n'; exit 0; fi
db=server
${record}
case $mode in
  auth) echo "2024-05-01T10:00:00.000+0000	Failed: can't create session: auth error: sasl conversation error: (AuthenticationFailed) Authentication failed." >&2; exit 1 ;;
  down) echo "2024-05-01T10:00:00.000+0000	Failed: can't create session: could not connect to server: server selection error: connection refused" >&2; exit 1 ;;
esac
echo "2024-05-01T10:00:00.000+0000	writing $db to archive on stdout" >&2
cat "${fix}/$db.archive"
# The real mongodump goes on reading documents after its prelude: one that lingers must be stopped by the tool.
if [ -e "${fix}/linger" ]; then exec sleep 30; fi
echo "2024-05-01T10:00:01.000+0000	done dumping $db" >&2
`,
    mongorestore: `#!/bin/bash
# STAND-IN for mongorestore (a test fixture, not MongoDB): records its call and every byte of its stdin.
set -u
if [ "\${1:-}" = --version ]; then printf 'mongorestore version: 100.9.4\\ngit version: stand-in\\n'; exit 0; fi
${record}
cat > "$call/stdin"
case $mode in
  fail-empty) echo "2024-05-01T10:00:00.000+0000	Failed: shop.orders: error restoring from archive: (WriteConcernFailed) waiting for replication timed out" >&2; exit 1 ;;
  fail-wrote) cp "${fix}/wrote.archive" "${fix}/$(cat "${fix}/wrote.into").archive"; echo "2024-05-01T10:00:00.000+0000	Failed: shop.orders: error restoring from archive: E11000 duplicate key error" >&2; exit 1 ;;
esac
echo "2024-05-01T10:00:02.000+0000	finished restoring shop.orders (2 documents, 0 failures)" >&2
`,
  };
}

interface Call {
  program: string;
  argv: string[];
  config?: string;
  configMode?: string;
  pem?: string;
  pemMode?: string;
  stdin?: Buffer;
  env: string;
  pid: number;
}

/** The stand-ins' calls so far, in order. */
function calls(program?: string): Call[] {
  return readdirSync(log)
    .sort()
    .map((name) => {
      const d = join(log, name);
      const opt = (f: string): string | undefined => (existsSync(join(d, f)) ? readFileSync(join(d, f), 'utf8').trim() : undefined);
      return {
        program: name.split('.')[1]!,
        argv: readFileSync(join(d, 'argv'), 'utf8').split('\n').slice(0, -1),
        ...(opt('config') !== undefined ? { config: readFileSync(join(d, 'config'), 'utf8'), configMode: opt('config.mode') } : {}),
        ...(opt('pem') !== undefined ? { pem: readFileSync(join(d, 'pem'), 'utf8'), pemMode: opt('pem.mode') } : {}),
        ...(existsSync(join(d, 'stdin')) ? { stdin: readFileSync(join(d, 'stdin')) } : {}),
        env: readFileSync(join(d, 'env'), 'utf8'),
        pid: Number(opt('pid')),
      };
    })
    .filter((c) => program === undefined || c.program === program);
}

/** What the tool logged (through the runner's logger: its stderr lines, redacted). */
let logged: string[] = [];

async function engine(block: Partial<CommandConnection> = {}): Promise<CommandEngine> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logged.push(chunk.toString('utf8'));
      done();
    },
  });
  const connection: CommandConnection = {
    definition: { ...definition, command: shippedToolCommand('mongodb') },
    host: 'mongo.shop.svc',
    port: 27018,
    user: 'backup',
    password: { value: PASSWORD },
    ...block,
  };
  // The runner's environment is the test's, with the stand-ins first on PATH (a tool gets PATH and little else).
  return CommandEngine.create(connection, pino({ level: 'info' }, sink), { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
}

async function fixture(name: string, content: Buffer | string): Promise<void> {
  await writeFile(join(fix, name), content);
}


async function dumpAll(e: CommandEngine): Promise<{ bytes: Buffer; consistentAt: Date; position: Record<string, string> | undefined }> {
  const handle = await e.dump();
  const chunks: Buffer[] = [];
  for await (const c of handle.stream!) chunks.push(c as Buffer);
  await handle.done;
  return { bytes: Buffer.concat(chunks), consistentAt: await handle.consistentAt, position: await handle.position };
}

const backupOf = (position: Record<string, string>): { id: string; consistentAt: string; engine: Record<string, unknown> } => ({
  id: '20260501T100000Z-abcd',
  consistentAt: '2026-05-01T10:00:00.000Z',
  engine: { name: 'mongodb', serverVersion: '7.0.14', toolVersion: '100.9.4', format: 'mongodb-archive', position },
});

/** The connection arguments every stand-in call of the default engine gets (the --config path is the call's own). */
function expectConnection(c: Call): void {
  expect(c.argv).toEqual(expect.arrayContaining(['--host=mongo.shop.svc', '--port=27018', '--username=backup', '--authenticationDatabase=admin']));
  const config = c.argv.filter((a) => a.startsWith('--config='));
  expect(config).toHaveLength(1);
  expect(config[0]).toMatch(/^--config=\/.+\/tool-mongodb-[^/]+\/mongo-tools\.yaml$/);
  expect(c.config).toBe('password: "pa ss\\"w\\u00f6rd: #1\\\\"\n');
  expect(c.configMode).toBe('600');
  // Never on a command line, never in the environment.
  expect(c.argv.join('\n')).not.toContain('wörd');
  expect(c.argv.join('\n')).not.toContain('w\\u00f6rd');
  expect(c.env).not.toContain('wörd');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dbbc-mongodb-standin-'));
  bin = join(dir, 'bin');
  fix = join(dir, 'fixtures');
  await mkdir(bin);
  await mkdir(fix);
  await mkdir(join(dir, 'log'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  log = join(dir, `log-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  await mkdir(log);
  await rm(fix, { recursive: true, force: true });
  await mkdir(fix);
  for (const [name, text] of Object.entries(stubs())) {
    await writeFile(join(bin, name), text);
    await chmod(join(bin, name), 0o755);
  }
  await fixture('shop.archive', SHOP);
  await fixture('server.archive', SERVER);
  logged = [];
});

describe('probe (stand-ins, not MongoDB)', () => {
  it('takes the tool version from mongodump --version and the server version from the archive header of the target', async () => {
    await fixture('linger', '');
    const started = Date.now();
    const e = await engine({ database: 'shop' });
    expect(await e.probe()).toEqual({ serverVersion: '7.0.14', toolVersion: '100.9.4' });
    const [c] = calls('mongodump');
    expect(c!.argv).toEqual(['--archive', '--host=mongo.shop.svc', '--port=27018', '--username=backup', '--authenticationDatabase=admin', expect.stringMatching(/^--config=/), '--db=shop']);
    expectConnection(c!);
    // The stand-in lingers after its prelude (as mongodump goes on dumping): the tool stopped it.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(() => process.kill(c!.pid, 0)).toThrow();
  });

  it('a refused login is DB_AUTH_FAILED, with mongodump\'s reason', async () => {
    await fixture('mongodump.mode', 'auth');
    const err = await rejection((await engine()).probe());
    expect(err.code).toBe('DB_AUTH_FAILED');
    expect(err.message).toContain('Authentication failed');
  });

  it('an unreachable server is DB_UNREACHABLE', async () => {
    await fixture('mongodump.mode', 'down');
    expect((await rejection((await engine()).probe())).code).toBe('DB_UNREACHABLE');
  });

  it('without mongodump on PATH: TOOL_INCOMPATIBLE, saying what to install', async () => {
    await rm(join(bin, 'mongodump'));
    const err = await rejection((await engine()).probe());
    expect(err.code).toBe('TOOL_INCOMPATIBLE');
    expect(err.message).toContain('MongoDB Database Tools');
  });

  it('a user without a password is refused before anything runs (mongodump would prompt on stdin)', async () => {
    const e = await engine({ password: undefined });
    const err = await rejection(e.probe());
    expect(err.code).toBe('CONFIG_INVALID');
    expect(calls()).toEqual([]);
  });
});

describe('backup (stand-ins, not MongoDB)', () => {
  it('passes mongodump --archive\'s stdout through untouched, uncompressed, and records what it dumped', async () => {
    const started = new Date();
    const { bytes, consistentAt, position } = await dumpAll(await engine({ database: 'shop', config: { numParallelCollections: 2 } }));
    expect(bytes.equals(SHOP)).toBe(true);
    expect(consistentAt.getTime()).toBeGreaterThanOrEqual(started.getTime());
    expect(position).toEqual({ scope: 'database', database: 'shop', consistency: 'best-effort' });
    const [c] = calls('mongodump');
    expect(c!.argv).toEqual(['--archive', '--host=mongo.shop.svc', '--port=27018', '--username=backup', '--authenticationDatabase=admin', expect.stringMatching(/^--config=/), '--db=shop', '--numParallelCollections=2']);
    expect(c!.argv).not.toContain('--gzip');
    expectConnection(c!);
    expect(logged.join('')).toContain('not a point-in-time copy');
  });

  it('the whole server with the oplog: --oplog, no --db, consistency oplog', async () => {
    const { bytes, position } = await dumpAll(await engine({ config: { oplog: true, authenticationDatabase: 'users' } }));
    expect(bytes.equals(SERVER)).toBe(true);
    expect(position).toEqual({ scope: 'server', consistency: 'oplog' });
    const [c] = calls('mongodump');
    expect(c!.argv).toContain('--oplog');
    expect(c!.argv).toContain('--authenticationDatabase=users');
    expect(c!.argv.some((a) => a.startsWith('--db'))).toBe(false);
  });

  it('oplog with one database is refused before mongodump runs', async () => {
    const e = await engine({ database: 'shop', config: { oplog: true } });
    const handle = await e.dump();
    handle.stream?.resume();
    const err = await rejection(handle.done);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(calls()).toEqual([]);
  });

  it('TLS: --ssl, the CA, and the client certificate and key joined in one 0600 PEM file', async () => {
    await writeFile(join(dir, 'tls.crt'), '-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n');
    await writeFile(join(dir, 'tls.key'), '-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n');
    await dumpAll(await engine({ database: 'shop', tlsCa: join(dir, 'ca.crt'), tlsCert: join(dir, 'tls.crt'), tlsKey: join(dir, 'tls.key') }));
    const [c] = calls('mongodump');
    expect(c!.argv).toEqual(expect.arrayContaining(['--ssl', `--sslCAFile=${join(dir, 'ca.crt')}`, expect.stringMatching(/^--sslPEMKeyFile=\/.+\/client\.pem$/)]));
    expect(c!.pem).toBe('-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n');
    expect(c!.pemMode).toBe('600');
  });

  it('a failed mongodump fails the backup with its reason', async () => {
    await fixture('mongodump.mode', 'down');
    const handle = await (await engine({ database: 'shop' })).dump();
    handle.stream?.resume();
    const err = await rejection(handle.done);
    expect(err.code).toBe('DB_UNREACHABLE');
    expect(err.message).toContain('server selection error');
  });
});

describe('inspect (stand-ins, not MongoDB)', () => {
  it.each<[string, string | undefined, string, Buffer, { exists: boolean; hasData: boolean }]>([
    ['a database with collections', 'shop', 'shop', SHOP, { exists: true, hasData: true }],
    ['a database that does not exist', 'shop', 'shop', EMPTY, { exists: false, hasData: false }],
    ['a new server (admin, local only)', undefined, 'mongodb', NEW_SERVER, { exists: true, hasData: false }],
    ['a server with an application database', undefined, 'mongodb', SERVER, { exists: true, hasData: true }],
  ])('%s', async (_what, database, requested, content, expected) => {
    await fixture(`${database ?? 'server'}.archive`, content);
    await fixture('linger', '');
    const state = await (await engine(database ? { database } : {})).inspectTarget(requested);
    expect(state).toEqual({ database: requested, ...expected });
    const [c] = calls('mongodump');
    expect(c!.argv.filter((a) => a.startsWith('--db='))).toEqual(database ? [`--db=${database}`] : []);
    expect(() => process.kill(c!.pid, 0)).toThrow();
  });
});

describe('restore (stand-ins, not MongoDB)', () => {
  it('into an empty database: checks it first, then feeds mongorestore --archive exactly the dump\'s bytes', async () => {
    await fixture('shop.archive', EMPTY);
    const e = await engine({ database: 'shop' });
    await e.restore(Readable.from([SHOP.subarray(0, 10), SHOP.subarray(10, 5000), SHOP.subarray(5000)]), { database: 'shop', force: false, backup: backupOf({ scope: 'database', database: 'shop', consistency: 'best-effort' }) });
    const [check, r] = calls();
    expect(check!.program).toBe('mongodump');
    expect(check!.argv).toContain('--db=shop');
    expect(r!.program).toBe('mongorestore');
    expect(r!.argv).toEqual(['--archive', '--host=mongo.shop.svc', '--port=27018', '--username=backup', '--authenticationDatabase=admin', expect.stringMatching(/^--config=/), '--nsInclude=shop.*', '--stopOnError']);
    expectConnection(r!);
    expect(r!.stdin!.equals(SHOP)).toBe(true);
  });

  it('without force, a database holding collections is refused before mongorestore starts: TARGET_NOT_EMPTY, unchanged', async () => {
    const e = await engine({ database: 'shop' });
    const err = await rejection(e.restore(Readable.from([SHOP]), { database: 'shop', force: false, backup: backupOf({ scope: 'database', database: 'shop', consistency: 'best-effort' }) }));
    expect(err.code).toBe('TARGET_NOT_EMPTY');
    expect(err.message).toContain('shop.orders');
    expect((err.details as { toolTarget?: unknown }).toolTarget).toEqual({ state: 'unchanged' });
    expect(calls('mongorestore')).toEqual([]);
  });

  it('with force: --drop, over data', async () => {
    const e = await engine({ database: 'shop' });
    await e.restore(Readable.from([SHOP]), { database: 'shop', force: true, backup: backupOf({ scope: 'database', database: 'shop', consistency: 'best-effort' }) });
    const [r] = calls('mongorestore');
    expect(r!.argv).toEqual(expect.arrayContaining(['--nsInclude=shop.*', '--drop', '--stopOnError']));
    expect(r!.stdin!.equals(SHOP)).toBe(true);
  });

  it('--target-database: the target database is checked, and the backup\'s renamed with --nsFrom/--nsTo', async () => {
    await fixture('shop_copy.archive', EMPTY);
    const e = await engine({ database: 'shop' });
    await e.restore(Readable.from([SHOP]), { database: 'shop_copy', force: false, backup: backupOf({ scope: 'database', database: 'shop', consistency: 'best-effort' }) });
    const [check, r] = calls();
    expect(check!.argv).toContain('--db=shop_copy');
    expect(r!.argv.slice(-4)).toEqual(['--nsInclude=shop.*', '--nsFrom=shop.*', '--nsTo=shop_copy.*', '--stopOnError']);
  });

  it('a whole-server backup with its oplog, into a new server: --oplogReplay, no namespace filter', async () => {
    await fixture('server.archive', NEW_SERVER);
    const e = await engine();
    await e.restore(Readable.from([SERVER]), { database: 'mongodb', force: false, backup: backupOf({ scope: 'server', consistency: 'oplog' }) });
    const [r] = calls('mongorestore');
    expect(r!.argv.slice(-2)).toEqual(['--oplogReplay', '--stopOnError']);
    expect(r!.argv.some((a) => a.startsWith('--ns'))).toBe(false);
    expect(r!.stdin!.equals(SERVER)).toBe(true);
  });

  it('a whole-server backup into one database is refused like the Redis tool does: CONFIG_INVALID, unchanged, nothing run', async () => {
    const e = await engine();
    const err = await rejection(e.restore(Readable.from([SERVER]), { database: 'other', force: true, backup: backupOf({ scope: 'server', consistency: 'oplog' }) }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('restores into the server as a whole');
    expect((err.details as { toolTarget?: unknown }).toolTarget).toEqual({ state: 'unchanged' });
    expect(calls()).toEqual([]);
  });

  it('an input that is not a mongodump archive is refused before anything runs, unchanged', async () => {
    const e = await engine({ database: 'shop' });
    const err = await rejection(e.restore(Readable.from([Buffer.from('REDIS0011 definitely not an archive')]), { database: 'shop', force: true }));
    expect(err.code).toBe('RESTORE_FAILED');
    expect(err.message).toContain('not a mongodump archive');
    expect((err.details as { target?: { state: string } }).target?.state).toBe('unchanged');
    expect(calls()).toEqual([]);
  });

  it('a target that refuses the login fails before mongorestore starts, even with force: DB_AUTH_FAILED, unchanged', async () => {
    await fixture('mongodump.mode', 'auth');
    const e = await engine({ database: 'shop' });
    const err = await rejection(e.restore(Readable.from([SHOP]), { database: 'shop', force: true }));
    expect(err.code).toBe('DB_AUTH_FAILED');
    expect((err.details as { toolTarget?: unknown }).toolTarget).toEqual({ state: 'unchanged' });
    expect(calls('mongorestore')).toEqual([]);
  });

  it('mongorestore failing into an empty target that is still empty afterwards: unchanged, said so', async () => {
    await fixture('shop.archive', EMPTY);
    await fixture('mongorestore.mode', 'fail-empty');
    const e = await engine({ database: 'shop' });
    const err = await rejection(e.restore(Readable.from([SHOP]), { database: 'shop', force: false, backup: backupOf({ scope: 'database', database: 'shop', consistency: 'best-effort' }) }));
    expect(err.code).toBe('RESTORE_FAILED');
    expect(err.message).toContain('waiting for replication timed out');
    expect((err.details as { target?: unknown }).target).toMatchObject({ state: 'unchanged', detail: expect.stringContaining('holds no collection') });
    // Checked before, restored, read again after.
    expect(calls().map((c) => c.program)).toEqual(['mongodump', 'mongorestore', 'mongodump']);
  });

  it('mongorestore failing after it wrote: partial, naming what the target now holds', async () => {
    await fixture('shop.archive', EMPTY);
    await fixture('wrote.archive', archive([['shop', 'orders']]));
    await fixture('wrote.into', 'shop');
    await fixture('mongorestore.mode', 'fail-wrote');
    const e = await engine({ database: 'shop' });
    const err = await rejection(e.restore(Readable.from([SHOP]), { database: 'shop', force: false, backup: backupOf({ scope: 'database', database: 'shop', consistency: 'best-effort' }) }));
    expect((err.details as { target?: unknown }).target).toMatchObject({ state: 'partial', detail: expect.stringContaining('shop.orders') });
  });

  it('a whole-server restore failing, even into a server that still holds no collection: partial (users and roles may have been written)', async () => {
    await fixture('server.archive', NEW_SERVER);
    await fixture('mongorestore.mode', 'fail-empty');
    const e = await engine();
    const err = await rejection(e.restore(Readable.from([SERVER]), { database: 'mongodb', force: false, backup: backupOf({ scope: 'server', consistency: 'oplog' }) }));
    expect((err.details as { target?: unknown }).target).toMatchObject({ state: 'partial', detail: expect.stringContaining('users and roles') });
  });

  it('mongorestore failing with force: partial (collections may have been dropped)', async () => {
    await fixture('mongorestore.mode', 'fail-empty');
    const e = await engine({ database: 'shop' });
    const err = await rejection(e.restore(Readable.from([SHOP]), { database: 'shop', force: true }));
    expect((err.details as { target?: unknown }).target).toMatchObject({ state: 'partial', detail: expect.stringContaining('--drop') });
    // With force nothing is read again: what was there before may have been dropped, whatever it holds now.
    expect(calls().map((c) => c.program)).toEqual(['mongodump', 'mongorestore']);
  });
});
