/**
 * Test and benchmark data for PostgreSQL, and a checksum of everything a
 * restore must bring back.
 *
 * Invariants:
 * - Seeding is deterministic: the same call produces the same rows (no
 *   random(), no now()), so checksums can be compared across runs.
 * - `tableChecksums` covers every user table and materialized view (rows),
 *   every large object (bytes), sequence (last_value), view and function
 *   (definition): two databases with equal checksums hold the same data.
 */
import type { PgInstance } from './postgres.js';

export interface SeedOptions {
  /** Rows in app.items (default 120 000). */
  rows?: number;
}

/** Hard cases for text handling: emoji (incl. ZWJ sequences), CJK, RTL, combining marks, quotes, control characters. */
const SAMPLES = [
  '😀 grinning 🚀 rocket',
  '👩‍👩‍👧‍👦 family ZWJ 🏳️‍🌈',
  '漢字 かな カナ 中文 한국어',
  'שלום עולם — مرحبا بالعالم',
  'e\u0301 vs \u00e9, A\u030a vs \u00c5',
  'Z\u0338\u0322a\u0337l\u0335g\u0336o\u0334',
  "quote ' \" \\ backslash",
  'tab\there, line\nbreak, cr\rreturn',
];

const sqlLiteral = (s: string): string => `'${s.replace(/'/g, "''")}'`;

function richSchemaSql(): string {
  const samples = `ARRAY[${SAMPLES.map(sqlLiteral).join(', ')}]`;
  return `
CREATE SCHEMA app;
CREATE SCHEMA audit;
CREATE SCHEMA "Ünïcødé Schema";
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');

CREATE TABLE app.items (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  note text,
  payload bytea,
  doc jsonb,
  price numeric(20, 6),
  created_at timestamptz,
  tags text[],
  scores int[],
  mood app.mood,
  ratio double precision,
  flag boolean
);
INSERT INTO app.items
SELECT i,
  (${samples})[1 + i % ${SAMPLES.length}] || ' #' || i,
  CASE WHEN i % 7 = 0 THEN NULL ELSE md5(i::text) END,
  CASE WHEN i % 11 = 0 THEN NULL ELSE decode(md5(i::text) || md5((i * 31)::text), 'hex') || '\\x00ff00'::bytea END,
  CASE WHEN i % 13 = 0 THEN NULL
       ELSE jsonb_build_object('i', i, 'even', i % 2 = 0, 'none', NULL,
              'nested', jsonb_build_object('k', md5(i::text), 'arr', jsonb_build_array(i, i * 2, 'ü🚀'))) END,
  CASE WHEN i % 17 = 0 THEN NULL WHEN i % 1000 = 1 THEN 'NaN'::numeric ELSE (i * 3.141592)::numeric(20, 6) - 5000000 END,
  CASE WHEN i = 2 THEN 'infinity'::timestamptz ELSE timestamptz '2020-01-01 00:00:00+00' + i * interval '7 minutes 13.123456 seconds' END,
  CASE WHEN i % 19 = 0 THEN NULL ELSE ARRAY[md5(i::text), NULL, 'x,y', '{}', '"q"'] END,
  ARRAY[i, -i, 0]::int[],
  (ARRAY['sad', 'ok', 'happy']::app.mood[])[1 + i % 3],
  i / 7.0::float8,
  CASE WHEN i % 23 = 0 THEN NULL ELSE i % 2 = 0 END
FROM generate_series(1, :rows) AS i;
CREATE INDEX items_created_at ON app.items (created_at);

CREATE TABLE audit.log (
  id bigserial,
  item_id bigint REFERENCES app.items (id),
  at timestamptz NOT NULL,
  action text NOT NULL
) PARTITION BY RANGE (at);
CREATE TABLE audit.log_2020 PARTITION OF audit.log FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE audit.log_2021 PARTITION OF audit.log FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO audit.log (item_id, at, action)
SELECT 1 + (i * 37) % :rows, timestamptz '2020-01-01 00:00:00+00' + i * interval '1 hour 13 minutes',
       (ARRAY['create', 'update', 'delete'])[1 + i % 3]
FROM generate_series(1, 10000) AS i;

CREATE TABLE "Ünïcødé Schema"."Tablé ☃" ("ключ" int PRIMARY KEY, "值" text);
INSERT INTO "Ünïcødé Schema"."Tablé ☃" SELECT i, repeat('☃', i % 50) FROM generate_series(1, 500) AS i;

CREATE VIEW app.item_summary AS
  SELECT mood, count(*) AS n, sum(price) FILTER (WHERE price <> 'NaN') AS total FROM app.items GROUP BY mood;
CREATE MATERIALIZED VIEW app.mood_counts AS SELECT mood, count(*) AS n FROM app.items GROUP BY mood;

CREATE SEQUENCE app.invoice_no START 1000;
SELECT setval('app.invoice_no', 4242);

CREATE FUNCTION app.item_label(p_id bigint) RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT name || ' (' || id || ')' FROM app.items WHERE id = p_id $$;
COMMENT ON TABLE app.items IS 'items with every hard type ☃';

-- Large objects: small text, empty, 200 KB repetitive, 1.25 MB incompressible.
SELECT lo_from_bytea(0, convert_to('hello large object ☃', 'UTF8'));
SELECT lo_from_bytea(0, ''::bytea);
SELECT lo_from_bytea(0, decode(repeat('00ff', 100000), 'hex'));
SELECT lo_from_bytea(0, (SELECT string_agg(sha256(int4send(i)), ''::bytea ORDER BY i) FROM generate_series(1, 40000) AS i));
ANALYZE;
`;
}

/** Creates `db` and fills it with schemas, types, hard-to-encode values, views, a sequence, a function and large objects. */
export async function seedRich(pg: PgInstance, db: string, opts: SeedOptions = {}): Promise<void> {
  const rows = opts.rows ?? 120_000;
  if (!Number.isInteger(rows) || rows < 100) throw new Error(`seedRich: rows must be an integer >= 100, got ${rows}`);
  await pg.psql(`CREATE DATABASE :"db";`, 'postgres', { db });
  await pg.psql(richSchemaSql(), db, { rows: String(rows) });
}

const CHECKSUM_SQL = String.raw`
SELECT format('SELECT %L || E''\t'' || md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM %I.%I AS t',
              'table:' || n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1 \gexec
SELECT 'lo:' || oid || E'\t' || md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid;
SELECT 'sequence:' || schemaname || '.' || sequencename || E'\t' || coalesce(last_value::text, 'unset') FROM pg_sequences ORDER BY 1;
SELECT 'view:' || schemaname || '.' || viewname || E'\t' || md5(definition) FROM pg_views
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;
SELECT 'function:' || p.oid::regprocedure || E'\t' || md5(pg_get_functiondef(p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p') ORDER BY 1;
`;

/**
 * `table:<schema>.<name>` -> md5 over all rows in a fixed order, `lo:<oid>` ->
 * md5 of the large object, `sequence:<name>` -> last_value, `view:` and
 * `function:` -> md5 of the definition.
 */
export async function tableChecksums(pg: PgInstance, db: string): Promise<Record<string, string>> {
  const out = await pg.psql(CHECKSUM_SQL, db);
  const result: Record<string, string> = {};
  for (const line of out.split('\n')) {
    if (!line) continue;
    const tab = line.lastIndexOf('\t');
    result[line.slice(0, tab)] = line.slice(tab + 1);
  }
  return result;
}

const BULK_SCHEMA_SQL = `
CREATE SCHEMA bulk;
CREATE TABLE bulk.events (
  id bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  user_id int NOT NULL,
  kind text NOT NULL,
  amount numeric(12, 2),
  country char(2),
  note text,
  attrs jsonb
);
`;

/** Event-like rows: repeated vocabulary, hashes, numbers and JSON, so compression ratios look like production data. */
const BULK_INSERT_SQL = `
INSERT INTO bulk.events
SELECT i,
  timestamptz '2024-01-01 00:00:00+00' + i * interval '1.7 seconds',
  hashint8(i) & 1048575,
  (ARRAY['page_view', 'click', 'purchase', 'signup', 'logout', 'search'])[1 + abs(hashint8(i * 7)) % 6],
  CASE WHEN i % 4 = 0 THEN round((abs(hashint8(i * 13)) % 100000) / 100.0, 2) END,
  (ARRAY['DE', 'US', 'FR', 'JP', 'BR', 'IN', 'GB'])[1 + abs(hashint8(i * 3)) % 7],
  CASE WHEN i % 5 = 0 THEN NULL ELSE
    (ARRAY['customer', 'asked', 'about', 'delivery', 'invoice', 'refund', 'the', 'order', 'was', 'late', 'great', 'service'])[1 + abs(hashint8(i * 11)) % 12] || ' ' ||
    (ARRAY['customer', 'asked', 'about', 'delivery', 'invoice', 'refund', 'the', 'order', 'was', 'late', 'great', 'service'])[1 + abs(hashint8(i * 17)) % 12] || ' ' ||
    (ARRAY['today', 'yesterday', 'last week', 'twice', 'again', 'by phone', 'by mail'])[1 + abs(hashint8(i * 19)) % 7] ||
    CASE WHEN i % 10 = 0 THEN ' ' || repeat(md5(i::text) || ' lorem ipsum dolor sit amet ', 8) ELSE '' END
  END,
  jsonb_build_object('session', md5(i::text), 'items', abs(hashint8(i)) % 10,
                     'ua', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)', 'curl/8.5.0'])[1 + abs(hashint8(i * 5)) % 3])
FROM generate_series(:first::bigint, :last::bigint) AS i;
`;

/** Creates `db` and loads event rows until the database is at least `targetBytes` big (e.g. 100 MB, 1 GB). */
export async function seedBulk(pg: PgInstance, db: string, targetBytes: number): Promise<{ rows: number; bytes: number }> {
  await pg.psql(`CREATE DATABASE :"db";`, 'postgres', { db });
  await pg.psql(BULK_SCHEMA_SQL, db);
  const size = async (): Promise<number> => Number(await pg.psql('SELECT pg_database_size(current_database());', db));
  const empty = await size();
  let rows = 0;
  let bytes = empty;
  let batch = 50_000;
  while (bytes < targetBytes) {
    await pg.psql(BULK_INSERT_SQL, db, { first: String(rows + 1), last: String(rows + batch) });
    rows += batch;
    bytes = await size();
    const perRow = Math.max(1, (bytes - empty) / rows);
    batch = Math.min(2_000_000, Math.max(10_000, Math.ceil(((targetBytes - bytes) / perRow) * 1.02)));
  }
  await pg.psql('ANALYZE;', db);
  return { rows, bytes };
}
