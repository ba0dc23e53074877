# tests/lib.sh: helpers for integration test scripts (source it).
# Every server started here is stopped by the EXIT trap; every wait has a
# deadline. Output follows TAP-ish lines counted by tests/run.sh.
set -u
ER_ROOT=${ER_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
EVENTRIG=${EVENTRIG:-$ER_ROOT/build/asan/eventrig}
ER_XSD=${ER_XSD:-$ER_ROOT/tests/data/junit-10-fileline.xsd}
T_N=0
T_FAILED=0
T_PIDS=()
T_TMP=$(mktemp -d /tmp/eventrig-test.XXXXXX)

ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $*"; }
# check "description" command...   (passes when the command exits 0)
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
diag() { echo "# $*"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT SECONDS
wait_port() {
  local port=$1 secs=${2:-20} i
  for ((i = 0; i < secs * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# start_redis: sets REDIS_PORT and REDIS_URL
start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --logfile "$T_TMP/redis-$REDIS_PORT.log" &
  T_PIDS+=($!)
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  wait_port "$REDIS_PORT" 10 || { echo "not ok - redis did not start"; return 1; }
}

# start_pg: sets PG_PORT and PG_DSN (database "postgres")
start_pg() {
  PG_PORT=$(free_port)
  setsid "$ER_ROOT/ci/scripts/pg-throwaway.sh" "$PG_PORT" >"$T_TMP/pg-$PG_PORT.log" 2>&1 &
  T_PIDS+=($!)
  PG_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  local i
  for ((i = 0; i < 600; i++)); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "not ok - postgres did not start"; cat "$T_TMP/pg-$PG_PORT.log"; return 1
}

# Processes marked by a test: a script exports ER_TEST_MARK=<unique>; every
# process eventrig starts inherits it. marked_procs lists those still alive
# (other than this shell); no_children_left waits (bounded) until none is.
marked_procs() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "ER_TEST_MARK=${ER_TEST_MARK:-none}" && echo "${p#/proc/}"
  done
}
no_children_left() {
  local i left
  for ((i = 0; i < 100; i++)); do
    left=$(marked_procs | grep -v "^$BASHPID\$" || true)
    [ -z "$left" ] && return 0
    sleep 0.05
  done
  diag "left behind: $(for p in $left; do tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null; echo; done)"
  return 1
}

t_cleanup() {
  local p
  for p in "${T_PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; done
  for p in "${T_PIDS[@]}"; do
    for _ in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$T_TMP"
}
trap t_cleanup EXIT

t_done() { [ "$T_FAILED" -eq 0 ]; }
