#!/usr/bin/env bash
# Runs a command beside a scratch PostgreSQL 15 cluster, for the tests that run against both
# store engines. The cluster lives in a temporary directory and listens on a Unix socket there
# only (no TCP port to collide with); as root it runs as the unprivileged `postgres` user, since
# PostgreSQL refuses to run as root. The command finds it in ALLOT_TEST_POSTGRESQL (a libpq URI
# whose user may create databases); the cluster is stopped and removed when the command ends.
#   scripts/with-postgresql.sh ctest --test-dir build
# Without PostgreSQL's server binaries (scripts/install-deps.sh --postgresql installs them) the
# command runs alone and the PostgreSQL tests say they were skipped.
set -euo pipefail

bin=/usr/lib/postgresql/15/bin
if [ ! -x "$bin/initdb" ]; then
  echo "with-postgresql: $bin/initdb not found; PostgreSQL tests will be skipped" >&2
  exec "$@"
fi

dir=$(mktemp -d /tmp/allot-postgresql.XXXXXX)
# PostgreSQL's programs look for each other from the working directory: start the cluster from
# one the postgres user can enter, whatever the caller's is, and run the command from the caller's.
caller=$PWD
cd "$dir"
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$dir"
  run_as=(runuser -u postgres --)
fi
cleanup() {
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
"${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-k $dir -c listen_addresses='' -c max_connections=300" start >/dev/null ||
  { cat "$dir/server.log" >&2; exit 1; }

export ALLOT_TEST_POSTGRESQL="postgresql:///postgres?host=$dir&user=postgres"
cd "$caller"
"$@"
