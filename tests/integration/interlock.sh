#!/usr/bin/env bash
# The interlock as an allowlist the servers enforce (run/safety.h), table
# driven: every scenario of tests/data/interlock/cases is a way to destroy
# data ("new": got through the deny-list interlock; "old": refused by it
# too; "more": further ones). Each runs against a Redis and a Postgres that
# are not test targets, Redis watched with MONITOR and Postgres with
# log_statement=all, and must
#   - be refused: exit 3 at preflight, or a failed step saying "refused"
#     (for EVAL_RO, Redis's own "read-only scripts" refusal);
#   - reach neither server: no command in MONITOR that Redis does not flag
#     readonly (other than SELECT and COMMAND INFO), no statement in the
#     Postgres log that ran without an ERROR (the read-only transaction's
#     own BEGIN / check / ROLLBACK and the target check aside);
#   - lose nothing: every key (type, value, TTL), database and function
#     library, every row, column, sequence value as seeded.
# The scenarios of tests/data/interlock/reads run on the same unmarked
# targets (exit 0), and those tagged "marked" run on marked targets (exit 0).
# MEASURE=1 EVENTRIG=... prints the same table for another build (the
# deny-list one) without failing: how many it refused, how many reached a
# server, how many lost data.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/interlock
MEASURE=${MEASURE:-}

start_redis || exit 1
RU=$REDIS_PORT # unmarked
RU_PID=${T_PIDS[${#T_PIDS[@]} - 1]}
start_redis || exit 1
RM=$REDIS_PORT # marked
export PG_EXTRA_OPTS="-c log_statement=all"
start_pg || exit 1
PGLOG=$T_TMP/pg-$PG_PORT.log
PGBASE="postgresql://postgres@127.0.0.1:$PG_PORT"
for db in victim marked; do
  psql -q "$PGBASE/postgres" -c "CREATE DATABASE $db" || { not_ok "create database $db"; exit 1; }
done
NOPORT=$(free_port) # a Kafka "cluster" nobody listens on

# ---- seeding and snapshots ---------------------------------------------------
LIB='#!lua name=il
redis.register_function("il_wipe", function(keys, args) return redis.call("del", keys[1]) end)
redis.register_function{function_name="il_peek", callback=function(keys, args) return redis.call("get", keys[1]) end, flags={"no-writes"}}'
seed_redis() { # port dsn
  local p=$1
  redis-cli -p "$p" flushall >/dev/null && redis-cli -p "$p" function flush >/dev/null &&
    redis-cli -p "$p" function load "$LIB" >/dev/null &&
    redis-cli -p "$p" -n 0 set il:str v EX 3600 >/dev/null &&
    redis-cli -p "$p" -n 0 mset il:plain p il:a A il:b B il:move m il:cmd GETDEL il:dsn "$2" >/dev/null &&
    redis-cli -p "$p" -n 0 hset il:hash f 1 >/dev/null &&
    redis-cli -p "$p" -n 0 sadd il:set a b >/dev/null &&
    redis-cli -p "$p" -n 0 rpush il:list x y >/dev/null &&
    redis-cli -p "$p" -n 1 set il:db1 one >/dev/null
}
SEED_SQL="DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;
CREATE TABLE il_rows (id int PRIMARY KEY, v text);
INSERT INTO il_rows VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE TABLE il_log (x int);
CREATE RULE il_wipe AS ON INSERT TO il_log DO ALSO DELETE FROM il_rows;
CREATE FUNCTION il_wipe() RETURNS int LANGUAGE plpgsql AS \$\$ BEGIN DELETE FROM il_rows; RETURN 1; END \$\$;
CREATE SEQUENCE il_seq START 100; SELECT nextval('il_seq');"
seed_pg() { psql -q "$PGBASE/$1" -c "$SEED_SQL" >/dev/null 2>&1; }
snap_redis() { # port: every key of DB 0 and 1 (type, value, TTL), the libraries
  local p=$1 db k t
  redis-cli -p "$p" ping || return 0
  for db in 0 1; do
    for k in $(redis-cli -p "$p" -n $db --scan | sort); do
      t=$(redis-cli -p "$p" -n $db ttl "$k")
      [ "$t" -gt 3000 ] && t=ttl
      echo "$db $k $(redis-cli -p "$p" -n $db type "$k") $t $(redis-cli --no-raw -p "$p" -n $db dump "$k")"
    done
  done
  redis-cli -p "$p" function list | grep -A1 '^library_name$' | grep -v -- '^--$'
}
snap_pg() {
  psql -At "$PGBASE/$1" -c "SELECT (SELECT string_agg(id || ':' || coalesce(v, '-'), ',' ORDER BY id) FROM il_rows),
    (SELECT count(*) FROM il_log), (SELECT last_value FROM il_seq),
    (SELECT count(*) FROM information_schema.columns WHERE table_name = 'il_rows')" 2>&1
}

# ---- watching the servers ----------------------------------------------------
MON=$T_TMP/monitor.txt
MON_PID=
start_monitor() {
  redis-cli -p "$RU" monitor >>"$MON" 2>&1 &
  MON_PID=$!
  T_PIDS+=("$MON_PID")
  for _ in $(seq 1 100); do [ "$(grep -c '^OK' "$MON")" -ge "${1:-1}" ] && return 0; sleep 0.05; done
  return 1
}
: >"$MON"
start_monitor 1 || { not_ok "redis-cli monitor started"; exit 1; }
SYNC=0
MON_AT=$(wc -l <"$MON")
mon_since() { # what MONITOR saw since the last call (bounded wait for a sync)
  SYNC=$((SYNC + 1))
  redis-cli -p "$RU" echo "il-sync-$SYNC" >/dev/null
  for _ in $(seq 1 200); do grep -q "\"il-sync-$SYNC\"" "$MON" && break; sleep 0.05; done
  local now
  now=$(wc -l <"$MON")
  sed -n "$((MON_AT + 1)),${now}p" "$MON" | grep -v -e "il-sync-" -e '^OK$'
  MON_AT=$now
}
PG_AT=$(wc -l <"$PGLOG")
pg_since() {
  local now
  SYNC=$((SYNC + 1))
  psql -q "$PGBASE/postgres" -c "SELECT 'il-pgsync-$SYNC'" >/dev/null
  for _ in $(seq 1 200); do grep -q "il-pgsync-$SYNC" "$PGLOG" && break; sleep 0.05; done
  now=$(wc -l <"$PGLOG")
  sed -n "$((PG_AT + 1)),${now}p" "$PGLOG" | grep -v "il-pgsync-"
  PG_AT=$now
}
# what reached Redis and is not a read by its own flags (SELECT and COMMAND
# INFO, the interlock's own, aside): one line each
declare -A READONLY
is_read() { # name [subcommand]
  local key=${1,,} info
  [ -n "${2:-}" ] && key="${1,,}|${2,,}"
  if [ -z "${READONLY[$key]+x}" ]; then
    info=$(redis-cli -p "$RM" command info "$key")
    if [ -z "$info" ] || [ "$info" = "" ]; then key=${1,,}; info=$(redis-cli -p "$RM" command info "$key"); fi
    if grep -qx readonly <<<"$info" && ! grep -qx write <<<"$info"; then READONLY[$key]=1; else READONLY[$key]=0; fi
  fi
  [ "${READONLY[$key]}" = 1 ]
}
redis_writes() { # monitor lines on stdin
  local line name sub
  while IFS= read -r line; do
    [[ "$line" =~ \]\ \"([^\"]*)\"(\ \"([^\"]*)\")? ]] || continue
    name=${BASH_REMATCH[1]}
    sub=${BASH_REMATCH[3]:-}
    case "${name,,}" in select | command) continue ;; esac
    is_read "$name" "$sub" || echo "$line"
  done
}
# statements the Postgres log shows as run without an ERROR, other than the
# interlock's own (the target check, the read-only transaction's frame)
pg_ran() {
  awk '
    function flush(p) { if (p in st && !(p in err)) print st[p]; delete st[p]; delete err[p] }
    match($0, /\[[0-9]+\] /) {
      pid = substr($0, RSTART + 1, RLENGTH - 3)
      if (match($0, / LOG:  (statement|execute [^:]*): /)) {
        flush(pid)
        s = substr($0, RSTART + RLENGTH)
        if (s ~ /^(BEGIN TRANSACTION READ ONLY|ROLLBACK|SELECT current_setting\(.transaction_read_only.\)|SELECT current_database\(\), CASE)/) next
        st[pid] = s
      } else if ($0 ~ / ERROR:  /) { err[pid] = 1 }
    }
    END { for (p in st) flush(p) }'
}

# ---- environments --------------------------------------------------------------
cat >"$T_TMP/u.env.json" <<EOF
{ "vars": { "REDIS_DB1": "redis://127.0.0.1:$RU/1" },
  "redis": { "url": "redis://127.0.0.1:$RU/0", "allow_flush": true,
             "test_target": { "marker": "eventrig:test-target", "claim_empty": true } },
  "postgres": { "dsn": "$PGBASE/victim",
                "test_target": { "databases": ["marked"], "marker_table": "eventrig_test_target" } } }
EOF
jq --arg b "127.0.0.1:$NOPORT" '. + {kafka: {bootstrap: $b, timeout: "2s",
  test_target: {topic_prefixes: ["il."], group_prefixes: ["il-"]}}}' "$T_TMP/u.env.json" >"$T_TMP/uk.env.json"
cat >"$T_TMP/m.env.json" <<EOF
{ "vars": { "REDIS_DB1": "redis://127.0.0.1:$RM/1" },
  "redis": { "url": "redis://127.0.0.1:$RM/0", "allow_flush": true,
             "test_target": { "allow": ["127.0.0.1:$RM/*"] } },
  "postgres": { "dsn": "$PGBASE/marked", "test_target": { "databases": ["marked"] } },
  "kafka": { "embedded": { "topics": ["il.events", "payments.v1"] } } }
EOF

seed_redis "$RU" "$PGBASE/victim" && seed_pg victim || { not_ok "seeding"; exit 1; }
REF_R=$(snap_redis "$RU")
REF_P=$(snap_pg victim)
check "seeded: 11 keys in 2 databases and a function library" \
  bash -c '[ "$(grep -c "^[01] il:" <<<"$1")" = 11 ] && grep -qx il <<<"$1"' _ "$REF_R"
check "seeded: 3 rows" bash -c '[[ "$1" == "1:one,2:two,3:three|0|100|2" ]]' _ "$REF_P"

# Redis gone (SHUTDOWN got through): start it again, with the monitor
revive_redis() {
  redis-cli -p "$RU" ping >/dev/null 2>&1 && kill -0 "$MON_PID" 2>/dev/null && return 0
  if ! redis-cli -p "$RU" ping >/dev/null 2>&1; then
    redis-server --port "$RU" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize no --logfile "$T_TMP/redis-$RU-again.log" &
    T_PIDS+=($!)
    wait_port "$RU" 10 || return 1
  fi
  kill -0 "$MON_PID" 2>/dev/null || start_monitor "$(($(grep -c '^OK' "$MON") + 1))"
  MON_AT=$(wc -l <"$MON")
}
restore() {
  revive_redis || { diag "redis could not be started again"; return 1; }
  [ "$(snap_redis "$RU")" = "$REF_R" ] || seed_redis "$RU" "$PGBASE/victim"
  [ "$(snap_pg victim)" = "$REF_P" ] || seed_pg victim
  mon_since >/dev/null
  pg_since >/dev/null
}

# ---- the cases, on targets that are not test targets ---------------------------
n=0 refused=0 reached=0 lost=0 failed=0
printf '# %-44s %4s %-8s %-7s %s\n' case exit refused reached lost
for f in "$D"/cases/*.json; do
  c=$(basename "$f" .json)
  env=$T_TMP/u.env.json
  [[ "$c" == *-kafka-* ]] && env=$T_TMP/uk.env.json
  restore || exit 1
  timeout 60 "$EVENTRIG" run --env "$env" --report-dir "$T_TMP/r" "$f" >"$T_TMP/$c.out" 2>&1
  rc=$?
  mon_since | redis_writes >"$T_TMP/$c.mon"
  pg_since | pg_ran >"$T_TMP/$c.pg"
  revive_redis
  r=no w=no l=no
  [ $rc -ne 0 ] && grep -qE "refused|read-only scripts" "$T_TMP/$c.out" && r=yes
  [ -s "$T_TMP/$c.mon" ] || [ -s "$T_TMP/$c.pg" ] && w=yes
  { [ "$(snap_redis "$RU")" = "$REF_R" ] && [ "$(snap_pg victim)" = "$REF_P" ]; } || l=yes
  n=$((n + 1))
  [ $r = yes ] && refused=$((refused + 1))
  [ $w = yes ] && reached=$((reached + 1))
  [ $l = yes ] && lost=$((lost + 1))
  printf '# %-44s %4s %-8s %-7s %s\n' "$c" $rc $r $w $l
  if [ -z "$MEASURE" ]; then
    if [ $r = yes ] && [ $w = no ] && [ $l = no ]; then
      ok "$c: refused (exit $rc), nothing reached a server, nothing lost"
    else
      not_ok "$c: refused $r (exit $rc), reached a server $w, lost data $l"
      sed 's/^/#   out: /' "$T_TMP/$c.out" | head -n 12
      sed 's/^/#   redis: /' "$T_TMP/$c.mon" | head -n 5
      sed 's/^/#   pg: /' "$T_TMP/$c.pg" | head -n 5
      failed=$((failed + 1))
    fi
  fi
done
new=$(ls "$D"/cases/new-* | wc -l)
old=$(ls "$D"/cases/old-* | wc -l)
diag "$n cases ($new new, $old old, $((n - new - old)) more): refused $refused, reached a server $reached, lost data $lost"
[ -n "$MEASURE" ] && exit 0
check "at least 50 cases: the 21 that got through and the 29 refused before ($new + $old)" \
  bash -c '[ "$1" -ge 21 ] && [ "$2" -ge 29 ] && [ $(( $1 + $2 )) -ge 50 ]' _ "$new" "$old"
check "every case refused, none reached a server, none lost data" \
  bash -c '[ "$1" = "$2" ] && [ "$3" = 0 ] && [ "$4" = 0 ]' _ "$refused" "$n" "$reached" "$lost"

# the wording of a few refusals
has() { grep -qF -- "$2" "$T_TMP/$1.out" || { diag "missing in $1.out: $2"; return 1; }; }
RUS="redis://127.0.0.1:$RU/0"
check "GETDEL: the step, the target, what it would do and the fix" \
  bash -c 'grep -qE "^  tests/data/interlock/cases/new-redis-05-getdel.json:7:5: redis \(GETDEL\) on $2: the marker key \"eventrig:test-target\" is not in 127.0.0.1:$3/0 .*; there a step may only read, and the server does not flag GETDEL readonly \(COMMAND INFO flags: write, fast\)$" "$1" && grep -qF "to allow it: add \"test_target\": {\"allow\": [\"127.0.0.1:$3/0\"]} to \"redis\" in $4, or mark the database: SET eventrig:test-target 1" "$1"' \
  _ "$T_TMP/new-redis-05-getdel.out" "$RUS" "$RU" "$T_TMP/u.env.json"
check "CONFIG SET: decided by the subcommand's entry" \
  has more-redis-02-config-set "the server does not flag CONFIG SET readonly (COMMAND INFO flags: admin, noscript, loading, stale)"
check "EVAL: not readonly; unknown command: not known" \
  bash -c 'grep -qF "does not flag EVAL readonly" "$1" && grep -qF "the server does not know the command (COMMAND INFO)" "$2"' \
  _ "$T_TMP/new-redis-01-eval-flushdb.out" "$T_TMP/more-redis-04-unknown-command.out"
check "redis.seed: always needs a test target" \
  has new-redis-13-seed-replace "redis.seed (writes 1 key(s)) on $RUS: the marker key"
check "a command named at run time: the step's guard refuses it (exit 1)" \
  bash -c 'grep -qF "redis refused: [\"\${c}\",\"il:str\"] on $2, which is not a test target" "$1" || grep -qF "redis refused: [\"GETDEL\",\"il:str\"] on $2, which is not a test target" "$1"' \
  _ "$T_TMP/more-redis-05-cmd-at-run-time.out" "$RUS"
check "UPDATE: refused by Postgres itself in the read-only transaction, with the fix" \
  bash -c 'grep -qF "postgres.expect: refused by the server: $2/victim is not a test target (database \"victim\" matches no test_target.databases glob and has no table \"eventrig_test_target\"), so the query (UPDATE) ran as one statement in a read-only transaction, and Postgres refused it: ERROR 25006: cannot execute UPDATE in a read-only transaction" "$1" && grep -qF "to allow it: add \"test_target\": {\"databases\": [\"victim\"]} to \"postgres\"" "$1"' \
  _ "$T_TMP/new-pg-18-update.out" "$PGBASE"
check "DO block and a function that writes: refused inside (ERROR 25006)" \
  bash -c 'grep -qF "cannot execute DELETE in a read-only transaction" "$1" && grep -qF "cannot execute DELETE in a read-only transaction" "$2"' \
  _ "$T_TMP/new-pg-14-do-block.out" "$T_TMP/new-pg-15-function-writes.out"
check "the read-only transaction reached the server as such (pg log)" \
  bash -c 'grep -q "statement: BEGIN TRANSACTION READ ONLY" "$1" && grep -q "execute <unnamed>: UPDATE il_rows" "$1" && grep -q "ERROR:  cannot execute UPDATE in a read-only transaction" "$1"' _ "$PGLOG"
check "SET TRANSACTION READ WRITE after the first query: refused by the server" \
  has more-pg-10-read-write-first "transaction read-write mode must be set before any query"
check "two statements in a query: the second never runs" \
  has more-pg-11-expect-two-statements "cannot insert multiple commands into a prepared statement"
check "COPY is not sent to an unmarked database" \
  has more-pg-07-copy-to-program "which does not stop COPY ... TO PROGRAM or to a server file, so COPY is not sent"
check "postgres.exec: refused at preflight whatever it holds" \
  has more-pg-12-dsn-at-run-time "postgres.exec refused: $PGBASE/victim is not a test target"
check "kafka.produce to another team's topic: refused, naming the prefixes" \
  bash -c 'grep -qF "kafka.produce (produce to \"payments.v1\") on the Kafka cluster: topic \"payments.v1\" matches no test_target.topic_prefixes" "$1" && grep -qF "add \"test_target\": {\"topic_prefixes\": [\"payments.v1\"]} to \"kafka\"" "$1"' \
  _ "$T_TMP/new-kafka-21-produce-foreign.out"
check "COMMAND INFO asked once per command name and target" \
  bash -c '[ "$(grep -ci "\"command\" \"info\" \"getdel\"" "$1")" -le 3 ]' _ "$MON"

# ---- reads run where the target is not a test target -------------------------------
for f in "$D"/reads/*.json; do
  c=read-$(basename "$f" .json)
  restore || exit 1
  "$EVENTRIG" run --env "$T_TMP/u.env.json" --report-dir "$T_TMP/r" "$f" >"$T_TMP/$c.out" 2>&1
  rc=$?
  mon_since | redis_writes >"$T_TMP/$c.mon"
  pg_since | pg_ran >"$T_TMP/$c.pg"
  if [ $rc -eq 0 ] && ! [ -s "$T_TMP/$c.mon" ] && [ "$(snap_redis "$RU")" = "$REF_R" ] && [ "$(snap_pg victim)" = "$REF_P" ]; then
    ok "$c: runs on the unmarked targets (exit 0), only reads"
  else
    not_ok "$c: exit $rc"
    sed 's/^/#   /' "$T_TMP/$c.out" | tail -n 12
    sed 's/^/#   redis: /' "$T_TMP/$c.mon" | head -n 5
  fi
done

# ---- the same steps on marked targets run ------------------------------------------
nm=0
for f in $(grep -l '"marked"' "$D"/cases/*.json); do
  c=$(basename "$f" .json)
  seed_redis "$RM" "$PGBASE/marked" && seed_pg marked || { not_ok "seed the marked targets"; continue; }
  "$EVENTRIG" run --env "$T_TMP/m.env.json" --report-dir "$T_TMP/r" "$f" >"$T_TMP/m-$c.out" 2>&1
  rc=$?
  nm=$((nm + 1))
  if [ $rc -eq 0 ]; then
    ok "marked: $c runs (exit 0)"
  else
    not_ok "marked: $c exit $rc"
    sed 's/^/#   /' "$T_TMP/m-$c.out" | tail -n 12
  fi
done
check "a sample of at least 30 cases ran on marked targets ($nm)" [ "$nm" -ge 30 ]

# ---- --dry-run shows the same decisions ------------------------------------------
"$EVENTRIG" run --dry-run --env "$T_TMP/u.env.json" "$D"/cases/new-redis-05-getdel.json \
  "$D"/cases/new-pg-18-update.json "$D"/cases/new-redis-13-seed-replace.json "$D"/reads/01-get.json \
  "$D"/cases/more-redis-07-del-in-until.json "$D"/cases/more-pg-13-delete-in-until.json >"$T_TMP/dry-run.out" 2>&1
rc=$?
check "dry run: exit 0 ($rc)" [ $rc -eq 0 ]
check "dry run: a redis command is left to the server's flags, else refused here" \
  has dry-run "! redis (GETDEL) on $RUS: allowed if the server flags GETDEL readonly (COMMAND INFO, asked at run time), else checked at run time (marker key \"eventrig:test-target\", claimed if the database is empty)"
check "dry run: postgres.expect runs in a read-only transaction" \
  has dry-run "! postgres.expect (UPDATE) on $PGBASE/victim: checked at run time (marker table \"eventrig_test_target\"): a read-only transaction unless it is there"
check "dry run: the check in an await's until is shown and decided too (redis)" \
  grep -q "! redis (DEL) on $RUS: " "$T_TMP/dry-run.out"
check "dry run: the check in an await's until is shown and decided too (postgres)" \
  grep -q "! postgres (DELETE) on $PGBASE/victim: " "$T_TMP/dry-run.out"
check "dry run: redis.seed is destructive" \
  has dry-run "! destructive: redis.seed (writes 1 key(s)) on $RUS: checked at run time (marker key"
[ -n "${INTERLOCK_KEEP:-}" ] && cp -r "$T_TMP" "$INTERLOCK_KEEP"
[ "$T_FAILED" -eq 0 ]
