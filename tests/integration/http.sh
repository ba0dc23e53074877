#!/usr/bin/env bash
# HTTP adapter and the http step against tests/support/testhttpd.py.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
BIN=$ER_ROOT/build/asan/itest/itest_http
[ -x "$BIN" ] || { echo "not ok - $BIN is not built (make tests-build)"; exit 1; }
HTTP_PORT=$(free_port)
python3 "$ER_ROOT/tests/support/testhttpd.py" "$HTTP_PORT" >"$T_TMP/httpd.log" 2>&1 &
T_PIDS+=($!)
wait_port "$HTTP_PORT" 10 || { echo "not ok - testhttpd did not start"; cat "$T_TMP/httpd.log"; exit 1; }
HTTP_URL="http://127.0.0.1:$HTTP_PORT" "$BIN"
