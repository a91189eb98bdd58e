/**
 * The minikube test environment's seed (testenv/minikube/seed/) against a real,
 * local PostgreSQL: seed.sh builds the data set and records its checksums, a
 * retried Job gives the same data, the large data set has 1 KiB rows, and the
 * checksums of a dumped, dropped and restored database equal the recorded ones
 * (compare_checksums from lib.sh says so, and says which table differs).
 * Then force-local-dbdelete.sh and force-local-restore.sh run their SQL on that
 * server through a kubectl stand-in whose `exec -- psql` is the local psql and
 * whose `exec -- backup-runner restore` is pg_restore of a dump, refusing like
 * the runner (exit code 5) when the database holds relations and no --force.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../../testenv/exec.js';
import { startPostgres, type PgInstance } from '../../testenv/postgres.js';
import { bash, MINIKUBE_DIR, runScript } from '../minikube-fixtures.js';

const SEED = join(MINIKUBE_DIR, 'seed');

/** kubectl for the scripts, on a local server: pods are found, exec runs psql or a pg_restore "runner" here. */
const KUBECTL_STANDIN = [
  '#!/usr/bin/env bash',
  'args=("$@")',
  'case "$*" in',
  '  "config get-contexts -o name") echo minikube; exit 0 ;;',
  "  *\" get pods \"*) printf 'pod-0\\t\\n'; exit 0 ;;",
  'esac',
  'for i in "${!args[@]}"; do [ "${args[$i]}" = -- ] && break; done',
  'cmd=("${args[@]:$((i + 1))}")',
  'echo "exec: ${cmd[*]}" >>"$STANDIN_LOG"',
  'if [ "${cmd[0]}" = psql ]; then exec "${cmd[@]}"; fi',
  'extra=()',
  'if [ "${cmd[3]:-}" = --force ]; then extra=(--clean --if-exists); fi',
  `if [ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'shop'")" = 1 ]; then`,
  `  relations=$(psql -X -At -d shop -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")`,
  '  if [ "$relations" != 0 ] && [ "${#extra[@]}" -eq 0 ]; then echo "refused: shop holds data" >&2; exit 5; fi',
  'else',
  "  psql -X -q -d postgres -c 'CREATE DATABASE shop TEMPLATE template0'",
  'fi',
  'exec pg_restore --single-transaction --exit-on-error "${extra[@]}" -d shop "$STANDIN_DUMP"',
  '',
].join('\n');

describe('minikube testenv seed on a real PostgreSQL', () => {
  let pg: PgInstance | undefined;
  let dir: string | undefined;

  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    PATH: `${pg!.binDir}:${process.env.PATH ?? ''}`,
    PGHOST: pg!.host,
    PGPORT: String(pg!.port),
    PGUSER: pg!.user,
    PGPASSWORD: pg!.password,
    SEED_DATABASE: 'shop',
    META_DATABASE: 'testenv_meta',
    HUGEDATA_GB: '0',
    ...extra,
  });
  const seed = (extra: Record<string, string> = {}) => bash(`bash ${join(SEED, 'seed.sh')}`, env(extra));
  const checksumsNow = () => bash(`psql -X -q -v ON_ERROR_STOP=1 -At -F '|' -d shop -f ${join(SEED, 'checksums.sql')}`, env());
  const recorded = () => pg!.psql('SELECT table_name, row_count, checksum FROM seed_checksums ORDER BY table_name', 'testenv_meta');
  const compare = (seedLines: string, now: string) => bash('. testenv/minikube/lib.sh && compare_checksums "$SEED_SUMS" "$NOW_SUMS"', { SEED_SUMS: seedLines, NOW_SUMS: now });

  beforeAll(async () => {
    pg = await startPostgres();
    dir = await mkdtemp(join(tmpdir(), 'minikube-seed-'));
  });

  afterAll(async () => {
    await pg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates the tables, records their checksums, and a retry gives the same data', async () => {
    const r = await seed();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const counts = await pg!.psql(
      "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM products), (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items), nextval('invoice_numbers')",
      'shop',
    );
    expect(counts).toBe('2000|500|5000|15000|12346');
    const first = await recorded();
    expect(first.split('\n').map((l) => l.split('|').slice(0, 2).join('|'))).toEqual(['customers|2000', 'order_items|15000', 'orders|5000', 'products|500']);
    expect(r.stdout).toContain('seed: table|rows|checksum recorded in testenv_meta.seed_checksums');

    // A retried Job drops and seeds again: same rows, same checksums (no random()).
    expect((await seed()).code).toBe(0);
    expect(await recorded()).toBe(first);
  });

  it('TESTENV_HUGEDATA adds 1 KiB rows to table events, in batches', async () => {
    const r = await seed({ HUGEDATA_ROWS: '250', HUGEDATA_BATCH: '100' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/events 100\/250\n.*events 200\/250\n.*events 250\/250/s);
    expect(await pg!.psql('SELECT count(*), min(octet_length(payload)), max(octet_length(payload)), count(DISTINCT payload) FROM events', 'shop')).toBe('250|1024|1024|250');
    expect((await recorded()).split('\n').map((l) => l.split('|')[0])).toEqual(['customers', 'events', 'order_items', 'orders', 'products']);
  });

  it('checksums survive dump, drop and restore; a changed row is reported', async () => {
    const seedLines = await recorded();
    const dump = join(dir!, 'shop.dump');
    const tool = (name: string, args: string[]) => exec(join(pg!.binDir, name), args, { env: { ...process.env, ...env() } });
    expect((await tool('pg_dump', ['-Fc', '-d', 'shop', '-f', dump])).code).toBe(0);
    await pg!.psql('DROP DATABASE shop WITH (FORCE)', 'postgres');
    await pg!.psql('CREATE DATABASE shop TEMPLATE template0', 'postgres');
    const restored = await tool('pg_restore', ['--single-transaction', '--exit-on-error', '-d', 'shop', dump]);
    expect(restored.stderr).toBe('');

    const now = await checksumsNow();
    expect(now.code).toBe(0);
    expect(now.stdout.trim()).toBe(seedLines);
    const same = await compare(seedLines, now.stdout);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('all 5 seeded tables match the seed');

    await pg!.psql("UPDATE customers SET name = 'changed' WHERE id = 7; DROP TABLE events", 'shop');
    const changed = await compare(seedLines, (await checksumsNow()).stdout);
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(/^customers .* DIFFERENT$/m);
    expect(changed.stdout).toMatch(/^events .* MISSING$/m);
    expect(changed.stdout).toMatch(/^orders .* ok$/m);
    expect(changed.stdout).toContain('2 of 5 seeded tables differ from the seed');
  });
  it('force-local-dbdelete and force-local-restore run their SQL on it: drop, restore, checksums match the seed', async () => {
    expect((await seed()).code).toBe(0);
    const dump = join(dir!, 'seeded.dump');
    const log = join(dir!, 'standin.log');
    const kubectl = join(dir!, 'kubectl');
    await writeFile(kubectl, KUBECTL_STANDIN);
    await chmod(kubectl, 0o755);
    expect((await exec(join(pg!.binDir, 'pg_dump'), ['-Fc', '-d', 'shop', '-f', dump], { env: { ...process.env, ...env() } })).code).toBe(0);
    const script = (name: string, extra: Record<string, string> = {}) =>
      runScript(name, { ...env(), KUBECTL: kubectl, STANDIN_LOG: log, STANDIN_DUMP: dump, TESTENV_KUBE_CONTEXT: '', MINIKUBE_PROFILE: '', TESTENV_DBDELETE: '', ...extra });
    const databases = () => pg!.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname IN ('shop', 'testenv_meta')", 'postgres');

    const deleted = await script('force-local-dbdelete.sh');
    expect(deleted.stderr).toBe('');
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toMatch(/^ customers +\| 2000 +\| /m);
    expect(deleted.stdout.indexOf('order_items')).toBeLessThan(deleted.stdout.indexOf('dropping database shop'));
    expect(await databases()).toBe('testenv_meta');

    const restored = await script('force-local-restore.sh');
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    expect(restored.stdout).not.toContain('--force');
    expect(restored.stdout).toContain('all 4 seeded tables match the seed');

    // Tables only: the sequence stays, so the "runner" refuses and the script restores again with --force.
    const tables = await script('force-local-dbdelete.sh', { TESTENV_DBDELETE: 'tables' });
    expect(tables.code).toBe(0);
    expect(await pg!.psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace", 'shop')).toBe('invoice_numbers');
    const forced = await script('force-local-restore.sh');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('restoring again with --force');
    expect(forced.stdout).toContain('all 4 seeded tables match the seed');
    expect(await pg!.psql("SELECT nextval('invoice_numbers')", 'shop')).toBe('12346');

    // A second delete finds nothing to drop.
    expect((await script('force-local-dbdelete.sh')).code).toBe(0);
    const again = await script('force-local-dbdelete.sh');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('database shop does not exist in pod pod-0: nothing to delete');
  });
});
