#!/usr/bin/env bash
# redis.sh: the Redis adapter and the redis, redis.clean, redis.seed steps
# against real redis-servers: one on TCP (stopped and started again on
# the same port during the test) and one on a unix socket.
source "$(dirname "$0")/../lib.sh"
ITEST=${ITEST_REDIS:-$ER_ROOT/build/asan/itest/itest_redis}
[ -x "$ITEST" ] || { echo "not ok - $ITEST not built (make tests-build)"; exit 1; }

start_redis || exit 1

# the unix-socket server
SOCK="$T_TMP/redis.sock"
redis-server --port 0 --unixsocket "$SOCK" --save "" --appendonly no \
  --daemonize no --logfile "$T_TMP/redis-unix.log" &
T_PIDS+=($!)
for _ in $(seq 1 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "not ok - unix-socket redis did not start"; exit 1; }

# the itest stops the TCP server and starts it again on the same port; the
# restarted one daemonizes and is stopped here through its pid file
RESTART_PID="$T_TMP/redis-restarted.pid"
stop_restarted() {
  [ -f "$RESTART_PID" ] && kill -TERM "$(cat "$RESTART_PID")" 2>/dev/null
  t_cleanup
}
trap stop_restarted EXIT

export REDIS_HOST=127.0.0.1 REDIS_PORT
export REDIS_UNIX_URL="unix://$SOCK?db=2"
export ITEST_REDIS_STOP="redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1; true"
export ITEST_REDIS_START="redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile $RESTART_PID --logfile $T_TMP/redis-restarted.log"

"$ITEST"
rc=$?
[ "$rc" -eq 0 ] || diag "itest_redis exited with $rc"
exit "$rc"
