#!/usr/bin/env bash
# Runs every test of eventrig and ends with "N passed, N failed".
# Each test program (tests/unit binaries, tests/integration/*.sh) prints
# TAP-style "ok"/"not ok" lines; a program that exits non-zero without a
# "not ok" line counts as one failure, and so does one that times out.
# Usage: tests/run.sh [PATTERN]   (runs only programs whose name matches)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export ER_ROOT="$ROOT"
export EVENTRIG="$ROOT/build/asan/eventrig"
export ER_XSD="$ROOT/tests/data/junit-10-fileline.xsd"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export NO_COLOR=1
pattern="${1:-}"
logdir="$ROOT/build/test-logs"
mkdir -p "$logdir"
passed=0
failed=0
progs=()
failures=()
for b in build/asan/tests/test_*; do [ -x "$b" ] && progs+=("$b"); done
for s in tests/integration/*.sh; do [ -f "$s" ] && progs+=("$s"); done
start_all=$(date +%s)
for p in "${progs[@]}"; do
  name=$(basename "$p")
  [ -n "$pattern" ] && [[ "$name" != *$pattern* ]] && continue
  log="$logdir/$name.log"
  t0=$(date +%s)
  limit=1800
  case "$p" in *.sh) cmd=(bash "$p") ;; *) cmd=("$p"); limit=120 ;; esac
  timeout -k 10 "$limit" "${cmd[@]}" >"$log" 2>&1
  rc=$?
  ok=$(grep -c '^ok ' "$log" || true)
  nok=$(grep -c '^not ok ' "$log" || true)
  if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
    nok=1
    echo "not ok - $name exited with status $rc" >>"$log"
  fi
  passed=$((passed + ok))
  failed=$((failed + nok))
  t1=$(date +%s)
  if [ "$nok" -gt 0 ]; then
    printf '%-40s %4d ok %3d FAILED  (%ds)\n' "$name" "$ok" "$nok" $((t1 - t0))
    while IFS= read -r line; do failures+=("$name: $line"); done \
      < <(grep -E '^not ok' "$log" | head -10)
    grep -E '^(not ok|#)' "$log" | head -40 | sed 's/^/    /'
    tail -n 15 "$log" | sed 's/^/    | /'
  else
    printf '%-40s %4d ok            (%ds)\n' "$name" "$ok" $((t1 - t0))
  fi
done
# The failed checks again at the end, where a CI log's tail shows them.
if [ "${#failures[@]}" -gt 0 ]; then
  echo "failed checks (first 10 per program; logs in build/test-logs/):"
  printf '  %s\n' "${failures[@]}"
fi
echo "total wall time: $(( $(date +%s) - start_all ))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
