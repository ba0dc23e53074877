#!/usr/bin/env bash
# The safety interlock and `eventrig run --dry-run`, against real servers:
# Redis watched with MONITOR, Postgres with log_statement=all.
#  a. writing steps on targets not marked as test targets: exit 3
#     before any scenario, every refused step and its fix named, and no
#     command of the scenarios reaches either server (tests/integration/
#     interlock.sh has the table of ways to write);
#  b. the same scenarios with an allow entry / database pattern / marker
#     table pass, and their commands do show in MONITOR and the pg log;
#  c. claim_empty writes the marker into an empty DB, refuses a DB with
#     keys and no marker, accepts a DB holding the marker;
#  e. a target known only at run time is refused by the step's own guard;
#  d. --dry-run prints the plan with cleaning targets and touches nothing.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/safety
MARK=eventrig:test-target

start_redis || exit 1
export PG_EXTRA_OPTS="-c log_statement=all" # ci/scripts/pg-throwaway.sh
start_pg || exit 1
PGLOG=$T_TMP/pg-$PG_PORT.log
for db in safety other; do
  psql -q "$PG_DSN" -c "CREATE DATABASE $db" || { not_ok "create database $db"; exit 1; }
done
psql -q "postgresql://postgres@127.0.0.1:$PG_PORT/other" -c "CREATE TABLE eventrig_test_target ()" ||
  { not_ok "create the marker table"; exit 1; }
RC=(redis-cli -p "$REDIS_PORT")

# ---- MONITOR ---------------------------------------------------------------
MON=$T_TMP/monitor.txt
redis-cli -p "$REDIS_PORT" monitor >"$MON" 2>&1 &
T_PIDS+=($!)
for _ in $(seq 1 100); do grep -q '^OK' "$MON" 2>/dev/null && break; sleep 0.05; done
grep -q '^OK' "$MON" || { not_ok "redis-cli monitor started"; exit 1; }
SYNC=0
# mon_since: waits (bounded) until MONITOR has seen everything sent so far,
# then prints what it saw since the previous call
MON_AT=$(wc -l <"$MON")
mon_since() {
  SYNC=$((SYNC + 1))
  "${RC[@]}" echo "safety-sync-$SYNC" >/dev/null
  for _ in $(seq 1 200); do grep -q "\"safety-sync-$SYNC\"" "$MON" && break; sleep 0.05; done
  local now
  now=$(wc -l <"$MON")
  sed -n "$((MON_AT + 1)),${now}p" "$MON" | grep -v "safety-sync-"
  MON_AT=$now
}
# pg_since: waits (bounded) until the server has logged a marker statement
# sent after everything else, then prints what it logged since the previous
# call (a statement of several lines continues on lines of its own)
PG_AT=$(wc -l <"$PGLOG")
pg_since() {
  local now
  SYNC=$((SYNC + 1))
  psql -q "$PG_DSN" -c "SELECT 'safety-pgsync-$SYNC'" >/dev/null
  for _ in $(seq 1 200); do grep -q "safety-pgsync-$SYNC" "$PGLOG" && break; sleep 0.05; done
  now=$(wc -l <"$PGLOG")
  sed -n "$((PG_AT + 1)),${now}p" "$PGLOG" | grep -v "safety-pgsync-"
  PG_AT=$now
}
mon_since >/dev/null
pg_since >/dev/null

mkenv() { # file redis-url redis-target pg-dsn pg-target [extra top-level json]
  cat >"$1" <<EOF
{
  "redis": { "url": "$2"$([ -n "$3" ] && echo ", \"test_target\": $3") },
  "postgres": { "dsn": "$4"$([ -n "$5" ] && echo ", \"test_target\": $5") },
  "kafka": { "embedded": { "topics": ["safety.t"] } }${6:+, $6}
}
EOF
}
R0="redis://127.0.0.1:$REDIS_PORT/0"
PGS="postgresql://postgres:pg-s3cr3t@127.0.0.1:$PG_PORT/safety"
PGS_SHOWN="postgresql://postgres:***@127.0.0.1:$PG_PORT/safety"

# ---- a. refused ------------------------------------------------------------
mkenv "$T_TMP/a.env.json" "redis://:r3d1s-pw@127.0.0.1:$REDIS_PORT/0" "" "$PGS" ""
"$EVENTRIG" run --env "$T_TMP/a.env.json" --report-dir "$T_TMP/ra" $D/plan >"$T_TMP/a.out" 2>&1
rc=$?
check "a: unmarked targets: exit 3 (got $rc)" [ $rc -eq 3 ]
has() { grep -qF -- "$2" "$1" || { diag "missing in $1: $2"; return 1; }; }
RS="redis://:***@127.0.0.1:$REDIS_PORT/0"
check "a: the message says what was refused and that nothing ran" \
  has "$T_TMP/a.out" "eventrig: safety: refused 5 step(s) that would write where the target is not marked as a test target; no scenario ran and nothing was written:"
check "a: redis.clean named with file:line:col, target (password redacted) and reason" \
  has "$T_TMP/a.out" "  $D/plan/1-redis.json:4:5: redis.clean (SCAN+UNLINK \"safety:*\") on $RS: \"redis\" has no \"test_target\""
check "a: postgres.exec writes whatever it holds: the CREATE and the INSERT are named" \
  bash -c 'grep -qF "  $1/plan/2-pg.json:5:5: postgres.exec (CREATE) on $2: " "$3" && grep -qF "  $1/plan/2-pg.json:9:5: postgres.exec (INSERT) on $2: " "$3"' _ $D "$PGS_SHOWN" "$T_TMP/a.out"
check "a: the redis steps are left to their guards: the server could not be asked (wrong password)" \
  bash -c '! grep -q "1-redis.json:[79]:" "$1"' _ "$T_TMP/a.out"
check "a: the TRUNCATE of a multi-statement setup is named" \
  has "$T_TMP/a.out" "  $D/plan/2-pg.json:6:5: postgres.exec (TRUNCATE) on $PGS_SHOWN: \"postgres\" has no \"test_target\""
check "a: the DELETE in teardown is named" \
  has "$T_TMP/a.out" "  $D/plan/2-pg.json:14:5: postgres.exec (DELETE) on $PGS_SHOWN: \"postgres\" has no \"test_target\""
check "a: the fix for Redis: the exact key to add, in the file used" \
  has "$T_TMP/a.out" "  to allow it: add \"test_target\": {\"allow\": [\"127.0.0.1:$REDIS_PORT/0\"]} to \"redis\" in $T_TMP/a.env.json"
check "a: the fix for Postgres" \
  has "$T_TMP/a.out" "  to allow it: add \"test_target\": {\"databases\": [\"safety\"]} to \"postgres\" in $T_TMP/a.env.json"
check "a: the kafka.reset on the embedded broker is not refused" bash -c '! grep -q "kafka.reset" "$1"' _ "$T_TMP/a.out"
check "a: no password in the output" bash -c '! grep -qE "r3d1s-pw|pg-s3cr3t" "$1"' _ "$T_TMP/a.out"
check "a: no scenario ran (no JUnit report)" test ! -e "$T_TMP/ra/junit.xml"
mon_since >"$T_TMP/a.mon"
check "a: MONITOR: not a single command of the scenarios reached Redis (only the AUTH of COMMAND INFO)" \
  bash -c '! grep -v "\"AUTH\"" "$1" | grep -q .' _ "$T_TMP/a.mon"
pg_since >"$T_TMP/a.pg"
check "a: pg log: no TRUNCATE, DELETE or anything of the scenarios" \
  bash -c '! grep -qiE "truncate|delete|safety_rows|statement|execute" "$1"' _ "$T_TMP/a.pg"
[ "$T_FAILED" -eq 0 ] || { diag "a.out:"; sed 's/^/# /' "$T_TMP/a.out"; }

# ---- b. allowed ------------------------------------------------------------
mkenv "$T_TMP/b.env.json" "$R0" "{\"allow\": [\"127.0.0.1:*/0\"]}" "$PGS" '{"databases": ["nomatch", "safe*"]}'
"${RC[@]}" set safety:stale 1 >/dev/null
mon_since >/dev/null
"$EVENTRIG" run --env "$T_TMP/b.env.json" --report-dir "$T_TMP/rb" $D/plan >"$T_TMP/b.out" 2>&1
rc=$?
check "b: allow glob and database pattern: the same scenarios pass (exit $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -n 30 "$T_TMP/b.out"
mon_since >"$T_TMP/b.mon"
check "b: MONITOR sees the clean (SCAN MATCH safety:* then UNLINK)" \
  bash -c 'grep -qiE "\"scan\" \"0\" \"MATCH\" \"safety:\*\"" "$1" && grep -qiE "\"unlink\" \"safety:stale\"" "$1"' _ "$T_TMP/b.mon"
check "b: MONITOR sees the DEL" grep -qiE '"del" "safety:a"' "$T_TMP/b.mon"
pg_since >"$T_TMP/b.pg"
check "b: pg log shows the TRUNCATE and the DELETE" \
  bash -c 'grep -q "TRUNCATE safety_rows" "$1" && grep -q "DELETE FROM safety_rows WHERE id = 1" "$1"' _ "$T_TMP/b.pg"

# marker table: allowed in "other" (has it), refused in "safety" (has not)
MT='{"databases": ["nomatch_*"], "marker_table": "eventrig_test_target"}'
mkenv "$T_TMP/b2.env.json" "$R0" "" "postgresql://postgres@127.0.0.1:$PG_PORT/other" "$MT"
"$EVENTRIG" run --env "$T_TMP/b2.env.json" --report-dir "$T_TMP/rb2" $D/plan/2-pg.json >"$T_TMP/b2.out" 2>&1
rc=$?
check "b: a database holding the marker table is a test target (exit $rc)" [ $rc -eq 0 ]
mkenv "$T_TMP/b3.env.json" "$R0" "" "$PGS" "$MT"
pg_since >/dev/null
"$EVENTRIG" run --env "$T_TMP/b3.env.json" --report-dir "$T_TMP/rb3" $D/plan/2-pg.json >"$T_TMP/b3.out" 2>&1
rc=$?
check "b: one without it (and no matching name) is refused (exit $rc)" [ $rc -eq 3 ]
check "b: the reason names the database and the marker table" \
  has "$T_TMP/b3.out" "  $D/plan/2-pg.json:6:5: postgres.exec (TRUNCATE) on $PGS_SHOWN: database \"safety\" matches no test_target.databases glob and has no table \"eventrig_test_target\""
check "b: the fix offers both ways" \
  has "$T_TMP/b3.out" "  to allow it: add \"test_target\": {\"databases\": [\"safety\"]} to \"postgres\" in $T_TMP/b3.env.json, or create the table eventrig_test_target in it"
pg_since >"$T_TMP/b3.pg"
check "b: refused: the pg log has only the check, no TRUNCATE/DELETE" \
  bash -c '! grep -qiE "truncate|delete from" "$1" && grep -q "current_database()" "$1"' _ "$T_TMP/b3.pg"
mon_since >/dev/null

# ---- c. claim_empty --------------------------------------------------------
CLAIM="{\"marker\": \"$MARK\", \"claim_empty\": true}"
mkenv "$T_TMP/c1.env.json" "redis://127.0.0.1:$REDIS_PORT/1" "$CLAIM" "$PGS" ""
"$EVENTRIG" run --env "$T_TMP/c1.env.json" --report-dir "$T_TMP/rc1" $D/plan/1-redis.json >"$T_TMP/c1.out" 2>&1
rc=$?
check "c: an empty DB is claimed and the run passes (exit $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -n 20 "$T_TMP/c1.out"
val=$("${RC[@]}" -n 1 get "$MARK")
check "c: the marker now holds the run id and a time ($val)" \
  bash -c '[[ "$1" =~ ^[^\ ]+\ 20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T ]]' _ "$val"
mon_since >"$T_TMP/c1.mon"
check "c: MONITOR: the marker is written with SET NX in DB 1, before the clean" \
  bash -c 'awk "/\"SET\" \"eventrig:test-target\"/{s=NR} /\"SCAN\"/{if(!c)c=NR} END{exit !(s && c && s < c)}" "$1" && grep -q "\[1 .*\"SET\" \"eventrig:test-target\" .* \"NX\"" "$1"' _ "$T_TMP/c1.mon"

"${RC[@]}" -n 2 set other:x keep >/dev/null
mkenv "$T_TMP/c2.env.json" "redis://127.0.0.1:$REDIS_PORT/2" "$CLAIM" "$PGS" ""
mon_since >/dev/null
"$EVENTRIG" run --env "$T_TMP/c2.env.json" --report-dir "$T_TMP/rc2" $D/plan/1-redis.json >"$T_TMP/c2.out" 2>&1
rc=$?
check "c: a DB with keys and no marker is refused (exit $rc)" [ $rc -eq 3 ]
check "c: the reason: marker missing, keys there" \
  has "$T_TMP/c2.out" "  $D/plan/1-redis.json:4:5: redis.clean (SCAN+UNLINK \"safety:*\") on redis://127.0.0.1:$REDIS_PORT/2: the marker key \"$MARK\" is not in 127.0.0.1:$REDIS_PORT/2 (1 key(s) there; claim_empty claims only an empty database)"
check "c: the fix: allow it, or set the marker" \
  has "$T_TMP/c2.out" "  to allow it: add \"test_target\": {\"allow\": [\"127.0.0.1:$REDIS_PORT/2\"]} to \"redis\" in $T_TMP/c2.env.json, or mark the database: SET $MARK 1"
mon_since >"$T_TMP/c2.mon"
check "c: MONITOR: only SELECT, EXISTS, DBSIZE and COMMAND INFO reached DB 2" \
  bash -c 'grep -q "\"EXISTS\"" "$1" && ! grep -viE "\"(select|exists|dbsize)\"|\"COMMAND\" \"INFO\"" "$1" | grep -q .' _ "$T_TMP/c2.mon"
check "c: DB 2 untouched: its key is there, no marker written" \
  bash -c '[ "$("$@" -n 2 dbsize)" = 1 ] && [ "$("$@" -n 2 exists other:x)" = 1 ]' _ "${RC[@]}"

"${RC[@]}" -n 3 mset other:y keep "$MARK" "set by hand" >/dev/null
mkenv "$T_TMP/c3.env.json" "redis://127.0.0.1:$REDIS_PORT/3" "{\"marker\": \"$MARK\"}" "$PGS" ""
"$EVENTRIG" run --env "$T_TMP/c3.env.json" --report-dir "$T_TMP/rc3" $D/plan/1-redis.json >"$T_TMP/c3.out" 2>&1
rc=$?
check "c: a DB holding the marker is a test target, whatever else it holds (exit $rc)" [ $rc -eq 0 ]
mon_since >/dev/null

# ---- e. run-time guard -----------------------------------------------------
"${RC[@]}" -n 4 set victim:1 keep >/dev/null
mkenv "$T_TMP/e.env.json" "$R0" "{\"allow\": [\"127.0.0.1:*/0\"]}" "$PGS" "" \
  "\"vars\": {\"OTHER_DB\": \"redis://127.0.0.1:$REDIS_PORT/4\", \"OTHER_DSN\": \"$PGS\"}"
mon_since >/dev/null
pg_since >/dev/null
"$EVENTRIG" run --env "$T_TMP/e.env.json" --report-dir "$T_TMP/re" $D/runtime >"$T_TMP/e.out" 2>&1
rc=$?
check "e: a target known only at run time passes preflight, the step refuses it (exit $rc)" [ $rc -eq 1 ]
check "e: the step's failure says what was refused and how to allow it" \
  bash -c 'grep -rqF "redis.clean refused: redis://127.0.0.1:$2/4 is not a test target: 127.0.0.1:$2/4 matches no test_target.allow glob" "$1" && grep -rqF "to allow it: add \"test_target\": {\"allow\": [\"127.0.0.1:$2/4\"]} to \"redis\"" "$1"' _ "$T_TMP/e.out" "$REDIS_PORT"
mon_since >"$T_TMP/e.mon"
check "e: MONITOR: no SCAN / UNLINK in DB 4" bash -c '! grep -E "^[0-9.]+ \[4 " "$1" | grep -qiE "\"(scan|unlink|del)\""' _ "$T_TMP/e.mon"
check "e: the postgres step's own guard refuses a DSN from a capture" \
  has "$T_TMP/e.out" "postgres.exec refused: $PGS_SHOWN is not a test target: \"postgres\" has no \"test_target\""
pg_since >"$T_TMP/e.pg"
check "e: pg log: no DELETE" bash -c '! grep -qi "delete" "$1"' _ "$T_TMP/e.pg"
check "e: DB 4 keeps its key" bash -c '[ "$("$@" -n 4 exists victim:1)" = 1 ]' _ "${RC[@]}"
[ "$T_FAILED" -eq 0 ] || { diag "e.out:"; sed 's/^/# /' "$T_TMP/e.out" | tail -n 30; }

# ---- d. --dry-run ----------------------------------------------------------
SVC="\"services\": [{\"name\": \"touchy\", \"command\": [\"sh\", \"-c\", \"touch $T_TMP/started; exec sleep 30\"],
   \"ready\": {\"command\": [\"test\", \"-e\", \"$T_TMP/started\"], \"within\": \"5s\"}}]"
mkenv "$T_TMP/d.env.json" "$R0" "{\"allow\": [\"127.0.0.1:*/0\"]}" "$PGS" '{"databases": ["safety"]}' "$SVC"
mon_since >/dev/null
pg_since >/dev/null
"$EVENTRIG" run --dry-run --env "$T_TMP/d.env.json" --report-dir "$T_TMP/rd" $D/plan $D/runtime >"$T_TMP/d.out" 2>&1
rc=$?
check "d: --dry-run exits 0 (got $rc)" [ $rc -eq 0 ]
check "d: header" has "$T_TMP/d.out" "dry run: 5 scenario(s), environment $T_TMP/d.env.json; nothing is started or contacted"
check "d: a scenario, its sections and steps with positions" \
  bash -c 'grep -qxF "scenario \"safety: redis cleaning\" ($1/plan/1-redis.json)" "$2" && grep -qxF "  setup:" "$2" && grep -qxF "    - redis.clean {\"match\":\"safety:*\"}  [$1/plan/1-redis.json:4:5]" "$2"' _ $D "$T_TMP/d.out"
check "d: the cleaning step's target and that the environment allows it" \
  has "$T_TMP/d.out" "      ! destructive: redis.clean (SCAN+UNLINK \"safety:*\") on $R0: allowed (test_target.allow matches 127.0.0.1:$REDIS_PORT/0)"
check "d: a nested DEL, indented under its group" \
  has "$T_TMP/d.out" "        ! redis (DEL) on $R0: allowed (test_target.allow matches"
check "d: scenario vars expanded in arguments" \
  has "$T_TMP/d.out" "    - postgres.exec {\"sql\":\"-- clean first; DROP nothing here\\nSELECT 'DELETE'; TRUNCATE safety_rows\"}  [$D/plan/2-pg.json:6:5]"
check "d: the TRUNCATE with its database (password redacted)" \
  has "$T_TMP/d.out" "      ! destructive: postgres.exec (TRUNCATE) on $PGS_SHOWN: allowed (test_target.databases matches \"safety\")"
check "d: kafka.reset on the embedded broker" \
  has "$T_TMP/d.out" "! destructive: kafka.reset (offsets of group \"safety-g\" to end) on Kafka the embedded broker: allowed (the embedded broker)"
check "d: a capture kept as \${u}, decided at run time" \
  has "$T_TMP/d.out" "      ! destructive: redis.clean (SCAN+UNLINK \"victim:*\") on \${u}: checked at run time (the target is known only then)"
check "d: the total" has "$T_TMP/d.out" "8 destructive step(s), 0 refused by the environment as it stands; 7 step(s) that may only read where the target is not a test target, 0 of them left to the server"
check "d: no password shown" bash -c '! grep -q "pg-s3cr3t" "$1"' _ "$T_TMP/d.out"
check "d: no service started (its file is absent)" test ! -e "$T_TMP/started"
check "d: no report folder made" test ! -e "$T_TMP/rd"
mon_since >"$T_TMP/d.mon"
check "d: MONITOR: nothing reached Redis" bash -c '! [ -s "$1" ]' _ "$T_TMP/d.mon"
pg_since >"$T_TMP/d.pg"
check "d: nothing reached Postgres" bash -c '! [ -s "$1" ]' _ "$T_TMP/d.pg"
[ "$T_FAILED" -eq 0 ] || { diag "d.out:"; sed 's/^/# /' "$T_TMP/d.out"; }

mkenv "$T_TMP/d2.env.json" "$R0" "{\"marker\": \"$MARK\", \"claim_empty\": true}" "$PGS" ""
"$EVENTRIG" run -n --env "$T_TMP/d2.env.json" $D/plan/1-redis.json $D/plan/2-pg.json >"$T_TMP/d2.out" 2>&1
rc=$?
check "d: a marker is checked at run time; no test_target is refused (exit $rc)" \
  bash -c '[ $1 -eq 0 ] && grep -qF "on $2: checked at run time (marker key \"$3\", claimed if the database is empty)" "$4" && grep -qF "on $5: REFUSED: \"postgres\" has no \"test_target\"" "$4" && grep -qF "5 destructive step(s), 4 refused" "$4"' _ $rc "$R0" "$MARK" "$T_TMP/d2.out" "$PGS_SHOWN"
echo '{"redis": {"url": 5}}' >"$T_TMP/bad.env.json"
"$EVENTRIG" run --dry-run --env "$T_TMP/bad.env.json" $D/plan >"$T_TMP/d3.out" 2>&1
rc=$?
check "d: a bad environment file: exit 2 (got $rc)" [ $rc -eq 2 ]

[ -n "${SAFETY_KEEP:-}" ] && cp -r "$T_TMP" "$SAFETY_KEEP"
[ "$T_FAILED" -eq 0 ]
