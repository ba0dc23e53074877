#!/usr/bin/env bash
# bench/peers/run.sh: the same work written for eventrig and for venom
# (ovh/venom v1.3.0, built from its Go module on first use into
# build/bench/gopath), measured in one run each, side by side:
#   http   1,000 GET requests, each checking status 200 and a JSON field,
#          against bench/peers/httpd.c (libmicrohttpd, 4 threads)
#   redis  1,000 GET commands, each checking the value, against a
#          throwaway redis-server
#   await  a value that turns true FLIP_MS after the server starts, waited
#          for by eventrig's await (polling every 2 ms at most: "interval")
#          and venom's retry/delay (whole seconds); the server logs
#          how long after the flip each tool first saw "true"
# Prints each tool's wall time (the whole process) and the ratios; goals:
# eventrig >= 2x venom's throughput on http and redis, and it sees the
# change within 5 ms.
#
# Not part of `make test`: it is a benchmark (about a minute).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${N:-1000}
FLIP_MS=${FLIP_MS:-4000}
BIN=${EVENTRIG:-$ROOT/eventrig}
OUT="$ROOT/build/bench/peers"
mkdir -p "$OUT"
make --no-print-directory eventrig >/dev/null
export GOPATH="$ROOT/build/bench/gopath" GOFLAGS=-mod=mod
VENOM="$GOPATH/bin/venom"
if [ ! -x "$VENOM" ]; then
  echo "building venom v1.3.0 from its Go module (once)..."
  go install github.com/ovh/venom/cmd/venom@v1.3.0 >"$OUT/venom-build.log" 2>&1 ||
    { tail -5 "$OUT/venom-build.log"; exit 1; }
fi
cc -O2 -o "$OUT/httpd" bench/peers/httpd.c $(pkg-config --cflags --libs libmicrohttpd) -lpthread
TMP=$(mktemp -d /tmp/eventrig-peers.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HP=$(port)
RP=$(port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --logfile "$TMP/redis.log" &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$RP" set bench:k v >/dev/null

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
cat >"$TMP/env.json" <<JSON
{ "vars": { "URL": "http://127.0.0.1:$HP" },
  "redis": { "url": "redis://127.0.0.1:$RP/0" } }
JSON
cat >"$TMP/http.json" <<JSON
{ "name": "peers: $N http checks", "timeout": "5m",
  "steps": [ { "repeat": { "count": $N, "steps": [
    { "http": { "url": "\${env.URL}/json", "expect": { "status": 200, "json": { "/ok": true } } } } ] } } ] }
JSON
cat >"$TMP/redis.json" <<JSON
{ "name": "peers: $N redis checks", "timeout": "5m",
  "steps": [ { "repeat": { "count": $N, "steps": [
    { "redis": { "command": ["GET", "bench:k"], "expect": "v" } } ] } } ] }
JSON
cat >"$TMP/await.json" <<'JSON'
{ "name": "peers: await a flag", "timeout": "1m",
  "steps": [ { "await": { "within": "30s", "interval": "2ms", "http": { "url": "${env.URL}/flag", "expect": { "json": { "/ready": true } } } } } ] }
JSON
cat >"$TMP/http.yml" <<YML
name: peers http
testcases:
- name: checks
  steps:
  - type: http
    method: GET
    url: http://127.0.0.1:$HP/json
    range: $N
    assertions:
    - result.statuscode ShouldEqual 200
    - result.bodyjson.ok ShouldBeTrue
YML
cat >"$TMP/redis.yml" <<YML
name: peers redis
vars:
  redis.dialURL: redis://127.0.0.1:$RP/0
testcases:
- name: checks
  steps:
  - type: redis
    commands:
    - GET bench:k
    range: $N
    assertions:
    - result.commands.commands0.response ShouldEqual v
YML
cat >"$TMP/await.yml" <<YML
name: peers await
testcases:
- name: flag
  steps:
  - type: http
    method: GET
    url: http://127.0.0.1:$HP/flag
    retry: 30
    delay: 1
    assertions:
    - result.bodyjson.ready ShouldBeTrue
YML

declare -A t
for w in http redis; do
  "$OUT/httpd" "$HP" 600000 >"$TMP/httpd.log" &
  hp=$!
  pids+=($hp)
  sleep 0.3
  t0=$(date +%s%N)
  "$BIN" run --env "$TMP/env.json" --junit "$TMP/$w.xml" --report-dir "$TMP/r" "$TMP/$w.json" >"$OUT/eventrig-$w.log" 2>&1 ||
    { echo "eventrig $w failed:"; tail -5 "$OUT/eventrig-$w.log"; exit 1; }
  t[er-$w]=$(ms $t0)
  t0=$(date +%s%N)
  (cd "$TMP" && "$VENOM" run "$w.yml" --output-dir "$TMP/v-$w" >"$OUT/venom-$w.log" 2>&1) ||
    { echo "venom $w failed:"; tail -5 "$OUT/venom-$w.log"; exit 1; }
  t[v-$w]=$(ms $t0)
  kill $hp
  wait $hp 2>/dev/null || true
  pids=("${pids[0]}")
  printf '%-6s eventrig %6d ms   venom %6d ms   venom/eventrig %.1fx (goal >= 2x)\n' \
    "$w" "${t[er-$w]}" "${t[v-$w]}" "$(echo "${t[v-$w]}/${t[er-$w]}" | bc -l)"
done

# await: both start waiting right away; the flip comes FLIP_MS later
"$OUT/httpd" "$HP" "$FLIP_MS" >"$TMP/flag.log" &
hp=$!
pids+=($hp)
sleep 0.2
"$BIN" run --env "$TMP/env.json" --junit "$TMP/await.xml" --report-dir "$TMP/r" "$TMP/await.json" >"$OUT/eventrig-await.log" 2>&1 &
e=$!
(cd "$TMP" && "$VENOM" run await.yml --output-dir "$TMP/v-await" >"$OUT/venom-await.log" 2>&1) &
v=$!
wait $e || { echo "eventrig await failed"; tail -5 "$OUT/eventrig-await.log"; }
wait $v || { echo "venom await failed"; tail -5 "$OUT/venom-await.log"; }
kill $hp
wait $hp 2>/dev/null || true
er_late=$(grep "first-true eventrig" "$TMP/flag.log" | grep -oE "\+[0-9.]+" | tr -d + || echo "?")
v_late=$(grep "first-true Go-http" "$TMP/flag.log" | grep -oE "\+[0-9.]+" | tr -d + || echo "?")
printf 'await  eventrig saw the change %s ms after it, venom %s ms after it (goal: eventrig <= 5 ms)\n' "$er_late" "$v_late"
