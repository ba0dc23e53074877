#!/usr/bin/env bash
# bench/jobs/run.sh: the bundled suite with -j 1 and -j 4 on the same stack
# (ci/local.env.json: the reference service, Redis, Postgres, the embedded
# broker), RUNS alternating runs each. Prints every run's wall time and
# verdicts, the medians and their ratio (goal: -j 4 at most 0.6 of -j 1),
# and whether every run's verdicts are identical.
#
#   bench/jobs/run.sh            3 runs each
#   RUNS=5 JOBS=4 bench/jobs/run.sh
#
# Not part of `make test`: it is a benchmark (about 4 minutes).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-3}
JOBS=${JOBS:-4}
BIN=${EVENTRIG:-./eventrig}
OUT="$ROOT/build/bench/jobs"
mkdir -p "$OUT"
make --no-print-directory eventrig sut >/dev/null
declare -a serial par
verdicts() {
  python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as E
print(" ".join("P" if t.find("failure") is None and t.find("error") is None else "F"
               for t in E.parse(sys.argv[1]).iter("testcase")))
PY
}
first=""
same=yes
for ((i = 1; i <= RUNS; i++)); do
  for j in 1 "$JOBS"; do
    t0=$(date +%s%N)
    "$BIN" run -j "$j" --env ci/local.env.json --junit "$OUT/j$j-$i.xml" \
      --report-dir "$OUT/reports" scenarios >"$OUT/j$j-$i.log" 2>&1 || true
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    v=$(verdicts "$OUT/j$j-$i.xml")
    [ -z "$first" ] && first=$v
    [ "$v" = "$first" ] || same=no
    printf 'run %d  -j %-2s %7.1f s  %s\n' "$i" "$j" "$(echo "$ms/1000" | bc -l)" "$v"
    if [ "$j" = 1 ]; then serial+=("$ms"); else par+=("$ms"); fi
  done
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms1=$(med "${serial[@]}")
msj=$(med "${par[@]}")
ratio=$(echo "scale=2; $msj/$ms1" | bc -l)
echo "median -j 1: $(echo "scale=1; $ms1/1000" | bc -l) s, -j $JOBS: $(echo "scale=1; $msj/1000" | bc -l) s"
echo "ratio -j $JOBS / -j 1: $ratio (goal <= 0.6); identical verdicts: $same"
