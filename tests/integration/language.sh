#!/usr/bin/env bash
# The scenario language end to end (README "Scenario files"): fixtures
# read by steps, reusable step files, tables of cases, foreach, conditions,
# URL encoding and YAML files, run against real Redis, Postgres, an HTTP
# server and the embedded Kafka broker that eventrig starts itself
# (tests/data/lang/lang.env.json); and the validation of each construct, every
# problem at its file:line:col.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/lang
MARK="eventrig-lang-$$-$RANDOM"
export ER_TEST_MARK="$MARK"

xsd_ok() { xmllint --noout --schema "$ER_XSD" "$1" 2>"$T_TMP/xsd.err"; }
tc_count() { xmllint --xpath "count(//testcase$2)" "$1"; }

# --- everything in pass/ passes ---------------------------------------------
J=$T_TMP/pass.xml
out=$("$EVENTRIG" run --env $D/lang.env.json --junit "$J" --report-dir "$T_TMP/reports" $D/pass 2>&1); rc=$?
check "pass/: every scenario passes (exit 0)" [ $rc -eq 0 ] || diag "$out"
check "pass/: the JUnit report validates" xsd_ok "$J"
check "fixtures: SQL, Redis seed, JSON Lines and HTTP bodies from files" \
  grep -q "^PASS  fixtures: SQL, Redis seed" <<<"$out"
check "use: a step file's inputs, outputs, nesting and scope" \
  grep -q "^PASS  use: a step file with inputs and outputs" <<<"$out"
check "cases: one testcase per row, named from it" \
  bash -c 'grep -q "^PASS  cases \[small\]" <<<"$1" && grep -q "^PASS  cases \[big\]" <<<"$1"' _ "$out"
check "cases: a row's own skip" grep -q "^SKIP  cases \[not today\] - a row skipped on purpose" <<<"$out"
check "cases: the JUnit report has the rows as testcases (one skipped)" \
  bash -c '[ "$(xmllint --xpath "count(//testcase[starts-with(@name,\"cases [\")])" "$1")" = 3 ] && [ "$(xmllint --xpath "count(//testcase[@name=\"cases [not today]\"]/skipped)" "$1")" = 1 ]' _ "$J"
check "if: only the steps whose condition holds ran (a var, a comparison, a matcher, not/all/any, a capture, a group, a step file, in a loop)" \
  grep -q "^PASS  conditions: steps and groups" <<<"$out"
check "skip if: with the embedded broker, a scenario for a real one is skipped, saying why" \
  grep -qF 'SKIP  skip: only with a real broker - needs a real Kafka broker (${kafka.embedded} is true)' <<<"$out"
check "skip if: the opposite runs, and a row's own condition skips that row" \
  bash -c 'grep -q "^PASS  skip: not with a real broker (runs on the embedded one) \[always\]" <<<"$1" && grep -q "^SKIP  skip: not with a real broker (runs on the embedded one) \[only when LANG_RUN_ME is set\]" <<<"$1"' _ "$out"
check "a step not run says why in the log" \
  bash -c 'xmllint --xpath "string(//testcase[@name=\"conditions: steps and groups that run only when something holds\"]/system-out)" "$1" | grep -qF "not run: its condition does not hold (\${flags.off} is \"false\" (false))"' _ "$J"
check "urls: \${urlencode(...)}, a query the step encodes, \${ in a description, tags and step names is prose" \
  grep -q "^PASS  urls: encoded values" <<<"$out"
check "yaml: a YAML scenario with a YAML step file, fixtures and a table of cases" \
  bash -c 'grep -q "^PASS  yaml: a scenario, a step file, fixtures and a table, all in YAML \[one time\]" <<<"$1" && grep -q "^PASS  yaml: .* \[three times\]" <<<"$1"' _ "$out"
check "no child process left" no_children_left

# --- a YAML environment file --------------------------------------------------
out=$("$EVENTRIG" run --env $D/lang.env.yaml --junit "$T_TMP/yenv.xml" --report-dir "$T_TMP/reports" $D/pass/yaml.yaml $D/pass/fixtures.json 2>&1); rc=$?
check "the same environment in YAML runs the same scenarios" \
  bash -c '[ "$1" -eq 0 ] && [ "$(grep -c "^PASS" <<<"$2")" -eq 3 ]' _ $rc "$out" || diag "$out"
err=$(printf 'ports: [a]\nredis:\n  url: redis://x/0\n  alow_flush: no\n' >"$T_TMP/bad.env.yaml"; "$EVENTRIG" validate --env "$T_TMP/bad.env.yaml" $D/pass/urls.json 2>&1); rc=$?
check "a YAML environment's problems at file:line:col, with did-you-mean and the YAML 1.1 trap" \
  bash -c '[ "$1" -eq 2 ] && grep -q "bad.env.yaml:4:3: error: unknown key .alow_flush. in .redis. (did you mean .allow_flush.?)" <<<"$2" && grep -q "bad.env.yaml:4:15: error: .no. is ambiguous" <<<"$2"' _ $rc "$err"

mkdir -p "$T_TMP/proj/sub"
printf 'redis:\n  url: 5\n' >"$T_TMP/proj/eventrig.env.yaml"
err=$(cd "$T_TMP/proj/sub" && "$EVENTRIG" validate "$ER_ROOT/$D/pass/urls.json" 2>&1); rc=$?
check "without --env, the nearest eventrig.env.yaml is found (and checked)" \
  bash -c '[ "$1" -eq 2 ] && grep -q "eventrig.env.yaml:2:8: error: .url. must be a string, not an integer" <<<"$2"' _ $rc "$err"

# --- --filter selects rows -------------------------------------------------
out=$("$EVENTRIG" list --filter 'case:big' $D/pass); rc=$?
check "list --filter case:big: that row only" \
  bash -c '[ "$1" -eq 0 ] && [ "$(wc -l <<<"$2")" -eq 1 ] && grep -q "cases \[big\]" <<<"$2"' _ $rc "$out"
out=$("$EVENTRIG" list --filter 'name:[small]' $D/pass); rc=$?
check "list --filter name:[small]: a row by its full name" \
  bash -c '[ "$1" -eq 0 ] && [ "$(wc -l <<<"$2")" -eq 1 ] && grep -q "cases \[small\]" <<<"$2"' _ $rc "$out"
J=$T_TMP/rows.xml
out=$("$EVENTRIG" run --env $D/lang.env.json --junit "$J" --report-dir "$T_TMP/reports" --filter 'case:big,tag:small' $D/pass/cases.json 2>&1); rc=$?
check "run --filter case:big,tag:small: two rows run, the third is filtered out" \
  bash -c '[ "$1" -eq 0 ] && [ "$(grep -c "^PASS" <<<"$2")" -eq 2 ] && grep -q "^SKIP  cases \[not today\]" <<<"$2"' _ $rc "$out"
LANG_RUN_ME=1 "$EVENTRIG" run --env $D/lang.env.json --junit "$T_TMP/envrow.xml" --report-dir "$T_TMP/reports" --filter 'case:only when LANG_RUN_ME is set' $D/pass/skip-real-broker-not.json >"$T_TMP/envrow.out" 2>&1; rc=$?
check "skip if on the environment: with LANG_RUN_ME set, that row runs" \
  bash -c '[ "$1" -eq 0 ] && grep -q "^PASS  skip: not with a real broker (runs on the embedded one) \[only when LANG_RUN_ME is set\]" "$2"' _ $rc "$T_TMP/envrow.out"

# --- fail/: each fails for its own reason, said where -----------------------
J=$T_TMP/fail.xml
out=$("$EVENTRIG" run --env $D/lang.env.json --junit "$J" --report-dir "$T_TMP/reports" $D/fail 2>&1); rc=$?
check "fail/: exit 1" [ $rc -eq 1 ] || diag "$out"
check "fail/: the JUnit report validates" xsd_ok "$J"
check "a fixture line naming an unknown var: the fixture's file:line in the message" \
  grep -qF "bad-var.jsonl:2: at /x: \${nope}: unknown name 'nope'" <<<"$out"
check "a step failing inside a step file: the call, then the step at its file:line:col" \
  grep -qF "step: step 2 'call it' (tests/data/lang/fail/use-inside.json:5:5) > fails.step.json step 2 'a value that is not there' (tests/data/lang/fixtures/steps/fails.step.json:5:5)" <<<"$out"
check "... and the JUnit line is the call's, in the scenario's own file" \
  bash -c '[ "$(xmllint --xpath "string(//testcase[@name=\"fails: a step inside a step file\"]/@line)" "$1")" = 5 ]' _ "$J"
check "a condition naming an unset environment variable is an error at its step" \
  grep -qF "if: \${env.LANG_SURELY_UNSET}: environment variable 'LANG_SURELY_UNSET' is not set" <<<"$out"
check "a value with a space put into a URL as it is: the error says how to encode it" \
  grep -qF 'malformed URL: Bad query (a value put into the URL with spaces or other characters a URL cannot hold must be encoded: ${urlencode(name)}, or give it in "query")' <<<"$out"
check "a failing YAML step: its line:col in the YAML file" \
  grep -qF "step: step 2 'a value that is not there' (tests/data/lang/fail/yaml-step.yaml:4:5)" <<<"$out"
check "a failing row fails alone, named from the row" \
  bash -c 'grep -q "^PASS  fails: one row of a table \[fine\]" <<<"$1" && grep -q "^FAIL  fails: one row of a table \[wrong on purpose\]" <<<"$1"' _ "$out"
check "no child process left after the failing run" no_children_left

# --- validation: problems inside step files, at their place -----------------
err=$("$EVENTRIG" validate tests/data/bad/use-inside.json 2>&1); rc=$?
check "validate: a step file with problems exits 2" [ $rc -eq 2 ]
check "validate: a problem inside a step file at its file:line:col, with where it is used" \
  grep -qF "tests/data/fixtures/steps/broken.step.json:5:63: error: unknown key 'stauts' in 'expect' (did you mean 'status'?) (used at tests/data/bad/use-inside.json:4:5)" <<<"$err"
err=$("$EVENTRIG" validate tests/data/bad/yaml-errors.yaml 2>&1); rc=$?
check "validate: a YAML scenario's problems at their file:line:col" \
  bash -c '[ "$1" -eq 2 ] && grep -qF "tests/data/bad/yaml-errors.yaml:12:9: error: unknown key '"'"'stauts'"'"' in '"'"'expect'"'"' (did you mean '"'"'status'"'"'?)" <<<"$2"' _ $rc "$err"
err=$("$EVENTRIG" validate tests/data/bad/use-cycle.json 2>&1); rc=$?
check "validate: a cycle of step files exits 2 and shows the cycle" \
  bash -c '[ "$1" -eq 2 ] && grep -qF "(use-cycle.json > cycle-a.step.json > cycle-b.step.json > cycle-a.step.json)" <<<"$2"' _ $rc "$err"
out=$("$EVENTRIG" validate fixtures/steps/register-batch.step.json 2>&1); rc=$?
check "validate a step file on its own: the bundled one is valid" \
  bash -c '[ "$1" -eq 0 ] && grep -q "^0 scenario(s) valid, 0 error(s)" <<<"$2"' _ $rc "$out"
err=$("$EVENTRIG" validate tests/data/fixtures/steps/broken.step.json 2>&1); rc=$?
check "validate a step file on its own: its problems, at their place" \
  bash -c '[ "$1" -eq 2 ] && grep -qF "tests/data/fixtures/steps/broken.step.json:6:37: error: undefined variable '"'"'nn'"'"' (did you mean '"'"'n'"'"'?)" <<<"$2"' _ $rc "$err"
err=$("$EVENTRIG" run --env ci/local.env.json fixtures/steps/register-batch.step.json 2>&1); rc=$?
check "run on a step file alone: exit 2, nothing to run" \
  bash -c '[ "$1" -eq 2 ] && grep -q "no scenario in the given paths (step files are checked, not run" <<<"$2"' _ $rc "$err"
out=$("$EVENTRIG" run --dry-run --env $D/lang.env.json $D/pass/use.json 2>&1); rc=$?
check "dry run: the steps of a step file are shown under the call, at their place" \
  bash -c '[ "$1" -eq 0 ] && grep -qF "      - redis.seed {\"keys\":{\"\${full}\":\"\${value}\"},\"ttl\":\"\${ttl}\"}  [tests/data/lang/fixtures/steps/remember.step.json:10:5]" <<<"$2"' _ $rc "$out"

t_done
