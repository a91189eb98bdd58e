/**
 * The tool contract's pure parts: a DatabaseBackup's config against the
 * schema an engine declares, a definition's own rules, the request the runner
 * writes, and the result a tool answers (checked before it is believed).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateEngine } from '../../api/crds/index.js';
import { definition as cockroachdb } from '../../tools/cockroachdb/definition.js';
import { definitionErrors, toolConfigErrors, type EngineDefinitionSpec } from '../../api/engine-contract.js';
import { buildRequest, callFailure, consistentInstant, dumpFormatOf, parseFailure, parseResult } from '../../runner/engines/command/protocol.js';
import { BackupError } from '../../runner/errors.js';
import { parseConfig } from '../../runner/config/load.js';
import { secretWords } from '../../runner/engines/command/call.js';
import { redact } from '../../runner/engines/failure.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['mode'],
  properties: {
    mode: { enum: ['fast', 'safe'] },
    batchSize: { type: 'integer', minimum: 1 },
    tables: { type: 'array', items: { type: 'string', pattern: '^[a-z]+$' } },
  },
};

const definition: EngineDefinitionSpec = {
  name: 'demo',
  command: ['/usr/local/bin/demo-tool'],
  verbs: ['probe', 'backup', 'restore'],
  formats: [{ format: 'demo-dump', extension: 'dmp', compressed: false, magicHex: ['44454d4f'] }],
  configSchema: schema,
};

describe('toolConfigErrors', () => {
  it.each([
    ['a valid config', { mode: 'fast', batchSize: 10, tables: ['a'] }, []],
    ['a wrong type', { mode: 'fast', batchSize: 'many' }, [{ path: 'spec.engine.command.config.batchSize', message: 'must be integer' }]],
    ['a setting the engine does not have', { mode: 'fast', flush: true }, [{ path: 'spec.engine.command.config.flush', message: 'is not a setting of this engine' }]],
    ['a missing required setting', {}, [{ path: 'spec.engine.command.config.mode', message: 'is required' }]],
    ['a value outside an enum', { mode: 'reckless' }, [{ path: 'spec.engine.command.config.mode', message: 'must be one of "fast", "safe"' }]],
    ['an array item breaking a pattern', { mode: 'safe', tables: ['ok', 'Bad;DROP'] }, [{ path: 'spec.engine.command.config.tables[1]', message: 'must match pattern "^[a-z]+$"' }]],
    ['no config at all (required still applies)', undefined, [{ path: 'spec.engine.command.config.mode', message: 'is required' }]],
  ])('%s', (_what, config, want) => {
    expect(toolConfigErrors(definition.configSchema, config, 'spec.engine.command.config', 'x')).toEqual(want);
  });

  it('an engine without a schema takes no config', () => {
    expect(toolConfigErrors(undefined, undefined, 'c', 's')).toEqual([]);
    expect(toolConfigErrors(undefined, {}, 'c', 's')).toEqual([]);
    expect(toolConfigErrors(undefined, { a: 1 }, 'c', 's')).toEqual([{ path: 'c', message: 'this engine takes no config (its definition declares no configSchema)' }]);
  });

  it('a schema that is not JSON Schema is reported at the definition, not at the user', () => {
    const errors = toolConfigErrors({ type: 'object', properties: { a: { type: 'no-such-type' } } }, {}, 'c', 'definition.configSchema');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: 'definition.configSchema', message: expect.stringMatching(/^is not a valid JSON Schema: /) as string });
  });
});

describe('definitionErrors', () => {
  it('needs probe, backup and restore, and one name per format', () => {
    const d: EngineDefinitionSpec = { ...definition, verbs: ['probe', 'inspect'], formats: [definition.formats[0]!, definition.formats[0]!] };
    expect(definitionErrors(d, 'def')).toEqual([
      { path: 'def.verbs', message: 'must include backup' },
      { path: 'def.verbs', message: 'must include restore' },
      { path: 'def.formats[1].format', message: '"demo-dump" is declared twice' },
    ]);
    expect(definitionErrors(definition, 'def')).toEqual([]);
    expect(definitionErrors({ ...definition, name: 'mysql' }, 'def')).toEqual([{ path: 'def.name', message: "must not be postgresql, mysql, command: the runner's own engines" }]);
    expect(definitionErrors({ ...definition, name: 'x'.repeat(64) }, 'def', 'metadata.name').map((e) => e.path)).toEqual(['metadata.name']);
  });

  it('locationTypes only for a server-side engine (output: location)', () => {
    expect(definitionErrors({ ...definition, output: 'location', locationTypes: ['s3', 'gcs'] }, 'def')).toEqual([]);
    expect(definitionErrors({ ...definition, locationTypes: ['s3'] }, 'def')).toEqual([{ path: 'def.locationTypes', message: 'applies only with output: location (a server-side engine)' }]);
    expect(definitionErrors({ ...definition, output: 'stream', locationTypes: ['s3'] }, 'def')).toEqual([{ path: 'def.locationTypes', message: 'applies only with output: location (a server-side engine)' }]);
  });

  it('magicHex: required for a stream, optional for a server-side engine', () => {
    const { magicHex: _m, ...bare } = definition.formats[0]!;
    expect(definitionErrors({ ...definition, formats: [bare] }, 'def')).toEqual([
      { path: 'def.formats[0].magicHex', message: 'is required: verify checks every stored dump against it (only a server-side engine, output: location, has none)' },
    ]);
    expect(definitionErrors({ ...definition, output: 'location', formats: [bare] }, 'def')).toEqual([]);
  });

  it('compiles a schema once, and two schemas with one $id do not collide', () => {
    const a = { $id: 'https://example.com/cfg', type: 'object', properties: { n: { type: 'integer' } } };
    const b = { $id: 'https://example.com/cfg', type: 'object', properties: { n: { type: 'string' } } };
    for (let i = 0; i < 3; i++) {
      expect(toolConfigErrors(structuredClone(a), { n: 1 }, 'c', 's')).toEqual([]);
      expect(toolConfigErrors(structuredClone(b), { n: 'x' }, 'c', 's')).toEqual([]);
      expect(toolConfigErrors(structuredClone(b), { n: 1 }, 'c', 's')).toEqual([{ path: 'c.n', message: 'must be string' }]);
    }
  });

  it('the runner config refuses a definition extension that would make stored names ambiguous, and a config its schema refuses', () => {
    const cfg = (ext: string, config: unknown) => ({
      namespace: 'n',
      name: 'x',
      engine: { type: 'command', command: { definition: { ...definition, formats: [{ ...definition.formats[0]!, extension: ext }] }, config } },
      locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: '/tmp/x' } }],
    });
    const errorsOf = (c: unknown): string[] => {
      try {
        parseConfig(JSON.stringify(c), 'runner.yaml');
        return [];
      } catch (err) {
        return ((err as BackupError).details as { errors: { path: string }[] }).errors.map((e) => e.path);
      }
    };
    expect(errorsOf(cfg('age', { mode: 'fast' }))).toEqual(['engine.command.definition.formats[0].extension']);
    expect(errorsOf(cfg('dmp', { mode: 'reckless', extra: 1 }))).toEqual(['engine.command.config.extra', 'engine.command.config.mode']);
    expect(errorsOf(cfg('DMP', { mode: 'fast' }))).toEqual(['engine.command.definition.formats[0].extension']);
    expect(errorsOf(cfg('dmp', { mode: 'fast' }))).toEqual([]);
  });
});

describe('the request the runner writes', () => {
  it('holds the target, the password as a file, the config and the restore', () => {
    const request = buildRequest(
      { definition, host: 'db', port: 7000, user: 'backup', database: 'main', tlsCa: '/tls/ca.pem', config: { mode: 'safe' }, password: { value: 'never-in-the-request' } },
      { verb: 'restore', workDir: '/tmp/w', passwordFile: '/tmp/w/password', restore: { database: 'other', force: false, format: 'demo-dump', engine: { name: 'demo' }, consistentAt: '2026-12-04T10:00:00Z' } },
    );
    expect(request).toEqual({
      contract: 1,
      verb: 'restore',
      engine: 'demo',
      target: { host: 'db', port: 7000, user: 'backup', passwordFile: '/tmp/w/password', database: 'main', tls: { caFile: '/tls/ca.pem' } },
      config: { mode: 'safe' },
      resultFd: 3,
      workDir: '/tmp/w',
      restore: { database: 'other', force: false, format: 'demo-dump', engine: { name: 'demo' }, consistentAt: '2026-12-04T10:00:00Z' },
    });
    expect(JSON.stringify(request)).not.toContain('never-in-the-request');
  });
});

describe('the result a tool answers', () => {
  it('is checked against the verb: unknown fields dropped, wrong shapes refused with the verb failure code', () => {
    expect(parseResult('probe', '', 't')).toBeUndefined();
    expect(parseResult('probe', '{"serverVersion":"7.0.15","toolVersion":"7.0.15","later":true}', 't')).toEqual({ serverVersion: '7.0.15', toolVersion: '7.0.15' });
    const cases: [Parameters<typeof parseResult>[0], string, string, RegExp][] = [
      ['probe', 'not json', 'DB_UNREACHABLE', /is not JSON/],
      ['probe', '{"serverVersion":"7; rm -rf /","toolVersion":"1"}', 'DB_UNREACHABLE', /breaks the contract at \/serverVersion/],
      ['backup', '[]', 'DUMP_FAILED', /breaks the contract/],
      ['backup', JSON.stringify({ position: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }), 'DUMP_FAILED', /\/position/],
      ['restore', '{"target":{"state":"dropped-everything"}}', 'RESTORE_FAILED', /\/target\/state/],
      ['inspect', '{"exists":true}', 'DB_QUERY_FAILED', /hasData/],
    ];
    for (const [verb, text, code, message] of cases) {
      let err: unknown;
      try {
        parseResult(verb, text, 't');
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(BackupError);
      expect((err as BackupError).code, text).toBe(code);
      expect((err as BackupError).message, text).toMatch(message);
    }
  });

  it('a failure result is read for its error and target only, each when it has the contract shape', () => {
    expect(parseFailure('{"error":{"code":"DB_AUTH_FAILED","message":"wrong password"}}')).toEqual({ error: { code: 'DB_AUTH_FAILED', message: 'wrong password' } });
    expect(parseFailure('{"error":{"code":"X","message":"m","extra":1},"target":{"state":"emptied"},"__proto__":{"polluted":true}}')).toEqual({ error: { code: 'X', message: 'm' }, target: { state: 'emptied' } });
    expect(parseFailure('{"error":"just a string","target":{"state":"fine"}}')).toEqual({});
    expect(parseFailure('garbage')).toBeUndefined();
    expect(parseFailure('[1]')).toBeUndefined();
    // A key that would reach the prototype when the value is copied is dropped, here and in results.
    const r = parseResult('backup', '{"position":{"__proto__":{"polluted":"yes"},"lsn":"0/1"}}', 't')!;
    expect(Object.getPrototypeOf(r.position)).toBe(Object.prototype);
    expect(r.position).toEqual({ lsn: '0/1' });
    // A position key outside the contract (longer than 64 characters) never reaches the manifest.
    expect(parseResult('backup', JSON.stringify({ position: { ['k'.repeat(65)]: 'v', ok: 'v' } }), 't')!.position).toEqual({ ok: 'v' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(callFailure('probe', 't', 'exited with code 1', '', parseFailure('{"error":{"code":"DB_AUTH_FAILED","message":"no"}}'))).toMatchObject({ code: 'DB_AUTH_FAILED' });
  });

  it('a failure keeps a code of the contract, any other becomes the verb failure', () => {
    expect(callFailure('restore', 't', 'exited with code 1', '', { error: { code: 'TARGET_NOT_EMPTY', message: 'has keys' } })).toMatchObject({ code: 'TARGET_NOT_EMPTY', message: 't restore: has keys' });
    expect(callFailure('restore', 't', 'exited with code 1', '', { error: { code: 'STORAGE_DENIED', message: 'no' } })).toMatchObject({ code: 'RESTORE_FAILED', details: { toolCode: 'STORAGE_DENIED' } });
    expect(callFailure('backup', 't', 'exited with code 3', 'boom', undefined)).toMatchObject({ code: 'DUMP_FAILED', message: 't backup exited with code 3: boom' });
    expect(callFailure('restore', 't', 'x', '', { error: { code: 'FAILED', message: 'm' }, target: { state: 'emptied' } }).details).toMatchObject({ toolTarget: { state: 'emptied' } });
  });

  it.each([
    ['no claim: the end of the run', undefined, '2026-12-04T10:00:09.000Z', true],
    ['a claim inside the run', '2026-12-04T10:00:05Z', '2026-12-04T10:00:05.000Z', true],
    ['a claim rounded down to the start second', '2026-12-04T10:00:01Z', '2026-12-04T10:00:01.000Z', true],
    ['a claim before the run (a lie that would widen point-in-time selection)', '2026-12-03T00:00:00Z', '2026-12-04T10:00:09.000Z', false],
    ['a claim in the future', '2026-12-05T00:00:00Z', '2026-12-04T10:00:09.000Z', false],
    ['not a timestamp', 'yesterday', '2026-12-04T10:00:09.000Z', false],
  ])('consistentInstant: %s', (_what, claimed, at, believed) => {
    const c = consistentInstant(claimed, new Date('2026-12-04T10:00:01.500Z'), new Date('2026-12-04T10:00:09Z'));
    expect([c.at.toISOString(), c.believed]).toEqual([at, believed]);
  });

  it('a declared magic becomes bytes', () => {
    expect(dumpFormatOf(definition.formats[0]!).magic).toEqual([Buffer.from('DEMO')]);
  });
});

describe('the DatabaseBackupEngine examples of docs/engines.md', () => {
  const text = readFileSync(new URL('../../docs/engines.md', import.meta.url), 'utf8');
  const examples = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((y) => /^kind: DatabaseBackupEngine$/m.test(y));

  it('there are examples to check, a server-side one among them', () => {
    expect(examples.length).toBeGreaterThanOrEqual(2);
    expect(examples.some((y) => y.includes('output: location'))).toBe(true);
  });

  it.each(examples.map((y) => [(parse(y) as { metadata: { name: string } }).metadata.name, y]))('%s validates as the controller reads it, output and locationTypes kept', (_name, y) => {
    const r = validateEngine(parse(y));
    expect(r.ok ? [] : r.errors).toEqual([]);
    const spec = (parse(y) as { spec: { output?: string; locationTypes?: string[] } }).spec;
    if (r.ok && spec.output) expect(r.value.definition).toMatchObject({ output: spec.output, locationTypes: spec.locationTypes });
  });

  it('the CockroachDB example is the shipped definition', () => {
    const y = examples.find((e) => e.includes('db-backup-tool, cockroachdb'))!;
    const r = validateEngine(parse(y));
    // The same definition, but for the descriptions (which the docs leave out).
    const bare = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'description' ? undefined : x)));
    expect(r.ok && bare(r.value.definition)).toEqual(bare(cockroachdb));
  });
});

describe('the credentials a server-side tool is handed stay out of what it prints', () => {
  const privateKey = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDu\n-----END PRIVATE KEY-----\n';
  const gcs = JSON.stringify({ type: 'service_account', project_id: 'team-a', private_key_id: 'a1b2c3d4e5f60718', private_key: privateKey, client_email: 'backup@team-a.iam.gserviceaccount.com' }, null, 2);
  const words = secretWords(gcs);
  const printed = (text: string): string => text.split('\n').map((line) => redact(line, ...words)).join('\n');

  it('a GCS key file printed whole, line by line: no line of the private key, its id or its JSON form is left', () => {
    const out = printed(`key: ${gcs}`);
    for (const line of privateKey.split('\n').filter((l) => l.length >= 8)) expect(out).not.toContain(line);
    expect(out).not.toContain('a1b2c3d4e5f60718');
    expect(out).not.toContain('MIIEvQIBADANBgkqhkiG9w0');
    // What is not secret stays readable.
    expect(out).toContain('backup@team-a.iam.gserviceaccount.com');
  });

  it('S3 keys, raw, JSON-escaped, URL-encoded and in base64', () => {
    const s3 = JSON.stringify({ accessKeyId: 'AKIAEXAMPLE1', secretAccessKey: 'wJal/rXU+tnF=EMI"K7' });
    const w = secretWords(s3);
    for (const form of ['wJal/rXU+tnF=EMI"K7', 'wJal/rXU+tnF=EMI\\"K7', encodeURIComponent('wJal/rXU+tnF=EMI"K7'), Buffer.from('wJal/rXU+tnF=EMI"K7').toString('base64'), 'AKIAEXAMPLE1']) {
      expect(redact(`denied: ${form}.`, ...w)).toBe('denied: [redacted].');
    }
  });
});
