#!/usr/bin/env bash
# make force-local-restore: `backup-runner restore --latest` in the runner pod (found by
# its labels), then every table's row count and checksum compared with those the seed
# Job recorded. When the runner refuses because database shop still holds data (exit
# code 5), the restore is repeated with --force, which replaces the objects the backup
# contains. Exits 1 when a seeded table differs from the seed.
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

need_kube
pod=$(runner_pod)
rc=0
runner_exec "$pod" restore --latest || rc=$?
if [ "$rc" -eq 5 ]; then
  say "database $SEED_DATABASE still holds data (exit code 5, refused): restoring again with --force"
  rc=0
  runner_exec "$pod" restore --latest --force || rc=$?
fi
[ "$rc" -eq 0 ] || die "restore failed with exit code $rc (README.md lists the exit codes; \`make testenv-status\` shows the backups)"

say "tables of database $SEED_DATABASE compared with the seed (testenv_meta.seed_checksums)"
seed=$(pg_psql -At -F '|' -d "$META_DATABASE" -c 'SELECT table_name, row_count, checksum FROM seed_checksums ORDER BY table_name' </dev/null)
now=$(pg_psql -At -F '|' -d "$SEED_DATABASE" <"$MINIKUBE_DIR/seed/checksums.sql")
compare_checksums "$seed" "$now"
