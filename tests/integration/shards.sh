#!/usr/bin/env bash
# shards.sh: the suite split across machines and merged back, run for real
# on one machine: --shard K/N puts every scenario in exactly one part (by
# a path hash, or balanced by --durations from an earlier report, longest
# first), CI_NODE_INDEX/CI_NODE_TOTAL give the default, an empty part
# still writes a report; merge-reports makes one report equal to a serial
# run's (same testcases, order and outcomes; counts summed, schema-valid)
# and refuses overlapping reports; --rerun-failed runs only what failed.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/shards
E=tests/data/empty.env.json
run() { # JUNIT ARGS...
  local j=$1
  shift
  "$EVENTRIG" run --env $E --junit "$j" --report-dir "$T_TMP/r" "$@" >"$T_TMP/out" 2>&1
}
cases() { # JUNIT -> "name status" lines in document order
  python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as E
for t in E.parse(sys.argv[1]).iter("testcase"):
    st = "pass"
    for k in ("failure", "error", "skipped"):
        if t.find(k) is not None: st = k
    print(t.get("name"), "|", st)
PY
}
xsd_ok() { xmllint --noout --schema "$ER_XSD" "$1" 2>/dev/null; }

run "$T_TMP/serial.xml" $D; rc=$?
check "serial: 6 pass, 1 fails (exit 1, got $rc)" [ $rc -eq 1 ]
cases "$T_TMP/serial.xml" >"$T_TMP/serial.txt"

for n in 2 3; do
  files=()
  for ((k = 1; k <= n; k++)); do
    run "$T_TMP/h$n-$k.xml" --shard $k/$n $D
    files+=("$T_TMP/h$n-$k.xml")
  done
  total=$(for f in "${files[@]}"; do cases "$f"; done | wc -l)
  uniq=$(for f in "${files[@]}"; do cases "$f"; done | sort -u | wc -l)
  check "hash shards of $n: every scenario in exactly one ($total cases, $uniq distinct, of 7)" \
    bash -c '[ "$1" -eq 7 ] && [ "$2" -eq 7 ]' _ "$total" "$uniq"
  "$EVENTRIG" merge-reports "$T_TMP/m$n.xml" "${files[@]}" >/dev/null 2>&1; rc=$?
  check "merge-reports of $n shards: exit 0 (got $rc) and schema-valid" \
    bash -c '[ "$1" -eq 0 ] && xmllint --noout --schema "$3" "$2" 2>/dev/null' _ $rc "$T_TMP/m$n.xml" "$ER_XSD"
  check "merged report of $n shards = the serial run (names, order, outcomes)" \
    bash -c 'diff <(python3 - "$1" <<'"'"'PY'"'"'
import sys, xml.etree.ElementTree as E
for t in E.parse(sys.argv[1]).iter("testcase"):
    st = "pass"
    for k in ("failure", "error", "skipped"):
        if t.find(k) is not None: st = k
    print(t.get("name"), "|", st)
PY
) "$2" >/dev/null' _ "$T_TMP/m$n.xml" "$T_TMP/serial.txt"
  check "merged report of $n shards: counts summed (tests=7 failures=1)" \
    bash -c '[ "$(xmllint --xpath "string(//testsuite/@tests)" "$1")" = 7 ] && [ "$(xmllint --xpath "string(//testsuite/@failures)" "$1")" = 1 ]' _ "$T_TMP/m$n.xml"
done

"$EVENTRIG" merge-reports "$T_TMP/dup.xml" "$T_TMP/h2-1.xml" "$T_TMP/h2-1.xml" >"$T_TMP/dup.out" 2>&1; rc=$?
check "merge-reports of overlapping reports: exit 2 naming the testcase (got $rc)" \
  bash -c '[ "$1" -eq 2 ] && grep -q "the reports overlap" "$2" && [ ! -e "$3" ]' _ $rc "$T_TMP/dup.out" "$T_TMP/dup.xml"

# balanced by durations: the serial report's times, longest first
for k in 1 2; do run "$T_TMP/d$k.xml" --shard $k/2 --durations "$T_TMP/serial.xml" $D; done
sum() { python3 -c 'import sys, xml.etree.ElementTree as E; print(round(sum(float(t.get("time")) for t in E.parse(sys.argv[1]).iter("testcase")), 3))' "$1"; }
s1=$(sum "$T_TMP/d1.xml"); s2=$(sum "$T_TMP/d2.xml")
diag "durations-balanced shards: ${s1}s and ${s2}s"
n1=$(xmllint --xpath "count(//testcase)" "$T_TMP/d1.xml"); n2=$(xmllint --xpath "count(//testcase)" "$T_TMP/d2.xml")
check "balanced shards: 7 scenarios in all ($n1 + $n2)" [ $((n1 + n2)) -eq 7 ]
check "balanced shards: the same scenarios as the serial run" \
  bash -c 'diff <( (xmllint --xpath "//testcase/@name" "$1"; xmllint --xpath "//testcase/@name" "$2") | tr " " "\n" | sort) <(xmllint --xpath "//testcase/@name" "$3" | tr " " "\n" | sort) >/dev/null' _ "$T_TMP/d1.xml" "$T_TMP/d2.xml" "$T_TMP/serial.xml"
check "balanced shards: their times differ by at most the longest scenario (${s1}s, ${s2}s)" \
  python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 0.3 else 1)' "$s1" "$s2"

# GitLab's parallel: CI_NODE_INDEX / CI_NODE_TOTAL as the default --shard
CI_NODE_INDEX=2 CI_NODE_TOTAL=2 "$EVENTRIG" run --env $E --junit "$T_TMP/ci2.xml" --report-dir "$T_TMP/r" $D >"$T_TMP/ci.out" 2>&1
check "CI_NODE_INDEX=2 CI_NODE_TOTAL=2 runs shard 2/2" \
  bash -c 'grep -q "^shard 2/2: " "$1" && diff <(xmllint --xpath "//testcase/@name" "$2") <(xmllint --xpath "//testcase/@name" "$3") >/dev/null' _ "$T_TMP/ci.out" "$T_TMP/ci2.xml" "$T_TMP/h2-2.xml"

# an empty part: exit 0 and a valid, empty report
run "$T_TMP/e.xml" --shard 5/7 $D/s1.json $D/s2.json; rc=$?
check "an empty shard exits 0 and writes a valid empty report (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && xmllint --noout --schema "$3" "$2" 2>/dev/null && [ "$(xmllint --xpath "count(//testcase)" "$2")" = 0 ]' _ $rc "$T_TMP/e.xml" "$ER_XSD" || cat "$T_TMP/out"
run "$T_TMP/bad.xml" --shard 3/2 $D; rc=$?
check "--shard 3/2 is unusable input (exit 2)" [ $rc -eq 2 ]

# rerun only what failed
run "$T_TMP/re.xml" --rerun-failed "$T_TMP/serial.xml" $D; rc=$?
check "--rerun-failed: only the failed scenario runs (exit 1, 1 testcase)" \
  bash -c '[ "$1" -eq 1 ] && [ "$(xmllint --xpath "count(//testcase)" "$2")" = 1 ] && xmllint --xpath "string(//testcase/@name)" "$2" | grep -q "scenario 7 fails"' _ $rc "$T_TMP/re.xml"
run "$T_TMP/re0.xml" --rerun-failed "$T_TMP/h2-2.xml" $D; rc=$?
check "--rerun-failed of a report without failures: nothing to run, exit 0" \
  bash -c '[ "$1" -eq 0 ] && grep -q "no failure in that report" "$2"' _ $rc "$T_TMP/out"
echo "not xml" >"$T_TMP/junk.xml"
run "$T_TMP/rj.xml" --rerun-failed "$T_TMP/junk.xml" $D; rc=$?
check "--rerun-failed of a file that is not JUnit: exit 2 naming it" \
  bash -c '[ "$1" -eq 2 ] && grep -q "junk.xml:1: not a readable JUnit XML report" "$2"' _ $rc "$T_TMP/out"
t_done
