#!/usr/bin/env bash
# make deploy-testenv: PostgreSQL 16, MariaDB 10.11 and MinIO in namespace
# dbbackup-testenv, the two seed Jobs and the bucket Job, then the MinIO keys in the
# controller's namespace, the storage class and the three DatabaseBackups (shop and, physical
# with WAL archiving, shop-pitr on PostgreSQL; shop-mariadb on MariaDB); waits for each step
# and at last for the runners the controller deploys. Needs the controller and its CRDs
# (make deploy-local).
# Re-running it applies the same objects again (the seed Jobs run once; make
# undeploy-testenv to re-seed).
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

wait_timeout=${TESTENV_WAIT_TIMEOUT:-300}

job_logs() { kube logs -n "$TESTENV_NAMESPACE" "job/$1" --tail=40 >&2 || true; }

# wait_job NAME SECONDS: until the Job is Complete; on Failed or timeout prints its logs and exits.
wait_job() {
  local name=$1 timeout=$2 start=$SECONDS last=$SECONDS state
  say "waiting for Job $name (up to ${timeout}s)"
  while :; do
    state=$(kube get job "$name" -n "$TESTENV_NAMESPACE" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case " $state " in
      *" Complete "*) say "Job $name complete" && return 0 ;;
      *" Failed "*) job_logs "$name" && die "Job $name failed (its log above)" ;;
    esac
    if ((SECONDS - start > timeout)); then
      job_logs "$name"
      die "Job $name did not complete within ${timeout}s (its log above)"
    fi
    if ((SECONDS - last >= 30)); then
      kube logs -n "$TESTENV_NAMESPACE" "job/$name" --tail=1 2>/dev/null || true
      last=$SECONDS
    fi
    sleep 5
  done
}

# conditions BACKUP: the DatabaseBackup's conditions, on stderr.
conditions() {
  kube get databasebackup "$1" -n "$TESTENV_NAMESPACE" \
    -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2 || true
}

# wait_runner BACKUP SELECTOR: the runner Deployment the controller creates for DatabaseBackup
# BACKUP, found by SELECTOR; exits with the DatabaseBackup's conditions when none comes.
wait_runner() {
  local backup=$1 selector=$2 start=$SECONDS name=''
  say "waiting for the controller to deploy the runner of $backup (Deployment with labels $selector)"
  while [ -z "$name" ]; do
    name=$(kube get deployments -n "$TESTENV_NAMESPACE" -l "$selector" -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
    if [ -z "$name" ]; then
      if ((SECONDS - start > wait_timeout)); then
        conditions "$backup"
        die "no runner Deployment for $backup after ${wait_timeout}s; the DatabaseBackup's conditions are above (kubectl describe databasebackup -n $TESTENV_NAMESPACE $backup)"
      fi
      sleep 3
    fi
  done
  if ! kube rollout status -n "$TESTENV_NAMESPACE" "deployment/$name" --timeout="${wait_timeout}s"; then
    kube get pods -n "$TESTENV_NAMESPACE" -l "$selector" -o wide >&2 || true
    conditions "$backup"
    die "runner Deployment $name is not available (pods and conditions above; an ErrImagePull / ErrImageNeverPull means the runner image is not in minikube: make deploy-local)"
  fi
  say "runner $name of $backup is up"
}

need_kube
testenv_params
say "context $KUBE_CONTEXT; TESTENV_HUGEDATA_GB=$TESTENV_HUGEDATA_GB (0: the small seed only)"
if ! kube get crd databasebackups.dbbackup.io databasebackupstorageclasses.dbbackup.io databasebackupengines.dbbackup.io >/dev/null 2>&1; then
  die "the dbbackup.io CRDs are not installed in context $KUBE_CONTEXT: run \`make deploy-local\` first"
fi
kube get namespace "$CONTROLLER_NAMESPACE" >/dev/null 2>&1 ||
  die "namespace $CONTROLLER_NAMESPACE (the controller's) does not exist in context $KUBE_CONTEXT: run \`make deploy-local\` first"

seeded=$(kube get job "$SEED_JOB" -n "$TESTENV_NAMESPACE" --ignore-not-found \
  -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="HUGEDATA_GB")].value}')
if [ -n "$seeded" ] && [ "$seeded" != "$TESTENV_HUGEDATA_GB" ]; then
  die "the seed Job already ran with TESTENV_HUGEDATA_GB=$seeded (a Job cannot be changed): run \`make undeploy-testenv\` first to seed again"
fi

say "PostgreSQL, MariaDB and MinIO in namespace $TESTENV_NAMESPACE"
render "$(manifest 00-namespace.yaml)" "$(manifest 10-postgresql.yaml)" "$(manifest 11-mariadb.yaml)" "$(manifest 20-minio.yaml)" | kube apply -f -
kube rollout status -n "$TESTENV_NAMESPACE" statefulset/postgres --timeout="${wait_timeout}s"
kube rollout status -n "$TESTENV_NAMESPACE" statefulset/mariadb --timeout="${wait_timeout}s"
kube rollout status -n "$TESTENV_NAMESPACE" deployment/minio --timeout="${wait_timeout}s"

say "the seed Jobs (database $SEED_DATABASE on PostgreSQL and on MariaDB) and the bucket Job"
{
  seed_configmap
  printf -- '---\n'
  mariadb_seed_configmap
  printf -- '---\n'
  render "$(manifest 30-seed-job.yaml)" "$(manifest 31-bucket-job.yaml)" "$(manifest 32-mariadb-seed-job.yaml)"
} | kube apply -f -
wait_job "$BUCKET_JOB" "$wait_timeout"
wait_job "$SEED_JOB" "$((wait_timeout + 900 * TESTENV_HUGEDATA_GB))"
wait_job "$MARIADB_SEED_JOB" "$wait_timeout"

say "MinIO keys in $CONTROLLER_NAMESPACE, storage class $STORAGE_CLASS, DatabaseBackups $TESTENV_NAMESPACE/$BACKUP_NAME, $TESTENV_NAMESPACE/$MARIADB_BACKUP_NAME and $TESTENV_NAMESPACE/$PITR_BACKUP_NAME"
render "$(manifest 40-controller-secret.yaml)" "$(manifest 50-storage-class.yaml)" "$(manifest 60-database-backup.yaml)" \
  "$(manifest 61-mariadb-backup.yaml)" "$(manifest 62-database-backup-pitr.yaml)" | kube apply -f -
wait_runner "$BACKUP_NAME" "$RUNNER_SELECTOR"
wait_runner "$MARIADB_BACKUP_NAME" "$MARIADB_RUNNER_SELECTOR"
wait_runner "$PITR_BACKUP_NAME" "$PITR_RUNNER_SELECTOR"
say "all three runners are up: make force-local-backup, make force-local-pitr-restore, make testenv-status (docs/testenv-minikube.md: MariaDB backup and restore)"
