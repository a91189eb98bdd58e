/**
 * A whole-server PostgreSQL backup of storage format 3 (test/fixtures/format-3:
 * globals and two databases, one with its own settings, grants and comment)
 * stays listable, verifiable and restorable: a restore into a fresh server
 * creates the roles, reproduces the recorded table checksums and gives the
 * database its owner, settings, grants and comment back.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { tableChecksums } from '../../testenv/seed.js';
import type { CliResult } from '../cli.js';
import { compatFixture, type CompatFixture } from '../compat-fixture.js';

const ID = '20261204T141137Z-cb4c';

let pg: PgInstance | undefined;
let fx: CompatFixture | undefined;
let setupError: unknown;

function cli(args: string[]): Promise<CliResult> {
  if (setupError) throw setupError as Error;
  return fx!.cli(args);
}

beforeAll(async () => {
  try {
    pg = await startPostgres();
    fx = await compatFixture('format-3', { namespace: 'data', name: 'cluster' }, { type: 'postgresql', postgresql: { ...pg.connection('postgres'), databases: ['crm', 'shop'] } });
  } catch (err) {
    setupError = err;
  }
}, 120_000);

afterAll(async () => {
  await pg?.stop();
  await fx?.remove();
});

describe('a whole-server PostgreSQL backup of format 3', () => {
  it('lists with its streams and their properties as written', async () => {
    const r = await cli(['list']);
    expect(r.code, r.out).toBe(0);
    const backups = r.json.backups as { id: string; manifest: { formatVersion: number; objects: { stream: { name: string; owner?: string; properties?: unknown } }[] } }[];
    expect(backups.map((b) => b.id)).toEqual([ID]);
    const streams = backups[0]!.manifest.objects.map((o) => o.stream);
    expect(streams.map((s) => s.name)).toEqual(['globals', 'crm', 'shop']);
    expect(streams[1]).toMatchObject({ owner: 'app', properties: { settings: ['search_path="$user", public', 'app.tenant=acme'], comment: 'the CRM' } });
  });

  it('verifies every stream', async () => {
    const r = await cli(['verify', ID]);
    expect(r.code, r.out).toBe(0);
    expect((r.json.checks as { status: string }[]).map((c) => c.status)).toEqual(['ok', 'ok', 'ok']);
  });

  it('restores into a fresh server: roles, both databases identical, crm with its owner, settings, grants and comment', async () => {
    const r = await cli(['restore', '--backup', ID]);
    expect(r.code, r.out).toBe(0);
    const sums = JSON.parse(await readFile(join(fx!.fixtureDir, 'checksums.json'), 'utf8')) as Record<string, Record<string, string>>;
    for (const db of ['crm', 'shop']) expect(await tableChecksums(pg!, db)).toEqual(sums[db]);
    expect(await pg!.psql("SELECT pg_has_role('app', 'readers', 'member')")).toBe('t');
    // The source's crm: {=T/app,app=CTc/app,readers=c/app} (the order of an ACL's items is not kept).
    expect(
      await pg!.psql(`SELECT pg_get_userbyid(d.datdba), (SELECT array_to_string(setconfig, ' | ') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0),
        (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(d.datacl) x), shobj_description(d.oid, 'pg_database') FROM pg_database d WHERE datname = 'crm'`),
    ).toBe('app|search_path="$user", public | app.tenant=acme|=T/app,app=CTc/app,readers=c/app|the CRM');
  });
});
