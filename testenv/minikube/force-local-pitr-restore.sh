#!/usr/bin/env bash
# make force-local-pitr-restore: a point-in-time recovery of the testenv's PostgreSQL server
# from DatabaseBackup shop-pitr (physical: base backups and continuous WAL archiving), the
# way docs/postgresql-physical.md ("In Kubernetes") describes it, checked with marker rows:
#
# 1. Waits until the runner of shop-pitr (found by its labels) reports its WAL archiver
#    streaming, and takes a base backup (backup-runner backup) when none of the server's
#    current timeline is stored (TESTENV_PITR_BASE_BACKUP=always: every time).
# 2. Commits rows of phase `before` into table pitr_markers of database testenv_meta; T is
#    the server's clock_timestamp() after that commit (rounded up to the millisecond, which
#    is what --to-time reads). A few seconds later it commits rows of phase `after`.
# 3. Waits until the archive reaches past the `after` commit (backup-runner list -o json:
#    a location's recoverable stretch starts at or before T and ends after it).
# 4. Scales StatefulSet postgres to 0 and waits for its pod to be gone, then runs Pod
#    testenv-pitr-restore: the runner Deployment's image, environment and config Secret, the
#    server's PVC, as the postgres image's user (999), running
#    `restore --to-time T --data-dir PGDATA --force --start -o json`; prints its log and
#    deletes it.
# 5. Scales PostgreSQL back to 1, waits until it is ready, and checks that this run's
#    `before` rows are there and its `after` rows are not. Exits 1 otherwise.
#
# Every wait ends after TESTENV_WAIT_TIMEOUT seconds (default 300), the restore Pod's after
# TESTENV_RESTORE_TIMEOUT (default 1800). When the restore fails, PostgreSQL stays scaled to
# 0: a server must not start on a data directory a restore left part way.
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

wait_timeout=${TESTENV_WAIT_TIMEOUT:-300}
restore_timeout=${TESTENV_RESTORE_TIMEOUT:-1800}
base_backup=${TESTENV_PITR_BASE_BACKUP:-auto}
case "$base_backup" in
  auto | always) ;;
  *) die "TESTENV_PITR_BASE_BACKUP must be auto or always, not \"$base_backup\"" ;;
esac
NODE=${NODE:-node}
readonly RESTORE_POD=testenv-pitr-restore
readonly RESTORE_CONTAINER=restore
# Seconds between the commit of the `before` rows and that of the `after` rows.
readonly PHASE_GAP=3

# The runner's JSON (-o json), read with Node.js, which the repository needs anyway.
# json_query MODE [ARGS...] <JSON prints one line:
#   archiver            the wal-archiver service in `status`: "STATE RECEIVING TIMELINE", or
#                       "none" when the runner archives no WAL
#   base-backup TLI     the newest physical base backup of timeline TLI in `list`:
#                       "ID CONSISTENT_AT", or nothing
#   reach T AFTER       in `list`, the recoverable stretch (any location) starting at or
#                       before T that ends last: "ok|short UNTIL LOCATION" (ok: it ends at or
#                       after AFTER), or "none"
#   outcome             what a restore's JSON (within its pod's log) says it reached
# "error: CODE: MESSAGE" (exit code 3) when the runner answered with an error, and
# "unparsable" when the input is no JSON.
JSON_QUERY_JS=$(
  cat <<'JS'
const [mode, ...args] = process.argv.slice(1);
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const text = Buffer.concat(chunks).toString('utf8');
  const parse = (t) => { try { return JSON.parse(t); } catch { return undefined; } };
  const ms = (s) => Date.parse(s);
  if (mode === 'outcome') {
    // The result is the indented object from a line "{" to a line "}"; log lines are one line each.
    const lines = text.split('\n');
    const start = lines.indexOf('{');
    const end = lines.lastIndexOf('}');
    const r = start >= 0 && end > start ? parse(lines.slice(start, end + 1).join('\n')) : undefined;
    const rec = r?.dataDirectory?.recovered;
    if (r?.error) console.log(`the restore failed: ${r.error.code}: ${r.error.message}`);
    else if (rec) {
      console.log(`reached: the last transaction replayed committed at ${rec.lastTransactionAt ?? '(none after the base backup)'}, the first one left out at ${rec.firstExcludedAt ?? '(none)'}; promoted onto timeline ${rec.timeline ?? '?'}`);
      if (rec.archiveEndedBeforeTarget) console.log("warning: the archive held no commit after the target, so the recovery ran to the archive's end: the absence of the 'after' rows shows less than it should");
    } else console.log('unparsable');
    return;
  }
  const j = parse(text);
  if (j === undefined || j === null) return console.log('unparsable');
  if (j.error) {
    process.exitCode = 3;
    return console.log(`error: ${j.error.code}: ${j.error.message}`);
  }
  if (mode === 'archiver') {
    const s = (j.services ?? []).find((x) => x.name === 'wal-archiver');
    return console.log(s ? `${s.state} ${s.facts?.receiving === true} ${s.facts?.timeline ?? ''}`.trim() : 'none');
  }
  if (mode === 'base-backup') {
    const base = (j.backups ?? []).filter((b) => b.manifest?.engine?.format === 'pg_basebackup-tar' && String(b.manifest.engine.position?.timeline) === args[0]).at(-1);
    return console.log(base ? `${base.id} ${base.manifest.consistentAt}` : '');
  }
  if (mode === 'reach') {
    const [at, after] = args.map(ms);
    let best;
    for (const loc of j.recovery ?? []) {
      for (const s of loc.stretches ?? []) if (ms(s.from) <= at && (!best || ms(s.until) > ms(best.until))) best = { ...s, location: loc.location };
    }
    return console.log(best ? `${ms(best.until) >= after ? 'ok' : 'short'} ${best.until} ${best.location}` : 'none');
  }
  console.log('unparsable');
});
JS
)
json_query() { "$NODE" -e "$JSON_QUERY_JS" "$@"; }

# runner_json POD ARGS...: the output of backup-runner ARGS -o json in the runner container
# (nothing when it does not answer; its exit code is not ours: list says 3 when a location
# could not be read, and still answers).
runner_json() {
  local pod=$1
  shift
  kube exec -n "$TESTENV_NAMESPACE" "$pod" -c "$RUNNER_CONTAINER" -- backup-runner "$@" -o json 2>/dev/null || true
}

# poll SECONDS WHAT COMMAND...: COMMAND every 5 s until it succeeds; fails after SECONDS.
poll() {
  local timeout=$1 what=$2 start=$SECONDS
  shift 2
  say "waiting until $what (up to ${timeout}s)"
  until "$@"; do
    if ((SECONDS - start >= timeout)); then return 1; fi
    sleep 5
  done
}

need_kube
need "$NODE" 'install Node.js (https://nodejs.org/; the repository builds with it), or set NODE: it reads the runner'"'"'s JSON'
pod=$(live_pod "$PITR_RUNNER_SELECTOR" "$PITR_BACKUP_NAME runner" ", and \`make testenv-status\` to see why")

# --- 1. WAL streaming, and a base backup of the current timeline ------------------------
archiver=''
timeline=''
archiver_streaming() {
  local state receiving
  archiver=$(runner_json "$pod" status | json_query archiver)
  [ "$archiver" != none ] ||
    die "the runner of $PITR_BACKUP_NAME runs no WAL archiver: DatabaseBackup $PITR_BACKUP_NAME must have mode: physical with WAL archiving (manifests/62-database-backup-pitr.yaml)"
  read -r state receiving timeline <<<"$archiver"
  [ "$state" = running ] && [ "$receiving" = true ] && [ -n "${timeline:-}" ]
}
if ! poll "$wait_timeout" "the runner of $PITR_BACKUP_NAME (pod $pod) streams WAL" archiver_streaming; then
  runner_exec "$pod" status || true
  die "the runner of $PITR_BACKUP_NAME reports no WAL streaming after ${wait_timeout}s (wal-archiver: ${archiver:-no answer}); its status is above, its log in \`kubectl --context $KUBE_CONTEXT -n $TESTENV_NAMESPACE logs -l $PITR_RUNNER_SELECTOR\`, and the DatabaseBackup's condition PITRReady in \`make testenv-status\`"
fi
say "the WAL archiver streams timeline $timeline of the server"

base=$(runner_json "$pod" list | json_query base-backup "$timeline") || die "backup-runner list answered $base"
if [ "$base_backup" = always ] || [ -z "$base" ]; then
  if [ -z "$base" ]; then say "no base backup of timeline $timeline is stored: taking one"; else say "TESTENV_PITR_BASE_BACKUP=always: taking a base backup"; fi
  rc=0
  runner_exec "$pod" backup || rc=$?
  [ "$rc" -eq 0 ] || die "the base backup failed with exit code $rc (its output above; README.md lists the exit codes)"
  base=$(runner_json "$pod" list | json_query base-backup "$timeline") || die "backup-runner list answered $base"
  [ -n "$base" ] || die "the runner lists no base backup of timeline $timeline after taking one: \`make testenv-status\` shows what it holds"
fi
read -r base_id base_at <<<"$base"
say "base backup $base_id (consistent at $base_at) on timeline $timeline"

# --- 2. marker rows before and after the target instant ---------------------------------
run_id="$(date -u +%Y%m%dT%H%M%SZ)-$$"
# commit_markers PHASE: commits three rows of PHASE for this run; prints the server's clock
# after the commit, rounded up to the millisecond, as RFC 3339 in UTC.
commit_markers() {
  local at
  at=$(pg_psql -At -d "$META_DATABASE" -v run="$run_id" -v phase="$1" <<'SQL'
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS pitr_markers (
  run          text NOT NULL,
  phase        text NOT NULL CHECK (phase IN ('before', 'after')),
  n            int NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (run, phase, n)
);
INSERT INTO pitr_markers (run, phase, n) SELECT :'run', :'phase', n FROM generate_series(1, 3) AS n;
SELECT to_char(date_trunc('milliseconds', clock_timestamp()) AT TIME ZONE 'UTC' + interval '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
SQL
  ) || die "committing the '$1' rows into $META_DATABASE.pitr_markers failed (psql's message above)"
  [[ $at =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ ]] ||
    die "the server's clock after the '$1' rows is not an RFC 3339 time: \"$at\""
  printf '%s\n' "$at"
}
target=$(commit_markers before)
say "run $run_id: 3 rows of phase 'before' committed into $META_DATABASE.pitr_markers; the target T is $target (the server's clock after that commit)"
sleep "$PHASE_GAP"
after=$(commit_markers after)
say "3 rows of phase 'after' committed by $after: a recovery to T must leave them out"

# --- 3. the archive reaches past the 'after' commit --------------------------------------
reach=''
archive_reaches() {
  reach=$(runner_json "$pod" list | json_query reach "$target" "$after")
  [[ $reach == ok\ * ]]
}
if ! poll "$wait_timeout" "the WAL archive of $PITR_BACKUP_NAME reaches from a base backup before $target to after $after" archive_reaches; then
  runner_exec "$pod" list || true
  die "the WAL archive does not reach past $after after ${wait_timeout}s (the stretch from a base backup before T: ${reach:-no answer}); the runner's list is above, with any gaps; \`make testenv-status\` shows its WAL archiving"
fi
read -r _ reach_until reach_location <<<"$reach"
say "location $reach_location can recover from a base backup before T to $reach_until"

# --- 4. the restore Pod, with PostgreSQL scaled down --------------------------------------
# What the restore Pod needs, read before the server goes: from the PostgreSQL pod its data
# directory (PGDATA), the mount that holds it and that mount's PVC; from the runner
# Deployment (by its labels) its image, environment and config Secret.
pg=$(postgres_pod)
pg_spec() { kube get pod "$pg" -n "$TESTENV_NAMESPACE" -o "jsonpath=$1"; }
data_dir=$(pg_spec "{.spec.containers[?(@.name==\"$POSTGRES_CONTAINER\")].env[?(@.name==\"PGDATA\")].value}")
data_mount=$(pg_spec "{.spec.containers[?(@.name==\"$POSTGRES_CONTAINER\")].volumeMounts[?(@.name==\"data\")].mountPath}")
claim=$(pg_spec '{.spec.volumes[?(@.name=="data")].persistentVolumeClaim.claimName}')
[[ -n $claim && -n $data_mount && $data_dir == "$data_mount"/* ]] ||
  die "pod $pg has no PGDATA below a mounted PVC named data (PGDATA \"$data_dir\", mount \"$data_mount\", claim \"$claim\"): manifests/10-postgresql.yaml sets both"

deployment=$(kube get deployments -n "$TESTENV_NAMESPACE" -l "$PITR_RUNNER_SELECTOR" -o jsonpath='{.items[0].metadata.name}')
[ -n "$deployment" ] || die "no runner Deployment with labels $PITR_RUNNER_SELECTOR: run \`make deploy-testenv\`"
runner_spec() { kube get deployment "$deployment" -n "$TESTENV_NAMESPACE" -o "jsonpath=$1"; }
image=$(runner_spec "{.spec.template.spec.containers[?(@.name==\"$RUNNER_CONTAINER\")].image}")
pull_policy=$(runner_spec "{.spec.template.spec.containers[?(@.name==\"$RUNNER_CONTAINER\")].imagePullPolicy}")
env_json=$(runner_spec "{.spec.template.spec.containers[?(@.name==\"$RUNNER_CONTAINER\")].env}")
config_dir=$(runner_spec "{.spec.template.spec.containers[?(@.name==\"$RUNNER_CONTAINER\")].volumeMounts[?(@.name==\"config\")].mountPath}")
config_secret=$(runner_spec '{.spec.template.spec.volumes[?(@.name=="config")].secret.secretName}')
[[ -n $image && -n $config_dir && -n $config_secret && $env_json == \[* ]] ||
  die "Deployment $deployment has no container $RUNNER_CONTAINER with an image, an environment and the config volume (image \"$image\", config \"$config_secret\" at \"$config_dir\")"

# The Pod of docs/postgresql-physical.md "In Kubernetes", as YAML (JSON is YAML too: the
# runner's environment goes in as kubectl printed it).
restore_pod() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $RESTORE_POD
  namespace: $TESTENV_NAMESPACE
  labels:
    app.kubernetes.io/name: $RESTORE_POD
    app.kubernetes.io/part-of: dbbackup-testenv
spec:
  restartPolicy: Never
  # Only the runner's daemon writes the DatabaseBackup's status: the restore needs no API access.
  automountServiceAccountToken: false
  # The postgres image's user: the restored files are the server's, and the server that
  # --start runs on them is too. fsGroup lets it read the config Secret's files (mode 0440).
  securityContext:
    runAsNonRoot: true
    runAsUser: $POSTGRES_UID
    runAsGroup: $POSTGRES_UID
    fsGroup: $POSTGRES_UID
    seccompProfile: { type: RuntimeDefault }
  containers:
    - name: $RESTORE_CONTAINER
      image: "$image"
      imagePullPolicy: ${pull_policy:-IfNotPresent}
      args: [restore, --to-time, "$target", --data-dir, "$data_dir", --force, --start, -o, json]
      # The runner's own: BACKUP_RUNNER_CONFIG and the database password.
      env: $env_json
      resources:
        requests: { cpu: 100m, memory: 256Mi }
        limits: { memory: 1Gi }
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: { drop: [ALL] }
      # The filesystem location's PVC is not mounted: its files belong to the runner's user
      # (mode 0600). Without a directory at its path that location lists as empty, and the
      # restore and the server's restore_command (wal-fetch) read MinIO.
      volumeMounts:
        - { name: data, mountPath: "$data_mount" }
        - { name: config, mountPath: "$config_dir", readOnly: true }
        - { name: tmp, mountPath: /tmp }
  volumes:
    - { name: data, persistentVolumeClaim: { claimName: "$claim" } }
    - { name: config, secret: { secretName: "$config_secret", defaultMode: 288 } }
    - { name: tmp, emptyDir: {} }
YAML
}

say "scaling StatefulSet $POSTGRES_STATEFULSET to 0: no server may run on a directory being restored"
kube scale statefulset "$POSTGRES_STATEFULSET" -n "$TESTENV_NAMESPACE" --replicas=0
postgres_gone() { [ -z "$(kube get pods -n "$TESTENV_NAMESPACE" -l "$POSTGRES_SELECTOR" -o name)" ]; }
poll "$wait_timeout" "the PostgreSQL pod is gone" postgres_gone ||
  die "the PostgreSQL pod is still there after ${wait_timeout}s (kubectl --context $KUBE_CONTEXT -n $TESTENV_NAMESPACE get pods -l $POSTGRES_SELECTOR); nothing was restored: \`kubectl --context $KUBE_CONTEXT -n $TESTENV_NAMESPACE scale statefulset/$POSTGRES_STATEFULSET --replicas=1\` brings it back"

kube delete pod "$RESTORE_POD" -n "$TESTENV_NAMESPACE" --ignore-not-found --wait=true
say "Pod $RESTORE_POD: image $image, PVC $claim at $data_mount, config Secret $config_secret, uid $POSTGRES_UID: restore --to-time $target --data-dir $data_dir --force --start"
restore_pod | kube create -f -

restore_state=''
restore_finished() {
  restore_state=$(kube get pod "$RESTORE_POD" -n "$TESTENV_NAMESPACE" -o jsonpath='{.status.phase} {.status.containerStatuses[0].state.waiting.reason}')
  case "$restore_state" in
    Succeeded* | Failed* | *ErrImagePull* | *ImagePullBackOff* | *ErrImageNeverPull* | *InvalidImageName* | *CreateContainerConfigError*) return 0 ;;
  esac
  return 1
}
left_down="PostgreSQL stays scaled to 0: a server must not start on a data directory a restore left part way (docs/postgresql-physical.md, \"A failed restore\" says what the log means). When the log says the directory is unchanged, \`kubectl --context $KUBE_CONTEXT -n $TESTENV_NAMESPACE scale statefulset/$POSTGRES_STATEFULSET --replicas=1\` starts it again"
if ! poll "$restore_timeout" "Pod $RESTORE_POD has finished" restore_finished; then
  kube logs -n "$TESTENV_NAMESPACE" "pod/$RESTORE_POD" -c "$RESTORE_CONTAINER" --tail=40 >&2 || true
  die "Pod $RESTORE_POD has not finished after ${restore_timeout}s (${restore_state:-no status}; the end of its log above). It is left running: kubectl --context $KUBE_CONTEXT -n $TESTENV_NAMESPACE logs -f pod/$RESTORE_POD. $left_down"
fi
exit_code=$(kube get pod "$RESTORE_POD" -n "$TESTENV_NAMESPACE" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')
say "the log of Pod $RESTORE_POD ($restore_state, exit code ${exit_code:-none}):"
log=$(kube logs -n "$TESTENV_NAMESPACE" "pod/$RESTORE_POD" -c "$RESTORE_CONTAINER" 2>&1 || true)
printf '%s\n' "$log"
outcome=$(printf '%s\n' "$log" | json_query outcome || true)
if [ -n "$outcome" ] && [ "$outcome" != unparsable ]; then printf '%s\n' "$outcome" | sed 's/^/  /'; fi
kube delete pod "$RESTORE_POD" -n "$TESTENV_NAMESPACE" --ignore-not-found --wait=true
[[ $restore_state == Succeeded* && $exit_code == 0 ]] ||
  die "the restore did not succeed (${restore_state:-no status}, exit code ${exit_code:-none}; its log above). $left_down"

# --- 5. PostgreSQL again, on the restored directory ---------------------------------------
say "scaling StatefulSet $POSTGRES_STATEFULSET to 1: the server starts the promoted cluster"
kube scale statefulset "$POSTGRES_STATEFULSET" -n "$TESTENV_NAMESPACE" --replicas=1
kube rollout status -n "$TESTENV_NAMESPACE" "statefulset/$POSTGRES_STATEFULSET" --timeout="${wait_timeout}s" ||
  die "PostgreSQL is not ready after ${wait_timeout}s on the restored directory: kubectl --context $KUBE_CONTEXT -n $TESTENV_NAMESPACE logs statefulset/$POSTGRES_STATEFULSET"

say "the marker rows of run $run_id after the recovery to $target:"
pg_psql -d "$META_DATABASE" -v run="$run_id" -P footer=off <<'SQL' || true
SELECT phase, n, committed_at FROM pitr_markers WHERE run = :'run' ORDER BY committed_at, n;
SQL
counts=$(pg_psql -At -d "$META_DATABASE" -v run="$run_id" <<'SQL'
SELECT count(*) FILTER (WHERE phase = 'before') || ' ' || count(*) FILTER (WHERE phase = 'after') FROM pitr_markers WHERE run = :'run';
SQL
) || die "reading $META_DATABASE.pitr_markers on the restored server failed (psql's message above)"
read -r before_rows after_rows <<<"$counts"
if [ "${before_rows:-}" != 3 ] || [ "${after_rows:-}" != 0 ]; then
  die "the recovery to $target is wrong: of run $run_id the server holds ${before_rows:-?} of 3 'before' rows (committed before T: all expected) and ${after_rows:-?} of 3 'after' rows (committed after T: none expected)"
fi
say "recovered to $target: all 3 'before' rows are there, none of the 'after' rows. The runner of $PITR_BACKUP_NAME streams the server's new timeline once it has reconnected (make testenv-status); the next run takes a base backup of that timeline first"
