#!/usr/bin/env bash
# The mutation check: the bundled suite must pass against the correct
# reference service and fail against each of its deliberate defects
# (SUT_BUG, ../shared/sut-contract.md: the nine of round 1 and the seven of
# round 2). A mutant run stops at its first failing scenario (--fail-fast).
# Runs are independent (each eventrig starts its own Redis, Postgres,
# broker, proxies and three instances on free ports), so --jobs N of them
# (default 2, or $MUTANTS_JOBS) run at once; a line "done: NAME" is
# printed as each ends. Then a table in a fixed order (mutant, result, time, the scenario
# and step that caught it, the verdict of its diagnostics) and "mutation
# score: K/16"; the same as tab-separated lines (mutant, scenario, step,
# verdict) goes to reports/mutants/verdicts.tsv, so that two runs can be
# diffed. Exits 0 only when the correct service passes and every mutant is
# caught.
# Usage: ci/mutants.sh [--env FILE] [--eventrig PATH] [--jobs N] [MUTANT...]
set -uo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=ci/local.env.json
EVENTRIG_BIN=${EVENTRIG_BIN:-./eventrig}
JOBS=${MUTANTS_JOBS:-2}
while [ $# -gt 0 ]; do
  case "$1" in
    --env) ENV_FILE=$2; shift 2 ;;
    --eventrig) EVENTRIG_BIN=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    *) break ;;
  esac
done
all=(spop-outside-multi no-idempotency envelope-hash fail-closed no-watch no-retry
  ready-unguarded keep-key-on-error no-ttl
  commit-before-process no-commit poison-stall key-collision pg-fail-drop
  ready-early excess-silent)
mutants=("$@")
[ ${#mutants[@]} -eq 0 ] && mutants=("${all[@]}")
out=reports/mutants
mkdir -p "$out"
t_all=$(date +%s)

# caught FILE: the first failing scenario of a JUnit file as one line
# "scenario<TAB>step<TAB>verdict" (scenario: its file under scenarios/,
# step: "step N 'name'"); nothing when none failed
caught() {
  python3 - "$1" <<'PY'
import re, sys, xml.etree.ElementTree as E
try:
    cases = list(E.parse(sys.argv[1]).iter("testcase"))
except Exception:
    sys.exit(0)
for tc in cases:
    f = tc.find("failure")
    if f is None:
        f = tc.find("error")
    if f is None:
        continue
    text = f.text or ""
    step = re.search(r"^step: (.*) \([^()]*:\d+:\d+\)$", text, re.M)
    verdict = re.search(r"^verdict: (.*)$", text, re.M)
    scen = re.sub(r"^scenarios/", "", tc.get("file") or tc.get("name"))
    print("\t".join([scen, step.group(1) if step else "(setup or teardown)",
                     verdict.group(1) if verdict else "(no verdict)"]))
    break
PY
}

# run_one NAME BUG FLAGS: one suite run; JUnit in $out/NAME.xml, console in
# .log, "exit-code seconds" in .result
run_one() {
  local name=$1 bug=$2 ff=$3 t0 rc
  t0=$(date +%s)
  SUT_BUG="$bug" "$EVENTRIG_BIN" run --env "$ENV_FILE" $ff \
    --junit "$out/$name.xml" --report-dir "$out/runs" scenarios >"$out/$name.log" 2>&1
  rc=$?
  echo "$rc $(($(date +%s) - t0))" >"$out/$name.result"
  echo "done: $name (exit $rc, $(($(date +%s) - t0))s)"
}

# the correct service first in the queue, then the mutants, JOBS at a time
rm -f "$out"/*.result
queue=(correct "${mutants[@]}")
running=0
for name in "${queue[@]}"; do
  while [ "$running" -ge "$JOBS" ]; do
    wait -n
    running=$((running - 1))
  done
  if [ "$name" = correct ]; then
    run_one correct "" "" &
  else
    run_one "$name" "$name" --fail-fast &
  fi
  running=$((running + 1))
done
wait

printf '%-22s %-9s %5s  %s\n' "mutant" "result" "time" "caught by (scenario, step) and verdict"
read -r rc secs <"$out/correct.result"
correct_ok=0
if [ "$rc" -eq 0 ]; then
  result="passes"; correct_ok=1
else
  result="FAILS"
fi
printf '%-22s %-9s %4ss  %s\n' "(correct service)" "$result" "$secs" \
  "$([ "$rc" -eq 0 ] || caught "$out/correct.xml" | cut -f1,2 | tr '\t' ' ')"
[ "$rc" -eq 0 ] || { echo "the correct service must pass; see $out/correct.log"; tail -n 30 "$out/correct.log"; }

score=0
tsv=()
for m in "${mutants[@]}"; do
  read -r rc secs <"$out/$m.result"
  line=$(caught "$out/$m.xml")
  if [ "$rc" -eq 1 ] && [ -n "$line" ]; then
    result="caught"; score=$((score + 1))
  else
    result="SURVIVED"
    [ "$rc" -ne 1 ] && line="(exit $rc; see $out/$m.log)"
  fi
  IFS=$'\t' read -r scen step verdict <<<"$line"
  printf '%-22s %-9s %4ss  %s, %s\n%-22s %-9s %5s    verdict: %s\n' "$m" "$result" "$secs" \
    "$scen" "${step:-}" "" "" "" "${verdict:-}"
  tsv+=("$(printf '%s\t%s' "$m" "$line")")
done
printf '%s\n' "${tsv[@]}" >"$out/verdicts.tsv"
echo "wall time: $(($(date +%s) - t_all))s ($JOBS at a time)"
echo "mutation score: $score/${#mutants[@]}"
[ $correct_ok -eq 1 ] && [ $score -eq ${#mutants[@]} ]
