#!/usr/bin/env bash
# make force-local-backup: an immediate backup, run by the runner's daemon. The runner
# pod is found by its labels; the command waits, streams progress and exits with the
# runner's exit code (README.md, "The runner").
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

need_kube
pod=$(runner_pod)
runner_exec "$pod" backup
