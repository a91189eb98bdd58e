/**
 * The engine registry (runner/engines/registry.ts ENGINES) is the one place
 * engines are listed: the config schema allows exactly its types, the
 * storage layout knows every extension its formats write, and format names
 * never collide.
 */
import { describe, expect, it } from 'vitest';
import { ENGINE_TYPES } from '../../api/index.js';
import { ENGINES, createEngine, formatMismatch } from '../../runner/engines/registry.js';
import { silentLogger } from '../../runner/logger.js';
import { DATA_EXTENSION } from '../../runner/storage/layout.js';

describe('the engine registry', () => {
  it('registers exactly the engine types the config schema allows', () => {
    expect(ENGINES.map((e) => e.type).sort()).toEqual([...ENGINE_TYPES].sort());
  });

  it('every format has a unique name, an extension of the storage layout, and a magic its own check accepts', () => {
    const formats = ENGINES.flatMap((e) => e.formats);
    expect(new Set(formats.map((f) => f.format)).size).toBe(formats.length);
    for (const f of formats) {
      expect(f.extension).toMatch(DATA_EXTENSION);
      for (const magic of f.magic) expect(formatMismatch(f.format, Buffer.concat([Buffer.from(magic), Buffer.from('rest of the dump')]))).toBeUndefined();
      expect(formatMismatch(f.format, Buffer.from('something else entirely'))).toMatch(/does not start with/);
    }
  });

  it('names an engine it does not have, and a missing block', async () => {
    expect(() => createEngine({ type: 'oracle' } as never, { logger: silentLogger() })).toThrow(/engine.type: "oracle" is not an engine of this runner \(postgresql/);
    expect(() => createEngine({ type: 'postgresql' }, { logger: silentLogger() })).toThrow(/engine.postgresql: is required/);
    await expect(createEngine({ type: 'postgresql', postgresql: { host: 'h', port: 5432, database: 'd', user: 'u', sslMode: 'disable', dumpArgs: [], restoreArgs: [] } }, { logger: silentLogger() })).resolves.toMatchObject({ name: 'postgresql', database: 'd' });
  });
});
