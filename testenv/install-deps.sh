#!/usr/bin/env bash
# Installs the system packages the PostgreSQL engine, its tests and the
# benchmarks need: the PostgreSQL server (initdb, pg_ctl, postgres; used by
# testenv/postgres.ts), its client tools (psql, pg_dump, pg_restore), zstd,
# and age (the age command and age-keygen: the emergency decryption procedure
# of docs/encryption.md, tested as written).
#
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs once, only when something is missing. Non-interactive; run as root
# (Debian/Ubuntu):   bash testenv/install-deps.sh
set -euo pipefail

packages=(postgresql postgresql-client zstd age)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all present (${packages[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run this script as root (or with sudo)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
