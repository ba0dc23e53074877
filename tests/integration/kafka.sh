#!/usr/bin/env bash
# kafka.sh: the Kafka adapter, the kafka module and the kafka.* steps
# against the embedded broker, with kcat as an independent client
# (itest_kafka); then eventrig itself: a missing declared topic stops a run
# with exit 3, and a scenario on the embedded broker passes and fails as it
# should.
source "$(dirname "$0")/../lib.sh"
ITEST=${ITEST_KAFKA:-$ER_ROOT/build/asan/itest/itest_kafka}
BROKER=${KAFKA_BROKER:-$ER_ROOT/build/asan/support/mockbroker}
KCAT=${KCAT:-kcat}
export KCAT
command -v "$KCAT" >/dev/null || { echo "not ok - kcat not installed"; exit 1; }
[ -x "$ITEST" ] || { echo "not ok - $ITEST not built (make tests-build)"; exit 1; }
[ -x "$BROKER" ] || { echo "not ok - $BROKER not built (make tests-build)"; exit 1; }

"$ITEST"
rc=$?
[ "$rc" -eq 0 ] || diag "itest_kafka exited with $rc"
# itest_kafka numbered its own lines; continue after them
T_N=200

# ---- eventrig run -----------------------------------------------------------
if ! "$EVENTRIG" --help >/dev/null 2>&1; then
  ok "# SKIP eventrig run is not available in this build"
  exit "$rc"
fi

# a broker in a process of its own: topic "present" only
"$BROKER" present:1 >"$T_TMP/broker.out" 2>"$T_TMP/broker.err" &
T_PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$T_TMP/broker.out" ] && break; sleep 0.05; done
BS=$(head -1 "$T_TMP/broker.out")
[ -n "$BS" ] || { not_ok "mockbroker printed no bootstrap address"; exit 1; }

mkdir -p "$T_TMP/s"
cat >"$T_TMP/s/one.json" <<'EOF'
{"name": "needs its topics",
 "steps": [{"kafka.expect": {"topic": "present", "count": 0, "within": "200ms"}}]}
EOF
cat >"$T_TMP/missing.env.json" <<EOF
{"kafka": {"bootstrap": "$BS", "topics": ["present", "absent.one", {"name": "absent.two"}],
           "timeout": "5s"}}
EOF
"$EVENTRIG" run --env "$T_TMP/missing.env.json" --report-dir "$T_TMP/r1" \
  "$T_TMP/s/one.json" >"$T_TMP/run1.out" 2>&1
code=$?
check "a missing declared topic stops the run with exit 3 (got $code)" test "$code" -eq 3
check "the output names the missing topics" \
  grep -q "topic(s) missing: absent.one, absent.two" "$T_TMP/run1.out"

# the embedded broker, end to end through the runner
cat >"$T_TMP/emb.env.json" <<'EOF'
{"kafka": {"embedded": {"brokers": 1, "topics": [{"name": "orders", "partitions": 2}]}}}
EOF
cat >"$T_TMP/s/pass.json" <<'EOF'
{"name": "five orders, exactly five seen",
 "steps": [
  {"kafka.produce": {"topic": "orders", "key": "o-1", "envelope": "fresh",
                     "data": {"id": 1}, "count": 5}},
  {"kafka.expect": {"topic": "orders", "where": {"/data/id": 1}, "count": 5,
                    "within": "5s", "then_quiet_for": "300ms"}}]}
EOF
cat >"$T_TMP/s/fail.json" <<'EOF'
{"name": "six expected, five sent",
 "steps": [
  {"kafka.produce": {"topic": "orders", "value": {"id": 2}, "count": 5}},
  {"kafka.expect": {"topic": "orders", "where": {"/id": 2}, "count": 6,
                    "within": "1s"}}]}
EOF
"$EVENTRIG" run --env "$T_TMP/emb.env.json" --report-dir "$T_TMP/r2" \
  "$T_TMP/s/pass.json" >"$T_TMP/run2.out" 2>&1
code=$?
check "a scenario on the embedded broker passes (exit $code)" test "$code" -eq 0
"$EVENTRIG" run --env "$T_TMP/emb.env.json" --report-dir "$T_TMP/r3" \
  "$T_TMP/s/fail.json" >"$T_TMP/run3.out" 2>&1
code=$?
check "a scenario whose expectation does not hold fails (exit $code)" test "$code" -eq 1
check "its report says what was seen" \
  grep -rq "expected count 6, got 5 matching" "$T_TMP/run3.out" "$T_TMP/r3"
# ${kafka.bootstrap} reaches scenarios and the services eventrig starts
cat >"$T_TMP/svc.env.json" <<EOF
{"kafka": {"embedded": {"topics": ["orders"]}},
 "services": [{"name": "probe",
               "command": ["sh", "-c", "echo \"\$KB\" > $T_TMP/kb.txt; exec sleep 60"],
               "env": {"KB": "\${kafka.bootstrap}"},
               "ready": {"command": ["test", "-s", "$T_TMP/kb.txt"], "within": "10s"}}]}
EOF
cat >"$T_TMP/s/bs.json" <<'EOF'
{"name": "the bootstrap in a template",
 "steps": [
  {"kafka.produce": {"topic": "orders", "value": {"bs": "${kafka.bootstrap}"}}},
  {"kafka.expect": {"topic": "orders", "count": 1,
                    "where": {"/bs": {"$regex": "^127\\.0\\.0\\.1:[0-9]+$"}}}}]}
EOF
"$EVENTRIG" run --env "$T_TMP/svc.env.json" --report-dir "$T_TMP/r4" \
  "$T_TMP/s/bs.json" >"$T_TMP/run4.out" 2>&1
code=$?
check "\${kafka.bootstrap} expands in a scenario (exit $code)" test "$code" -eq 0
check "and in a service's environment" grep -Eq '^127\.0\.0\.1:[0-9]+$' "$T_TMP/kb.txt"
[ "$T_FAILED" -eq 0 ] || { diag "run1:"; head -20 "$T_TMP/run1.out"; diag "run3:"; head -20 "$T_TMP/run3.out"; diag "run4:"; head -20 "$T_TMP/run4.out"; }
t_done && exit "$rc"
