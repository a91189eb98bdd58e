#!/usr/bin/env bash
# make deploy-testenv: PostgreSQL 16 and MinIO in namespace dbbackup-testenv, the seed
# and bucket Jobs, then the MinIO keys in the controller's namespace, the storage class
# and the DatabaseBackup; waits for each step and at last for the runner the controller
# deploys. Needs the controller and its CRDs (make deploy-local). Re-running it applies
# the same objects again (the seed Job runs once; make undeploy-testenv to re-seed).
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

conditions() {
  kube get databasebackup "$BACKUP_NAME" -n "$TESTENV_NAMESPACE" \
    -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2 || true
}

# The runner Deployment the controller creates, by label; exits with the DatabaseBackup's conditions when none comes.
wait_runner() {
  local start=$SECONDS name=''
  say "waiting for the controller to deploy the runner (Deployment with labels $RUNNER_SELECTOR)"
  while [ -z "$name" ]; do
    name=$(kube get deployments -n "$TESTENV_NAMESPACE" -l "$RUNNER_SELECTOR" -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
    if [ -z "$name" ]; then
      if ((SECONDS - start > wait_timeout)); then
        conditions
        die "no runner Deployment after ${wait_timeout}s; the DatabaseBackup's conditions are above (kubectl describe databasebackup -n $TESTENV_NAMESPACE $BACKUP_NAME)"
      fi
      sleep 3
    fi
  done
  if ! kube rollout status -n "$TESTENV_NAMESPACE" "deployment/$name" --timeout="${wait_timeout}s"; then
    kube get pods -n "$TESTENV_NAMESPACE" -l "$RUNNER_SELECTOR" -o wide >&2 || true
    conditions
    die "runner Deployment $name is not available (pods and conditions above; an ErrImagePull / ErrImageNeverPull means the runner image is not in minikube: make deploy-local)"
  fi
  say "runner $name is up: make force-local-backup, make testenv-status"
}

need_kube
testenv_params
say "context $KUBE_CONTEXT; TESTENV_HUGEDATA_GB=$TESTENV_HUGEDATA_GB (0: the small seed only)"
if ! kube get crd databasebackups.dbbackup.io databasebackupstorageclasses.dbbackup.io >/dev/null 2>&1; then
  die "the dbbackup.io CRDs are not installed in context $KUBE_CONTEXT: run \`make deploy-local\` first"
fi
kube get namespace "$CONTROLLER_NAMESPACE" >/dev/null 2>&1 ||
  die "namespace $CONTROLLER_NAMESPACE (the controller's) does not exist in context $KUBE_CONTEXT: run \`make deploy-local\` first"

seeded=$(kube get job "$SEED_JOB" -n "$TESTENV_NAMESPACE" --ignore-not-found \
  -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="HUGEDATA_GB")].value}')
if [ -n "$seeded" ] && [ "$seeded" != "$TESTENV_HUGEDATA_GB" ]; then
  die "the seed Job already ran with TESTENV_HUGEDATA_GB=$seeded (a Job cannot be changed): run \`make undeploy-testenv\` first to seed again"
fi

say "PostgreSQL and MinIO in namespace $TESTENV_NAMESPACE"
render "$(manifest 00-namespace.yaml)" "$(manifest 10-postgresql.yaml)" "$(manifest 20-minio.yaml)" | kube apply -f -
kube rollout status -n "$TESTENV_NAMESPACE" statefulset/postgres --timeout="${wait_timeout}s"
kube rollout status -n "$TESTENV_NAMESPACE" deployment/minio --timeout="${wait_timeout}s"

say "the seed Job (database $SEED_DATABASE) and the bucket Job"
{
  seed_configmap
  printf -- '---\n'
  render "$(manifest 30-seed-job.yaml)" "$(manifest 31-bucket-job.yaml)"
} | kube apply -f -
wait_job "$BUCKET_JOB" "$wait_timeout"
wait_job "$SEED_JOB" "$((wait_timeout + 900 * TESTENV_HUGEDATA_GB))"

say "MinIO keys in $CONTROLLER_NAMESPACE, storage class $STORAGE_CLASS, DatabaseBackup $TESTENV_NAMESPACE/$BACKUP_NAME"
render "$(manifest 40-controller-secret.yaml)" "$(manifest 50-storage-class.yaml)" "$(manifest 60-database-backup.yaml)" | kube apply -f -
wait_runner
