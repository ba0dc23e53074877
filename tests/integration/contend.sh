#!/usr/bin/env bash
# contend.sh: the redis.contend step against a real redis-server: WATCH
# conflicts it provokes on every key type, data left as it was, writes
# counted (see tests/itest/itest_contend.c).
source "$(dirname "$0")/../lib.sh"
ITEST=${ITEST_CONTEND:-$ER_ROOT/build/asan/itest/itest_contend}
[ -x "$ITEST" ] || { echo "not ok - $ITEST not built (make tests-build)"; exit 1; }
start_redis || exit 1
export REDIS_HOST=127.0.0.1 REDIS_PORT
timeout -k 5 120 "$ITEST"
rc=$?
[ "$rc" -eq 0 ] || diag "itest_contend exited with $rc"
exit "$rc"
