#!/usr/bin/env bash
# bench/jobs/run.sh: the bundled suite with -j 1 and -j 4 on the same stack
# (ci/local.env.json: the reference service, Redis, Postgres, the embedded
# broker), RUNS alternating runs each. Prints every run's wall time and
# verdicts, the medians and their ratio (goal: -j 4 at most 0.6 of -j 1),
# and whether every run's verdicts are identical.
#
# Then why: the scenarios that run alone (the dry run's "under -j: runs
# alone") cannot overlap anything, so the serial run's time splits into
# E (those) and N (the rest), and -j J cannot go below (E + N/J) of the
# scenario time (Amdahl); it prints E, N and that bound, and measures the
# scenarios that may share the stack on their own, -j 1 against -j J, to
# show what -j does where it is allowed to.
#
#   bench/jobs/run.sh            3 runs each
#   RUNS=5 JOBS=4 bench/jobs/run.sh
#
# Not part of `make test`: it is a benchmark (about 6 minutes).
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

# --- the bound the scenarios that run alone set, and the shareable ones --
"$BIN" run --dry-run -j "$JOBS" --env ci/local.env.json scenarios >"$OUT/dry.txt" 2>&1 || true
python3 - "$OUT/dry.txt" "$OUT/j1-1.xml" "$JOBS" "$OUT/shareable.txt" <<'PY'
import re, sys, xml.etree.ElementTree as E
dry, junit, jobs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
alone, share, cur = set(), set(), None
for line in open(dry):
    m = re.match(r'scenario ".*" \((.+)\)$', line.rstrip())
    if m:
        cur = m.group(1)
    elif cur and "under -j: runs alone" in line:
        alone.add(cur)
    elif cur and "under -j: may run with others" in line:
        share.add(cur)
share -= alone
e = n = 0.0
for t in E.parse(junit).iter("testcase"):
    if t.get("file") in alone:
        e += float(t.get("time"))
    else:
        n += float(t.get("time"))
print("scenario time of the serial run: %.1f s alone-only (%d files), %.1f s shareable (%d files)"
      % (e, len(alone), n, len(share)))
print("bound for -j %d: (E + N/%d) / (E + N) = %.2f of the scenario time"
      % (jobs, jobs, (e + n / jobs) / (e + n)))
open(out, "w").write("\n".join(sorted(share)) + "\n")
PY
mapfile -t shareable <"$OUT/shareable.txt"
declare -a s1 sj
for j in 1 "$JOBS"; do
  t0=$(date +%s%N)
  "$BIN" run -j "$j" --env ci/local.env.json --junit "$OUT/share-j$j.xml" \
    --report-dir "$OUT/reports" "${shareable[@]}" >"$OUT/share-j$j.log" 2>&1 || true
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf 'shareable only  -j %-2s %7.1f s  %s\n' "$j" "$(echo "$ms/1000" | bc -l)" "$(verdicts "$OUT/share-j$j.xml")"
  if [ "$j" = 1 ]; then s1=$ms; else sj=$ms; fi
done
echo "ratio on the shareable scenarios alone, -j $JOBS / -j 1: $(echo "scale=2; $sj/$s1" | bc -l)"
