#!/usr/bin/env bash
# bench/clean/run.sh: a scoped redis.clean of MATCH keys among TOTAL in one
# Redis database, against the usual shell way:
#   redis-cli --scan --pattern 'bench:m:*' | xargs -n 1000 redis-cli unlink
# Both on a throwaway redis-server on loopback, refilled the same way
# (redis-cli --pipe) before each run, RUNS alternating runs each. Prints
# each run, the medians, the ratio (goal: eventrig at least 5x faster) and
# that every matching key is gone and every other key is still there.
#
#   bench/clean/run.sh                 1,000,000 of 2,000,000 keys, 3 runs
#   MATCH=200000 TOTAL=400000 RUNS=3 bench/clean/run.sh
#   BATCH=5000 bench/clean/run.sh      redis.clean's "batch" (SCAN COUNT)
#
# Not part of `make test`: it is a benchmark (a minute or two).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
MATCH=${MATCH:-1000000}
TOTAL=${TOTAL:-2000000}
RUNS=${RUNS:-3}
BIN=${EVENTRIG:-./eventrig}
make --no-print-directory eventrig >/dev/null
TMP=$(mktemp -d /tmp/eventrig-clean.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no --logfile "$TMP/redis.log" &
RPID=$!
trap 'kill $RPID 2>/dev/null; wait $RPID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 1 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
cat >"$TMP/env.json" <<JSON
{ "redis": { "url": "redis://127.0.0.1:$PORT/0",
             "test_target": { "allow": ["127.0.0.1:$PORT/0"] } } }
JSON
cat >"$TMP/clean.json" <<JSON
{ "name": "bench: scoped clean", "timeout": "10m",
  "steps": [ { "redis.clean": { "match": "bench:m:*"${BATCH:+, \"batch\": $BATCH} } } ] }
JSON
fill() {
  redis-cli -p "$PORT" flushdb >/dev/null
  python3 - "$MATCH" "$TOTAL" <<'PY' | redis-cli -p "$PORT" --pipe >/dev/null
import sys
m, t = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout
for i in range(t):
    k = ("bench:m:%d" if i < m else "bench:o:%d") % i
    out.write("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(k), k))
PY
}
check_left() {
  local n o
  n=$(redis-cli -p "$PORT" dbsize)
  o=$((TOTAL - MATCH))
  [ "$n" -eq "$o" ] || { echo "after $1: $n keys left, $o expected"; exit 1; }
}
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -a er sh
for ((r = 1; r <= RUNS; r++)); do
  fill
  t0=$(date +%s%N)
  "$BIN" run --env "$TMP/env.json" --junit "$TMP/j.xml" --report-dir "$TMP/r" "$TMP/clean.json" >"$TMP/er.log" 2>&1 ||
    { tail -5 "$TMP/er.log"; exit 1; }
  er+=($(( ($(date +%s%N) - t0) / 1000000 )))
  check_left eventrig
  fill
  t0=$(date +%s%N)
  redis-cli -p "$PORT" --scan --pattern 'bench:m:*' | xargs -n 1000 redis-cli -p "$PORT" unlink >/dev/null
  sh+=($(( ($(date +%s%N) - t0) / 1000000 )))
  check_left redis-cli
  echo "run $r: eventrig redis.clean ${er[-1]} ms, redis-cli --scan | xargs unlink ${sh[-1]} ms"
done
e=$(med "${er[@]}"); s=$(med "${sh[@]}")
echo "median: eventrig ${e} ms (whole run: start, clean, report), redis-cli ${s} ms for $MATCH of $TOTAL keys"
echo "ratio redis-cli/eventrig: $(echo "scale=2; $s/$e" | bc -l)x (goal >= 5x); other keys intact: yes"
