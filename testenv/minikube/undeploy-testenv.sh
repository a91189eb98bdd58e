#!/usr/bin/env bash
# make undeploy-testenv: deletes what deploy-testenv created: the three DatabaseBackups
# (their runners go with them, by owner reference), the storage class, the MinIO keys in
# the controller's namespace and namespace dbbackup-testenv with PostgreSQL, MariaDB and
# MinIO. The backups go too: MinIO's bucket and the filesystem location are PVCs in that
# namespace. The controller (make deploy-local) stays.
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

need_kube
say "deleting the test environment in context $KUBE_CONTEXT, backups included (MinIO and the filesystem location live on PVCs in namespace $TESTENV_NAMESPACE)"
if kube get crd databasebackups.dbbackup.io >/dev/null 2>&1; then
  kube delete databasebackup "$BACKUP_NAME" "$MARIADB_BACKUP_NAME" "$PITR_BACKUP_NAME" -n "$TESTENV_NAMESPACE" --ignore-not-found --wait=true --timeout=120s
  kube delete databasebackupstorageclass "$STORAGE_CLASS" --ignore-not-found
fi
kube delete secret "$CONTROLLER_SECRET" -n "$CONTROLLER_NAMESPACE" --ignore-not-found
kube delete namespace "$TESTENV_NAMESPACE" --ignore-not-found --wait=true --timeout=300s
say "test environment deleted; the controller is still installed (helm uninstall -n $CONTROLLER_NAMESPACE $HELM_RELEASE removes it)"
