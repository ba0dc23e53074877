#!/usr/bin/env bash
# The scenario language end to end (README "Scenario files"): fixtures
# read by steps, reusable step files, tables of cases, foreach, conditions,
# URL encoding and YAML files, run against real Redis, Postgres, an HTTP
# server and the embedded Kafka broker that eventrig starts itself
# (tests/data/lang/env.json); and the validation of each construct, every
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
out=$("$EVENTRIG" run --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" $D/pass 2>&1); rc=$?
check "pass/: every scenario passes (exit 0)" [ $rc -eq 0 ] || diag "$out"
check "pass/: the JUnit report validates" xsd_ok "$J"
check "fixtures: SQL, Redis seed, JSON Lines and HTTP bodies from files" \
  grep -q "^PASS  fixtures: SQL, Redis seed" <<<"$out"
check "no child process left" no_children_left

# --- fail/: each fails for its own reason, said where -----------------------
J=$T_TMP/fail.xml
out=$("$EVENTRIG" run --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" $D/fail 2>&1); rc=$?
check "fail/: exit 1" [ $rc -eq 1 ] || diag "$out"
check "fail/: the JUnit report validates" xsd_ok "$J"
check "a fixture line naming an unknown var: the fixture's file:line in the message" \
  grep -qF "bad-var.jsonl:2: at /x: \${nope}: unknown name 'nope'" <<<"$out"
check "no child process left after the failing run" no_children_left

t_done
