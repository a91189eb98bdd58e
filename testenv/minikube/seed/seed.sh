#!/usr/bin/env bash
# The seed Job's script (runs in the postgres image; PGHOST, PGUSER, PGPASSWORD set by
# the Job): (re)creates database $SEED_DATABASE from seed.sql, adds HUGEDATA_GB GB
# (about) of rows in table events when HUGEDATA_GB > 0, and records every table's row
# count and checksum (checksums.sql) in $META_DATABASE.seed_checksums.
#
# A retried Job starts again from an empty database: it drops $SEED_DATABASE first.
# HUGEDATA_ROWS and HUGEDATA_BATCH set the events rows and rows per transaction exactly
# (the tests use them; the Job leaves them unset).
set -euo pipefail

dir=$(dirname "$0")
: "${SEED_DATABASE:?}" "${META_DATABASE:?}"
hugedata_gb=${HUGEDATA_GB:-0}
rows=${HUGEDATA_ROWS:-$((hugedata_gb * 1000000))}
batch=${HUGEDATA_BATCH:-100000}
# No NOTICEs ("does not exist, skipping") among the Job's log lines.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

until pg_isready -q; do
  echo "seed: waiting for PostgreSQL at ${PGHOST:-localhost}:${PGPORT:-5432}"
  sleep 2
done

psql -X -q -v ON_ERROR_STOP=1 -d postgres -v db="$SEED_DATABASE" -v meta="$META_DATABASE" <<'SQL'
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'db') \gexec
SELECT format('CREATE DATABASE %I', :'db') \gexec
SELECT format('CREATE DATABASE %I', :'meta') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'meta') \gexec
SQL

echo "seed: creating the tables of database $SEED_DATABASE"
psql -X -q -v ON_ERROR_STOP=1 -d "$SEED_DATABASE" -f "$dir/seed.sql"

if [ "$rows" -gt 0 ]; then
  echo "seed: TESTENV_HUGEDATA: $rows rows of 1 KiB in table events (about $((rows * 12 / 10000)) MB on disk with the index), $batch per transaction"
  for ((first = 1; first <= rows; first += batch)); do
    last=$((first + batch - 1))
    if [ "$last" -gt "$rows" ]; then last=$rows; fi
    psql -X -q -v ON_ERROR_STOP=1 -d "$SEED_DATABASE" -v first="$first" -v last="$last" -f "$dir/hugedata.sql"
    echo "seed: events $last/$rows"
  done
fi

psql -X -q -v ON_ERROR_STOP=1 -d "$SEED_DATABASE" -c 'ANALYZE'
psql -X -q -v ON_ERROR_STOP=1 -At -d "$SEED_DATABASE" \
  -c "SELECT 'seed: database ' || current_database() || ': ' || pg_size_pretty(pg_database_size(current_database()))"

checksums=/tmp/seed-checksums
psql -X -q -v ON_ERROR_STOP=1 -At -F '|' -d "$SEED_DATABASE" -f "$dir/checksums.sql" >"$checksums"
psql -X -q -v ON_ERROR_STOP=1 -d "$META_DATABASE" <<SQL
CREATE TABLE IF NOT EXISTS seed_checksums (
  table_name text PRIMARY KEY,
  row_count  bigint NOT NULL,
  checksum   numeric NOT NULL,
  seeded_at  timestamptz NOT NULL DEFAULT now()
);
TRUNCATE seed_checksums;
\copy seed_checksums (table_name, row_count, checksum) FROM '$checksums' WITH (FORMAT text, DELIMITER '|')
SQL

echo "seed: table|rows|checksum recorded in $META_DATABASE.seed_checksums:"
cat "$checksums"
