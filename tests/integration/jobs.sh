#!/usr/bin/env bash
# jobs.sh: -j N runs scenarios at once against the same stack. Shown from
# the streamed log (-v), not from timings: four scenarios start before any
# step ends; one marked "exclusive" starts only when every other has ended
# and none starts while it runs; the report keeps the serial order and
# the same outcomes; what is inferred as running alone shows in --dry-run.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/jobs
E=tests/data/empty.env.json
names() { xmllint --xpath '//testcase/@name' "$1" 2>/dev/null; }
outcomes() {
  python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as E
for t in E.parse(sys.argv[1]).iter("testcase"):
    print(t.get("name"), "failure" if t.find("failure") is not None else "pass")
PY
}

"$EVENTRIG" run -j 1 --env $E --junit "$T_TMP/j1.xml" --report-dir "$T_TMP/r" $D >"$T_TMP/j1.out" 2>&1; rc1=$?
"$EVENTRIG" run -v -j 4 --env $E --junit "$T_TMP/j4.xml" --report-dir "$T_TMP/r" $D >"$T_TMP/j4.out" 2>&1; rc4=$?
check "-j 1 and -j 4: both exit 1 (one scenario fails; got $rc1, $rc4)" bash -c '[ "$1" -eq 1 ] && [ "$2" -eq 1 ]' _ $rc1 $rc4
check "-j 4: the JUnit report is schema-valid" xmllint --noout --schema "$ER_XSD" "$T_TMP/j4.xml"
check "-j 4: testcases in the serial order with the same outcomes" \
  bash -c 'diff <(outcomes "$1") <(outcomes "$2") >/dev/null' _ "$T_TMP/j1.xml" "$T_TMP/j4.xml"
grep -vE "^      |warning" "$T_TMP/j4.out" >"$T_TMP/j4.lines"
check "-j 4: four scenarios started before any step ended" \
  bash -c '[ "$(head -n 4 "$1" | grep -c "^RUN ")" -eq 4 ]' _ "$T_TMP/j4.lines"
alone=$(grep -n "^RUN   jobs: scenario 5 runs alone" "$T_TMP/j4.lines" | cut -d: -f1)
check "-j 4: the exclusive scenario started after every other step had ended" \
  bash -c '[ -n "$2" ] && [ "$(head -n "$2" "$1" | grep -c "^  -> ")" -eq 5 ]' _ "$T_TMP/j4.lines" "$alone"
check "-j 4: nothing started while it ran (it started last)" \
  bash -c '[ "$(tail -n +"$(( $2 + 1 ))" "$1" | grep -c "^RUN ")" -eq 0 ]' _ "$T_TMP/j4.lines" "$alone"
check "-j 4: results printed in the serial order" \
  bash -c 'diff <(grep -E "^(PASS|FAIL) " "$1" | sed -E "s/ \(.*//") <(grep -E "^(PASS|FAIL) " "$2" | sed -E "s/ \(.*//") >/dev/null' _ "$T_TMP/j1.out" "$T_TMP/j4.out"

# what runs alone, as inferred from the steps, in --dry-run
out=$("$EVENTRIG" run --dry-run --env ci/local.env.json scenarios 2>&1)
check "dry run: a fault scenario runs alone (fault)" \
  bash -c 'grep -A1 "postgres-down.json" <<<"$1" | grep -q "under -j: runs alone (fault)"' _ "$out"
check "dry run: the happy path may run with others" \
  bash -c 'grep -A1 "three-essays.json" <<<"$1" | grep -q "under -j: may run with others"' _ "$out"
out=$("$EVENTRIG" run --dry-run --env $E $D/p5-alone.json 2>&1)
check "dry run: \"exclusive\": true says so" grep -q 'under -j: runs alone ("exclusive": true)' <<<"$out"
t_done
