#!/usr/bin/env bash
# The bundled suite against the reference service, twice in a row on the
# same Redis and Postgres with no cleaning in between: both runs must pass
# (scenarios clean only what is theirs and never depend on an earlier
# run's state). The servers are started here once and kept for both runs;
# eventrig starts the embedded broker, the proxies and three instances of
# the service, as ci/local.env.json says.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
MARK="eventrig-suite-$$-$RANDOM"
export ER_TEST_MARK="$MARK"
start_redis || exit 1
start_pg || exit 1
psql -q "$PG_DSN" -c "CREATE DATABASE sut" || { not_ok "create database sut"; exit 1; }

# the local environment, with Redis and Postgres not started by eventrig
python3 - "$REDIS_PORT" "$PG_PORT" >"$T_TMP/suite.env.json" <<'PY'
import json, re, sys
redis_port, pg_port = sys.argv[1], sys.argv[2]
text = open("ci/local.env.json").read()
env = json.loads(text)
env["ports"] = [p for p in env["ports"] if p not in ("redis", "pg")]
env["services"] = [s for s in env["services"] if s["name"] not in ("redis", "postgres")]
out = json.dumps(env, indent=1)
out = out.replace("${port.redis}", redis_port).replace("${port.pg}", pg_port)
# the service's program path is relative to the project root (file in ci/)
out = out.replace('"sut/eventrig-sut"', '"' + __import__("os").path.abspath("sut/eventrig-sut") + '"')
print(out)
PY
check "environment for external servers made" test -s "$T_TMP/suite.env.json"

for run in 1 2; do
  J=$T_TMP/suite-$run.xml
  t0=$(date +%s)
  "$EVENTRIG" run --env "$T_TMP/suite.env.json" --junit "$J" --report-dir "$T_TMP/reports" scenarios >"$T_TMP/suite-$run.out" 2>&1
  rc=$?
  check "run $run: the whole suite passes on the same servers (exit $rc, $(( $(date +%s) - t0 ))s)" [ $rc -eq 0 ]
  [ $rc -eq 0 ] || tail -n 40 "$T_TMP/suite-$run.out"
  check "run $run: JUnit validates against the schema" xmllint --noout --schema "$ER_XSD" "$J"
  n=$(xmllint --xpath 'count(//testcase)' "$J")
  check "run $run: every scenario ran ($n)" [ "$n" -ge 17 ]
done
grep -E "^(PASS|FAIL|ERROR)" "$T_TMP/suite-1.out" | sed 's/^/# /'
check "the second run saw the first run's rows still there (no cleaning in between)" \
  bash -c '[ "$(psql -Atq "$1" -c "SELECT count(DISTINCT substring(batch_id from 3 for 22)) FROM batch_essay_trackers")" -ge 2 ]' _ "${PG_DSN%/postgres}/sut"
t_done
