#!/usr/bin/env bash
# HTTP adapter and the http step against tests/support/testhttpd.py.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
BIN=$ER_ROOT/build/asan/itest/itest_http
[ -x "$BIN" ] || { echo "not ok - $BIN is not built (make tests-build)"; exit 1; }
HTTP_PORT=$(free_port)
python3 "$ER_ROOT/tests/support/testhttpd.py" "$HTTP_PORT" >"$T_TMP/httpd.log" 2>&1 &
T_PIDS+=($!)
wait_port "$HTTP_PORT" 10 || { echo "not ok - testhttpd did not start"; cat "$T_TMP/httpd.log"; exit 1; }

# an HTTPS instance: a test CA, a server certificate for 127.0.0.1 and a
# client certificate (CN eventrig-client) it accepts
C=$T_TMP/certs
mkdir -p "$C"
(
  cd "$C" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=eventrig test CA" &&
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
    printf 'subjectAltName=IP:127.0.0.1\n' >san.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext &&
    openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=eventrig-client" &&
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
) >"$T_TMP/openssl.log" 2>&1 || { echo "not ok - openssl could not make the test certificates"; cat "$T_TMP/openssl.log"; exit 1; }
HTTPS_PORT=$(free_port)
python3 "$ER_ROOT/tests/support/testhttpd.py" "$HTTPS_PORT" "$C/server.pem" "$C/server.key" "$C/ca.pem" >"$T_TMP/httpsd.log" 2>&1 &
T_PIDS+=($!)
wait_port "$HTTPS_PORT" 10 || { echo "not ok - testhttpd (TLS) did not start"; cat "$T_TMP/httpsd.log"; exit 1; }
HTTP_URL="http://127.0.0.1:$HTTP_PORT" HTTPS_URL="https://127.0.0.1:$HTTPS_PORT" CERT_DIR="$C" \
  FILE_DIR="$T_TMP" "$BIN"
rc=$?
T_N=500 # after itest_http's own lines

# ---- eventrig run: a scenario with integers beyond 64 bits, JSONPath,
# logical operators and regex captures, end to end (issue 15) ----------------
[ -x "$EVENTRIG" ] || { not_ok "$EVENTRIG is not built"; exit 1; }
echo '{}' >"$T_TMP/empty.env.json"
cat >"$T_TMP/big.json" <<'JSON'
{ "name": "big integers, JSONPath and regex captures through templates",
  "vars": { "order": { "id": 123456789012345678901234567890, "items": [ { "sku": "a", "n": 1 }, { "sku": "b", "n": 2 } ] } },
  "steps": [
    { "http": { "method": "POST", "url": "${env.HTTP_URL}/echo", "json": "${order}",
                "expect": { "json": { "/json/id": 123456789012345678901234567890,
                                      "$.json.items[?@.n > 1].sku": "b",
                                      "$.json.items[*]": { "$count": 2, "$each": { "$subset": { "sku": { "$regex": "^[a-z]$" } } } },
                                      "/headers/user-agent": { "$and": [ { "$contains": "event" }, { "$contains": "rig" } ] } } },
                "capture": { "id": "$.json.id", "skus": "$..sku", "ua": { "header": "Content-Type", "regex": "^([a-z]+)/" } } } },
    { "http": { "method": "POST", "url": "${env.HTTP_URL}/echo",
                "headers": { "X-Id": "${id}" },
                "json": { "same": "${id}", "text": "id=${id}", "skus": "${skus}", "kind": "${ua}" },
                "expect": { "json": { "/json/same": { "$eq": 123456789012345678901234567890, "$type": "integer" },
                                      "/json/text": "id=123456789012345678901234567890",
                                      "/headers/x-id": "123456789012345678901234567890",
                                      "/json/skus": ["a", "b"], "/json/kind": "application" } } } },
    { "http": { "url": "${env.HTTP_URL}/text",
                "capture": { "word": { "regex": "^hello ([a-z]+)$" }, "all": { "text": true } } } },
    { "http": { "method": "POST", "url": "${env.HTTP_URL}/echo", "body": "${all}/${word}",
                "expect": { "json": { "/body": "hello world/world" } } } }
  ] }
JSON
out=$(HTTP_URL="http://127.0.0.1:$HTTP_PORT" "$EVENTRIG" run --env "$T_TMP/empty.env.json" \
  --report-dir "$T_TMP/r" "$T_TMP/big.json" 2>&1); code=$?
check "a scenario with big integers, JSONPath and regex captures passes (exit $code)" test "$code" -eq 0
[ "$code" -eq 0 ] || diag "$out"
sed '/"vars"/s/678901234567890,/678901234567891,/' "$T_TMP/big.json" >"$T_TMP/big-off.json"
out=$(HTTP_URL="http://127.0.0.1:$HTTP_PORT" "$EVENTRIG" run --env "$T_TMP/empty.env.json" \
  --report-dir "$T_TMP/r2" "$T_TMP/big-off.json" 2>&1); code=$?
check "one digit off in a big integer fails it (exit $code)" test "$code" -eq 1
check "and the failure names the field and both numbers" \
  grep -q "json /json/id: expected 123456789012345678901234567890, got 123456789012345678901234567891" <<<"$out"
[ "$T_FAILED" -eq 0 ] || diag "$out"

# ---- the http options through eventrig run: files found next to the
# scenario, the cookie jar across steps, redirects, metadata (issue 15) ------
mkdir -p "$T_TMP/opts/files"
printf 'hello world' >"$T_TMP/opts/files/hello.txt"
printf 'part one\n' >"$T_TMP/opts/files/part.txt"
cat >"$T_TMP/opts/options.json" <<'JSON'
{ "name": "http options end to end",
  "steps": [
    { "http": { "url": "${env.HTTP_URL}/cookie?name=sid&value=s-42",
                "expect": { "cookies": { "sid": { "value": "s-42", "path": "/" } } } } },
    { "http": { "method": "POST", "url": "${env.HTTP_URL}/echo",
                "multipart": { "doc": { "file": "files/part.txt", "type": "text/plain" }, "n": 1 },
                "expect": { "json": { "/headers/cookie": "sid=s-42",
                                      "/body": { "$contains": "filename=\"part.txt\"" } } } } },
    { "http": { "method": "POST", "url": "${env.HTTP_URL}/echo", "form": { "q": "a b" },
                "expect": { "json": { "/body": "q=a%20b" }, "duration": { "$lt": "5s" } } } },
    { "http": { "url": "${env.HTTP_URL}/redirect?n=2&to=/text", "follow_redirects": 5,
                "expect": { "redirects": 2, "url": { "$regex": "/text$" }, "http_version": "1.1",
                            "body_file": "files/hello.txt" } } }
  ] }
JSON
out=$("$EVENTRIG" validate "$T_TMP/opts/options.json" 2>&1); code=$?
check "the options scenario is valid (exit $code)" test "$code" -eq 0
[ "$code" -eq 0 ] || diag "$out"
out=$(HTTP_URL="http://127.0.0.1:$HTTP_PORT" "$EVENTRIG" run --env "$T_TMP/empty.env.json" \
  --report-dir "$T_TMP/r-opts" "$T_TMP/opts/options.json" 2>&1); code=$?
check "form, multipart with a file, cookies, redirects and body_file pass end to end (exit $code)" test "$code" -eq 0
[ "$code" -eq 0 ] || diag "$out"
sed 's/files\/hello.txt/files\/nope.txt/' "$T_TMP/opts/options.json" >"$T_TMP/opts/missing.json"
out=$("$EVENTRIG" validate "$T_TMP/opts/missing.json" 2>&1); code=$?
check "expect.body_file naming a missing file: exit 2 at file:line:col (exit $code)" \
  bash -c '[ "$1" -eq 2 ] && grep -q "missing.json:[0-9]*:[0-9]*: error: file .files/nope.txt. not found" <<<"$2"' _ "$code" "$out"
[ "$T_FAILED" -eq 0 ] || diag "$out"

# ---- await: attempts, a fixed interval, until (issue 15) -------------------
# /counter counts its calls: the polls of an await against it are counted
run_sc() { # NAME JSON: runs a scenario; $out and $code
  printf '%s\n' "$2" >"$T_TMP/$1.json"
  out=$(HTTP_URL="http://127.0.0.1:$HTTP_PORT" "$EVENTRIG" run --env "$T_TMP/empty.env.json" \
    --report-dir "$T_TMP/r-$1" "$T_TMP/$1.json" 2>&1)
  code=$?
}
count_is() { # N: the counter has counted N calls
  run_sc "count$1" '{ "name": "count", "steps": [
    { "http": { "url": "${env.HTTP_URL}/counter?peek=1", "expect": { "json": { "/count": '"$1"' } } } } ] }'
  [ "$code" -eq 0 ] || diag "$out"
  [ "$code" -eq 0 ]
}
t0=$(date +%s%N)
run_sc attempts '{ "name": "attempts", "steps": [
  { "http": { "url": "${env.HTTP_URL}/counter?reset=1" } },
  { "await": { "within": "20s", "interval": "200ms", "attempts": 4,
               "http": { "url": "${env.HTTP_URL}/counter", "expect": { "json": { "/count": 100 } } } } } ] }'
took=$((($(date +%s%N) - t0) / 1000000))
check "await with attempts 4 against a check that never holds fails (exit $code)" test "$code" -eq 1
check "and says it stopped after 4 attempts" grep -q "http did not hold after 4 attempts" <<<"$out"
[ "$code" -eq 1 ] || diag "$out"
check "the side-effecting endpoint was called exactly 4 times" count_is 4
check "a fixed interval of 200ms: 3 waits of 200ms, no backoff from 10ms (${took}ms)" test "$took" -ge 600
run_sc until '{ "name": "until", "steps": [
  { "http": { "url": "${env.HTTP_URL}/counter?reset=1" } },
  { "await": { "within": "20s", "interval": "50ms", "attempts": 10,
               "http": { "url": "${env.HTTP_URL}/counter", "expect": { "json": { "/count": 100 } } },
               "until": { "http": { "url": "${env.HTTP_URL}/counter?peek=1",
                                    "expect": { "json": { "/count": { "$gte": 2 } } } } } } } ] }'
check "await stops early when until holds (exit $code)" test "$code" -eq 1
check "and says so" grep -q "stopped after 2 poll(s) .* because the until check (http) held" <<<"$out"
[ "$T_FAILED" -eq 0 ] || diag "$out"
check "the endpoint was polled twice, not 10 times" count_is 2
run_sc backoff '{ "name": "attempts pass", "steps": [
  { "http": { "url": "${env.HTTP_URL}/counter?reset=1" } },
  { "await": { "within": "20s", "attempts": 5,
               "http": { "url": "${env.HTTP_URL}/counter", "expect": { "json": { "/count": 3 } } } } } ] }'
check "an await that holds at the 3rd of 5 attempts passes (exit $code)" test "$code" -eq 0
check "after exactly 3 calls" count_is 3
[ "$T_FAILED" -eq 0 ] || diag "$out"
printf '%s\n' '{ "name": "dry run of until", "steps": [
  { "await": { "within": "5s", "attempts": 3, "http": { "url": "${env.HTTP_URL}/x" },
               "until": { "http": { "url": "http://bob:pw-SECRET-1@127.0.0.1:1/y",
                                    "headers": { "Authorization": "Bearer tok-SECRET-2" } } } } } ] }' >"$T_TMP/dry.json"
out=$("$EVENTRIG" run --dry-run --env "$T_TMP/empty.env.json" "$T_TMP/dry.json" 2>&1); code=$?
check "dry run: the until check is named, its URL password and token not shown (exit $code)" \
  bash -c '[ "$1" -eq 0 ] && grep -q "\"until\":\"<a check: http>\"" <<<"$2" && ! grep -q SECRET <<<"$2"' _ "$code" "$out"
[ "$T_FAILED" -eq 0 ] || diag "$out"
[ "$rc" -eq 0 ] && [ "$T_FAILED" -eq 0 ]
