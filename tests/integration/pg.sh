#!/usr/bin/env bash
# Postgres adapter and postgres.* steps against real servers: one for the
# whole test, and a second one that itest_pg stops on purpose.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
BIN=$ER_ROOT/build/asan/itest/itest_pg
[ -x "$BIN" ] || { echo "not ok - $BIN is not built (make tests-build)"; exit 1; }
start_pg || exit 1
PG1_DSN=$PG_DSN
start_pg || exit 1
PG2_DSN=$PG_DSN
PG2_PID=${T_PIDS[${#T_PIDS[@]} - 1]}
PG_DSN=$PG1_DSN PG2_DSN=$PG2_DSN PG2_PID=$PG2_PID "$BIN"
