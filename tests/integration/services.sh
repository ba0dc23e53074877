#!/usr/bin/env bash
# services: eventrig starts and stops real servers as services (a
# redis-server and a throwaway Postgres through ci/scripts/pg-throwaway.sh)
# and other child processes, stops, kills and restarts them one by one or
# by group (also from threads that end), and resolves instances; see
# tests/itest/itest_services.c for what is proved. The program starts its own servers: that is what it tests.
. "$(dirname "$0")/../lib.sh"
export ER_ROOT
bin="$ER_ROOT/build/asan/itest/itest_services"
if [ ! -x "$bin" ]; then
  not_ok "itest_services is built (make tests-build)"
  exit 1
fi
for tool in redis-server pg_isready python3; do
  check "$tool is installed" command -v "$tool" >/dev/null
done
# the program's own TAP lines go straight to the output
timeout -k 5 300 "$bin"
rc=$?
check "itest_services exits 0 (status $rc)" [ "$rc" -eq 0 ]
t_done
