#!/usr/bin/env bash
# bench/validate/run.sh: `eventrig validate` on 1,000 scenario files (each
# a copy of a bundled scenario under its own name), RUNS times; prints each
# wall time and the median against the goal (< 0.2 s), and beside it the
# time `python3 -m json.tool` takes only to parse the same files (a peer
# that reads JSON and checks nothing), with the ratio.
#
#   bench/validate/run.sh          1,000 files, 5 runs
#   FILES=5000 RUNS=3 bench/validate/run.sh
#
# Not part of `make test`: it is a benchmark (a few seconds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
FILES=${FILES:-1000}
RUNS=${RUNS:-5}
BIN=${EVENTRIG:-./eventrig}
make --no-print-directory eventrig >/dev/null
TMP=$(mktemp -d /tmp/eventrig-validate.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
src=(scenarios/*/*.json)
# the step files and data the scenarios name, found as the nearest
# fixtures/ folder above the copies
cp -r fixtures "$TMP/fixtures"
for ((i = 0; i < FILES; i++)); do
  s=${src[$((i % ${#src[@]}))]}
  mkdir -p "$TMP/s/d$((i / 100))"
  cp "$s" "$TMP/s/d$((i / 100))/f$i.json"
done
cat >"$TMP/parse.py" <<'PY'
import json, sys, pathlib
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.json")):
    json.loads(p.read_text())
PY
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -a er py
for ((r = 1; r <= RUNS; r++)); do
  t0=$(date +%s%N)
  "$BIN" validate "$TMP/s" >"$TMP/out" 2>&1 || { cat "$TMP/out" | tail -3; exit 1; }
  t1=$(date +%s%N)
  python3 "$TMP/parse.py" "$TMP/s"
  t2=$(date +%s%N)
  er+=($(( (t1 - t0) / 1000 )))
  py+=($(( (t2 - t1) / 1000 )))
  printf 'run %d: eventrig validate %6.3f s   python3 json parse only %6.3f s\n' \
    "$r" "$(echo "${er[-1]}/1000000" | bc -l)" "$(echo "${py[-1]}/1000000" | bc -l)"
done
e=$(med "${er[@]}"); p=$(med "${py[@]}")
echo "$(tail -n 1 "$TMP/out")"
printf 'median: eventrig validate %.3f s for %d files (goal < 0.2 s: %s); python3 parse only %.3f s; ratio eventrig/python %.2f\n' \
  "$(echo "$e/1000000" | bc -l)" "$FILES" "$([ "$e" -lt 200000 ] && echo met || echo NOT met)" \
  "$(echo "$p/1000000" | bc -l)" "$(echo "$e/$p" | bc -l)"
