#!/usr/bin/env bash
# html_report.sh: --html and --json of a run with a failing scenario.
# The JSON has the documented shape (counts, scenarios, steps with start,
# time, status, polls and the last value seen, the verdict). The HTML is
# rendered for real by headless Chromium (installed from Debian on first
# use, as `make test` installs what it needs): --dump-dom shows the
# failing step, its verdict and the timeline; a screenshot is taken.
# A hostile name (markup, invalid UTF-8) stays text.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/shards
E=tests/data/empty.env.json

mkdir -p "$T_TMP/sc"
cp $D/*.json "$T_TMP/sc/"
printf '{"name": "hostile <script>alert(1)</script> \\u00e9 & \\"q\\"", "steps": [{"sleep": {"for": "1ms"}}]}\n' >"$T_TMP/sc/s8-hostile.json"
"$EVENTRIG" run --env $E --junit "$T_TMP/j.xml" --html "$T_TMP/r.html" --json "$T_TMP/r.json" \
  --report-dir "$T_TMP/r" "$T_TMP/sc" >"$T_TMP/out" 2>&1
rc=$?
check "run with --html and --json: exit 1 (one scenario fails; got $rc)" [ $rc -eq 1 ]

check "JSON: the documented shape, counts and a failing step with polls and last seen" \
  python3 - "$T_TMP/r.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == 1 and d["counts"] == {"tests": 8, "passed": 7, "failed": 1, "errors": 0, "skipped": 0}, d["counts"]
f = [s for s in d["scenarios"] if s["status"] == "failed"]
assert len(f) == 1 and f[0]["verdict"] and f[0]["file"].endswith("s7-fails.json") and f[0]["line"] == 4
st = f[0]["steps"][0]
assert st["name"] == "a server that is not there" and st["status"] == "failed" and st["polls"] >= 2, st
assert "Couldn't connect" in st["last_seen"] and st["time_s"] > 0
p = [s for s in d["scenarios"] if s["name"].startswith("shards: scenario 6")][0]
assert p["steps"][0]["time_s"] >= 0.24 and p["steps"][0]["status"] == "ok"
PY

# a real browser
if ! command -v chromium >/dev/null; then
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends chromium >"$T_TMP/apt.log" 2>&1 ||
    tail -5 "$T_TMP/apt.log" | sed 's/^/# /'
fi
if ! command -v chromium >/dev/null; then
  not_ok "chromium is installed (apt-get install chromium)"
  t_done
  exit 1
fi
CHROME=(chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$T_TMP/chrome")
timeout 120 "${CHROME[@]}" --dump-dom "file://$T_TMP/r.html" >"$T_TMP/dom.html" 2>"$T_TMP/chrome.err"
check "Chromium renders the report (--dump-dom)" test -s "$T_TMP/dom.html" || tail -5 "$T_TMP/chrome.err" | sed 's/^/# /'
check "DOM: the failing scenario is open with its verdict" \
  python3 - "$T_TMP/dom.html" <<'PY'
import sys, re
d = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<section id="s\d+" class="failed"><details open="">(.*?)</section>', d, re.S)
assert m, "no open failed section"
sec = m.group(1)
assert "shards: scenario 7 fails" in sec and 'class="verdict"' in sec and "verdict: no known pattern" in sec
assert "a server that is not there" in sec and "poll(s), last seen:" in sec
PY
check "DOM: one timeline row per step, passing scenarios closed" \
  bash -c '[ "$(grep -o "<tr class=\"step " "$1" | wc -l)" -eq 8 ] && [ "$(grep -o "class=\"passed\"><details>" "$1" | wc -l)" -eq 7 ]' _ "$T_TMP/dom.html"
check "DOM: a hostile name stays text (no script element)" \
  bash -c '! grep -q "<script" "$1" && grep -q "hostile &lt;script&gt;alert(1)&lt;/script&gt; é &amp; \"q\"" "$1"' _ "$T_TMP/dom.html"
check "the report is self-contained (no http(s) URL, no script)" \
  bash -c '! grep -qE "(src|href)=\"https?:" "$1" && ! grep -q "<script" "$1"' _ "$T_TMP/r.html"
timeout 120 "${CHROME[@]}" --window-size=1200,900 --screenshot="$T_TMP/shot.png" "file://$T_TMP/r.html" >/dev/null 2>&1
size=$(stat -c %s "$T_TMP/shot.png" 2>/dev/null || echo 0)
check "a screenshot of the report is taken (${size} bytes PNG)" \
  bash -c '[ "$1" -gt 10000 ] && head -c 8 "$2" | od -An -c | grep -q "P   N   G"' _ "$size" "$T_TMP/shot.png"
mkdir -p "$ER_ROOT/build/test-artifacts" && cp "$T_TMP/shot.png" "$ER_ROOT/build/test-artifacts/html-report.png" 2>/dev/null
t_done
