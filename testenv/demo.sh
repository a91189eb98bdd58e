#!/usr/bin/env bash
# `make demo`: the whole job on one machine, no cluster and no cloud account.
set -euo pipefail
cd "$(dirname "$0")/.."
exec npx --no-install tsx testenv/demo.ts "$@"
