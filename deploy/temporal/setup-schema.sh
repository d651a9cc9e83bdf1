#!/bin/sh
# One-shot job `temporal-schema` in docker-compose.yml (image temporalio/admin-tools): creates the
# Temporal databases if missing and brings both schemas up to the version this admin-tools image
# ships. Every step is idempotent (an existing database is kept, setup-schema never lowers a newer
# version, update-schema applies only the missing steps), so it runs on every `docker compose up`;
# upgrading Temporal means bumping the server and admin-tools tags together (docs/deploy.md).
# Connection settings come from SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD, SQL_PLUGIN (read by
# temporal-sql-tool itself, so the password never appears on a command line).
set -eu
: "${SQL_HOST:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}" "${SQL_PLUGIN:?}"
schema_root=${SCHEMA_ROOT:-/etc/temporal/schema/postgresql/v12}

tries=0
# (Where nc is missing, e.g. scripts/temporal-test-cluster, the caller has waited for the database.)
command -v nc >/dev/null || tries=-1
until [ "$tries" = -1 ] || nc -z "$SQL_HOST" "${SQL_PORT:-5432}"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then echo "setup-schema: PostgreSQL at $SQL_HOST:${SQL_PORT:-5432} unreachable" >&2; exit 1; fi
  sleep 2
done

for pair in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  db=${pair%%:*}
  dir=$schema_root/${pair#*:}/versioned
  echo "setup-schema: database $db, schema $dir"
  temporal-sql-tool --db "$db" create-database
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "$dir"
done
echo "setup-schema: done"
