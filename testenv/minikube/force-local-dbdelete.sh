#!/usr/bin/env bash
# make force-local-dbdelete: destroys the seeded data so that a restore has something
# to do. TESTENV_DBDELETE=database (default) drops database shop; TESTENV_DBDELETE=tables
# drops its tables (and the view on them) but keeps the database and its sequence.
# Database testenv_meta, with the seed's checksums, is kept either way.
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

mode=${TESTENV_DBDELETE:-database}
case "$mode" in
  database | tables) ;;
  *) die "TESTENV_DBDELETE must be database or tables, not \"$mode\"" ;;
esac

need_kube
pod=$(postgres_pod)
exists=$(pg_psql -At -d postgres -v db="$SEED_DATABASE" <<'SQL'
SELECT count(*) FROM pg_database WHERE datname = :'db';
SQL
)
if [ "$exists" = 0 ]; then
  say "database $SEED_DATABASE does not exist in pod $pod: nothing to delete (make force-local-restore brings it back)"
  exit 0
fi

say "database $SEED_DATABASE in pod $pod (namespace $TESTENV_NAMESPACE, context $KUBE_CONTEXT) holds:"
pg_psql -d "$SEED_DATABASE" -P footer=off <<'SQL'
SELECT c.relname AS "table",
       CASE WHEN c.reltuples < 0 THEN 'not analyzed' ELSE c.reltuples::bigint::text END AS "rows (estimate)",
       pg_size_pretty(pg_total_relation_size(c.oid)) AS size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY c.relname;
SQL

if [ "$mode" = database ]; then
  say "dropping database $SEED_DATABASE: DROP DATABASE $SEED_DATABASE WITH (FORCE) (ends its sessions)"
  pg_psql -d postgres -v db="$SEED_DATABASE" <<'SQL'
SELECT format('DROP DATABASE %I WITH (FORCE)', :'db') \gexec
SQL
else
  say "dropping every table in schema public of $SEED_DATABASE: DROP TABLE ... CASCADE (views on them go too; the sequence stays, so the restore will need --force)"
  pg_psql -d "$SEED_DATABASE" <<'SQL'
SELECT format('DROP TABLE IF EXISTS public.%I CASCADE', tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename \gexec
SQL
fi
say "done; \`make force-local-restore\` restores the latest backup and compares the tables with the seed"
