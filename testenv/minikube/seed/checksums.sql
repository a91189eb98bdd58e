-- Row count and checksum of every table in schema public, one line per table, for
-- psql -At -F'|':   table|rows|checksum
-- The checksum is the sum of the first 64 bits of md5(row as text): independent of row
-- order, so a restored table (rows in another physical order) gives the same value.
SELECT format(
  'SELECT %L, count(*), coalesce(sum((''x'' || left(md5(t::text), 16))::bit(64)::bigint), 0) FROM public.%I AS t',
  tablename, tablename)
FROM pg_catalog.pg_tables
WHERE schemaname = 'public'
ORDER BY tablename
\gexec
