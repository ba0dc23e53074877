#!/usr/bin/env bash
# eventrig against a real Apache Kafka broker (ci/kafka/kafka.sh: the
# release pinned in ci/kafka/pom.xml, single-node KRaft on loopback).
#  1. ci/local-kafka.env.json differs from ci/local.env.json only in Kafka.
#  2. A broker started in the background (kafka.sh start): the Admin API
#     creates the declared topics (kcat -L shows them with 3 partitions);
#     kafka.reset to end / earliest against a real group, seen through
#     kafka.drained; kafka.reset refused while a kcat consumer is a member,
#     allowed once it left; a missing topic with create_topics false stops
#     the run with exit 3 naming it (and does not create it); kafka.sh stop
#     stops the broker and deletes its directory.
#  3. The whole suite on ci/local-kafka.env.json (eventrig runs the broker
#     as a service) passes; with KAFKA_REAL_EMBEDDED=1, also on
#     ci/local.env.json (embedded broker) for a wall-time comparison. That
#     run is off by default: suite.sh runs the same suite on the embedded
#     broker twice already, and it cost 90 s of make test.
# Prints the broker start times and the suite wall times as "# " lines.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
MARK="eventrig-kafka-real-$$-$RANDOM"
export ER_TEST_MARK="$MARK"
secs() { python3 -c 'import time; print(f"{time.time():.3f}")'; }
since() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$1"; }

# ---- 1. the two environment files differ only in their Kafka parts -------
check "ci/local-kafka.env.json differs from ci/local.env.json only in Kafka" \
  python3 - ci/local.env.json ci/local-kafka.env.json <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
def fail(msg): print("# " + msg); sys.exit(1)
if set(a) != set(b): fail(f"top-level keys differ: {sorted(set(a) ^ set(b))}")
for k in a:
    if k in ("kafka", "ports", "services"): continue
    if a[k] != b[k]: fail(f"'{k}' differs")
# ports: only the broker's two added
if [p for p in b["ports"] if p not in ("kafka", "kafka-ctl")] != a["ports"]: fail("ports differ beyond kafka, kafka-ctl")
if "kafka" not in b["ports"]: fail("no port 'kafka'")
# services: the same, plus 'kafka' first; a service's Kafka bootstrap may be
# the broker's port (${kafka.bootstrap} is set only after services start)
if b["services"][0]["name"] != "kafka": fail("the first service is not 'kafka'")
sa, sb = a["services"], b["services"][1:]
if len(sa) != len(sb): fail("services differ")
for x, y in zip(sa, sb):
    y = json.loads(json.dumps(y).replace("127.0.0.1:${port.kafka}", "${kafka.bootstrap}"))
    if x != y: fail(f"service '{x.get('name')}' differs beyond its Kafka address")
# kafka: the same topics, a real bootstrap, topics created
ka, kb = a["kafka"]["embedded"]["topics"], b["kafka"]
if kb.get("topics") != ka: fail("topics differ")
if kb.get("bootstrap") != "127.0.0.1:${port.kafka}": fail("bootstrap is not 127.0.0.1:${port.kafka}")
if kb.get("create_topics") is not True: fail("create_topics is not true")
if "embedded" in kb: fail("still embedded")
PY

# ---- 2. a background broker --------------------------------------------------
state=$T_TMP/kstate
t0=$(secs)
if ! boot=$(ci/kafka/kafka.sh start "$state" 2>"$T_TMP/start.err"); then
  not_ok "kafka.sh start: the broker answers"
  cat "$T_TMP/start.err" "$state/broker.log" 2>/dev/null | tail -n 40
  exit 1
fi
T_PIDS+=("$(cat "$state/pid")") # its own group; stopped at exit if still there
ok "kafka.sh start: the broker answers on $boot"
diag "broker start (kafka.sh start, until kcat -L answers; jars cached): $(since "$t0")s"
bdir=$(grep -o '/[^ ]*/eventrig-kafka\.[A-Za-z0-9]*' "$state/broker.log" | head -n 1)

# env for the background broker: topics created by eventrig (Admin API)
mkenv() { # file create_topics topic...
  local f=$1 create=$2
  shift 2
  python3 - "$boot" "$create" "$@" >"$f" <<'PY'
import json, sys
boot, create, topics = sys.argv[1], sys.argv[2] == "true", sys.argv[3:]
print(json.dumps({"kafka": {"bootstrap": boot, "create_topics": create, "timeout": "20s",
                            "test_target": {"topic_prefixes": ["rk."], "group_prefixes": ["rk-"]},
                            "topics": [{"name": t, "partitions": 3} for t in topics]}}, indent=1))
PY
}
mkenv "$T_TMP/rk.env.json" true rk.events rk.other
run_rk() { # out scenario [env]
  local out=$1 sc=$2 env=${3:-$T_TMP/rk.env.json}
  "$EVENTRIG" run --env "$env" --junit "$T_TMP/rk.xml" --report-dir "$T_TMP/reports" \
    "tests/data/kafka_real/$sc" >"$out" 2>&1
}

kcat -L -b "$boot" >"$T_TMP/before.txt" 2>&1
check "before the run the declared topics do not exist" bash -c 'grep -q "0 topics" "$1" && ! grep -q "topic \"rk\." "$1"' _ "$T_TMP/before.txt"
run_rk "$T_TMP/present.out" topics-present.json
rc=$?
check "a run with create_topics true passes (exit $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -n 30 "$T_TMP/present.out"
kcat -L -b "$boot" >"$T_TMP/meta.txt" 2>&1
for t in rk.events rk.other; do
  check "the Admin API created '$t' with 3 partitions (kcat -L)" \
    grep -q "topic \"$t\" with 3 partitions" "$T_TMP/meta.txt"
done

G1="rk-end-$$-$RANDOM"
RK_GROUP=$G1 run_rk "$T_TMP/end.out" reset-end-drained.json
rc=$?
check "kafka.reset to end, then kafka.drained passes for a group that never had members (exit $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -n 30 "$T_TMP/end.out"

G2="rk-earliest-$$-$RANDOM"
RK_GROUP=$G2 run_rk "$T_TMP/earliest.out" reset-earliest-lag.json
rc=$?
check "kafka.reset to earliest, then kafka.drained fails (exit $rc, want 1)" [ $rc -eq 1 ]
check "the failure says the group did not commit up to the end offsets" \
  grep -q "group '$G2' did not commit up to the end offsets" "$T_TMP/earliest.out"
n0=$(grep -cE "rk\.events \[[0-2]\]: end [1-9][0-9]*, committed 0, lag [1-9]" "$T_TMP/earliest.out")
check "every partition shows committed 0 (the earliest offset, committed by the reset) and a lag ($n0/3)" [ "$n0" -eq 3 ]
[ "$n0" -eq 3 ] || grep -E "rk\.events|error|FAIL" "$T_TMP/earliest.out" | head -n 10 | sed 's/^/# /'

# a real member: kcat as a balanced consumer in group G3
G3="rk-busy-$$-$RANDOM"
setsid kcat -b "$boot" -G "$G3" -X session.timeout.ms=6000 -o beginning rk.events \
  >/dev/null 2>"$T_TMP/kcat.err" &
kpid=$!
T_PIDS+=("$kpid")
joined=false
for _ in $(seq 1 600); do # 30 s
  grep -q "assigned" "$T_TMP/kcat.err" 2>/dev/null && { joined=true; break; }
  kill -0 "$kpid" 2>/dev/null || break
  sleep 0.05
done
check "a kcat consumer joined group $G3" $joined
$joined || cat "$T_TMP/kcat.err" | head -n 10 | sed 's/^/# /'
RK_GROUP=$G3 run_rk "$T_TMP/busy.out" reset-busy.json
rc=$?
check "kafka.reset with an active member fails (exit $rc, want 1)" [ $rc -eq 1 ]
check "and names the group and its member count" \
  grep -q "group '$G3' has 1 active member(s)" "$T_TMP/busy.out"
kill -TERM "$kpid" 2>/dev/null
gone=false
for _ in $(seq 1 200); do kill -0 "$kpid" 2>/dev/null || { gone=true; break; }; sleep 0.05; done
check "the kcat consumer left" $gone
RK_GROUP=$G3 run_rk "$T_TMP/after.out" reset-end-drained.json
rc=$?
check "once its member left, kafka.reset works on a group that had members (exit $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -n 20 "$T_TMP/after.out"

absent="rk.absent-$$"
mkenv "$T_TMP/missing.env.json" false rk.events "$absent"
run_rk "$T_TMP/missing.out" topics-present.json "$T_TMP/missing.env.json"
rc=$?
check "a missing topic with create_topics false: exit $rc (want 3)" [ $rc -eq 3 ]
check "the message names the missing topic, and only it" \
  grep -q "kafka: topic(s) missing: $absent (on $boot)" "$T_TMP/missing.out"
[ $rc -eq 3 ] || tail -n 10 "$T_TMP/missing.out" | sed 's/^/# /'
kcat -L -b "$boot" >"$T_TMP/meta2.txt" 2>&1
check "and it was not created" bash -c '! grep -q "topic \"$1\"" "$2"' _ "$absent" "$T_TMP/meta2.txt"

bpid=$(cat "$state/pid")
t0=$(secs)
ci/kafka/kafka.sh stop "$state" 2>"$T_TMP/stop.err"
check "kafka.sh stop: the broker stopped cleanly (by SIGTERM, $(since "$t0")s)" \
  bash -c '! kill -0 "$1" 2>/dev/null && ! grep -q killed "$2"' _ "$bpid" "$T_TMP/stop.err"
check "kafka.sh stop: its temporary directory is gone (${bdir:-not found})" \
  bash -c '[ -n "$1" ] && [ ! -e "$1" ]' _ "$bdir"

# ---- 3. the suite on the real broker, and on the embedded one ---------------
suite() { # name env
  local name=$1 env=$2 t0 rc J=$T_TMP/suite-$1.xml
  t0=$(secs)
  "$EVENTRIG" run --env "$env" --junit "$J" --report-dir "$T_TMP/suite-$name" scenarios \
    >"$T_TMP/suite-$name.out" 2>&1
  rc=$?
  SUITE_WALL=$(since "$t0")
  check "the whole suite passes on $name ($env, exit $rc, ${SUITE_WALL}s)" [ $rc -eq 0 ]
  [ $rc -eq 0 ] || tail -n 40 "$T_TMP/suite-$name.out"
  n=$(xmllint --xpath 'count(//testcase)' "$J" 2>/dev/null || echo 0)
  check "every scenario ran on $name ($n)" [ "$n" -ge 10 ]
}
suite real-kafka ci/local-kafka.env.json
real_wall=$SUITE_WALL
# the broker's start inside that run: from eventrig starting the service to
# Kafka's "Kafka Server started" line
klog=$(ls "$T_TMP"/suite-real-kafka/*/services/kafka.log 2>/dev/null | head -n 1)
bstart=$(python3 - "${klog:-/dev/null}" <<'PY'
import re, sys, datetime as d
t = open(sys.argv[1]).read()
a = re.search(r"starting service 'kafka' at (\S+)Z", t)
b = re.search(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] INFO \[KafkaRaftServer nodeId=1\] Kafka Server started", t)
if a and b:
    s = d.datetime.fromisoformat(a.group(1))
    e = d.datetime.strptime(b.group(1), "%Y-%m-%d %H:%M:%S,%f")
    print(f"{(e - s).total_seconds():.1f}")
PY
)
check "the broker's log in the run's report shows it started (${bstart:-?}s)" [ -n "$bstart" ]
diag "broker start as an eventrig service (format + start, until 'Kafka Server started'): ${bstart:-?}s"
diag "suite wall time, real Kafka (ci/local-kafka.env.json, incl. services): ${real_wall}s"
if [ "${KAFKA_REAL_EMBEDDED:-0}" != 0 ]; then
  suite embedded ci/local.env.json
  diag "suite wall time, embedded broker (ci/local.env.json, incl. services): ${SUITE_WALL}s"
fi
check "no process of this test is left behind" no_children_left
t_done
