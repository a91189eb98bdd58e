#!/usr/bin/env bash
# make testenv-status: the storage class, then for each DatabaseBackup (shop and shop-pitr on
# PostgreSQL, shop-mariadb on MariaDB) its conditions (and shop-pitr's recoverable window), its
# runner's Deployment and pod (by label), and what the runner reports: status and the stored
# backups. Shows what is there; never fails on a missing piece.
set -uo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

# status_of BACKUP SELECTOR: DatabaseBackup BACKUP, its runner (found by SELECTOR) and what that runner reports.
status_of() {
  local backup=$1 selector=$2 pod
  say "DatabaseBackup $TESTENV_NAMESPACE/$backup"
  kube get databasebackup "$backup" -n "$TESTENV_NAMESPACE" -o wide 2>&1
  kube get databasebackup "$backup" -n "$TESTENV_NAMESPACE" -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}{"  lastBackup: "}{.status.lastBackup}{"\n"}' 2>/dev/null
  # Written by the runner of a DatabaseBackup that archives WAL: the recoverable window.
  kube get databasebackup "$backup" -n "$TESTENV_NAMESPACE" -o jsonpath='{.status.recovery}{"\n"}' 2>/dev/null | sed -n 's/^./  recovery: &/p'

  say "runner of $backup (labels $selector)"
  kube get deployments,pods -n "$TESTENV_NAMESPACE" -l "$selector" -o wide 2>&1

  pod=$(first_live_pod "$selector")
  if [ -z "$pod" ]; then
    say "no running runner pod of $backup: nothing to ask"
    return 0
  fi
  runner_exec "$pod" status
  runner_exec "$pod" list
}

need_kube
if ! kube get crd databasebackups.dbbackup.io >/dev/null 2>&1; then
  die "the dbbackup.io CRDs are not installed in context $KUBE_CONTEXT: run \`make deploy-local\`"
fi

say "storage class $STORAGE_CLASS"
kube get databasebackupstorageclass "$STORAGE_CLASS" 2>&1

status_of "$BACKUP_NAME" "$RUNNER_SELECTOR"
status_of "$MARIADB_BACKUP_NAME" "$MARIADB_RUNNER_SELECTOR"
status_of "$PITR_BACKUP_NAME" "$PITR_RUNNER_SELECTOR"
