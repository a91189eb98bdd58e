#!/usr/bin/env bash
# The MariaDB seed Job's script (runs in the mariadb image; MYSQL_HOST, MYSQL_TCP_PORT and
# MYSQL_PWD, the password of ADMIN_USER, set by the Job): (re)creates database
# $SEED_DATABASE from mariadb-seed.sql, records every table's row count and checksum
# (mariadb-checksums.sql) in $META_DATABASE.seed_checksums, and creates user $BACKUP_USER
# (password BACKUP_PASSWORD) with the privileges a backup needs and no others
# (docs/engines.md); DatabaseBackup shop-mariadb connects as that user.
#
# A retried Job starts again from an empty database: it drops $SEED_DATABASE first, and
# CREATE OR REPLACE USER gives the backup user exactly the grants below again.
set -euo pipefail

dir=$(dirname "$0")
: "${SEED_DATABASE:?}" "${META_DATABASE:?}" "${ADMIN_USER:?}" "${BACKUP_USER:?}" "${BACKUP_PASSWORD:?}"
# The names go into SQL text: plain identifiers only.
for name in "$SEED_DATABASE" "$META_DATABASE" "$BACKUP_USER"; do
  if ! [[ $name =~ ^[A-Za-z0-9_]+$ ]]; then
    echo "seed: \"$name\" is not a plain name (letters, digits, _)" >&2
    exit 2
  fi
done

# sql ARGS...: the mariadb client as ADMIN_USER over TCP, tab-separated output without headers.
sql() {
  mariadb --protocol=TCP --user="$ADMIN_USER" --default-character-set=utf8mb4 --batch --skip-column-names "$@"
}
# literal TEXT: TEXT as a single-quoted SQL string (\ and ' escaped).
literal() {
  local s=${1//\\/\\\\}
  printf "'%s'" "${s//\'/\\\'}"
}

until sql -e 'SELECT 1' >/dev/null 2>&1; do
  echo "seed: waiting for MariaDB at ${MYSQL_HOST:-localhost}:${MYSQL_TCP_PORT:-3306}"
  sleep 2
done

db=$SEED_DATABASE meta=$META_DATABASE
echo "seed: creating database $db"
sql <<SQL
DROP DATABASE IF EXISTS \`$db\`;
CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS \`$meta\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
SQL
sql --database="$db" <"$dir/mariadb-seed.sql"

echo "seed: user $BACKUP_USER with the backup privileges of docs/engines.md"
sql <<SQL
CREATE OR REPLACE USER '$BACKUP_USER'@'%' IDENTIFIED BY $(literal "$BACKUP_PASSWORD");
GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON \`$db\`.* TO '$BACKUP_USER'@'%';
GRANT SELECT ON mysql.proc TO '$BACKUP_USER'@'%';
GRANT BINLOG MONITOR ON *.* TO '$BACKUP_USER'@'%';
SQL
sql -e "SHOW GRANTS FOR '$BACKUP_USER'@'%'" | sed -e 's/ IDENTIFIED BY PASSWORD .*//' -e 's/^/seed:   /'

checksums=$(sql --database="$db" <"$dir/mariadb-checksums.sql")
values=$(awk -F '\t' 'NF == 3 { printf "%s('\''%s'\'', %s, %s)", (n++ ? ", " : ""), $1, $2, $3 }' <<<"$checksums")
sql --database="$meta" <<SQL
CREATE TABLE IF NOT EXISTS seed_checksums (
  table_name VARCHAR(64) PRIMARY KEY,
  row_count  BIGINT NOT NULL,
  checksum   DECIMAL(40, 0) NOT NULL,
  seeded_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
DELETE FROM seed_checksums;
INSERT INTO seed_checksums (table_name, row_count, checksum) VALUES $values;
SQL

sql -e "SELECT CONCAT('seed: database $db: ', ROUND(SUM(data_length + index_length) / 1048576, 1), ' MiB') FROM information_schema.tables WHERE table_schema = '$db'"
echo "seed: table, rows, checksum recorded in $meta.seed_checksums:"
printf '%s\n' "$checksums"
