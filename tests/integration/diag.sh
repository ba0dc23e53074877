#!/usr/bin/env bash
# Failure diagnostics with a one-line verdict (harness/run/diag.h): each known
# pattern shown on a scenario run against the matching mutant of the
# reference service (SUT_BUG), or against an environment without the
# topic. Checks the verdict line on the console, in the JUnit file and in
# reports/<run>/<scenario>/diagnostics.{txt,json}, the evidence lines, and
# that a passing scenario writes no diagnostics. One stack start per case.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
MARK="eventrig-diag-$$-$RANDOM"
export ER_TEST_MARK="$MARK"
start_redis || exit 1
start_pg || exit 1
psql -q "$PG_DSN" -c "CREATE DATABASE sut" || { not_ok "create database sut"; exit 1; }

# the local environment, with Redis and Postgres not started by eventrig
python3 - "$REDIS_PORT" "$PG_PORT" >"$T_TMP/diag.env.json" <<'PY'
import json, os, sys
redis_port, pg_port = sys.argv[1], sys.argv[2]
env = json.loads(open("ci/local.env.json").read())
env["ports"] = [p for p in env["ports"] if p not in ("redis", "pg")]
env["services"] = [s for s in env["services"] if s["name"] not in ("redis", "postgres")]
out = json.dumps(env, indent=1)
out = out.replace("${port.redis}", redis_port).replace("${port.pg}", pg_port)
out = out.replace('"sut/eventrig-sut"', '"' + os.path.abspath("sut/eventrig-sut") + '"')
print(out)
PY
check "environment for external servers made" test -s "$T_TMP/diag.env.json"

# run NAME BUG ENV PATH...: console in $T_TMP/NAME.out, JUnit NAME.xml,
# reports under $T_TMP/NAME/
run() {
  local name=$1 bug=$2 env=$3
  shift 3
  local t0=$(date +%s)
  SUT_BUG="$bug" "$EVENTRIG" run --env "$env" --junit "$T_TMP/$name.xml" \
    --report-dir "$T_TMP/$name" "$@" >"$T_TMP/$name.out" 2>&1
  RC=$?
  echo "# $name: exit $RC in $(( $(date +%s) - t0 ))s"
  sed -n '/^FAIL\|^ERROR/,$p' "$T_TMP/$name.out" | head -n 40 | sed 's/^/#   /'
}

# verdict NAME SLUG TEXT: the verdict line is on the console, in the JUnit
# failure and in both diagnostics files
verdict() {
  local name=$1 slug=$2 text=$3 dir
  dir=$(ls -d "$T_TMP/$name"/*/"$slug" 2>/dev/null | head -n 1)
  check "$name: exit 1 (got $RC)" [ "$RC" -eq 1 ]
  check "$name: console shows 'verdict: ...$text...'" \
    bash -c 'grep "^ *verdict: " "$1" | grep -qF -- "$2"' _ "$T_TMP/$name.out" "$text"
  check "$name: the JUnit failure holds the verdict" \
    python3 -c 'import sys, xml.etree.ElementTree as E
t = [f.text or "" for f in E.parse(sys.argv[1]).iter("failure")] + [f.text or "" for f in E.parse(sys.argv[1]).iter("error")]
sys.exit(0 if any(l.startswith("verdict: ") and sys.argv[2] in l for x in t for l in x.splitlines()) else 1)' "$T_TMP/$name.xml" "$text"
  check "$name: $slug/diagnostics.txt starts with the verdict" \
    bash -c 'head -n 1 "$1/diagnostics.txt" | grep "^verdict: " | grep -qF -- "$2"' _ "$dir" "$text"
  check "$name: $slug/diagnostics.json has the verdict" \
    python3 -c 'import json, sys; sys.exit(0 if sys.argv[2] in json.load(open(sys.argv[1]))["verdict"] else 1)' "$dir/diagnostics.json" "$text"
  DIR=$dir
}

# (a) spop-outside-multi: every EXEC aborted, the happy path gets no row
run spop spop-outside-multi "$T_TMP/diag.env.json" scenarios/happy-path/three-essays.json
verdict spop happy-path-three-essays "EXEC aborted on every attempt (watch conflicts +"
check "spop: the consumer group's lag is shown" grep -qE "group els-group on essay.content.provisioned.v1: committed \[.*\], end \[.*\], lag [0-9]+ -> [0-9]+ 1s later" "$T_TMP/spop.out"
check "spop: the watch-conflict counter delta is shown" grep -qE "sut_watch_conflicts_total \+[1-9]" "$T_TMP/spop.out"
check "spop: the rows the expectation saw are in the detail" grep -qF "seen 0 row(s)" "$T_TMP/spop.out"
check "spop: diagnostics.txt has a service's last log lines" \
  bash -c 'grep -q "^service sut-1: running" "$1/diagnostics.txt" && grep -q "last log lines:" "$1/diagnostics.txt"' _ "$DIR"

# (b) keep-key-on-error: a failed attempt kept the key, the retry was
# skipped. The happy path runs first (it passes against this mutant): the
# consumer group has settled when Postgres goes down, so the events are
# attempted during the outage.
run kept keep-key-on-error "$T_TMP/diag.env.json" scenarios/happy-path scenarios/redis-outage/postgres-down.json
verdict kept redis-outage-postgres-down "skipped as a duplicate, its idempotency key was written after this scenario produced the event and kept (a failed attempt kept it)"
check "kept: the verdict says consumed and the rows short" grep -qE "^ *verdict: consumed \((lag 0|the service counted every event; its offset commit is pending)\) but (no row|a row missing): " "$T_TMP/kept.out"
check "kept: the key did not exist before, exists now with a TTL" \
  grep -qE "idempotency key els:idempotency:v2:els:essay.content.provisioned.v1:[0-9a-f]{64}: exists now yes, TTL [0-9.]+s; existed before this scenario produced it: no" "$T_TMP/kept.out"
check "kept: the passing happy path wrote no diagnostics" \
  bash -c '! ls -d "$1"/*/happy-path-three-essays 2>/dev/null | grep -q .' _ "$T_TMP/kept"

# (c) the correct service, a key seeded before the event (stale key); and
# the service's log tail in the JSON (the same run holds case (f))
run stale "" "$T_TMP/diag.env.json" tests/data/diag/sut/stale-key.json tests/data/diag/sut/stalled.json
# (the group's first offset commit may still be on its way: "consumed" is
# then said from the service's counters instead of "lag 0")
verdict stale sut-stale-key "but no row: skipped as a duplicate, its idempotency key existed before this scenario produced the event (stale key)"
check "stale: the key existed before" grep -qE "existed before this scenario produced it: yes" "$T_TMP/stale.out"
check "stale: the duplicate counter moved" grep -qE "sut_duplicates_skipped_total \+1" "$T_TMP/stale.out"
check "stale: diagnostics.json has each service's state and log tail" \
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s={x['name']:x for x in d['services']}; sys.exit(0 if s['sut-1']['state']=='running' and 'duplicate' in ''.join(x.get('log_tail','') for x in d['services']) else 1)" "$DIR/diagnostics.json"

# (f) same run, correct service: Postgres unreachable for the service (fault
# proxy), so it retries the event without committing while /healthz says
# ok: on the topic, lag not moving
verdict stale sut-stalled "not moving: consumer stalled"
check "stalled: the services still report healthy" \
  bash -c 'grep "^service sut-1: " "$1/diagnostics.txt" | grep -q "running, health HTTP 200"' _ "$DIR"
check "stalled: the message is on its topic" \
  grep -qE "essay.content.provisioned.v1 key b-.*: 1 delivered \(p[0-9]@[0-9]+\); on the topic: yes" "$DIR/diagnostics.txt"

# (d) no-ttl: the key never expires
run nottl no-ttl "$T_TMP/diag.env.json" scenarios/duplicate-storms/fixed-envelope.json
verdict nottl duplicate-storms-fixed-envelope "idempotency key has no TTL: it never expires"
check "nottl: the key is shown without TTL" grep -qE "exists now yes, no TTL" "$T_TMP/nottl.out"

# (e) no service: an expectation on a topic the environment does not have;
# the passing scenario of the same run writes no diagnostics
run missing "" tests/data/diag/missing.env.json tests/data/diag/missing
verdict missing missing-expect-missing "topic 'diag.absent.v1' missing"
check "missing: the passing scenario wrote no diagnostics" \
  bash -c '! ls -d "$1"/*/missing-passes 2>/dev/null | grep -q .' _ "$T_TMP/missing"
check "missing: the produced message is on its topic" grep -qF "diag.present.v1 key k: 1 delivered (p0@0); on the topic: yes" "$T_TMP/missing.out"
t_done
