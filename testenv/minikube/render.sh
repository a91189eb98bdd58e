#!/usr/bin/env bash
# Prints the test environment's manifests with their parameters substituted, in the
# order deploy-testenv.sh applies them (the seed ConfigMaps included), or only the
# named files of manifests/. Parameters: see testenv_params in lib.sh and
# docs/testenv-minikube.md. Needs kubectl for the ConfigMaps (client-side, no cluster).
#
#   bash testenv/minikube/render.sh                      # everything
#   TESTENV_HUGEDATA=true bash testenv/minikube/render.sh 30-seed-job.yaml
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

testenv_params
if [ "$#" -gt 0 ]; then
  files=()
  for name in "$@"; do files+=("$(manifest "$name")"); done
  render "${files[@]}"
  exit 0
fi

need "$KUBECTL" "$KUBECTL_HINT"
render "$(manifest 00-namespace.yaml)" "$(manifest 10-postgresql.yaml)" "$(manifest 11-mariadb.yaml)" "$(manifest 20-minio.yaml)"
printf -- '---\n'
seed_configmap
printf -- '---\n'
mariadb_seed_configmap
printf -- '---\n'
render "$(manifest 30-seed-job.yaml)" "$(manifest 31-bucket-job.yaml)" "$(manifest 32-mariadb-seed-job.yaml)" \
  "$(manifest 40-controller-secret.yaml)" "$(manifest 50-storage-class.yaml)" "$(manifest 60-database-backup.yaml)" \
  "$(manifest 61-mariadb-backup.yaml)" "$(manifest 62-database-backup-pitr.yaml)"
