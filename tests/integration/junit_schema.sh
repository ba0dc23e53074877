#!/usr/bin/env bash
# junit_schema.sh: the JUnit XML eventrig writes validates against the
# Jenkins xunit schema (tests/data/junit-10-fileline.xsd: junit-10.xsd plus optional file and line on testcases) with xmllint, also when
# every field is full of hostile text (control bytes, invalid UTF-8, "]]>",
# markup characters, lone surrogates, emoji).
. "$(dirname "$0")/../lib.sh"

BIN="$ER_ROOT/build/asan/tests/test_junit"
HOSTILE="$T_TMP/hostile.xml"
EMPTY="$T_TMP/empty.xml"

if ! command -v xmllint >/dev/null; then
  not_ok "xmllint is installed (apt-get install libxml2-utils)"
  exit 1
fi
if [ ! -x "$BIN" ]; then
  not_ok "$BIN is built (make tests-build)"
  exit 1
fi

# the unit test program writes the reports; its own checks are not
# counted here (tests/run.sh runs it on its own)
if "$BIN" "$HOSTILE" "$EMPTY" >"$T_TMP/unit.log" 2>&1; then
  ok "test_junit wrote the reports"
else
  not_ok "test_junit wrote the reports"
  sed 's/^/# /' "$T_TMP/unit.log" | grep -v '^# ok' | head -20
fi

validate() { xmllint --noout --schema "$ER_XSD" "$1" 2>"$T_TMP/xmllint.err"; }

for f in "$HOSTILE" "$EMPTY"; do
  if validate "$f"; then
    ok "$(basename "$f") validates against junit-10-fileline.xsd"
  else
    not_ok "$(basename "$f") validates against junit-10-fileline.xsd"
    sed 's/^/# /' "$T_TMP/xmllint.err" | head -20
  fi
done

# what a CI server reads back: counts, the failure text, the escaped name
n=$(xmllint --xpath 'count(//testcase)' "$HOSTILE" 2>/dev/null)
check "hostile report has 5 testcases (got $n)" [ "$n" = 5 ]
f=$(xmllint --xpath 'string(//testsuite/@failures)' "$HOSTILE" 2>/dev/null)
check "testsuite failures=1 (got $f)" [ "$f" = 1 ]
msg=$(xmllint --xpath 'string(//failure/@message)' "$HOSTILE" 2>/dev/null)
case "$msg" in
  *'cdata:]]> esc:&<>"'"'"' emoji:'*) ok "failure message reads back with ]]> and &<>\"' intact" ;;
  *) not_ok "failure message reads back with ]]> and &<>\"' intact"; diag "got: $msg" ;;
esac
body=$(xmllint --xpath 'string(//failure)' "$HOSTILE" 2>/dev/null)
case "$body" in
  'step: step '*'last seen: '*) ok "failure text has the step, then expected / last seen" ;;
  *) not_ok "failure text has the step, then expected / last seen"; diag "got: $body" ;;
esac

# the schema really checks: a testcase without its required name fails
sed 's/<testcase name="plain pass"/<testcase/' "$HOSTILE" >"$T_TMP/broken.xml"
if validate "$T_TMP/broken.xml"; then
  not_ok "a report violating the schema is rejected (control)"
else
  ok "a report violating the schema is rejected (control)"
fi
# and a raw control byte makes the file unusable (control for the escaping)
printf '<?xml version="1.0"?><testsuites><testsuite name="\001" tests="0" failures="0" errors="0"/></testsuites>\n' >"$T_TMP/ctl.xml"
if xmllint --noout "$T_TMP/ctl.xml" 2>/dev/null; then
  not_ok "a raw control byte is rejected by xmllint (control)"
else
  ok "a raw control byte is rejected by xmllint (control)"
fi

t_done
