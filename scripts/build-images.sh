#!/usr/bin/env bash
# make images: `docker build` of every image in images/matrix.json, from the repository root (the build context;
# .dockerignore keeps it to the sources the Dockerfiles copy).
#
#   IMAGE_REGISTRY   registry and namespace of the tags (default: the matrix's, ghcr.io/db-backup-controller)
#   VERSION          the version in every tag and in the images' labels (default: scripts/version.sh)
#   REVISION         org.opencontainers.image.revision (default: git rev-parse HEAD)
#   SOURCE           org.opencontainers.image.source (default: the Dockerfiles' own, the upstream repository)
#   LOCAL_IMAGE      when set, every image also gets LOCAL_IMAGE/<repository>:[<engineVersion>-]LOCAL_IMAGE_TAG,
#   LOCAL_IMAGE_TAG  a stable local name (the minikube test environment loads those)
#   IMAGES           only these images (names from the matrix, e.g. 'controller runner-postgresql-16')
#   DOCKER           the docker command (default: docker)
#   DRY_RUN=1        print each docker command instead of running it
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_docker 'make images'
version=$(image_version)
revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
local_args=()
if [[ -n ${LOCAL_IMAGE:-} ]]; then
  local_args=(--local-registry "$LOCAL_IMAGE" --local-tag "${LOCAL_IMAGE_TAG:?LOCAL_IMAGE is set: set LOCAL_IMAGE_TAG too}")
fi
plan=$(image_plan --version "$version" ${local_args[@]+"${local_args[@]}"})

export DOCKER_BUILDKIT=1
while IFS=$'\t' read -r name dockerfile ref local_ref build_args; do
  args=(build --file "$dockerfile" --tag "$ref")
  [[ $local_ref == - ]] || args+=(--tag "$local_ref")
  if [[ $build_args != - ]]; then
    IFS=, read -ra pairs <<<"$build_args"
    for pair in "${pairs[@]}"; do args+=(--build-arg "$pair"); done
  fi
  args+=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision")
  [[ -z ${SOURCE:-} ]] || args+=(--build-arg "SOURCE=$SOURCE")
  say "building $name: $ref"
  run "$DOCKER" "${args[@]}" .
done <<<"$plan"
