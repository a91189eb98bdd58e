# shellcheck shell=bash disable=SC2034  # the names are used by the scripts that source this file
# Sourced by the testenv/minikube/*.sh scripts, never run: the names of the minikube
# test environment, tool checks that say what to install, kubectl pinned to the
# minikube context, the manifest parameters and their substitution.
#
# Invariants:
# - Every kubectl call names the context ($TESTENV_KUBE_CONTEXT, default: the minikube
#   profile's), so these scripts never act on whatever cluster happens to be current.
# - Pods are found by their labels, never by a pod name: the runners by the labels the
#   controller renders (controller/names.ts commonLabels), PostgreSQL and MariaDB by the
#   testenv's.

MINIKUBE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$MINIKUBE_DIR/../.." && pwd)

readonly TESTENV_NAMESPACE=dbbackup-testenv
readonly CONTROLLER_NAMESPACE=db-backup-controller
readonly HELM_RELEASE=db-backup-controller
readonly BACKUP_NAME=shop
# The DatabaseBackup of the MariaDB server (its database is $SEED_DATABASE too).
readonly MARIADB_BACKUP_NAME=shop-mariadb
# The physical DatabaseBackup of the PostgreSQL server: base backups and continuous WAL archiving
# (manifests/62-database-backup-pitr.yaml), restored to an instant by force-local-pitr-restore.sh.
readonly PITR_BACKUP_NAME=shop-pitr
readonly STORAGE_CLASS=dbbackup-testenv
readonly CONTROLLER_SECRET=testenv-minio
readonly SEED_DATABASE=shop
readonly META_DATABASE=testenv_meta
readonly SEED_JOB=testenv-seed
readonly MARIADB_SEED_JOB=testenv-seed-mariadb
readonly BUCKET_JOB=testenv-bucket
# The runner's Deployment and pods carry these (controller/names.ts: RUNNER_APP, LABEL_BACKUP).
readonly RUNNER_SELECTOR="app.kubernetes.io/name=backup-runner,dbbackup.io/database-backup=$BACKUP_NAME"
readonly MARIADB_RUNNER_SELECTOR="app.kubernetes.io/name=backup-runner,dbbackup.io/database-backup=$MARIADB_BACKUP_NAME"
readonly PITR_RUNNER_SELECTOR="app.kubernetes.io/name=backup-runner,dbbackup.io/database-backup=$PITR_BACKUP_NAME"
# Every runner of the testenv.
readonly RUNNERS_SELECTOR="app.kubernetes.io/name=backup-runner,dbbackup.io/database-backup in ($BACKUP_NAME,$MARIADB_BACKUP_NAME,$PITR_BACKUP_NAME)"
readonly RUNNER_CONTAINER=runner
readonly POSTGRES_SELECTOR="app.kubernetes.io/name=postgresql,app.kubernetes.io/instance=testenv"
readonly POSTGRES_CONTAINER=postgresql
readonly POSTGRES_STATEFULSET=postgres
# The postgres image's postgres user and group: the owner of its data directory.
readonly POSTGRES_UID=999
readonly MARIADB_SELECTOR="app.kubernetes.io/name=mariadb,app.kubernetes.io/instance=testenv"
readonly MARIADB_CONTAINER=mariadb

MINIKUBE_PROFILE=${MINIKUBE_PROFILE:-minikube}
KUBE_CONTEXT=${TESTENV_KUBE_CONTEXT:-$MINIKUBE_PROFILE}
KUBECTL=${KUBECTL:-kubectl}

readonly KUBECTL_HINT='install kubectl (https://kubernetes.io/docs/tasks/tools/; Debian: apt-get install kubernetes-client), or set KUBECTL'

say() { printf '==> %s\n' "$*"; }
die() {
  printf 'testenv: %s\n' "$*" >&2
  exit 1
}

# need BINARY HINT: exits with the hint when BINARY is not on PATH.
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

# kubectl is there and knows the minikube context.
need_kube() {
  need "$KUBECTL" "$KUBECTL_HINT"
  if ! "$KUBECTL" config get-contexts -o name 2>/dev/null | grep -qxF -- "$KUBE_CONTEXT"; then
    die "kubectl has no context \"$KUBE_CONTEXT\": start the cluster with \`minikube start -p $MINIKUBE_PROFILE\` (it writes the context), or set TESTENV_KUBE_CONTEXT"
  fi
}

kube() { "$KUBECTL" --context "$KUBE_CONTEXT" "$@"; }

# first_live_pod SELECTOR: the first Running pod matching SELECTOR in the testenv
# namespace that is not being deleted; empty when there is none.
first_live_pod() {
  kube get pods -n "$TESTENV_NAMESPACE" -l "$1" --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.metadata.deletionTimestamp}{"\n"}{end}' |
    awk -F '\t' '$1 != "" && $2 == "" { print $1; exit }'
}

# live_pod SELECTOR WHAT [MORE]: first_live_pod, or exits saying which pod is missing.
live_pod() {
  local pod
  pod=$(first_live_pod "$1")
  [ -n "$pod" ] || die "no running $2 pod with labels $1 in namespace $TESTENV_NAMESPACE (context $KUBE_CONTEXT): run \`make deploy-testenv\`${3:-}"
  printf '%s\n' "$pod"
}

# The runner pod of DatabaseBackup $BACKUP_NAME, and the PostgreSQL pod, by label.
runner_pod() { live_pod "$RUNNER_SELECTOR" runner ", and \`make testenv-status\` to see why"; }
postgres_pod() { live_pod "$POSTGRES_SELECTOR" PostgreSQL; }

# runner_exec POD ARGS...: backup-runner ARGS in the runner container; its exit code is ours.
runner_exec() {
  local pod=$1
  shift
  say "kubectl exec -n $TESTENV_NAMESPACE $pod -c $RUNNER_CONTAINER -- backup-runner $*"
  kube exec -n "$TESTENV_NAMESPACE" "$pod" -c "$RUNNER_CONTAINER" -- backup-runner "$@"
}

# pg_psql ARGS...: psql as the superuser inside the PostgreSQL pod (local socket); stdin is passed on.
pg_psql() {
  local pod
  pod=$(postgres_pod)
  kube exec -i -n "$TESTENV_NAMESPACE" "$pod" -c "$POSTGRES_CONTAINER" -- psql -X -q -v ON_ERROR_STOP=1 -U postgres "$@"
}

# --- manifest parameters -------------------------------------------------------------
# manifests/*.yaml are plain YAML except for these ${NAME} placeholders; render()
# replaces exactly these names and nothing else (the Jobs' $(VAR) and $VAR stay).
readonly TEMPLATE_VARS=(
  TESTENV_POSTGRES_IMAGE TESTENV_MARIADB_IMAGE TESTENV_MINIO_IMAGE TESTENV_MC_IMAGE TESTENV_HUGEDATA_GB
  TESTENV_POSTGRES_STORAGE TESTENV_MARIADB_STORAGE TESTENV_MINIO_STORAGE TESTENV_BACKUPS_STORAGE
)

# Sets every TEMPLATE_VARS entry from the environment or its default.
# TESTENV_HUGEDATA=true seeds TESTENV_HUGEDATA_GB (default 4) GB more into PostgreSQL and
# sizes the volumes for it; the MariaDB seed is always the small one.
testenv_params() {
  local gb
  case "${TESTENV_HUGEDATA:-false}" in
    true | 1 | yes)
      gb=${TESTENV_HUGEDATA_GB:-4}
      [[ $gb =~ ^[1-9][0-9]*$ ]] || die "TESTENV_HUGEDATA_GB must be a whole number of GB (at least 1), not \"$gb\""
      ;;
    false | 0 | no | '') gb=0 ;;
    *) die "TESTENV_HUGEDATA must be true or false, not \"$TESTENV_HUGEDATA\"" ;;
  esac
  TESTENV_HUGEDATA_GB=$gb
  TESTENV_POSTGRES_IMAGE=${TESTENV_POSTGRES_IMAGE:-docker.io/library/postgres:16}
  TESTENV_MARIADB_IMAGE=${TESTENV_MARIADB_IMAGE:-docker.io/library/mariadb:10.11}
  TESTENV_MINIO_IMAGE=${TESTENV_MINIO_IMAGE:-quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z}
  TESTENV_MC_IMAGE=${TESTENV_MC_IMAGE:-quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z}
  # Data plus WAL; up to keepLast (4) backups in each location.
  TESTENV_POSTGRES_STORAGE=${TESTENV_POSTGRES_STORAGE:-$((2 + 2 * gb))Gi}
  # Data, redo log and binary log of the small seed.
  TESTENV_MARIADB_STORAGE=${TESTENV_MARIADB_STORAGE:-1Gi}
  TESTENV_MINIO_STORAGE=${TESTENV_MINIO_STORAGE:-$((2 + 5 * gb))Gi}
  TESTENV_BACKUPS_STORAGE=${TESTENV_BACKUPS_STORAGE:-$((2 + 5 * gb))Gi}
}

# render FILE...: the files with the parameters substituted, as one YAML stream.
render() {
  local f text var first=1
  for f in "$@"; do
    text=$(<"$f")
    for var in "${TEMPLATE_VARS[@]}"; do
      text=${text//"\${$var}"/"${!var}"}
    done
    if [[ $text == *"\${"* ]]; then
      die "$f: a \${...} placeholder is left after substitution; the parameters are: ${TEMPLATE_VARS[*]}"
    fi
    if [ "$first" -eq 0 ]; then printf -- '---\n'; fi
    printf '%s\n' "$text"
    first=0
  done
}

manifest() { printf '%s/manifests/%s\n' "$MINIKUBE_DIR" "$1"; }

# ConfigMap testenv-seed (the seed Job's scripts) from seed/, as YAML. Client-side only.
seed_configmap() {
  "$KUBECTL" create configmap "$SEED_JOB" -n "$TESTENV_NAMESPACE" --dry-run=client -o yaml \
    --from-file="$MINIKUBE_DIR/seed/seed.sh" \
    --from-file="$MINIKUBE_DIR/seed/seed.sql" \
    --from-file="$MINIKUBE_DIR/seed/hugedata.sql" \
    --from-file="$MINIKUBE_DIR/seed/checksums.sql"
}

# ConfigMap testenv-seed-mariadb (the MariaDB seed Job's scripts), the same way.
mariadb_seed_configmap() {
  "$KUBECTL" create configmap "$MARIADB_SEED_JOB" -n "$TESTENV_NAMESPACE" --dry-run=client -o yaml \
    --from-file="$MINIKUBE_DIR/seed/mariadb-seed.sh" \
    --from-file="$MINIKUBE_DIR/seed/mariadb-seed.sql" \
    --from-file="$MINIKUBE_DIR/seed/mariadb-checksums.sql"
}

# --- checksums -----------------------------------------------------------------------
# compare_checksums SEED NOW: both "table|rows|checksum" lines (seed/checksums.sql's
# output); prints one row per table and returns 1 unless every seeded table matches.
compare_checksums() {
  awk -F '|' -v seed="$1" -v now="$2" '
    BEGIN {
      n = split(seed, s, "\n")
      for (i = 1; i <= n; i++) if (split(s[i], f, "|") == 3) { names[++count] = f[1]; seedRows[f[1]] = f[2]; seedSum[f[1]] = f[3] }
      n = split(now, s, "\n")
      for (i = 1; i <= n; i++) if (split(s[i], f, "|") == 3) { nowRows[f[1]] = f[2]; nowSum[f[1]] = f[3]; if (!(f[1] in seedRows)) extra[f[1]] = 1 }
      fmt = "%-14s %10s %24s %10s %24s  %s\n"
      printf "%-14s %10s %24s %10s %24s\n", "table", "seed rows", "seed checksum", "rows now", "checksum now"
      bad = 0
      for (i = 1; i <= count; i++) {
        t = names[i]
        if (!(t in nowRows)) { printf fmt, t, seedRows[t], seedSum[t], "-", "-", "MISSING"; bad++; continue }
        ok = (nowRows[t] == seedRows[t] && nowSum[t] == seedSum[t])
        printf fmt, t, seedRows[t], seedSum[t], nowRows[t], nowSum[t], ok ? "ok" : "DIFFERENT"
        if (!ok) bad++
      }
      for (t in extra) printf fmt, t, "-", "-", nowRows[t], nowSum[t], "(not seeded)"
      if (count == 0) { print "no seed checksums recorded"; exit 1 }
      if (bad > 0) { printf "%d of %d seeded tables differ from the seed\n", bad, count; exit 1 }
      printf "all %d seeded tables match the seed\n", count
    }'
}
