/**
 * Signed manifests through the CLI, with a real PostgreSQL and a filesystem
 * location: a runner with a signing key signs what it writes and believes
 * only what its key signed. Planted manifests (unsigned, or signed by another
 * DatabaseBackup's key) next to a real backup, with real data objects, are
 * never listed as backups, never chosen by restore (and do not block it), and
 * are reported by verify. Without a verification key, list says that
 * signatures are not checked.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../runner/cli/main.js';
import { keyId, signManifest } from '../../runner/crypto/signing.js';
import { silentLogger } from '../../runner/logger.js';
import { FilesystemStorage } from '../../runner/storage/filesystem.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { seedRich } from '../../testenv/seed.js';

let pg: PgInstance;
let dir: string;
const mine = generateKeyPairSync('ed25519');
const theirs = generateKeyPairSync('ed25519');
const pem = (k: KeyObject) => k.export({ type: k.type === 'private' ? 'pkcs8' : 'spki', format: 'pem' }).toString();

async function cli(cfg: string, args: string[], output = 'json'): Promise<{ code: number; out: string; json: Record<string, unknown> }> {
  let out = '';
  const code = await main([...args, '-c', cfg, '-o', output], process.env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
  return { code, out, json: output === 'json' && out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}

async function config(name: string, signing?: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    stringify({
      namespace: 'shop',
      name: 'orders',
      engine: { type: 'postgresql', postgresql: pg.connection('shop') },
      locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }],
      ...(signing ? { signing } : {}),
    }),
  );
  return file;
}

let signed: string;
let unverified: string;
let real: string;
const UNSIGNED = '20991231T000000Z-0001';
const FOREIGN = '20991231T000000Z-0002';
const store = () => new FilesystemStorage(join(dir, 'fs'));
const dirOf = (id: string) => `shop/orders/backups/${id}/`;

beforeAll(async () => {
  pg = await startPostgres();
  dir = await mkdtemp(join(tmpdir(), 'dbbc-sign-'));
  await seedRich(pg, 'shop', { rows: 100 });
  await writeFile(join(dir, 'mine.pem'), pem(mine.privateKey));
  await writeFile(join(dir, 'mine.pub'), pem(mine.publicKey));
  signed = await config('signed', { key: { file: join(dir, 'mine.pem') } });
  unverified = await config('unverified');
}, 120_000);

afterAll(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('signed manifests', () => {
  it('a runner with a signing key signs each manifest it writes', async () => {
    const r = await cli(signed, ['backup']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    real = r.json.id as string;
    const stored = JSON.parse(await readFile(join(dir, 'fs', dirOf(real), 'manifest.json'), 'utf8')) as { signature?: { keyId: string } };
    expect(stored.signature?.keyId).toBe(keyId(mine.publicKey));
  });

  it('planted manifests, unsigned or signed by another key, with real data: never listed, never chosen, never blocking; verify reports them', async () => {
    const s = store();
    const manifest = JSON.parse(await readFile(join(dir, 'fs', dirOf(real), 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const data = await readFile(join(dir, 'fs', dirOf(real), 'data.dump.zst'));
    // Plausible: a minute after the real one (not future-dated), so that only the signature tells them apart.
    const t = new Date(Date.parse(manifest.consistentAt as string) + 60_000).toISOString();
    const later = { consistentAt: t, startedAt: t, finishedAt: t };
    const unsignedBody: Record<string, unknown> = { ...manifest, id: UNSIGNED, ...later };
    delete unsignedBody.signature;
    const foreign = signManifest({ ...unsignedBody, id: FOREIGN }, theirs.privateKey);
    for (const [id, m] of [[UNSIGNED, unsignedBody], [FOREIGN, foreign]] as const) {
      await s.put(`${dirOf(id)}data.dump.zst`, data);
      await s.put(`${dirOf(id)}manifest.json`, Buffer.from(JSON.stringify(m)));
    }

    const l = await cli(signed, ['list']);
    expect((l.json.backups as { id: string }[]).map((b) => b.id)).toEqual([real]);
    expect(l.json.signatures).toBe('verified');
    const problems = (l.json.problems as { key: string; error: { code: string; message: string } }[]).map((p) => [p.key, p.error.code]);
    expect(problems.sort()).toEqual([
      [`${dirOf(UNSIGNED)}manifest.json`, 'MANIFEST_UNSIGNED'],
      [`${dirOf(FOREIGN)}manifest.json`, 'MANIFEST_SIGNATURE_INVALID'],
    ]);

    const r = await cli(signed, ['restore', '--latest', '--target-database', 'signed_latest']);
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(r.json).toMatchObject({ backup: { id: real } });
    const byId = await cli(signed, ['restore', '--backup', UNSIGNED, '--target-database', 'never']);
    expect(byId.json).toMatchObject({ error: { code: 'BACKUP_NOT_FOUND' } });

    const v = await cli(signed, ['verify']);
    expect(v.code).toBe(1); // reported as errors beside the intact real backup, as misplaced manifests are
    const codes = (v.json.checks as { object: string; status: string; error?: { code: string } }[]).filter((c) => c.error).map((c) => c.error!.code).sort();
    expect(codes).toEqual(['MANIFEST_SIGNATURE_INVALID', 'MANIFEST_UNSIGNED']);
    // Retention plans only over what is believed: the planted ones are neither kept nor removed.
    const plan = await cli(signed, ['retention', '--dry-run']);
    expect(JSON.stringify(plan.json)).not.toContain(UNSIGNED);
  });

  it('with the other DatabaseBackup\'s public key configured as well, its manifest is believed', async () => {
    await writeFile(join(dir, 'theirs.pub'), pem(theirs.publicKey));
    const both = await config('both', { key: { file: join(dir, 'mine.pem') }, verify: [{ file: join(dir, 'mine.pub') }, { file: join(dir, 'theirs.pub') }] });
    const l = await cli(both, ['list']);
    expect((l.json.backups as { id: string }[]).map((b) => b.id)).toEqual([real, FOREIGN]);
  });

  it('without a verification key every manifest is listed, and list says that signatures are not checked', async () => {
    const l = await cli(unverified, ['list']);
    expect(l.json.signatures).toBe('not checked');
    expect((l.json.backups as { id: string }[]).map((b) => b.id)).toEqual([real, UNSIGNED, FOREIGN]);
    const text = await cli(unverified, ['list'], 'text');
    expect(text.out).toContain('manifest signatures are not checked');
  });
});
