#!/usr/bin/env bash
# The command line end to end: help, validate, list, run with services that
# eventrig starts itself (real Redis, Postgres, HTTP), exit codes, JUnit
# against the schema, interruption, and no child process left behind.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/cli
MARK="eventrig-cli-$$-$RANDOM"
export ER_TEST_MARK="$MARK"   # inherited by every child eventrig starts

xsd_ok() { xmllint --noout --schema "$ER_XSD" "$1" 2>"$T_TMP/xsd.err"; }

# --- help, version, usage errors -----------------------------------------
out=$("$EVENTRIG" --help); rc=$?
check "--help exits 0" [ $rc -eq 0 ]
check "--help shows the three commands and exit codes" \
  bash -c '[[ "$1" == *"eventrig run"* && "$1" == *"eventrig validate"* && "$1" == *"eventrig list"* && "$1" == *"Exit codes"* && "$1" == *NO_COLOR* ]]' _ "$out"
check "--version prints a version" bash -c '"$1" --version | grep -Eq "^eventrig [0-9]+\.[0-9]+\.[0-9]+$"' _ "$EVENTRIG"
err=$("$EVENTRIG" runn x 2>&1); rc=$?
check "a misspelt command exits 2" [ $rc -eq 2 ]
check "a misspelt command suggests 'run'" grep -q "did you mean 'run'" <<<"$err"
err=$("$EVENTRIG" run --bogus x 2>&1); rc=$?
check "an unknown option exits 2 and names it" bash -c '[ "$1" -eq 2 ] && grep -q -- "--bogus" <<<"$2"' _ $rc "$err"
"$EVENTRIG" run >/dev/null 2>&1; rc=$?
check "run without a path exits 2" [ $rc -eq 2 ]

# --- validate ------------------------------------------------------------
err=$("$EVENTRIG" validate tests/data/bad/nested-key-misspelt.json 2>&1); rc=$?
check "validate: a misspelt key exits 2" [ $rc -eq 2 ]
check "validate: names file:line:col and the intended key" \
  grep -q "^tests/data/bad/nested-key-misspelt.json:7:21: error: unknown key 'stauts' .*did you mean 'status'" <<<"$err"
err=$("$EVENTRIG" validate tests/data/bad 2>&1); rc=$?
nbad=$(ls tests/data/bad/*.json tests/data/bad/*.yaml | wc -l)
# a file is named at the start of its problems' lines, or (for problems in
# a step file or fixture it uses) in "(used at tests/data/bad/x.json:..."
nfiles=$(grep -oE "tests/data/bad/[^:]+\.(json|yaml)" <<<"$err" | sort -u | wc -l)
check "validate: every bad file reported, not just the first ($nfiles of $nbad)" [ "$nfiles" -eq "$nbad" ]
check "validate: a folder of bad files exits 2" [ $rc -eq 2 ]
# a file of 1 MB or more is checked a step at a time (scenario.c): the
# same problems at the same places, a step file's outputs still known
python3 - "$T_TMP/large.json" <<'PY'
import json, sys
steps = [{"redis": {"command": ["GET", "k%d" % i], "expect": "v"}} for i in range(30000)]
steps[5] = {"use": "steps/register-batch.step.json", "with": {"count": 2}}
steps[20000] = {"http": {"url": "http://h/${batch}${nope}", "expect": {"stauts": 200}}}
with open(sys.argv[1], "w") as f:
    f.write('{"name": "large",\n "steps": [\n')
    f.write(",\n".join(json.dumps(s) for s in steps))
    f.write("\n]}\n")
PY
mkdir -p "$T_TMP/fixtures" && cp -r fixtures/steps fixtures/http "$T_TMP/fixtures/"
err=$("$EVENTRIG" validate "$T_TMP/large.json" 2>&1); rc=$?
check "validate: a file of $(($(stat -c %s "$T_TMP/large.json") / 1024)) KB, a step at a time: exits 2 with its two problems at step 20001's line" \
  bash -c '[ "$1" -eq 2 ] && grep -q "0 scenario(s) valid, 2 error(s), 0 warning(s)" <<<"$2" &&
    grep -q "large.json:20003:18: error: undefined variable .nope." <<<"$2" &&
    grep -q "large.json:20003:[0-9]*: error: unknown key .stauts." <<<"$2"' _ $rc "$err"
diag "$(grep -m1 nope <<<"$err")"
out=$("$EVENTRIG" validate examples scenarios 2>&1); rc=$?
check "validate: the examples and the bundled suite are valid" [ $rc -eq 0 ]
err=$("$EVENTRIG" validate --env $D/bad.env.json $D/pass 2>&1); rc=$?
check "validate --env: a misspelt section exits 2 with file:line:col" \
  bash -c '[ "$1" -eq 2 ] && grep -q "bad.env.json:3:3: error: .*servcies.*did you mean .services." <<<"$2"' _ $rc "$err"

# --- list ----------------------------------------------------------------
out=$("$EVENTRIG" list $D/pass $D/fail); rc=$?
check "list exits 0 and prints one line per scenario" bash -c '[ "$1" -eq 0 ] && [ "$(wc -l <<<"$2")" -eq 3 ]' _ $rc "$out"
out=$("$EVENTRIG" list --filter tag:other $D/pass)
check "list --filter tag:other selects one" bash -c '[ "$(wc -l <<<"$1")" -eq 1 ] && grep -q "only selected by tag other" <<<"$1"' _ "$out"

# --- run: passing, with services started by eventrig ---------------------
J=$T_TMP/pass.xml
out=$("$EVENTRIG" run --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" $D/pass 2>&1); rc=$?
check "run: passing scenarios exit 0" [ $rc -eq 0 ] || diag "$out"
check "run: JUnit report validates against the schema" xsd_ok "$J"
check "run: JUnit has 2 testcases, 0 failures" \
  bash -c '[ "$(xmllint --xpath "count(//testcase)" "$1")" = 2 ] && [ "$(xmllint --xpath "count(//failure)" "$1")" = 0 ]' _ "$J"
check "run: a PASS line per scenario" bash -c '[ "$(grep -c "^PASS" <<<"$1")" -eq 2 ]' _ "$out"
check "run: service logs written under the report dir" bash -c 'ls "$1"/*/services/redis.log >/dev/null 2>&1' _ "$T_TMP/reports"
check "run: no child process left after a passing run" no_children_left

# --- the examples, against their own environment ---------------------------
J=$T_TMP/examples.xml
out=$("$EVENTRIG" run --env examples/examples.env.json --junit "$J" --report-dir "$T_TMP/reports" examples 2>&1); rc=$?
check "examples: all pass (exit 0)" [ $rc -eq 0 ] || diag "$out"
check "examples: JUnit report validates" xsd_ok "$J"

# --- run: failing --------------------------------------------------------
J=$T_TMP/fail.xml
out=$("$EVENTRIG" run --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" $D/pass $D/fail 2>&1); rc=$?
check "run: a failing scenario exits 1" [ $rc -eq 1 ] || diag "$out"
check "run: failure names the step" grep -q "wait for a value the key never gets" <<<"$out"
check "run: failure shows expected and last seen" \
  bash -c 'grep -q "expected \"42\"" <<<"$1" && grep -q "last seen" <<<"$1"' _ "$out"
check "run: JUnit failure validates against the schema" xsd_ok "$J"
check "run: JUnit has one failure with the step in its message" \
  bash -c '[ "$(xmllint --xpath "count(//failure)" "$1")" = 1 ] && xmllint --xpath "string(//failure/@message)" "$1" | grep -q "wait for a value"' _ "$J"
check "run: teardown ran after the failure (its log line is in system-out)" \
  bash -c 'xmllint --xpath "string(//testcase[failure]/system-out)" "$1" | grep -q "teardown 1: teardown still runs"' _ "$J"
check "run: no child process left after a failing run" no_children_left
# where CI annotations land: file relative to the repository, line of the
# failing step (its object's line), 1 for a passing scenario
check "run: the failing testcase has file= the scenario's path" \
  bash -c '[ "$(xmllint --xpath "string(//testcase[failure]/@file)" "$1")" = tests/data/cli/fail/await-row.json ]' _ "$J"
fline=$(grep -n '"name": "wait for a value the key never gets"' $D/fail/await-row.json | cut -d: -f1)
check "run: the failing testcase has line= the failing step's line ($fline)" \
  bash -c '[ -n "$2" ] && [ "$(xmllint --xpath "string(//testcase[failure]/@line)" "$1")" = "$2" ]' _ "$J" "$fline"
check "run: a passing testcase has its file and line 1" \
  bash -c '[ "$(xmllint --xpath "string(//testcase[not(failure)][1]/@line)" "$1")" = 1 ] && xmllint --xpath "string(//testcase[not(failure)][1]/@file)" "$1" | grep -q "^tests/data/cli/pass/"' _ "$J"
# the same classname and file however the path was typed
J2=$T_TMP/fail-abs.xml
"$EVENTRIG" run --env $D/env.json --junit "$J2" --report-dir "$T_TMP/reports" "$ER_ROOT/$D/fail" >/dev/null 2>&1
J3=$T_TMP/fail-sub.xml
(cd tests && "$EVENTRIG" run --env ../$D/env.json --junit "$J3" --report-dir "$T_TMP/reports" "data/cli/fail/../fail" >/dev/null 2>&1)
for j in "$J2" "$J3"; do
  check "run: classname and file the same for $(basename "$j" .xml) as for a relative path" \
    bash -c 'for a in classname file line; do [ "$(xmllint --xpath "string(//testcase[failure]/@$a)" "$1")" = "$(xmllint --xpath "string(//testcase[failure]/@$a)" "$2")" ] || exit 1; done' _ "$J" "$j"
done
check "run: classname is the folder, dotted" \
  bash -c '[ "$(xmllint --xpath "string(//testcase[failure]/@classname)" "$1")" = tests.data.cli.fail ]' _ "$J"

# --- filter and fail-fast -------------------------------------------------
J=$T_TMP/filter.xml
"$EVENTRIG" run --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" --filter tag:other $D/pass >/dev/null 2>&1; rc=$?
check "run --filter: exit 0" [ $rc -eq 0 ]
check "run --filter: the other scenario is skipped in JUnit" \
  bash -c '[ "$(xmllint --xpath "count(//testcase[skipped])" "$1")" = 1 ]' _ "$J"
err=$("$EVENTRIG" run --env $D/env.json --report-dir "$T_TMP/reports" --filter tag:no-such-tag $D/pass 2>&1); rc=$?
check "run --filter selecting nothing: exit 5, not a silent green (got $rc)" [ $rc -eq 5 ]
check "run --filter selecting nothing: says so" grep -q "selects none of the 2 scenario(s)" <<<"$err"
mkdir -p "$T_TMP/none"
err=$("$EVENTRIG" run --env $D/env.json --report-dir "$T_TMP/reports" "$T_TMP/none" 2>&1); rc=$?
check "run on a folder without scenarios: exit 2 with a message" \
  bash -c '[ "$1" -eq 2 ] && grep -q "no scenario files" <<<"$2"' _ $rc "$err"
J=$T_TMP/ff.xml
"$EVENTRIG" run --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" --fail-fast $D/fail $D/pass >/dev/null 2>&1; rc=$?
check "run --fail-fast: exit 1 and the rest skipped" \
  bash -c '[ "$2" -eq 1 ] && [ "$(xmllint --xpath "count(//testcase[skipped])" "$1")" = 2 ]' _ "$J" $rc

# --- groups: parallel really overlaps, repeat, captures -------------------
J=$T_TMP/groups.xml
out=$("$EVENTRIG" run -v --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" $D/groups 2>&1); rc=$?
printf '%s\n' "$out" >"$T_TMP/groups.out"
check "groups: one pass, one fail (exit 1)" bash -c '[ "$1" -eq 1 ] && grep -q "^PASS  groups: parallel" "$2" && grep -q "^FAIL  groups: a failing branch" "$2"' _ $rc "$T_TMP/groups.out"
check "groups: --verbose streams the step log before the scenario's result line" \
  bash -c 'a=$(grep -n "parallel: 2 branches" "$1" | head -1 | cut -d: -f1); b=$(grep -n "^FAIL  groups: a failing branch" "$1" | cut -d: -f1); [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]' _ "$T_TMP/groups.out"
line=$(grep -m1 "parallel: 3 branches" <<<"$out")
last_start=$(sed -E 's/.*last started \+([0-9]+)ms.*/\1/' <<<"$line")
first_end=$(sed -E 's/.*first ended \+([0-9]+)ms.*/\1/' <<<"$line")
diag "$line"
check "groups: every branch started before the first ended (measured overlap)" \
  bash -c '[ -n "$1" ] && [ -n "$2" ] && [ "$1" -lt "$2" ]' _ "$last_start" "$first_end"
total=$(grep -A40 "step 1: three slow requests" <<<"$out" | grep -m1 -E "^  -> ok \([0-9]+ms\)$" | grep -oE "[0-9]+")
check "groups: three 600 ms requests in parallel took less than the 1800 ms of one after another (${total} ms)" \
  bash -c '[ -n "$1" ] && [ "$1" -lt 1800 ]' _ "$total"
check "groups: the failing branch is named in the failure" \
  grep -q "step: step 1 'one good, one bad' .* > \[branch 2\] step 1 'the bad branch'" <<<"$out"

# --- unusable input and environment --------------------------------------
err=$("$EVENTRIG" run --env $D/bad.env.json --report-dir "$T_TMP/reports" $D/pass 2>&1); rc=$?
check "run: a bad environment file exits 2" [ $rc -eq 2 ]
err=$("$EVENTRIG" run --env tests/data/empty.env.json --report-dir "$T_TMP/reports" tests/data/bad/two-actions.json 2>&1); rc=$?
check "run: a bad scenario exits 2 before anything starts" bash -c '[ "$1" -eq 2 ] && grep -q "two-actions.json:" <<<"$2"' _ $rc "$err"
err=$("$EVENTRIG" run --env $D/broken-service.env.json --report-dir "$T_TMP/reports" $D/pass 2>&1); rc=$?
check "run: a service that cannot start exits 3" [ $rc -eq 3 ] || diag "$err"
check "run: the exit-3 message names the service and shows its log" \
  bash -c 'grep -q "flaky" <<<"$1" && grep -q "cannot bind port" <<<"$1"' _ "$err"
err=$("$EVENTRIG" run --env tests/data/empty.env.json --report-dir "$T_TMP/reports" $D/pass 2>&1); rc=$?
check "run: no redis.url in the environment fails the scenario with a hint" \
  bash -c '[ "$1" -eq 1 ] && grep -q "redis.url" <<<"$2"' _ $rc "$err"

# --- the environment file when --env is not given ---------------------------
mkdir -p "$T_TMP/proj/sub/deeper"
err=$(cd "$T_TMP/proj/sub/deeper" && env -u EVENTRIG_ENV "$EVENTRIG" run "$ER_ROOT/$D/pass" 2>&1); rc=$?
check "run without --env and no eventrig.env.json: exit 2 (got $rc)" [ $rc -eq 2 ]
check "run without --env: the message says how to give one" \
  bash -c 'grep -q -- "--env FILE" <<<"$1" && grep -q EVENTRIG_ENV <<<"$1" && grep -q eventrig.env.json <<<"$1"' _ "$err"
echo '{"vars": {"FOUND": "yes"}}' >"$T_TMP/proj/eventrig.env.json"
echo '{"name": "uses the found env", "steps": [{"await": {"within": "1s", "http": {"url": "http://127.0.0.1:1/${env.FOUND}"}}}]}' >"$T_TMP/proj/sub/uses-env.json"
out=$(cd "$T_TMP/proj/sub/deeper" && env -u EVENTRIG_ENV "$EVENTRIG" run --dry-run ../uses-env.json 2>&1); rc=$?
check "run without --env finds eventrig.env.json in a parent folder (exit $rc)" \
  bash -c '[ "$1" -eq 0 ] && grep -qF "$2/proj/eventrig.env.json" <<<"$3" && grep -qF "http://127.0.0.1:1/yes" <<<"$3"' _ $rc "$T_TMP" "$out" || diag "$out"
err=$(cd "$T_TMP/proj/sub/deeper" && EVENTRIG_ENV="$ER_ROOT/$D/bad.env.json" "$EVENTRIG" run "$ER_ROOT/$D/pass" 2>&1); rc=$?
check "EVENTRIG_ENV comes before eventrig.env.json (its bad file: exit 2)" \
  bash -c '[ "$1" -eq 2 ] && grep -q "bad.env.json" <<<"$2"' _ $rc "$err"
err=$(cd "$T_TMP" && "$EVENTRIG" run -j 4 --env "$ER_ROOT/$D/env.json" --report-dir "$T_TMP/reports" "$ER_ROOT/$D/pass" 2>&1); rc=$?
check "-j 4 means jobs, not --junit: exit 0, nothing named 4 written" \
  bash -c '[ "$1" -eq 0 ] && [ ! -e "$2/4" ]' _ $rc "$T_TMP"
err=$("$EVENTRIG" run -j 0 --env $D/env.json $D/pass 2>&1); rc=$?
check "-j 0: exit 2 saying what -j takes" \
  bash -c '[ "$1" -eq 2 ] && grep -q "from 1 to 64" <<<"$2"' _ $rc "$err"
out=$("$EVENTRIG" list --color=always $D/pass 2>&1); rc=$?
check "--color=always is accepted" [ $rc -eq 0 ]
err=$("$EVENTRIG" run --color=sometimes --env $D/env.json $D/pass 2>&1); rc=$?
check "--color=sometimes: exit 2 naming the choices" \
  bash -c '[ "$1" -eq 2 ] && grep -q "auto, always or never" <<<"$2"' _ $rc "$err"
err=$(FORCE_COLOR=1 "$EVENTRIG" validate tests/data/bad/nested-key-misspelt.json 2>&1)
check "FORCE_COLOR colours diagnostics without a terminal" grep -q $'\033\[' <<<"$err"
err=$(FORCE_COLOR=1 "$EVENTRIG" validate --color=never tests/data/bad/nested-key-misspelt.json 2>&1)
check "--color=never wins over FORCE_COLOR" bash -c '! grep -q $'"'"'\033\['"'"' <<<"$1"' _ "$err"

# --- interruption ----------------------------------------------------------
for sig in INT TERM; do
  J=$T_TMP/intr-$sig.xml
  rm -f "$J"
  "$EVENTRIG" run --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" $D/pass $D/slow >"$T_TMP/intr.out" 2>&1 &
  pid=$!
  # wait (bounded) until the passing scenarios are in the report
  for ((i = 0; i < 600; i++)); do
    [ -f "$J" ] && [ "$(xmllint --xpath 'count(//testcase)' "$J" 2>/dev/null)" = 2 ] && break
    sleep 0.1
  done
  sleep 0.5
  kill -$sig $pid
  t0=$(date +%s%N)
  wait $pid; rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  want=130; [ $sig = TERM ] && want=143
  check "SIG$sig: exit $want (got $rc)" [ $rc -eq $want ]
  check "SIG$sig: stopped promptly (${ms} ms)" [ $ms -lt 15000 ]
  check "SIG$sig: the report is valid and holds what finished" \
    bash -c 'xmllint --noout --schema "$2" "$1" 2>/dev/null && [ "$(xmllint --xpath "count(//testcase)" "$1")" -ge 2 ]' _ "$J" "$ER_XSD"
  check "SIG$sig: the interrupted scenario's teardown ran" \
    bash -c 'xmllint --xpath "string(//testcase[contains(@name,\"slow\")]/system-out)" "$1" | grep -q "teardown 1"' _ "$J"
  check "SIG$sig: no child process left" no_children_left
  check "SIG$sig: the await says interrupted after ..., not 'did not hold'" \
    bash -c 'grep -q "await interrupted after [0-9.]*m\?s (limit 90.000s, [0-9]* polls of redis)" "$1" && ! grep -q "did not hold within" "$1"' _ "$T_TMP/intr.out"
done

# --- progress of a long step in a log (not a terminal) ---------------------
"$EVENTRIG" run --env $D/env.json --junit "$T_TMP/prog.xml" --report-dir "$T_TMP/reports" $D/slow >"$T_TMP/prog.out" 2>&1 &
pid=$!
for ((i = 0; i < 150; i++)); do grep -q "running for 1[0-9]" "$T_TMP/prog.out" && break; sleep 0.1; done
kill -INT $pid
wait $pid
check "progress: a step running over 10 s prints a plain line saying so" \
  grep -qE "^  \.\.\. slow: waits long enough to be interrupted: step 1 'await #1' running for 1[0-9]\.[0-9]+s, [0-9]+ poll\(s\), last seen: redis" "$T_TMP/prog.out"
check "progress: no terminal escapes in a log" bash -c '! grep -q $'"'"'\033'"'"' "$1"' _ "$T_TMP/prog.out"
diag "$(grep -m1 '^  \.\.\.' "$T_TMP/prog.out")"

t_done
