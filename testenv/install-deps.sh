#!/usr/bin/env bash
# Installs the system packages the engines, their tests and the benchmarks
# need: the PostgreSQL server (initdb, pg_ctl, postgres; used by
# testenv/postgres.ts), its client tools (psql, pg_dump, pg_restore), the
# MariaDB server and client (mariadbd, mariadb-install-db, mariadb,
# mariadb-dump; used by testenv/mariadb.ts), the Redis server and redis-cli
# (testenv/redis.ts and the redis engine tool), etcd and etcdctl
# (testenv/etcd.ts and the etcd engine tool), sqlite3 and jq (the example
# tool of docs/engines.md, tested as written), zstd, and age (the age command
# and age-keygen: the emergency decryption procedure of docs/encryption.md,
# tested as written).
#
# The packages' own services are not started (policy-rc.d answers 101 while
# installing): tests start throwaway servers of their own.
#
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs once, only when something is missing. Non-interactive; run as root
# (Debian/Ubuntu):   bash testenv/install-deps.sh
set -euo pipefail

packages=(postgresql postgresql-client mariadb-server mariadb-client redis-server redis-tools etcd-server etcd-client sqlite3 jq zstd age)

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
own_policy=false
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  own_policy=true
fi
trap 'if [ "$own_policy" = true ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get install -y -q --no-install-recommends "${missing[@]}"
