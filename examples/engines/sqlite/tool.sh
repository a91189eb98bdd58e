#!/usr/bin/env bash
# An engine tool for SQLite database files: the complete example of the
# engine contract in docs/engines.md, tested as written
# (test/integration/command-engine.test.ts).
#
# Called as: tool.sh <probe|backup|restore|inspect> <request.json>
#   - the request (JSON, mode 0600) names the target; for SQLite
#     target.database is the path of the database file;
#   - the result is one JSON object written to file descriptor 3;
#   - backup writes the dump to stdout, restore reads it from stdin;
#   - stderr lines go to the runner's log; exit 0 means success.
set -euo pipefail

verb=${1:?usage: tool.sh <verb> <request.json>}
request=${2:?usage: tool.sh <verb> <request.json>}

# The result on descriptor 3, and a failure with a code of the contract.
result() { printf '%s\n' "$1" >&3; }
fail() {
  local code=$1 state=$2; shift 2
  echo "$*" >&2
  jq -nc --arg code "$code" --arg message "$*" --arg state "$state" \
    '{error: {code: $code, message: $message}} + (if $state == "" then {} else {target: {state: $state}} end)' >&3
  exit 1
}

field() { jq -er "$1 // empty" "$request"; }
work=$(field .workDir)
timeout_ms=$(jq -r '.config.busyTimeoutMs // 5000' "$request")
# restore and inspect name the file to write; the other verbs read the configured one.
db=$(jq -r '.restore.database // .target.database // empty' "$request")
[ -n "$db" ] || fail CONFIG_INVALID "" "target.database (the database file's path) is required"
# The path is used inside sqlite3 dot-commands: no quotes, no newlines.
case $db in *"'"* | *$'\n'*) fail CONFIG_INVALID "" "the database path must not contain a quote or a newline: $db" ;; esac

sql() { sqlite3 -bail -cmd ".timeout $timeout_ms" "$@"; }
version() { sqlite3 --version | cut -d' ' -f1; }
holds_data() { [ -s "$1" ] && [ "$(sql "$1" 'SELECT count(*) FROM sqlite_schema')" != 0 ]; }

case $verb in
  probe)
    [ -f "$db" ] || fail DB_NOT_FOUND "" "no database file at $db"
    sql "$db" 'PRAGMA quick_check' | grep -qx ok || fail DB_QUERY_FAILED "" "$db fails PRAGMA quick_check"
    v=$(version)
    result "$(jq -nc --arg v "$v" '{serverVersion: $v, toolVersion: $v}')"
    ;;
  backup)
    # The online backup API: a consistent copy, taken while writers go on.
    sql "$db" ".backup '$work/copy.db'"
    cat "$work/copy.db"
    # The copy is consistent as of its end: an instant at or after it is a safe bound.
    result "$(jq -nc --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '{consistentAt: $at}')"
    ;;
  inspect)
    exists=false hasData=false
    if [ -e "$db" ]; then exists=true; fi
    if holds_data "$db"; then hasData=true; fi
    result "$(jq -nc --argjson e "$exists" --argjson d "$hasData" '{exists: $e, hasData: $d}')"
    ;;
  restore)
    cat > "$work/in.db"
    sql "$work/in.db" 'PRAGMA integrity_check' | grep -qx ok || fail RESTORE_FAILED unchanged "the backup is not an intact SQLite database"
    if [ "$(jq -r '.restore.force' "$request")" != true ] && holds_data "$db"; then
      fail TARGET_NOT_EMPTY unchanged "$db already holds tables; nothing was changed. Use --force to replace it"
    fi
    # .restore replaces the whole file's contents in one transaction: a failure leaves it as it was.
    sql "$db" ".restore '$work/in.db'" || fail RESTORE_FAILED unchanged "sqlite3 .restore failed; $db is unchanged"
    result '{}'
    ;;
  *)
    fail CONFIG_INVALID "" "unknown verb $verb"
    ;;
esac
