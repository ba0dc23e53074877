#!/usr/bin/env bash
# bench/proxy/run.sh: round-trip latency of redis-benchmark straight to a
# throwaway redis-server and through a healthy eventrig fault proxy, in one
# run. Prints both medians (p50) per test, the difference, and
#   added median latency: N us (target < 100 us)
# where N is the largest per-test difference. Not part of `make test`.
# Needs redis-server, redis-benchmark, cc, pkg-config (libcrypto).
# Usage: bench/proxy/run.sh [REQUESTS]   (default 100000 per test and target)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-100000}
TESTS=(ping_inline get set)
TMP=$(mktemp -d /tmp/eventrig-bench-proxy.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() { # PORT: up to 10 s
  local i
  for ((i = 0; i < 200; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not open" >&2
  return 1
}

# the driver, built like the Makefile's release objects (BASE + -O2)
WARN="-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral"
cc -std=c11 -D_GNU_SOURCE $WARN -g -O2 -I"$ROOT/harness" \
  -o "$TMP/proxy_driver" "$ROOT/bench/proxy/proxy_driver.c" \
  "$ROOT/harness/adapters/proxy.c" "$ROOT/harness/base/util.c" \
  $(pkg-config --libs libcrypto) -lpthread -lm

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no --logfile "$TMP/redis.log" &
PIDS+=($!)
wait_port "$RPORT"

"$TMP/proxy_driver" "$RPORT" >"$TMP/driver.out" 2>"$TMP/driver.err" &
DRIVER=$!
PIDS+=($DRIVER)
for ((i = 0; i < 200; i++)); do
  grep -q '^port ' "$TMP/driver.out" 2>/dev/null && break
  kill -0 "$DRIVER" 2>/dev/null || { cat "$TMP/driver.err" >&2; exit 1; }
  sleep 0.05
done
PPORT=$(awk '/^port /{print $2}' "$TMP/driver.out")
[ -n "$PPORT" ] || { echo "proxy driver did not report its port" >&2; exit 1; }
wait_port "$PPORT"

# p50 in ms (3 decimals) of one redis-benchmark test
p50() { # PORT TEST
  redis-benchmark -p "$1" -t "$2" -n "$N" -c 1 --csv --precision 3 |
    awk -F'"' 'NR == 2 { print $10 }'
}

echo "redis-benchmark -t <test> -n $N -c 1 --csv --precision 3"
echo "redis $(redis-server --version | awk '{print $3}'), direct port $RPORT, proxy port $PPORT"
printf '%-12s %12s %12s %10s\n' test "direct p50" "proxy p50" "added"
worst=-1000000
for t in "${TESTS[@]}"; do
  # interleaved, so both see the same machine load
  d=$(p50 "$RPORT" "$t")
  p=$(p50 "$PPORT" "$t")
  du=$(awk -v x="$d" 'BEGIN { printf "%d", x * 1000 + 0.5 }')
  pu=$(awk -v x="$p" 'BEGIN { printf "%d", x * 1000 + 0.5 }')
  add=$((pu - du))
  [ "$add" -gt "$worst" ] && worst=$add
  printf '%-12s %9d us %9d us %7d us\n' "$t" "$du" "$pu" "$add"
done
kill -TERM "$DRIVER"
wait "$DRIVER" || true
PIDS=("${PIDS[0]}")
cat "$TMP/driver.err"
echo "(p50 is redis-benchmark's histogram bucket: about 8 us resolution here)"
echo "added median latency: $worst us (target < 100 us)"
