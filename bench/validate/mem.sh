#!/usr/bin/env bash
# bench/validate/mem.sh: the memory `eventrig validate` takes for one file
# of STEPS steps (100,000 by default), for three step shapes (a sleep, a
# Redis GET with its expectation, an HTTP request with its expectation).
# Prints the peak resident size, the KB per step (goal: under 1 KB) and,
# beside it, the peak of `python3 -c 'json.load(...)'` on the same file (a
# peer that only reads the JSON and keeps it), with the ratio.
#
#   bench/validate/mem.sh              100,000 steps
#   STEPS=20000 bench/validate/mem.sh
#
# KB per step is the peak less the binary's own (validating a one-step
# file), over the steps. Not part of `make test`: it is a benchmark (a few
# seconds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
STEPS=${STEPS:-100000}
BIN=${EVENTRIG:-./eventrig}
make --no-print-directory eventrig >/dev/null
TMP=$(mktemp -d /tmp/eventrig-valmem.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

python3 - "$TMP" "$STEPS" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
shapes = {
    "sleep": lambda i: {"sleep": {"for": "1ms"}},
    "redis": lambda i: {"redis": {"command": ["GET", "k%d" % i], "expect": "v"}},
    "http": lambda i: {"http": {"method": "GET", "url": "http://h/x%d" % i,
                                "expect": {"status": 200}}},
}
for name, f in shapes.items():
    for k, count in (("", n), (".one", 1)):
        with open("%s/%s%s.json" % (d, name, k), "w") as out:
            json.dump({"name": name, "steps": [f(i) for i in range(count)]},
                      out, separators=(",", ":"))
PY

# peak RSS in KB of a command (its output dropped), measured by python
peak() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}
worst=0
for s in sleep redis http; do
  f="$TMP/$s.json"
  base=$(peak "$BIN" validate "$TMP/$s.one.json")
  er=$(peak "$BIN" validate "$f")
  py=$(peak python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$f")
  per=$(echo "scale=3; ($er - $base) / $STEPS" | bc -l)
  printf '%-6s %7d steps, %6.1f MB file: eventrig validate %7d KB (%s KB/step)   python3 json.load %7d KB   ratio %.2f\n' \
    "$s" "$STEPS" "$(echo "$(stat -c %s "$f")/1048576" | bc -l)" "$er" "$per" "$py" \
    "$(echo "$er/$py" | bc -l)"
  if [ "$(echo "$per > $worst" | bc -l)" = 1 ]; then worst=$per; fi
done
printf 'worst: %s KB/step (goal < 1 KB/step: %s)\n' "$worst" \
  "$([ "$(echo "$worst < 1" | bc -l)" = 1 ] && echo met || echo NOT met)"
