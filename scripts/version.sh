#!/usr/bin/env bash
# Prints the version the images and the chart are built and published with, from
# `git describe --tags --always --dirty` (SemVer 2, also a valid image tag):
#
#   v1.2.3                    -> 1.2.3                      a release: HEAD is the tag, the tree is clean
#   v1.2.3-4-g56789ab         -> 0.0.0-v1.2.3-4-g56789ab    anything else is a 0.0.0 pre-release
#   v1.2.3-dirty              -> 0.0.0-v1.2.3-dirty
#   56789ab (no tag at all)   -> 0.0.0-g56789ab             the bare hash gets git's "g": an identifier of
#   56789ab-dirty             -> 0.0.0-g56789ab-dirty       digits only with a leading 0 is not SemVer
#
# Usage: scripts/version.sh [DESCRIBE]     DESCRIBE replaces the git call (tests, CI that knows better)
set -euo pipefail

die() { printf 'version.sh: %s\n' "$*" >&2; exit 1; }

if [[ $# -gt 0 ]]; then
  describe=$1
else
  describe=$(git -C "$(dirname "$0")/.." describe --tags --always --dirty) || die "git describe failed (not a git checkout?); set VERSION instead"
fi

if [[ $describe =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]]; then
  printf '%s\n' "${describe#v}"
  exit 0
fi

if [[ $describe =~ ^[0-9a-f]{4,40}(-dirty)?$ ]]; then
  describe="g$describe"
fi
prerelease=${describe//[^0-9A-Za-z.-]/-}

# SemVer 2 pre-release: dot-separated identifiers, none empty, numeric ones without a leading zero.
IFS=. read -ra identifiers <<<"$prerelease"
[[ ${#identifiers[@]} -gt 0 && $prerelease != .* && $prerelease != *. ]] || die "'$describe' gives no SemVer pre-release"
for id in "${identifiers[@]}"; do
  [[ -n $id ]] || die "'$describe' has an empty identifier"
  [[ ! $id =~ ^0[0-9]+$ ]] || die "'$describe' has the numeric identifier '$id' with a leading zero"
done

printf '0.0.0-%s\n' "$prerelease"
