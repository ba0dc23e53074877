#!/usr/bin/env bash
# The fault proxy in front of a real redis-server, driven by hiredis
# (build/asan/itest/itest_proxy). Needs `make tests-build` first.
source "$(dirname "$0")/../lib.sh"
bin="$ER_ROOT/build/asan/itest/itest_proxy"
[ -x "$bin" ] || { not_ok "itest_proxy not built (make tests-build)"; exit 1; }
start_redis || exit 1
REDIS_PORT=$REDIS_PORT "$bin"
