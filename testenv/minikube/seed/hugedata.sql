-- One batch of the large data set (TESTENV_HUGEDATA=true): rows :first to :last of table
-- events, each with 1 KiB of incompressible payload (16 sha512 digests), so that a backup
-- is about as large as the table. Deterministic, like seed.sql.
CREATE TABLE IF NOT EXISTS events (
  id      bigint PRIMARY KEY,
  at      timestamptz NOT NULL,
  kind    text NOT NULL,
  payload bytea NOT NULL
);
INSERT INTO events
SELECT i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
       (ARRAY['view', 'click', 'cart', 'buy'])[1 + i % 4],
       (SELECT string_agg(sha512(int8send(i * 16 + k)), ''::bytea ORDER BY k) FROM generate_series(0, 15) AS k)
FROM generate_series(:first::bigint, :last::bigint) AS i;
