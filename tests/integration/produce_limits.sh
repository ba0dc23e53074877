#!/usr/bin/env bash
# produce_limits.sh: a kafka.produce of 10^12 messages (no rate) against the
# embedded broker keeps every deadline and answers signals: it stops
# queueing at the step timeout (2 s) and at the scenario timeout (5 s) and
# fails within deadline + 1 s (slack for ASan), the first SIGINT / SIGTERM
# ends the run within a few seconds with 130 / 143 and a valid report of
# what finished, and two signals in a row still leave a valid report.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/produce
E=$D/produce.env.json

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
valid() { xmllint --noout --schema "$ER_XSD" "$1" 2>/dev/null; }

# deadline NAME FILE LIMIT_S: the produce of FILE fails, and its scenario
# took at most LIMIT_S seconds (the deadline + 1 s)
deadline() {
  local name=$1 file=$2 limit=$3 t0 rc ms secs
  t0=$(date +%s%N)
  "$EVENTRIG" run --env $E --junit "$T_TMP/$name.xml" --report-dir "$T_TMP/r" "$file" >"$T_TMP/$name.out" 2>&1
  rc=$?
  ms=$(ms_since $t0)
  diag "$name: exit $rc after ${ms} ms (run included)"
  check "$name: the produce fails (exit 1, got $rc)" [ $rc -eq 1 ]
  secs=$(grep -oE "^FAIL  .*\(([0-9.]+)s\)" "$T_TMP/$name.out" | grep -oE "[0-9.]+s\)$" | tr -d 's)')
  check "$name: the scenario took at most $limit s (${secs}s)" \
    python3 -c 'import sys; sys.exit(0 if sys.argv[1] and float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$secs" "$limit"
  check "$name: the failure says what happened" \
    grep -qE "kafka.produce to 'produce.limits.v1': kafka: .*(deadline|purged)" "$T_TMP/$name.out"
}
deadline "step timeout 2 s" $D/step-timeout.json 3.0
deadline "scenario timeout 5 s" $D/scenario-timeout.json 6.0

for sig in INT TERM; do
  J=$T_TMP/sig-$sig.xml
  "$EVENTRIG" run --env $E --junit "$J" --report-dir "$T_TMP/r" $D/quick.json $D/scenario-timeout.json >"$T_TMP/sig.out" 2>&1 &
  pid=$!
  # until the quick scenario is in the report and the produce runs
  for ((i = 0; i < 100; i++)); do
    [ -f "$J" ] && [ "$(xmllint --xpath 'count(//testcase)' "$J" 2>/dev/null)" = 1 ] && break
    sleep 0.1
  done
  sleep 1
  t0=$(date +%s%N)
  kill -$sig $pid
  wait $pid
  rc=$?
  ms=$(ms_since $t0)
  want=130; [ $sig = TERM ] && want=143
  diag "SIG$sig 1 s into the produce: exit $rc after ${ms} ms"
  check "SIG$sig during the produce: exit $want (got $rc)" [ $rc -eq $want ]
  check "SIG$sig during the produce: the run ended within 3 s (${ms} ms)" [ "$ms" -lt 3000 ]
  check "SIG$sig: the report is valid with both scenarios, the produce one interrupted" \
    bash -c 'xmllint --noout --schema "$2" "$1" 2>/dev/null && [ "$(xmllint --xpath "count(//testcase)" "$1")" = 2 ] && xmllint --xpath "string(//testcase[error]/error)" "$1" | grep -q "interrupted by signal"' _ "$J" "$ER_XSD"
done

# two signals in a row: the second stops at once; the report of what
# finished (the quick scenario) is still there and valid
J=$T_TMP/twice.xml
"$EVENTRIG" run --env $E --junit "$J" --report-dir "$T_TMP/r" $D/quick.json $D/scenario-timeout.json >"$T_TMP/twice.out" 2>&1 &
pid=$!
for ((i = 0; i < 100; i++)); do
  [ -f "$J" ] && [ "$(xmllint --xpath 'count(//testcase)' "$J" 2>/dev/null)" = 1 ] && break
  sleep 0.1
done
sleep 1
t0=$(date +%s%N)
kill -INT $pid
sleep 0.2
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
ms=$(ms_since $t0)
diag "two SIGINTs: exit $rc after ${ms} ms"
check "two SIGINTs: the run ended (${ms} ms)" [ "$ms" -lt 3000 ]
check "two SIGINTs: a valid report with at least the scenario that finished" \
  bash -c 'xmllint --noout --schema "$2" "$1" 2>/dev/null && [ "$(xmllint --xpath "count(//testcase)" "$1")" -ge 1 ] && xmllint --xpath "string(//testcase[1]/@name)" "$1" | grep -q "a quick one first"' _ "$J" "$ER_XSD"
t_done
