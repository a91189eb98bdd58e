/**
 * A server-side backup of storage format 4 (test/fixtures/format-4: objects the fake server-side tool's
 * "server" wrote below server/, and the runner's manifest) stays listable, verifiable and restorable: the
 * restore hands the tool the verified copy, and the server's files come back with their recorded checksums.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compatFixture, type CompatFixture } from '../compat-fixture.js';
import { SERVER_SIDE_DEFINITION } from '../server-side-tool.js';

const ID = '20261204T172743Z-a24a';

let fx: CompatFixture;
let dir = '';

async function checksums(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[relative(root, join(e.parentPath, e.name))] = createHash('sha256').update(await readFile(join(e.parentPath, e.name))).digest('hex');
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dbbc-compat-server-'));
  fx = await compatFixture('format-4', { namespace: 'apps', name: 'orders' }, { type: 'command', command: { definition: SERVER_SIDE_DEFINITION, database: join(dir, 'server') } });
});

afterAll(async () => {
  await fx?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a server-side backup of format 4', () => {
  it('lists with the objects the server wrote', async () => {
    const r = await fx.cli(['list']);
    expect(r.code, r.out).toBe(0);
    const backups = r.json.backups as { id: string; manifest: { formatVersion: number; objects: { name: string }[] } }[];
    expect(backups.map((b) => [b.id, b.manifest.formatVersion])).toEqual([[ID, 4]]);
    expect(backups[0]!.manifest.objects.map((o) => o.name)).toEqual(['server/BACKUP_MANIFEST', 'server/data/meta.sst', 'server/data/range-1/0001.sst', 'server/data/range-1/0002.sst']);
  });

  it('verifies every object', async () => {
    const r = await fx.cli(['verify', ID]);
    expect(r.code, r.out).toBe(0);
    expect((r.json.checks as { status: string }[]).map((c) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  it('restores: the server\'s files come back with the checksums recorded when the fixture was made', async () => {
    const target = join(dir, 'restored');
    const r = await fx.cli(['restore', '--backup', ID, '--target-database', target]);
    expect(r.code, r.out).toBe(0);
    expect(await checksums(target)).toEqual(JSON.parse(await readFile(join(fx.fixtureDir, 'checksums.json'), 'utf8')));
  });
});
