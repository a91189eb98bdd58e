#!/usr/bin/env bash
# make testenv-status: the storage class, the DatabaseBackup and its conditions, the
# runner's Deployment and pod (by label), and what the runner reports: status and the
# stored backups. Shows what is there; never fails on a missing piece.
set -uo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

need_kube
if ! kube get crd databasebackups.dbbackup.io >/dev/null 2>&1; then
  die "the dbbackup.io CRDs are not installed in context $KUBE_CONTEXT: run \`make deploy-local\`"
fi

say "storage class $STORAGE_CLASS"
kube get databasebackupstorageclass "$STORAGE_CLASS" 2>&1

say "DatabaseBackup $TESTENV_NAMESPACE/$BACKUP_NAME"
kube get databasebackup "$BACKUP_NAME" -n "$TESTENV_NAMESPACE" -o wide 2>&1
kube get databasebackup "$BACKUP_NAME" -n "$TESTENV_NAMESPACE" -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}{"  lastBackup: "}{.status.lastBackup}{"\n"}' 2>/dev/null

say "runner (labels $RUNNER_SELECTOR)"
kube get deployments,pods -n "$TESTENV_NAMESPACE" -l "$RUNNER_SELECTOR" -o wide 2>&1

pod=$(first_live_pod "$RUNNER_SELECTOR")
if [ -z "$pod" ]; then
  say "no running runner pod: nothing to ask"
  exit 0
fi
runner_exec "$pod" status
runner_exec "$pod" list
