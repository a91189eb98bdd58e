/**
 * Engines defined by a command, through the runner's CLI with real tool
 * processes: the SQLite example of docs/engines.md exactly as shipped
 * (examples/engines/sqlite), and a spy tool that checks what the runner
 * hands a tool (a private request file, the password as a file, none of the
 * runner's credentials) and what it believes of the answers (nothing a
 * contract check refuses; a failed backup leaves older backups alone).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { EngineDefinitionSpec } from '../../api/engine-contract.js';
import type { CommandConnection } from '../../api/index.js';
import { CommandEngine } from '../../runner/engines/command/index.js';
import { silentLogger } from '../../runner/logger.js';
import { runCli } from '../cli.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SQLITE_TOOL = join(REPO, 'examples/engines/sqlite/tool.sh');

let dir = '';

beforeAll(async () => {
  for (const bin of ['sqlite3', 'jq']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is needed by the SQLite example tool: apt-get install -y sqlite3 jq (or bash testenv/install-deps.sh)`);
    }
  }
  dir = await mkdtemp(join(tmpdir(), 'dbbc-command-engine-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function sqlite(db: string, sql: string): string {
  return execFileSync('sqlite3', ['-bail', db, sql]).toString().trim();
}

async function writeConfig(name: string, engine: Record<string, unknown>): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, stringify({ namespace: 'apps', name, engine: { type: 'command', command: engine }, locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, `${name}-backups`) } }] }));
  return path;
}

describe('the SQLite example tool (docs/engines.md), as shipped', () => {
  let cfg = '';
  let db = '';
  let seeded = '';

  beforeAll(async () => {
    // The resource's spec is the definition, named by the resource (the controller does the same).
    const resource = parse(await readFile(join(REPO, 'examples/engines/sqlite/engine.yaml'), 'utf8')) as { metadata: { name: string }; spec: Omit<EngineDefinitionSpec, 'name'> & { image?: string } };
    const { image: _image, ...spec } = resource.spec;
    const definition = { name: resource.metadata.name, ...spec };
    db = join(dir, 'app.db');
    sqlite(db, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, blob BLOB); CREATE INDEX notes_body ON notes(body); CREATE VIEW v AS SELECT id FROM notes; INSERT INTO notes(body, blob) VALUES ('héllo 🙂', x'00ff10'), ('second', NULL);");
    sqlite(db, 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO notes(body) SELECT hex(randomblob(20)) FROM n;');
    seeded = sqlite(db, '.sha3sum --schema');
    cfg = await writeConfig('sqlite', { definition: { ...definition, command: ['bash', SQLITE_TOOL] }, database: db, config: { busyTimeoutMs: 2000 } });
  });

  it('backs up, lists and verifies', async () => {
    const b = await runCli(cfg, ['backup']);
    expect(b.code, b.out).toBe(0);
    expect(b.json.manifest).toMatchObject({ database: db, engine: { name: 'sqlite', format: 'sqlite-file', serverVersion: expect.stringMatching(/^3\.\d+\.\d+$/) as string } });
    const v = await runCli(cfg, ['verify']);
    expect(v.code, v.out).toBe(0);
  });

  it('refuses to restore over the file that holds tables, and leaves it as it was', async () => {
    const r = await runCli(cfg, ['restore', '--latest']);
    expect(r.code).toBe(5);
    expect(r.json).toMatchObject({ error: { code: 'TARGET_NOT_EMPTY' } });
    expect(sqlite(db, '.sha3sum --schema')).toBe(seeded);
  });

  it('restores into another file, identical, and over changed data with --force', async () => {
    const copy = join(dir, 'copy.db');
    const r = await runCli(cfg, ['restore', '--latest', '--target-database', copy]);
    expect(r.code, r.out).toBe(0);
    expect(sqlite(copy, '.sha3sum --schema')).toBe(seeded);
    sqlite(db, "DELETE FROM notes WHERE id > 10; DROP VIEW v; CREATE TABLE extra(x);");
    const f = await runCli(cfg, ['restore', '--latest', '--force']);
    expect(f.code, f.out).toBe(0);
    expect(sqlite(db, '.sha3sum --schema')).toBe(seeded);
  });

  it('a config the engine schema refuses stops before the tool runs, naming the field', async () => {
    const bad = await writeConfig('sqlite-bad', { definition: { ...(parse(await readFile(cfg, 'utf8')) as { engine: { command: { definition: unknown } } }).engine.command.definition as object }, database: db, config: { busyTimeoutMs: -1 } });
    const r = await runCli(bad, ['backup']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('engine.command.config.busyTimeoutMs');
  });
});

/**
 * A tool that records what it was given (its environment, its request, the modes of the request file and
 * its directory) into `spyDir`, then behaves as `mode` says.
 */
const SPY_TOOL = String.raw`#!/usr/bin/env bash
set -euo pipefail
verb=$1 request=$2
spy=$(jq -r .config.spyDir "$request")
mode=$(jq -r '.config.mode // "ok"' "$request")
work=$(jq -r .workDir "$request")
env > "$spy/$verb.env"
cp "$request" "$spy/$verb.request.json"
stat -c %a "$request" > "$spy/$verb.request.mode"
stat -c %a "$work" > "$spy/$verb.dir.mode"
echo "$work" > "$spy/$verb.dir"
pwfile=$(jq -r '.target.passwordFile // empty' "$request")
if [ -n "$pwfile" ]; then stat -c %a "$pwfile" > "$spy/$verb.password.mode"; cat "$pwfile" > "$spy/$verb.password"; fi
case "$verb:$mode" in
  probe:garbage) echo 'not json' >&3 ;;
  probe:stubborn) trap 'echo told to stop >&2' TERM; sleep 30 & wait $!; echo '{"serverVersion":"1.0","toolVersion":"1.0"}' >&3; exit 0 ;;
  probe:*) echo '{"serverVersion":"1.0","toolVersion":"1.0"}' >&3 ;;
  backup:lie) printf 'SPYDUMP data' ; echo '{"consistentAt":"2001-01-01T00:00:00Z","position":{"lsn":"0/1"}}' >&3 ;;
  backup:crash) printf 'SPYDUMP partial'; echo 'the disk fell off' >&2; exit 3 ;;
  backup:linger) sleep 60 & printf 'SPYDUMP data'; echo '{}' >&3; echo "left $! running" >&2 ;;
  backup:*) printf 'SPYDUMP data'; echo '{"position":{"lsn":"0/2"}}' >&3 ;;
  restore:fail) cat > /dev/null; echo '{"error":{"code":"FAILED","message":"half way"},"target":{"state":"partial","detail":"3 of 7 tables were replaced"}}' >&3; exit 1 ;;
  restore:*) cat > "$spy/restored"; echo '{}' >&3 ;;
esac
`;

describe('what the runner hands a tool, and what it believes', () => {
  let spy = '';
  let tool = '';
  const definition = (): EngineDefinitionSpec => ({
    name: 'spy',
    command: ['bash', tool],
    verbs: ['probe', 'backup', 'restore'],
    formats: [{ format: 'spy-dump', extension: 'spy', compressed: false, magicHex: [Buffer.from('SPYDUMP').toString('hex')] }],
    configSchema: { type: 'object', additionalProperties: false, properties: { spyDir: { type: 'string' }, mode: { enum: ['ok', 'garbage', 'lie', 'crash', 'fail', 'linger', 'stubborn'] } } },
  });
  const config = (mode: string) =>
    writeConfig(`spy-${mode}`, { definition: definition(), host: 'db.internal', port: 5999, user: 'backup', password: { value: 's3cr3t-pw' }, database: 'main', config: { spyDir: spy, mode } });

  beforeAll(async () => {
    spy = join(dir, 'spy');
    await mkdir(spy);
    tool = join(dir, 'spy-tool.sh');
    await writeFile(tool, SPY_TOOL);
    await chmod(tool, 0o755);
  });

  it('gets a private request without the password, the password as a 0600 file, and none of the runner environment', async () => {
    const cfg = await config('ok');
    process.env.AWS_SECRET_ACCESS_KEY = 'runner-only-secret';
    try {
      const r = await runCli(cfg, ['backup']);
      expect(r.code, r.out).toBe(0);
      expect(r.json.manifest).toMatchObject({ engine: { name: 'spy', format: 'spy-dump', position: { lsn: '0/2' } } });
    } finally {
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
    const request = await readFile(join(spy, 'backup.request.json'), 'utf8');
    expect(request).not.toContain('s3cr3t-pw');
    expect(JSON.parse(request)).toMatchObject({ contract: 1, verb: 'backup', engine: 'spy', target: { host: 'db.internal', port: 5999, user: 'backup', database: 'main' }, config: { mode: 'ok' }, resultFd: 3 });
    expect((await readFile(join(spy, 'backup.request.mode'), 'utf8')).trim()).toBe('600');
    expect((await readFile(join(spy, 'backup.dir.mode'), 'utf8')).trim()).toBe('700');
    expect((await readFile(join(spy, 'backup.password.mode'), 'utf8')).trim()).toBe('600');
    expect(await readFile(join(spy, 'backup.password'), 'utf8')).toBe('s3cr3t-pw');
    const env = await readFile(join(spy, 'backup.env'), 'utf8');
    expect(env).not.toContain('runner-only-secret');
    expect(env).not.toContain('s3cr3t-pw');
    // The call's directory, with the password in it, is gone once the tool exited.
    expect(existsSync((await readFile(join(spy, 'backup.dir'), 'utf8')).trim())).toBe(false);
  });

  it('hands restore the backup it reads: format, manifest engine block and consistency instant', async () => {
    const cfg = await config('ok');
    const r = await runCli(cfg, ['restore', '--latest', '--force']);
    expect(r.code, r.out).toBe(0);
    expect(await readFile(join(spy, 'restored'), 'utf8')).toBe('SPYDUMP data');
    const request = JSON.parse(await readFile(join(spy, 'restore.request.json'), 'utf8')) as { restore: Record<string, unknown> };
    expect(request.restore).toMatchObject({ database: 'main', force: true, format: 'spy-dump', engine: { name: 'spy', position: { lsn: '0/2' } }, consistentAt: expect.stringMatching(/^20\d\d-/) as string });
  });

  it('does not believe a consistency instant from before the call (it would widen --to-time selection)', async () => {
    const r = await runCli(await config('lie'), ['backup']);
    expect(r.code, r.out).toBe(0);
    const at = Date.parse((r.json.manifest as { consistentAt: string }).consistentAt);
    expect(at).toBeGreaterThan(Date.parse('2020-01-01T00:00:00Z'));
  });

  it('a probe answer that breaks the contract fails the backup, and the older backups stay', async () => {
    const cfg = await config('garbage');
    // A good backup first, into the same location.
    const good = parse(await readFile(cfg, 'utf8')) as { engine: { command: { config: { mode: string } } } };
    good.engine.command.config.mode = 'ok';
    const goodCfg = join(dir, 'spy-garbage-good.yaml');
    await writeFile(goodCfg, stringify(good));
    const first = await runCli(goodCfg, ['backup']);
    expect(first.code, first.out).toBe(0);
    const before = await readdir(join(dir, 'spy-garbage-backups'), { recursive: true });
    expect(before.length).toBeGreaterThan(0);
    const r = await runCli(cfg, ['backup']);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/not JSON/);
    expect(await readdir(join(dir, 'spy-garbage-backups'), { recursive: true })).toEqual(before);
  });

  it('a dump its format declares compressed is stored as it is, not compressed again', async () => {
    const cfgPath = await config('ok');
    const c = parse(await readFile(cfgPath, 'utf8')) as { engine: { command: { definition: EngineDefinitionSpec } } };
    c.engine.command.definition.formats[0]!.compressed = true;
    const compressedCfg = join(dir, 'spy-compressed.yaml');
    await writeFile(compressedCfg, stringify(c));
    const r = await runCli(compressedCfg, ['backup']);
    expect(r.code, r.out).toBe(0);
    const object = (r.json.manifest as { objects: { name: string; compression: { algorithm: string }; size: number }[] }).objects[0]!;
    expect(object.name).toBe('data.spy');
    expect(object.compression.algorithm).toBe('none');
    expect(object.size).toBe('SPYDUMP data'.length);
  });

  it('a call ends when the tool exits, whatever it left running (killed with it)', async () => {
    const started = Date.now();
    const r = await runCli(await config('linger'), ['backup']);
    expect(r.code, r.out).toBe(0);
    // Not the 60 s the tool's leftover would hold its pipes open for.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('an aborted call stops the tool and what it started; a tool that exits 0 after being told to stop has not succeeded', async () => {
    const c = parse(await readFile(await config('stubborn'), 'utf8')) as { engine: { command: CommandConnection } };
    const engine = await CommandEngine.create(c.engine.command, silentLogger());
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('stop')), 500);
    const started = Date.now();
    await expect(engine.probe({ signal: abort.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it('a tool that dies mid-dump fails the backup with its stderr, writes no manifest, and keeps the earlier backup', async () => {
    const okCfg = await config('ok');
    const first = await runCli(okCfg, ['backup']);
    expect(first.code, first.out).toBe(0);
    const crash = join(dir, 'spy-crash.yaml');
    // The same database and location as the good config, only the tool's mode differs.
    const c = parse(await readFile(okCfg, 'utf8')) as { engine: { command: { config: { mode: string } } } };
    c.engine.command.config.mode = 'crash';
    await writeFile(crash, stringify(c));
    const r = await runCli(crash, ['backup']);
    expect(r.code).toBe(1);
    expect(r.out).toContain('the disk fell off');
    expect(r.out).toContain('DUMP_FAILED');
    const list = await runCli(okCfg, ['list']);
    expect((list.json.backups as { id: string }[]).map((b) => b.id)).toContain(first.json.id);
  });

  it('a failed restore says what the tool says it left', async () => {
    const okCfg = await config('ok');
    expect((await runCli(okCfg, ['backup'])).code).toBe(0);
    const c = parse(await readFile(okCfg, 'utf8')) as { engine: { command: { config: { mode: string } } } };
    c.engine.command.config.mode = 'fail';
    const failCfg = join(dir, 'spy-fail.yaml');
    await writeFile(failCfg, stringify(c));
    const r = await runCli(failCfg, ['restore', '--latest', '--force']);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ error: { code: 'RESTORE_FAILED', target: { state: 'partial', detail: '3 of 7 tables were replaced' } } });
    expect(r.out).toContain('is NOT as it was: 3 of 7 tables were replaced');
  });
});
