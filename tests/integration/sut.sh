#!/usr/bin/env bash
# tests/integration/sut.sh: the reference service (sut/) against real
# servers: two Redis servers (the main one and the idempotency guard's),
# Postgres, and librdkafka's mock cluster in a process of its own
# (build/asan/support/mockbroker). First the correct service, contract item
# by contract item, including Redis and Postgres outages; then mutants
# (SUT_BUG), each showing its defect directly (the seven of round 2, the
# consumer's side, included). Every wait has a deadline.
# Log lines of the service are used only to know that a failure happened;
# the verdicts come from Redis, Postgres, Kafka and HTTP.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ER_ROOT" || exit 1

SUT_BIN=$ER_ROOT/sut/eventrig-sut-asan
MOCK=$ER_ROOT/build/asan/support/mockbroker
EVQ=$ER_ROOT/tests/integration/sut/evq.py
IN=essay.content.provisioned.v1
READY=batch.essays.ready.v1
ASSIGNED=essay.slot.assigned.v1
EXCESS=essay.excess.content.v1
DLQ=essay.content.provisioned.dlq.v1

if ! make -s -C sut eventrig-sut-asan >"$T_TMP/build.log" 2>&1; then
  cat "$T_TMP/build.log"; not_ok "build sut/eventrig-sut-asan"; exit 1
fi
if [ ! -x "$MOCK" ] && ! make -s build/asan/support/mockbroker >>"$T_TMP/build.log" 2>&1; then
  cat "$T_TMP/build.log"; not_ok "build the mock broker"; exit 1
fi

# ------------------------------------------------------------- helpers
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_until SECS CMD...: runs CMD every 0.2 s until it succeeds or SECS pass
wait_until() {
  local end=$(($(now_ms) + $1 * 1000)); shift
  while :; do
    "$@" && return 0
    [ "$(now_ms)" -ge "$end" ] && return 1
    sleep 0.2
  done
}
not_running() { ! kill -0 "$1" 2>/dev/null; }

# redis_up NAME PORT: (re)starts a Redis server whose data lives in
# $T_TMP/NAME, kept across restarts (redis_down saves it)
redis_up() {
  mkdir -p "$T_TMP/$1"
  redis-server --port "$2" --bind 127.0.0.1 --dir "$T_TMP/$1" --dbfilename dump.rdb \
    --save "" --appendonly no --daemonize no --logfile "$T_TMP/$1.log" &
  T_PIDS+=($!)
  printf -v "PID_$1" '%s' "$!"
  wait_port "$2" 10
}
redis_down() {
  local pidvar="PID_$1"
  redis-cli -p "$2" shutdown save >/dev/null 2>&1
  wait_until 10 not_running "${!pidvar}"
}
rcli() { redis-cli -p "$RPORT" "$@"; }
gcli() { redis-cli -p "$GPORT" "$@"; }
pgq() { psql -X -q -tA "$PG_DSN" -c "$1" 2>/dev/null; }

# broker_up: a fresh mock cluster with the contract's topics; sets BOOT
broker_up() {
  if [ -n "${BROKER_PID:-}" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    wait_until 10 not_running "$BROKER_PID" || { diag "old broker did not stop"; return 1; }
  fi
  : >"$T_TMP/broker.out"
  "$MOCK" "$IN:3" "$READY:1" "$ASSIGNED:3" "$EXCESS:1" "$DLQ:1" >"$T_TMP/broker.out" 2>"$T_TMP/broker.err" &
  BROKER_PID=$!
  T_PIDS+=($BROKER_PID)
  wait_until 30 test -s "$T_TMP/broker.out" || return 1
  BOOT=$(head -n 1 "$T_TMP/broker.out")
}

healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$SUT_URL/healthz")" = 200 ]; }
# sut_up NAME [VAR=VALUE...]: starts the service (base environment plus
# the overrides); sets SUT_PID, SUT_URL, SUT_LOG
sut_up() {
  local name=$1 port
  shift
  port=$(free_port)
  SUT_LOG=$T_TMP/sut-$name.log
  SUT_URL=http://127.0.0.1:$port
  env SUT_KAFKA_BOOTSTRAP="$BOOT" SUT_REDIS_URL="redis://127.0.0.1:$RPORT/0" \
    SUT_IDEMPOTENCY_REDIS_URL="redis://127.0.0.1:$GPORT/0" SUT_PG_DSN="$PG_DSN" \
    SUT_HTTP_PORT="$port" SUT_GROUP_ID="g-$name" SUT_INSTANCE="els-$name" \
    "$@" "$SUT_BIN" 2>"$SUT_LOG" &
  SUT_PID=$!
  T_PIDS+=($SUT_PID)
  wait_until 30 healthy
}
# sut_down: SIGTERM; succeeds when the service exits with status 0 within
# 10 s (under ASan a leak would make the status non-zero)
sut_down() {
  kill -TERM "$SUT_PID" 2>/dev/null
  wait_until 10 not_running "$SUT_PID" || return 1
  wait "$SUT_PID"
}
show_log() { diag "service log:"; sed 's/^/#   /' "$SUT_LOG" | tail -n "${1:-30}"; }

# http METHOD PATH [BODY]: sets HTTP_CODE and HTTP_BODY
http() {
  local out
  out=$(curl -s --max-time 10 -X "$1" -H 'Content-Type: application/json' \
    ${3+--data-binary "$3"} -w '\n%{http_code}' "$SUT_URL$2")
  HTTP_CODE=${out##*$'\n'}
  HTTP_BODY=${out%$'\n'*}
}
# pyexpr JSON EXPR: evaluates a Python expression over j = the parsed JSON
pyexpr() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); r=eval(sys.argv[2]); print(r if isinstance(r,str) else json.dumps(r))' "$1" "$2"; }
pytrue() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }

metric() { curl -s --max-time 5 "$SUT_URL/metrics" | awk -v n="$1" 'index($0, n "{") == 1 {print $2}'; }
metric_eq() { [ "$(metric "$1")" = "$2" ]; }
rows() { pgq "SELECT count(*) FROM essay_states WHERE batch_id = '$1'"; }
rows_eq() { [ "$(rows "$1")" = "$2" ]; }
excess_is() { [ "$(pgq "SELECT string_agg(reason, ',') FROM excess_content WHERE batch_id = '$1' AND text_storage_id = '$2'")" = "$3" ]; }

# essay DATA: data of an essay event; envelope DATA [CORR]: a fresh one
essay() { printf '{"batch_id":"%s","text_storage_id":"%s","file_name":"%s.txt"}' "$1" "$2" "$2"; }
envelope() { python3 "$EVQ" envelope "$@"; }
produce_raw() { printf '%s\n' "$2" | timeout 20 kcat -P -b "$BOOT" -t "$IN" -k "$1"; }
# produce KEY DATA [CORR]: one event in a fresh envelope
produce() { produce_raw "$1" "$(envelope "$2" ${3+"$3"})"; }
# consume TOPIC: everything on TOPIC so far into a file; prints its name
consume() {
  timeout 20 kcat -C -b "$BOOT" -t "$1" -o beginning -e -q -f '%k\t%s\n' >"$T_TMP/$1.out" 2>/dev/null
  echo "$T_TMP/$1.out"
}
# dlq_eq EXPECTED: the dead-letter topic holds exactly these messages,
# one "key<TAB>error header<TAB>value" line each; the error header is
# compared with "*" (any one-line reason)
dlq_eq() {
  timeout 20 kcat -C -b "$BOOT" -t "$DLQ" -o beginning -e -q -f '%k\t%h\t%s\n' >"$T_TMP/dlq.out" 2>/dev/null
  python3 - "$T_TMP/dlq.out" "$1" <<'PY'
import sys
got = [l.rstrip("\n").split("\t", 2) for l in open(sys.argv[1]) if l.strip()]
want = [l.split("\t", 2) for l in sys.argv[2].split("\n") if l]
ok = len(got) == len(want)
for g, w in zip(got, want):
    hdr = g[1]
    ok = ok and g[0] == w[0] and g[2] == w[2] and hdr.startswith("error=") and \
        len(hdr) > len("error=") and "\n" not in hdr
sys.exit(0 if ok else 1)
PY
}
# ev_count_eq TOPIC N BATCH [FIELD=VALUE...]
ev_count_eq() { [ "$(python3 "$EVQ" count "$(consume "$1")" "${@:3}")" = "$2" ]; }
idem_key() { python3 "$EVQ" key "${2:-els}" "$1"; }
infra_failures() { grep -c "batch $1, text $2: infrastructure failure" "$SUT_LOG"; }
infra_failures_ge() { [ "$(infra_failures "$1" "$2")" -ge "$3" ]; }
uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# ---------------------------------------------------------- servers up
RPORT=$(free_port)
GPORT=$(free_port)
redis_up main "$RPORT" || { not_ok "main Redis did not start"; exit 1; }
redis_up guard "$GPORT" || { not_ok "guard Redis did not start"; exit 1; }
start_pg || exit 1
broker_up || { not_ok "mock broker did not start"; cat "$T_TMP/broker.err"; exit 1; }

diag "correct service"
if ! sut_up a; then not_ok "service starts and /healthz answers"; show_log; exit 1; fi
ok "service starts and /healthz answers 200"
http GET /healthz
check '/healthz: {"status":"ok"}' pytrue "$HTTP_BODY" 'j == {"status": "ok"}'

# ------------------------------------------------------------- HTTP API
http POST /v1/batches '{"batch_id":"b1","expected_count":3}'
check "POST /v1/batches: 201" test "$HTTP_CODE" = 201
SLOTS=$(pyexpr "$HTTP_BODY" 'j["slots"]')
check "201 body: the batch id and 3 distinct slot ids" \
  pytrue "$HTTP_BODY" 'j["batch_id"] == "b1" and len(set(j["slots"])) == 3'
check "the slots are in els:batch:b1:available_slots" \
  pytrue "$SLOTS" "sorted(j) == sorted('''$(rcli SMEMBERS els:batch:b1:available_slots)'''.split())"
check "tracker row: expected_count 3, ready_published false" \
  test "$(pgq "SELECT expected_count, ready_published FROM batch_essay_trackers WHERE batch_id = 'b1'")" = "3|f"
http POST /v1/batches '{"batch_id":"b1","expected_count":5}'
check "registering b1 again: 409 with an error" eval '[ "$HTTP_CODE" = 409 ] && pytrue "$HTTP_BODY" "isinstance(j[\"error\"], str)"'
check "the 409 changed nothing in Redis" test "$(rcli SCARD els:batch:b1:available_slots)" = 3
bad=0
for body in 'not json' '[1]' '{"expected_count":3}' '{"batch_id":"","expected_count":1}' \
  '{"batch_id":"bx","expected_count":0}' '{"batch_id":"bx","expected_count":"3"}' \
  '{"batch_id":"bx","expected_count":1.5}' '{"batch_id":7,"expected_count":1}'; do
  http POST /v1/batches "$body"
  if [ "$HTTP_CODE" != 400 ] || ! pytrue "$HTTP_BODY" 'isinstance(j["error"], str)'; then
    diag "body $body: $HTTP_CODE $HTTP_BODY"; bad=1
  fi
done
check "8 malformed bodies: 400 with an error each" test $bad = 0
http GET /v1/batches/bx
check "a rejected batch was not created (GET: 404)" test "$HTTP_CODE" = 404
http GET /v1/batches/b1
check "GET /v1/batches/b1 before any event: 3 expected, 0 assigned, not ready" \
  pytrue "$HTTP_BODY" 'j == {"batch_id": "b1", "expected_count": 3, "assigned_count": 0, "ready_published": False}'

# ------------------------------------------------------ happy path
# non-ASCII, quotes, an emoji, floats and nesting: the hash must match Python
D1='{"batch_id":"b1","text_storage_id":"t1","file_name":"Ess\u00e4 \ud83d\ude00 \"1\".txt"}'
D2='{"batch_id":"b1","text_storage_id":"t2","file_name":"Überblick – 2.txt"}'
D3='{"file_name":"3.txt","text_storage_id":"t3","batch_id":"b1","meta":{"pages":3,"score":0.1,"ratio":1e-07,"big":1e16,"exact":2.50,"neg":-0.0,"tags":["x","y"],"ok":true,"none":null}}'
CORR=$(uuid)
ENV1=$(envelope "$D1" "$CORR")
produce_raw b1 "$ENV1"
produce b1 "$D2" "$CORR"
produce b1 "$D3" "$CORR"
if ! check "3 essays of b1: 3 rows in essay_states (within 30 s)" wait_until 30 rows_eq b1 3; then show_log; fi
check "exactly one batch.essays.ready.v1 for b1" wait_until 10 ev_count_eq "$READY" 1 b1
check "the ready event: key b1, essay_ids = the slots, sorted" python3 "$EVQ" ready "$(consume "$READY")" b1 "$SLOTS"
n_ok=1
for t in t1 t2 t3; do ev_count_eq "$ASSIGNED" 1 b1 text_storage_id=$t || n_ok=0; done
check "one essay.slot.assigned.v1 per essay" test $n_ok = 1
check "each assigned event names the slot Redis and Postgres hold for its essay" python3 - "$(consume "$ASSIGNED")" "$(rcli HGETALL els:batch:b1:assignments | paste -sd' ')" "$(pgq "SELECT essay_id || '=' || text_storage_id FROM essay_states WHERE batch_id = 'b1'" | paste -sd' ')" <<'EOF'
import json, sys
evs = [json.loads(l.split("\t", 1)[1]) for l in open(sys.argv[1]) if l.strip()]
r = sys.argv[2].split()
redis = dict(zip(r[0::2], r[1::2]))
pg = dict(p.split("=", 1) for p in sys.argv[3].split())
ev = {e["data"]["essay_id"]: e["data"]["text_storage_id"] for e in evs if e["data"]["batch_id"] == "b1"}
sys.exit(0 if len(ev) == 3 and ev == redis == pg else 1)
EOF
check "Redis: 3 assignments, 3 content entries, no slot left" \
  test "$(rcli HLEN els:batch:b1:assignments) $(rcli HLEN els:batch:b1:content) $(rcli SCARD els:batch:b1:available_slots)" = "3 3 0"
check "essay_states: the essay ids are the slots, assigned_by els-a" \
  pytrue "$SLOTS" "sorted(j) == sorted('''$(pgq "SELECT essay_id FROM essay_states WHERE batch_id = 'b1' AND assigned_by = 'els-a'")'''.split())"
check "assigned events: envelopes per contract" python3 "$EVQ" envelopes "$(consume "$ASSIGNED")" "$ASSIGNED"
check "ready event: envelope per contract" python3 "$EVQ" envelopes "$(consume "$READY")" "$READY"
check "the incoming correlation_id is propagated" python3 "$EVQ" correlation "$(consume "$ASSIGNED")" b1 "$CORR"
keys_ok=1
for d in "$D1" "$D2" "$D3"; do
  k=$(idem_key "$d")
  ttl=$(gcli TTL "$k")
  if [ "$(gcli GET "$k")" != 1 ] || [ "$ttl" -lt 86000 ] || [ "$ttl" -gt 86400 ]; then
    diag "key $k: value $(gcli GET "$k"), ttl $ttl"; keys_ok=0
  fi
done
check "idempotency keys els:idempotency:v2:els:$IN:{sha256 of json.dumps(data, sort_keys=True)} = 1, TTL near 86400" test $keys_ok = 1
check "the keys live on the guard's Redis, not the main one" test "$(rcli EXISTS "$(idem_key "$D1")")" = 0
http GET /v1/batches/b1
check "GET /v1/batches/b1: 3 expected, 3 assigned, ready" \
  pytrue "$HTTP_BODY" 'j == {"batch_id": "b1", "expected_count": 3, "assigned_count": 3, "ready_published": True}'
http GET /v1/batches/nope
check "GET /v1/batches/nope: 404" test "$HTTP_CODE" = 404

# ------------------------------------------------------- duplicates
produce b1 "$D1"
check "the same data in a new envelope: skipped as a duplicate" wait_until 15 metric_eq sut_duplicates_skipped_total 1
produce_raw b1 "$ENV1"
check "the identical message again: skipped as a duplicate" wait_until 15 metric_eq sut_duplicates_skipped_total 2
check "after the duplicates: still 3 rows, 3 assigned events, 1 ready event" \
  eval 'rows_eq b1 3 && ev_count_eq "$ASSIGNED" 3 b1 && ev_count_eq "$READY" 1 b1'

# ---------------------------------------------------- excess content
DU=$(essay nobatch u1)
produce nobatch "$DU"
check "unknown batch: excess_content row with reason unknown_batch" wait_until 15 excess_is nobatch u1 unknown_batch
check "unknown batch: one essay.excess.content.v1 (reason unknown_batch)" \
  wait_until 10 ev_count_eq "$EXCESS" 1 nobatch text_storage_id=u1 reason=unknown_batch
check "unknown batch: the idempotency key stays (a business failure is final)" test "$(gcli EXISTS "$(idem_key "$DU")")" = 1
produce b1 "$(essay b1 t4)"
check "a 4th essay for a full batch: excess_content row with reason no_slots" wait_until 15 excess_is b1 t4 no_slots
check "no slots: one essay.excess.content.v1 (reason no_slots), still 3 rows" \
  eval 'wait_until 10 ev_count_eq "$EXCESS" 1 b1 text_storage_id=t4 reason=no_slots && rows_eq b1 3'
check "excess envelopes per contract" python3 "$EVQ" envelopes "$(consume "$EXCESS")" "$EXCESS"

# -------------------------------------------- malformed, then outages
http POST /v1/batches '{"batch_id":"b2","expected_count":4}'
SLOTS2=$(pyexpr "$HTTP_BODY" 'j["slots"]')
check "register b2 (4 slots)" test "$HTTP_CODE" = 201
# same key as b2's events: same partition, so they come first
produce_raw b2 'this is not json'
produce_raw b2 '{"event_id":"x","data":{"batch_id":"b2"}}'
produce_raw b2 '{"event_id":"y","data":{"batch_id":"b2","text_storage_id":"tx"}}'
check "3 malformed events (not JSON, no text_storage_id, no file_name): on the dead-letter topic unchanged, same key, an error header" \
  wait_until 15 dlq_eq $'b2\t*\tthis is not json\nb2\t*\t{"event_id":"x","data":{"batch_id":"b2"}}\nb2\t*\t{"event_id":"y","data":{"batch_id":"b2","text_storage_id":"tx"}}'
check "... counted in sut_malformed_total, none processed" \
  eval 'wait_until 5 metric_eq sut_malformed_total 3 && rows_eq b2 0'

# the main Redis down while two events arrive (one partition: the second
# must wait for the first, neither may be skipped)
redis_down main "$RPORT"
check "main Redis stopped" not_running "$PID_main"
produce b2 "$(essay b2 t1)"
produce b2 "$(essay b2 t2)"
check "main Redis down: the first event fails and is retried (>= 3 failures)" wait_until 20 infra_failures_ge b2 t1 3
check "main Redis down: the service keeps running, /healthz ok" eval 'kill -0 "$SUT_PID" && healthy'
check "main Redis down: no row yet, the second event not attempted out of order" \
  eval 'rows_eq b2 0 && [ "$(infra_failures b2 t2)" = 0 ]'
redis_up main "$RPORT"
check "main Redis back on its port: both events processed (none lost)" wait_until 20 rows_eq b2 2
check "... their assignments are in Redis" test "$(rcli HLEN els:batch:b2:assignments)" = 2
check "... their idempotency keys are set once more" \
  test "$(gcli EXISTS "$(idem_key "$(essay b2 t1)")" "$(idem_key "$(essay b2 t2)")")" = 2

# only the guard's Redis down: fail-open
redis_down guard "$GPORT"
produce b2 "$(essay b2 t3)"
check "guard's Redis down: the event is still processed (fail-open)" wait_until 20 rows_eq b2 3
check "guard's Redis down: sut_redis_failopen_total = 1" wait_until 5 metric_eq sut_redis_failopen_total 1
produce_raw b1 "$ENV1"
check "guard down: a re-sent event of the complete batch b1 is processed again" \
  wait_until 15 metric_eq sut_redis_failopen_total 2
check "... it publishes essay.slot.assigned.v1 again (at-least-once), same slot" \
  eval 'ev_count_eq "$ASSIGNED" 2 b1 text_storage_id=t1 && [ "$(rcli HLEN els:batch:b1:assignments)" = 3 ]'
check "... but no second row and no second ready event" eval 'rows_eq b1 3 && ev_count_eq "$READY" 1 b1'
redis_up guard "$GPORT"
produce_raw b1 "$ENV1"
check "guard back: the guard works again (duplicate skipped)" wait_until 15 metric_eq sut_duplicates_skipped_total 3

# all of Redis down
redis_down main "$RPORT"
redis_down guard "$GPORT"
produce b2 "$(essay b2 t4)"
check "all of Redis down: the event fails and is retried" wait_until 20 infra_failures_ge b2 t4 2
check "all of Redis down: still running, no row yet" eval 'healthy && rows_eq b2 3'
# the guard first: were the main Redis back alone, a retry could pass with
# the guard bypassed (fail-open) and change the counters checked below
redis_up guard "$GPORT"
redis_up main "$RPORT"
check "Redis back: the event is processed, b2 complete" wait_until 20 rows_eq b2 4
check "b2: exactly one ready event with its sorted slots" \
  eval 'wait_until 10 ev_count_eq "$READY" 1 b2 && python3 "$EVQ" ready "$(consume "$READY")" b2 "$SLOTS2"'

# Postgres failing (the table renamed away) while an event arrives
http POST /v1/batches '{"batch_id":"b3","expected_count":1}'
check "register b3 (1 slot)" test "$HTTP_CODE" = 201
pgq "ALTER TABLE essay_states RENAME TO essay_states_away"
produce b3 "$(essay b3 t1)"
check "Postgres failing: the event fails and is retried" wait_until 20 infra_failures_ge b3 t1 2
check "Postgres failing: its key is deleted for the retry (not left behind)" \
  wait_until 10 eval '[ "$(gcli EXISTS "$(idem_key "$(essay b3 t1)")")" = 0 ]'
pgq "ALTER TABLE essay_states_away RENAME TO essay_states"
check "Postgres back: the event is processed, b3 complete" wait_until 20 rows_eq b3 1
check "b3: the slot taken before the failure is the one kept (reused)" \
  test "$(rcli HGET els:batch:b3:content t1)" = "$(pgq "SELECT essay_id FROM essay_states WHERE batch_id = 'b3'")"
check "b3: exactly one ready event" wait_until 10 ev_count_eq "$READY" 1 b3

# ------------------------------------------------------------ metrics
M=$(curl -s --max-time 5 "$SUT_URL/metrics")
m_ok=1
for n in sut_events_processed_total sut_duplicates_skipped_total sut_watch_conflicts_total \
  sut_redis_failopen_total sut_excess_content_total sut_malformed_total; do
  grep -q "^# HELP $n " <<<"$M" && grep -q "^# TYPE $n counter$" <<<"$M" &&
    grep -q "^$n{instance=\"els-a\"} [0-9]*$" <<<"$M" || { diag "metric $n missing or malformed"; m_ok=0; }
done
check "/metrics: the six counters with HELP, TYPE and instance=\"els-a\"" test $m_ok = 1
# processed: b1 x3, nobatch, b1/t4, b2 x4, b1/t1 again (fail-open), b3
check "metrics: processed 11, duplicates 3, conflicts 0, fail-open 2, excess 2, malformed 3" \
  test "$(metric sut_events_processed_total) $(metric sut_duplicates_skipped_total) $(metric sut_watch_conflicts_total) $(metric sut_redis_failopen_total) $(metric sut_excess_content_total) $(metric sut_malformed_total)" = "11 3 0 2 2 3"
t0=$(now_ms)
if check "SIGTERM: clean exit (status 0) within 10 s" sut_down; then
  diag "shutdown took $(($(now_ms) - t0)) ms"
else
  show_log
fi

# -------------------------------------------------------------- mutants
# mutant_up NAME BUG [VAR=VALUE...]: clean Redis, fresh broker, the mutant
mutant_up() {
  local name=$1 bug=$2
  shift 2
  diag "mutant $bug"
  rcli FLUSHALL >/dev/null
  gcli FLUSHALL >/dev/null
  if ! broker_up; then
    diag "mock broker did not start:"; sed 's/^/#   /' "$T_TMP/broker.err"; return 1
  fi
  if ! sut_up "$name" SUT_BUG="$bug" "$@"; then
    diag "the service did not become healthy"; show_log; return 1
  fi
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    diag "the mock broker died:"; sed 's/^/#   /' "$T_TMP/broker.err"; return 1
  fi
}
register() {
  http POST /v1/batches "{\"batch_id\":\"$1\",\"expected_count\":$2}"
  [ "$HTTP_CODE" = 201 ] || { diag "register $1: $HTTP_CODE $HTTP_BODY"; show_log 10; return 1; }
}
DEAD=$(free_port) # nothing listens there: an unreachable guard Redis

mutant_up ms spop-outside-multi && register ms 2 || not_ok "spop-outside-multi: start"
produce ms "$(essay ms e1)"
check "spop-outside-multi: the essay ends as excess no_slots" wait_until 30 excess_is ms e1 no_slots
check "spop-outside-multi: no essay assigned (no row, no assignment, no event)" \
  eval 'rows_eq ms 0 && [ "$(rcli HLEN els:batch:ms:assignments)" = 0 ] && ev_count_eq "$ASSIGNED" 0 ms'
check "spop-outside-multi: every EXEC aborted (2 watch conflicts), the slots are gone" \
  eval 'metric_eq sut_watch_conflicts_total 2 && [ "$(rcli SCARD els:batch:ms:available_slots)" = 0 ]'
check "spop-outside-multi: clean exit" sut_down

mutant_up mn no-idempotency && register mn 2 || not_ok "no-idempotency: start"
produce mn "$(essay mn e1)"
wait_until 30 rows_eq mn 1
produce mn "$(essay mn e1)"
check "no-idempotency: a re-sent event is processed twice (2 assigned events)" \
  wait_until 15 ev_count_eq "$ASSIGNED" 2 mn text_storage_id=e1
check "no-idempotency: no duplicate counted, no idempotency key" \
  eval 'metric_eq sut_duplicates_skipped_total 0 && [ "$(gcli DBSIZE)" = 0 ]'
check "no-idempotency: clean exit" sut_down

mutant_up mt no-ttl && register mt 1 || not_ok "no-ttl: start"
produce mt "$(essay mt e1)"
wait_until 30 rows_eq mt 1
check "no-ttl: the idempotency key exists with TTL -1 (never expires)" \
  eval '[ "$(gcli EXISTS "$(idem_key "$(essay mt e1)")")" = 1 ] && [ "$(gcli TTL "$(idem_key "$(essay mt e1)")")" = -1 ]'
check "no-ttl: clean exit" sut_down

mutant_up me envelope-hash && register me 2 || not_ok "envelope-hash: start"
produce me "$(essay me e1)"
wait_until 30 rows_eq me 1
produce me "$(essay me e1)"
check "envelope-hash: the same data in a new envelope is processed again" \
  wait_until 15 ev_count_eq "$ASSIGNED" 2 me text_storage_id=e1
check "envelope-hash: no key under the data hash; one per envelope" \
  eval '[ "$(gcli EXISTS "$(idem_key "$(essay me e1)")")" = 0 ] && [ "$(gcli DBSIZE)" = 2 ]'
check "envelope-hash: clean exit" sut_down

mutant_up mf fail-closed SUT_IDEMPOTENCY_REDIS_URL="redis://127.0.0.1:$DEAD/0" && register mf 1 || not_ok "fail-closed: start"
produce mf "$(essay mf e1)"
check "fail-closed: with the guard's Redis unreachable the event is dropped" \
  wait_until 30 grep -q "event dropped" "$SUT_LOG"
check "fail-closed: nothing processed (no row, no event, counters 0)" \
  eval 'rows_eq mf 0 && ev_count_eq "$ASSIGNED" 0 mf && metric_eq sut_events_processed_total 0 && metric_eq sut_redis_failopen_total 0'
check "fail-closed: clean exit" sut_down

mutant_up mk keep-key-on-error && register mk 1 || not_ok "keep-key-on-error: start"
pgq "ALTER TABLE essay_states RENAME TO essay_states_away"
produce mk "$(essay mk e1)"
wait_until 30 infra_failures_ge mk e1 1
check "keep-key-on-error: after a Postgres failure the retried event is taken for a duplicate" \
  wait_until 15 metric_eq sut_duplicates_skipped_total 1
pgq "ALTER TABLE essay_states_away RENAME TO essay_states"
check "keep-key-on-error: the essay is lost (no row, no assigned event)" \
  eval 'rows_eq mk 0 && ev_count_eq "$ASSIGNED" 0 mk'
check "keep-key-on-error: clean exit" sut_down

mutant_up mr ready-unguarded SUT_IDEMPOTENCY_REDIS_URL="redis://127.0.0.1:$DEAD/0" && register mr 1 || not_ok "ready-unguarded: start"
produce mr "$(essay mr e1)"
wait_until 30 ev_count_eq "$READY" 1 mr
produce mr "$(essay mr e1)"
check "ready-unguarded: a re-sent event (guard down) publishes a second ready event" \
  wait_until 15 ev_count_eq "$READY" 2 mr
check "ready-unguarded: clean exit" sut_down

# round 2: the consumer's side
dup_ge() { [ "$(metric sut_duplicates_skipped_total)" -ge "$1" ]; }

mutant_up mc commit-before-process && register mc 1 || not_ok "commit-before-process: start"
redis_down main "$RPORT"
produce mc "$(essay mc e1)"
wait_until 20 infra_failures_ge mc e1 1
kill -KILL "$SUT_PID"
wait "$SUT_PID" 2>/dev/null
redis_up main "$RPORT"
sut_up mc SUT_BUG=commit-before-process || not_ok "commit-before-process: restart"
produce mc "$(essay mc e2)"
check "commit-before-process: killed while the event waited for Redis, the restarted instance goes on after it" \
  wait_until 30 eval '[ "$(pgq "SELECT text_storage_id FROM essay_states WHERE batch_id = '"'mc'"'")" = e2 ]'
check "commit-before-process: the first event is lost (committed before it was processed)" \
  eval 'rows_eq mc 1 && [ "$(metric sut_events_processed_total)" = 1 ]'
check "commit-before-process: clean exit" sut_down

mutant_up mo no-commit && register mo 1 || not_ok "no-commit: start"
produce mo "$(essay mo e1)"
wait_until 30 rows_eq mo 1
sut_down || not_ok "no-commit: stop"
sut_up mo SUT_BUG=no-commit || not_ok "no-commit: restart"
check "no-commit: a restarted instance of the group reads the processed event again (skipped as a duplicate)" \
  wait_until 30 metric_eq sut_duplicates_skipped_total 1
check "no-commit: clean exit" sut_down

mutant_up mp poison-stall && register mp 1 || not_ok "poison-stall: start"
produce_raw mp 'not json at all'
produce mp "$(essay mp e1)"
check "poison-stall: the malformed event is retried again and again" \
  wait_until 20 eval '[ "$(grep -c "malformed event (.*): will retry" "$SUT_LOG")" -ge 3 ]'
check "poison-stall: the good event behind it on the partition waits (no row), nothing dead-lettered" \
  eval 'rows_eq mp 0 && metric_eq sut_malformed_total 0 && dlq_eq ""'
check "poison-stall: clean exit" sut_down

mutant_up my key-collision && register my 1 || not_ok "key-collision: start"
HASH=$(idem_key "$(essay my e1)")
HASH=${HASH##*:}
gcli SET "els:idempotency:v2:$HASH" 1 >/dev/null
produce my "$(essay my e1)"
check "key-collision: a key with the event's hash under another name makes the event a duplicate" \
  wait_until 15 metric_eq sut_duplicates_skipped_total 1
check "key-collision: no row, and the contract's key was never written" \
  eval 'rows_eq my 0 && [ "$(gcli EXISTS "$(idem_key "$(essay my e1)")")" = 0 ]'
check "key-collision: clean exit" sut_down

mutant_up md pg-fail-drop && register md 1 || not_ok "pg-fail-drop: start"
pgq "ALTER TABLE essay_states RENAME TO essay_states_away"
produce md "$(essay md e1)"
check "pg-fail-drop: the failed INSERT drops the event" wait_until 20 grep -q "event dropped" "$SUT_LOG"
pgq "ALTER TABLE essay_states_away RENAME TO essay_states"
produce md "$(essay md e2)"
check "pg-fail-drop: the next event is processed (an excess: the slot went to the lost one)" \
  wait_until 20 excess_is md e2 no_slots
check "pg-fail-drop: the first essay has its slot in Redis but no row, its key stays" \
  eval 'rows_eq md 0 && [ "$(rcli HLEN els:batch:md:assignments)" = 1 ] && [ "$(gcli EXISTS "$(idem_key "$(essay md e1)")")" = 1 ] && metric_eq sut_duplicates_skipped_total 0'
check "pg-fail-drop: clean exit" sut_down

# ready_ids_eq BATCH N: the batch's (one) ready event lists N essay ids
ready_ids_eq() {
  python3 - "$(consume "$READY")" "$1" "$2" <<'PY'
import json, sys
ids = [json.loads(l.split("\t", 1)[1])["data"]["essay_ids"] for l in open(sys.argv[1]) if l.strip()
       and json.loads(l.split("\t", 1)[1])["data"]["batch_id"] == sys.argv[2]]
sys.exit(0 if len(ids) == 1 and len(ids[0]) == int(sys.argv[3]) else 1)
PY
}
mutant_up mq ready-early && register mq 3 || not_ok "ready-early: start"
produce mq "$(essay mq e1)"
produce mq "$(essay mq e2)"
check "ready-early: the ready event comes with two of the three essays" \
  eval 'wait_until 20 ev_count_eq "$READY" 1 mq && ready_ids_eq mq 2 && rows_eq mq 2'
produce mq "$(essay mq e3)"
wait_until 20 rows_eq mq 3
check "ready-early: and no other one once the third arrives" ev_count_eq "$READY" 1 mq
check "ready-early: clean exit" sut_down

mutant_up mx excess-silent || not_ok "excess-silent: start"
produce mx "$(essay mx e1)"
check "excess-silent: the excess is recorded (row, counter)" \
  eval 'wait_until 20 excess_is mx e1 unknown_batch && wait_until 5 metric_eq sut_excess_content_total 1'
produce mx "$(essay mx e2)"
wait_until 20 excess_is mx e2 unknown_batch
check "excess-silent: but no essay.excess.content.v1 is published" ev_count_eq "$EXCESS" 0 mx
check "excess-silent: clean exit" sut_down

# configuration errors
rc=0
SUT_BUG=no-such-bug SUT_HTTP_PORT=$(free_port) timeout 10 "$SUT_BIN" 2>"$T_TMP/badbug.err" || rc=$?
check "an unknown SUT_BUG: refuses to start (exit 2) naming the value" \
  eval '[ $rc = 2 ] && grep -q "unknown SUT_BUG value \"no-such-bug\"" "$T_TMP/badbug.err"'

t_done
