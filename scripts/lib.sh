# shellcheck shell=bash
# Shared by scripts/build-images.sh and scripts/publish.sh (sourced, never run).
#
# Invariants:
# - Every command that builds, pushes or packages goes through `run`: with DRY_RUN=1 it is printed on stdout,
#   shell-quoted, one line per command, and not run (nothing else is written to stdout); progress goes to stderr.
# - A dry run checks no tools (docker, helm), so it works on any machine.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=$(basename "$0")
DOCKER=${DOCKER:-docker}
DRY_RUN=${DRY_RUN:-}

say() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
die() { say "$*"; exit 1; }
dry_run() { [[ -n $DRY_RUN && $DRY_RUN != 0 ]]; }

run() {
  if dry_run; then
    local quoted
    printf -v quoted '%q ' "$@"
    printf '%s\n' "${quoted% }"
  else
    "$@"
  fi
}

need_docker() {
  dry_run && return 0
  command -v "$DOCKER" >/dev/null 2>&1 ||
    die "$DOCKER is not installed: $1 needs a Docker engine (https://docs.docker.com/engine/install/). Where this project is developed none runs: there the images are checked statically only (make test runs test/unit/images.test.ts); DRY_RUN=1 prints the commands"
  "$DOCKER" info >/dev/null 2>&1 ||
    die "$DOCKER is installed but no Docker engine answers ('$DOCKER info' failed): start the daemon or point DOCKER_HOST at one; DRY_RUN=1 prints the commands"
}

# The version the images and the chart get: $VERSION, else scripts/version.sh (git describe).
image_version() {
  if [[ -n ${VERSION:-} ]]; then printf '%s\n' "$VERSION"; else bash "$ROOT/scripts/version.sh"; fi
}

# scripts/image-plan.mjs with the registry and image selection from the environment; extra arguments pass through.
image_plan() {
  node "$ROOT/scripts/image-plan.mjs" --registry "${IMAGE_REGISTRY:-}" --only "${IMAGES:-}" "$@"
}
