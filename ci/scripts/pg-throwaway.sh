#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server in the foreground on 127.0.0.1:PORT,
# in a fresh temporary cluster that is deleted when the server stops.
# Postgres refuses to run as root, so as root the cluster is made and run
# as the "postgres" user via runuser. Auth is trust on loopback only; the
# superuser is "postgres". Usage: pg-throwaway.sh PORT [DBNAME...]
set -euo pipefail
port=${1:?usage: pg-throwaway.sh PORT [DBNAME...]}
shift
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/postgres" ] || { echo "pg-throwaway: no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 3; }
as_pg=()
# setpriv execs in place (runuser would sit between us and postgres and
# not pass signals on), so $pid below is the postmaster itself
if [ "$(id -u)" -eq 0 ]; then as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi
dir=$(mktemp -d /tmp/eventrig-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
pid=""
cleanup() {
  # a second TERM/INT must not cut the cleanup short (its trap would exit)
  trap '' INT TERM
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true  # fast shutdown
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 3; }
"${as_pg[@]}" "$bindir/postgres" -D "$dir/data" -p "$port" -k "$dir" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off -c max_connections=200 ${PG_EXTRA_OPTS:-} &
pid=$!
for db in "$@"; do
  for _ in $(seq 1 200); do
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    kill -0 "$pid" 2>/dev/null || exit 3
    sleep 0.05
  done
  "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
done
wait "$pid"
