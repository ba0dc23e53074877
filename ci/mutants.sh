#!/usr/bin/env bash
# The mutation check: the bundled suite must pass against the correct
# reference service and fail against each of its deliberate defects
# (SUT_BUG, ../shared/sut-contract.md). A mutant run stops at its first
# failing scenario (--fail-fast). Prints a table (mutant, verdict, the
# scenarios that caught it) and "mutation score: K/9"; exits 0 only when
# the correct service passes and every mutant is caught.
# Usage: ci/mutants.sh [--env FILE] [--eventrig PATH] [MUTANT...]
set -uo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=ci/local.env.json
EVENTRIG_BIN=${EVENTRIG_BIN:-./eventrig}
while [ $# -gt 0 ]; do
  case "$1" in
    --env) ENV_FILE=$2; shift 2 ;;
    --eventrig) EVENTRIG_BIN=$2; shift 2 ;;
    *) break ;;
  esac
done
all=(spop-outside-multi no-idempotency envelope-hash fail-closed no-watch no-retry ready-unguarded keep-key-on-error no-ttl)
mutants=("$@")
[ ${#mutants[@]} -eq 0 ] && mutants=("${all[@]}")
out=reports/mutants
mkdir -p "$out"
t_all=$(date +%s)

# scenarios with a failure or an error in a JUnit file, one per line
caught_by() {
  xmllint --xpath '//testcase[failure or error]/@name' "$1" 2>/dev/null |
    sed -E 's/ name="/\n/g; s/"//g' | sed '/^$/d'
}

run_one() { # name -> exit code; JUnit in $out/$name.xml, console in .log
  local name=$1 bug=$2 ff=$3
  SUT_BUG="$bug" "$EVENTRIG_BIN" run --env "$ENV_FILE" $ff \
    --junit "$out/$name.xml" --report-dir "$out/runs" scenarios >"$out/$name.log" 2>&1
}

printf '%-20s %-9s %6s  %s\n' "mutant" "verdict" "time" "caught by"
t0=$(date +%s)
run_one correct "" ""
rc=$?
correct_ok=0
if [ $rc -eq 0 ]; then
  verdict="passes"; correct_ok=1
else
  verdict="FAILS"
fi
printf '%-20s %-9s %5ss  %s\n' "(correct service)" "$verdict" $(( $(date +%s) - t0 )) \
  "$( [ $rc -eq 0 ] || caught_by "$out/correct.xml" | paste -sd ';' - )"
[ $rc -eq 0 ] || { echo "the correct service must pass; see $out/correct.log"; tail -n 30 "$out/correct.log"; }

score=0
for m in "${mutants[@]}"; do
  t0=$(date +%s)
  run_one "$m" "$m" --fail-fast
  rc=$?
  by=$(caught_by "$out/$m.xml" | paste -sd ';' -)
  if [ $rc -eq 1 ] && [ -n "$by" ]; then
    verdict="caught"; score=$((score + 1))
  else
    verdict="SURVIVED"
    [ $rc -ne 1 ] && by="(exit $rc; see $out/$m.log)"
  fi
  printf '%-20s %-9s %5ss  %s\n' "$m" "$verdict" $(( $(date +%s) - t0 )) "$by"
done
echo "wall time: $(( $(date +%s) - t_all ))s"
echo "mutation score: $score/${#mutants[@]}"
[ $correct_ok -eq 1 ] && [ $score -eq ${#mutants[@]} ]
