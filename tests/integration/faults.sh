#!/usr/bin/env bash
# Fault proxies and metrics expectations end to end: eventrig starts a real
# redis-server and two small metrics servers (tests/support/metricsd.py) as
# services, with a fault proxy in front of Redis (tests/data/faults/env.json).
# Scenarios that must pass, and scenarios built to fail whose exit code,
# failure text and timing are checked; no fault outlives its scenario; no
# child process is left after any run; every JUnit file validates.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/faults
E=$D/env.json
MARK="eventrig-faults-$$-$RANDOM"
export ER_TEST_MARK="$MARK" # inherited by every child eventrig starts

xsd_ok() { xmllint --noout --schema "$ER_XSD" "$1" 2>"$T_TMP/xsd.err" || { diag "$(cat "$T_TMP/xsd.err")"; return 1; }; }

# run_er NAME ARGS...: eventrig run -v with its JUnit in $T_TMP/NAME.xml and
# its output in $T_TMP/NAME.out; sets RC.
run_er() {
  local name=$1
  shift
  "$EVENTRIG" run -v --junit "$T_TMP/$name.xml" --report-dir "$T_TMP/reports" "$@" >"$T_TMP/$name.out" 2>&1
  RC=$?
}
# Every run's report is checked the same way: exit code, schema, children.
after_run() { # NAME WANT_RC
  check "$1: exit $2 (got $RC)" [ "$RC" -eq "$2" ] || tail -n 40 "$T_TMP/$1.out" | sed 's/^/# /'
  check "$1: the JUnit report validates against the schema" xsd_ok "$T_TMP/$1.xml"
  check "$1: no child process of eventrig is left" no_children_left
}
xp() { xmllint --xpath "$2" "$1" 2>/dev/null; }
# tc_log NAME SCENARIO: the step log (system-out) of a testcase
tc_log() { xp "$T_TMP/$1.xml" "string(//testcase[contains(@name,\"$2\")]/system-out)"; }
# tc_fail NAME SCENARIO: failure or error message and text of a testcase
tc_fail() {
  xp "$T_TMP/$1.xml" "string(//testcase[contains(@name,\"$2\")]/*[self::failure or self::error]/@message)"
  echo
  xp "$T_TMP/$1.xml" "string(//testcase[contains(@name,\"$2\")]/*[self::failure or self::error])"
}
# step_ms LOG STEP: the duration in ms of the step named STEP ("step N: STEP")
step_ms() {
  awk -v n=": $2" '
    found && /^  -> / {
      d = $0; sub(/.*\(/, "", d); sub(/\).*/, "", d)
      if (d ~ /ms$/) { sub(/ms$/, "", d); print d + 0 } else { sub(/s$/, "", d); printf "%d\n", d * 1000 }
      exit
    }
    !found && length($0) >= length(n) && substr($0, length($0) - length(n) + 1) == n { found = 1 }
  ' <<<"$1"
}
# step_outcome LOG STEP: ok, FAILED or ERROR for the step named STEP
step_outcome() {
  awk -v n=": $2" '
    found && /^  -> / { print $2; exit }
    !found && length($0) >= length(n) && substr($0, length($0) - length(n) + 1) == n { found = 1 }
  ' <<<"$1"
}
# in_range VALUE LO HI: LO <= VALUE < HI
in_range() { [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -lt "$3" ]; }
# status NAME SCENARIO: pass / failure / error of a testcase
status() {
  local x=$T_TMP/$1.xml
  if [ "$(xp "$x" "count(//testcase[contains(@name,\"$2\")]/failure)")" = 1 ]; then echo failure
  elif [ "$(xp "$x" "count(//testcase[contains(@name,\"$2\")]/error)")" = 1 ]; then echo error
  elif [ "$(xp "$x" "count(//testcase[contains(@name,\"$2\")])")" = 1 ]; then echo pass
  else echo missing; fi
}

# --- validation ----------------------------------------------------------
out=$("$EVENTRIG" validate --env $E $D/pass $D/fail $D/outlive $D/metrics $D/metrics-fail $D/intr 2>&1); rc=$?
check "validate: the environment and every scenario are valid" [ $rc -eq 0 ] || diag "$out"
err=$("$EVENTRIG" validate $D/bad/fault-steps.json 2>&1); rc=$?
check "validate: bad fault steps exit 2 with 8 errors" \
  bash -c '[ "$1" -eq 2 ] && grep -q "8 error(s)" <<<"$2"' _ $rc "$err" || diag "$err"
for want in \
  "fault-steps.json:4:46: error: unknown fault action 'lateny' (did you mean 'latency'?)" \
  'fault-steps.json:5:7: error: action latency needs "latency"' \
  'fault-steps.json:6:65: error: "latency" applies only to action latency' \
  'fault-steps.json:7:86: error: jitter must not exceed the latency' \
  'fault-steps.json:8:89: error: direction is "downstream"' \
  'fault-steps.json:9:68: error: "delay" applies only to action reset_peer' \
  "fault-steps.json:10:69: error: 'delay': \"1 sec\" is not a duration" \
  'fault-steps.json:11:27: error: a proxy name holds letters'; do
  check "validate: $want" grep -qF "$want" <<<"$err"
done
err=$("$EVENTRIG" validate $D/bad/metrics-steps.json 2>&1); rc=$?
check "validate: bad metrics steps exit 2 with 8 errors" \
  bash -c '[ "$1" -eq 2 ] && grep -q "8 error(s)" <<<"$2"' _ $rc "$err" || diag "$err"
for want in \
  'metrics-steps.json:4:7: error: metrics needs exactly one of "url"' \
  "metrics-steps.json:5:55: error: 'sut-events' is not a metric name" \
  "metrics-steps.json:6:78: error: '1x' is not a label name" \
  "metrics-steps.json:7:69: error: '\$gt' needs a number" \
  'metrics-steps.json:8:78: error: "delta" needs a "baseline"' \
  'metrics-steps.json:9:78: error: a capture takes "value", "samples" or "delta"' \
  'metrics-steps.json:10:7: error: metrics needs exactly one of "url"' \
  'metrics-steps.json:11:77: error: a label value is a string or a matcher'; do
  check "validate: $want" grep -qF "$want" <<<"$err"
done
err=$("$EVENTRIG" validate --env $D/bad/proxies.env.json $D/pass 2>&1); rc=$?
check "validate --env: a misspelt proxy key exits 2 with file:line:col and a suggestion" \
  bash -c '[ "$1" -eq 2 ] && grep -qF "proxies.env.json:4:24: error: unknown key '"'listn'"' in '"'proxies[0]'"' (did you mean '"'listen'"'?)" <<<"$2"' _ $rc "$err" || diag "$err"
check "validate --env: a proxy without upstream, and a string listen port" \
  bash -c 'grep -qF "proxies.env.json:5:5: error: '"'proxies[1]'"' needs the key '"'upstream'"'" <<<"$1" && grep -qF "'"'listen'"' must be an integer" <<<"$1"' _ "$err"
err=$("$EVENTRIG" run --env $D/bad/dup-proxy.env.json --report-dir "$T_TMP/reports" $D/pass/1-through-proxy.json 2>&1); rc=$?
check "run: two proxies with one name exit 2 and say so" \
  bash -c '[ "$1" -eq 2 ] && grep -qF "eventrig: proxies: the name \"redis\" is used twice" <<<"$2"' _ $rc "$err" || diag "$err"
err=$("$EVENTRIG" run --env $D/bad/no-port.env.json --report-dir "$T_TMP/reports" $D/pass/1-through-proxy.json 2>&1); rc=$?
check "run: an upstream without a port exits 2 and says so" \
  bash -c '[ "$1" -eq 2 ] && grep -qF "upstream \"127.0.0.1\" must be host:port" <<<"$2"' _ $rc "$err" || diag "$err"

err=$("$EVENTRIG" run --env $D/bad/dup-port.env.json --report-dir "$T_TMP/reports" $D/pass/1-through-proxy.json 2>&1); rc=$?
check "run: two proxies on one fixed port exit 2 and say so" \
  bash -c '[ "$1" -eq 2 ] && grep -qF "proxy \"b\": listen port 45999 is taken by proxy \"a\" already" <<<"$2"' _ $rc "$err" || diag "$err"

# --- through the proxy, latency, heal ------------------------------------
run_er pass --env $E $D/pass
after_run pass 0
check "pass: 3 testcases, all passed" \
  bash -c '[ "$(xmllint --xpath "count(//testcase)" "$1")" = 3 ] && [ "$(xmllint --xpath "count(//failure|//error)" "$1")" = 0 ]' _ "$T_TMP/pass.xml"
log=$(tc_log pass "latency slows")
check "latency: applied to the pooled connection opened by the first ping" \
  grep -qF "fault: proxy redis latency 250ms downstream, on its 1 open connection(s) and new ones" <<<"$log"
for i in 1 2 3; do
  ms=$(step_ms "$log" "fast ping $i")
  check "latency: before the fault, ping $i is fast (${ms} ms < 200)" in_range "$ms" 0 200
done
for i in 1 2 3; do
  ms=$(step_ms "$log" "slow ping $i")
  check "latency 250ms downstream: ping $i takes at least 250 ms and not wildly more (${ms} ms in [250, 750))" in_range "$ms" 250 750
done
for i in 1 2; do
  ms=$(step_ms "$log" "both ping $i")
  check "latency 150ms both ways: ping $i takes at least 300 ms (${ms} ms in [300, 800))" in_range "$ms" 300 800
done
for i in 1 2; do
  ms=$(step_ms "$log" "healed ping $i")
  check "heal: ping $i is fast again (${ms} ms < 200)" in_range "$ms" 0 200
done
for i in 1 2 3; do
  ms=$(step_ms "$log" "jitter ping $i")
  check "latency 400ms +/- 100ms upstream: ping $i (${ms} ms in [300, 1000))" in_range "$ms" 300 1000
done
ms=$(step_ms "$log" "zero ping")
check "latency 0ms removes the latency (${ms} ms < 200)" in_range "$ms" 0 200
log=$(tc_log pass "heal and up")
check "heal: the blackholed pooled connection passes again (same connection: 1 open)" \
  grep -qF "fault: proxy redis healed (1 open connection(s))" <<<"$log"
check "heal: a redis step through the proxy reads what another wrote straight to Redis" \
  [ "$(status pass "real Redis client works")" = pass ]

# --- faults that must make steps fail ------------------------------------
run_er fail --env $E $D/fail
after_run fail 1
check "fail: 4 failures and 1 error" \
  bash -c '[ "$(xmllint --xpath "count(//failure)" "$1")" = 4 ] && [ "$(xmllint --xpath "count(//error)" "$1")" = 1 ]' _ "$T_TMP/fail.xml"
f=$(tc_fail fail "down breaks a pooled")
log=$(tc_log fail "down breaks a pooled")
ms=$(step_ms "$log" "ping on the pooled connection")
check "down: the pooled connection was open when the fault came" grep -qF "down: closed 1 open connection(s)" <<<"$log"
check "down: a step on the pooled connection fails because the server closed it" \
  grep -qF 'redis ["PING"]: redis://127.0.0.1:' <<<"$f"
check "down: ... with 'the server closed the connection'" grep -qF "the server closed the connection (sent PING)" <<<"$f"
check "down: ... at once, not at its 5s deadline (${ms} ms < 2500)" in_range "$ms" 0 2500
f=$(tc_fail fail "down refuses a new")
ms=$(step_ms "$(tc_log fail "down refuses a new")" "ping on a new connection")
check "down: a new connection is refused" grep -qF "cannot connect: Connection refused" <<<"$f"
check "down: ... at once, not at its 5s deadline (${ms} ms < 2500)" in_range "$ms" 0 2500
f=$(tc_fail fail "blackhole makes")
ms=$(step_ms "$(tc_log fail "blackhole makes")" "ping into the blackhole")
check "blackhole: the step times out with no reply" grep -qE "no reply to PING within 1\.[0-9]+s \(the deadline passed\)" <<<"$f"
check "blackhole: ... at its 1s deadline (${ms} ms in [1000, 3000))" in_range "$ms" 1000 3000
f=$(tc_fail fail "reset_peer resets")
log=$(tc_log fail "reset_peer resets")
check "reset_peer: the connection works during the delay" \
  [ "$(step_outcome "$log" "ping before the reset")" = ok ]
check "reset_peer: after the delay the pooled connection is reset" \
  bash -c 'grep -q "step: step 5 .ping after the reset." <<<"$1" && grep -q "reset by peer" <<<"$1"' _ "$f"
f=$(tc_fail fail "unknown proxy")
check "fault: an unknown proxy is an error with a did-you-mean" \
  bash -c '[ "$2" = error ] && grep -qF "fault: no proxy named \"rediss\" (did you mean \"redis\"?)" <<<"$1"' _ "$f" "$(status fail "unknown proxy")"

err=$("$EVENTRIG" run --env tests/data/empty.env.json --report-dir "$T_TMP/reports" $D/fail/unknown-proxy.json 2>&1); rc=$?
check "fault: without proxies in the environment, an error says how to declare one" \
  bash -c '[ "$1" -eq 1 ] && grep -qF "fault: no proxy named \"rediss\": the environment declares no proxies (add \"proxies\": [{\"name\": \"rediss\"" <<<"$2"' _ $rc "$err" || diag "$err"

# --- no fault outlives its scenario ----------------------------------------
run_er outlive --env $E $D/outlive
after_run outlive 1
check "outlive: the scenario that set latency and down failed" [ "$(status outlive "outlive 1")" = failure ]
check "outlive: the next one uses the proxy without healing" [ "$(status outlive "outlive 2")" = pass ] ||
  diag "$(tc_fail outlive "outlive 2")"
check "outlive: the scenario that set blackhole and reset_peer ran into its timeout" \
  bash -c '[ "$2" = failure ] && grep -qE "no reply to PING within 1\.[45][0-9]*s" <<<"$1"' _ "$(tc_fail outlive "outlive 3")" "$(status outlive "outlive 3")"
check "outlive: the next one uses the proxy without healing" [ "$(status outlive "outlive 4")" = pass ] ||
  diag "$(tc_fail outlive "outlive 4")"

# --- metrics expectations ----------------------------------------------------
run_er metrics --env $E $D/metrics
after_run metrics 0
for s in "a counter rises" "holds steady" "summed over two" "escapes, timestamps" "slow last poll"; do
  check "metrics: '$s' passed" [ "$(status metrics "$s")" = pass ] || diag "$(tc_fail metrics "$s")"
done
log=$(tc_log metrics "a counter rises")
check "metrics: the baseline and the rise were captured as numbers" \
  bash -c 'grep -qx "  captured before = 1" <<<"$1" && grep -qx "  captured rise = 3" <<<"$1" && grep -qx "  captured after = 4" <<<"$1"' _ "$log"
check "metrics: the sum over two URLs is logged with its parts" \
  grep -qE 'sut_watch_conflicts_total\{kind="sum-[^"]*"\} = 5 \(sum of 2 samples from 2 URL\(s\)\)' <<<"$(tc_log metrics "summed over two")"
check "metrics: hold polled for the whole second" \
  grep -qE "metrics held for 1\.000s \(([5-9]|[1-9][0-9]+) polls\)" <<<"$(tc_log metrics "holds steady")"
check "metrics: a hold waits for a slow last poll (2 scrapes of 700 ms in a 1 s hold)" \
  bash -c '[ "$2" = pass ] && grep -qE "metrics held for 1\.000s \(2 polls\)" <<<"$1"' _ "$(tc_log metrics "slow last poll")" "$(status metrics "slow last poll")"

run_er mfail --env $E $D/metrics-fail
after_run mfail 1
f=$(tc_fail mfail "does not rise")
check "metrics: a rise that never comes fails after its 'within'" \
  bash -c 'grep -qF "metrics did not hold within 1.000s" <<<"$1" && grep -qF "expected > 4, got 4" <<<"$1"' _ "$f"
check "metrics: ... and shows the URL and the samples seen" \
  bash -c 'grep -qE "^url: http://127\.0\.0\.1:[0-9]+/metrics$" <<<"$1" && grep -qF "samples of sut_flat_total seen (1):" <<<"$1" && grep -qE "^  sut_flat_total\{instance=\"m1\",kind=\"flat-[^\"]+\"\} 4$" <<<"$1"' _ "$f"
f=$(tc_fail mfail "a wrong value")
check "metrics: a wrong value shows expected and got, and every sample of that name" \
  bash -c 'grep -qF "metrics metricsd_latency_seconds_bucket{le=\"0.1\"}: expected 4, got 3" <<<"$1" && grep -qF "samples of metricsd_latency_seconds_bucket seen (2):" <<<"$1" && grep -qxF "  metricsd_latency_seconds_bucket{le=\"+Inf\"} 5" <<<"$1"' _ "$f"
f=$(tc_fail mfail "several samples")
check "metrics: several samples without sum is an error that lists them" \
  bash -c '[ "$2" = error ] && grep -qF "2 samples match; narrow \"labels\" to one, or set \"sum\": true" <<<"$1" && grep -qxF "  metricsd_latency_seconds_bucket{le=\"0.1\"} 3" <<<"$1"' _ "$f" "$(status mfail "several samples")"
f=$(tc_fail mfail "misspelt metric")
check "metrics: a misspelt name suggests the right one and names both URLs" \
  bash -c 'grep -qF "no sample named metricsd_upp (did you mean metricsd_up?)" <<<"$1" && grep -qE "^urls: http://[^,]+/metrics, http://[^,]+/metrics$" <<<"$1"' _ "$f"
f=$(tc_fail mfail "unreachable")
check "metrics: an unreachable endpoint is an error naming the URL" \
  grep -qF "metrics: GET http://127.0.0.1:1/metrics: " <<<"$f"
f=$(tc_fail mfail "hold breaks")
check "metrics: a hold breaks when another branch bumps the counter" \
  bash -c 'grep -qE "metrics stopped holding after [0-9.]+m?s of 2\.000s" <<<"$1" && grep -qF "expected 1, got 2" <<<"$1"' _ "$f"
f=$(tc_fail mfail "answers 404")
check "metrics: a status other than 200 fails with the status and the body" \
  grep -qE "metrics: GET http://127\.0\.0\.1:[0-9]+/nope: status 404 \(expected 200\); body: \"no such endpoint\\\\n\"" <<<"$f"
f=$(tc_fail mfail "not valid text format")
check "metrics: a malformed body fails naming the line" \
  grep -qF "the body is not valid Prometheus text format: line 3: sample 'half_a_sample' has no value" <<<"$f"
check "metrics-fail: 7 failures and 1 error" \
  bash -c '[ "$(xmllint --xpath "count(//failure)" "$1")" = 7 ] && [ "$(xmllint --xpath "count(//error)" "$1")" = 1 ]' _ "$T_TMP/mfail.xml"

# --- a fixed listening port --------------------------------------------------
FIXED_PORT=$(free_port)
export FIXED_PORT
RPORT=$(free_port)
cat >"$T_TMP/fixed.env.json" <<EOF
{
  "proxies": [ { "name": "fixed", "listen": $FIXED_PORT, "upstream": "127.0.0.1:$RPORT" } ],
  "redis": { "url": "redis://127.0.0.1:$RPORT/0", "test_target": { "allow": ["127.0.0.1:$FIXED_PORT/0"] } },
  "services": [
    { "name": "redis", "command": ["redis-server", "--port", "$RPORT", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      "ready": { "tcp": "127.0.0.1:$RPORT", "within": "15s" } } ]
}
EOF
run_er fixed --env "$T_TMP/fixed.env.json" $D/fixed
after_run fixed 0
python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("up", flush=True); time.sleep(60)' "$FIXED_PORT" >"$T_TMP/holder.out" 2>&1 &
holder=$!
T_PIDS+=($holder)
for ((i = 0; i < 100; i++)); do grep -q up "$T_TMP/holder.out" 2>/dev/null && break; sleep 0.05; done
err=$("$EVENTRIG" run --env "$T_TMP/fixed.env.json" --report-dir "$T_TMP/reports" $D/fixed 2>&1); rc=$?
check "fixed: a listen port already taken exits 3 and says which" \
  bash -c '[ "$1" -eq 3 ] && grep -qF "proxy \"fixed\": cannot listen on 127.0.0.1:$3: Address already in use" <<<"$2"' _ $rc "$err" "$FIXED_PORT" || diag "$err"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
check "fixed: no child process of eventrig is left" no_children_left

# --- interrupted in a blackhole ------------------------------------------------
J=$T_TMP/intr.xml
"$EVENTRIG" run --env $E --junit "$J" --report-dir "$T_TMP/reports" $D/intr >"$T_TMP/intr.out" 2>&1 &
pid=$!
for ((i = 0; i < 600; i++)); do
  [ -f "$J" ] && [ "$(xmllint --xpath 'count(//testcase)' "$J" 2>/dev/null)" = 1 ] && break
  sleep 0.1
done
sleep 0.5 # the next scenario sets its blackhole within milliseconds
kill -INT $pid
t0=$(date +%s%N)
wait $pid
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "interrupt: exit 130 (got $rc)" [ $rc -eq 130 ] || tail -n 20 "$T_TMP/intr.out" | sed 's/^/# /'
check "interrupt: stopped promptly out of a blackhole (${ms} ms)" [ $ms -lt 15000 ]
check "interrupt: the JUnit report validates and holds both scenarios" \
  bash -c 'xmllint --noout --schema "$2" "$1" 2>/dev/null && [ "$(xmllint --xpath "count(//testcase)" "$1")" = 2 ]' _ "$J" "$ER_XSD"
log=$(xp "$J" "string(//testcase[contains(@name,\"intr 2\")]/system-out)")
check "interrupt: the interrupted scenario's teardown ran" \
  [ "$(step_outcome "$log" "teardown straight to Redis")" = ok ]
check "interrupt: no child process of eventrig is left" no_children_left

t_done
