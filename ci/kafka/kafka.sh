#!/usr/bin/env bash
# A throwaway single-node Apache Kafka broker (KRaft, broker and controller
# in one JVM) on loopback, for the tests. The release is pinned in
# ci/kafka/pom.xml; its jars are fetched with Maven into build/kafka-jars
# (reused when present; nothing is committed). The KRaft storage and logs
# live in a fresh temporary directory that is deleted when the broker stops.
#
# Usage:
#   ci/kafka/kafka.sh jars              fetch the jars (if missing), print the folder
#   ci/kafka/kafka.sh run PORT CTLPORT  foreground (an eventrig service): the
#                                       broker on 127.0.0.1:PORT, its controller
#                                       on CTLPORT; stops on SIGTERM/SIGINT and
#                                       deletes its directory
#   ci/kafka/kafka.sh start [STATEDIR]  background on free ports; waits until it
#                                       answers (KAFKA_START_WITHIN seconds, 90),
#                                       prints the bootstrap "127.0.0.1:PORT"
#   ci/kafka/kafka.sh stop [STATEDIR]   stops a broker started with start
# STATEDIR defaults to build/kafka-state. Heap: KAFKA_HEAP (default -Xmx512m).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
jars=${KAFKA_JARS_DIR:-$root/build/kafka-jars}

die() { echo "kafka.sh: $*" >&2; exit 3; }

fetch_jars() {
  if ls "$jars"/kafka_2.13-*.jar >/dev/null 2>&1 && [ -f "$jars/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (make deps installs maven)"
  mkdir -p "$(dirname "$jars")"
  # one fetch at a time (several brokers may start at once)
  exec 9>"$jars.lock"
  flock -w 600 9 || die "waited 600s for another fetch of the Kafka jars"
  if [ -f "$jars/.complete" ]; then exec 9>&-; return 0; fi
  rm -rf "$jars.tmp"
  timeout 600 mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$jars.tmp" >&2 || die "mvn could not fetch the Kafka jars"
  rm -rf "$jars"
  mv "$jars.tmp" "$jars"
  touch "$jars/.complete"
  exec 9>&-
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# a random KRaft cluster id: 16 random bytes, URL-safe base64 without padding
cluster_id() {
  python3 -c 'import base64,uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"): print(s); break'
}

java_opts() {
  # small heap, quick start: the tests share two cores with other jobs
  echo "${KAFKA_HEAP:--Xmx512m -Xms64m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k" \
    "-Djava.awt.headless=true -Dlog4j.configuration=file:$here/log4j.properties"
}

# prepare DIR PORT CTLPORT: server.properties and formatted storage in DIR
prepare() {
  local dir=$1 port=$2 ctl=$3
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
background.threads=2
log.flush.interval.messages=9223372036854775807
log.retention.check.interval.ms=3600000
EOF
  # shellcheck disable=SC2046
  java $(java_opts) -cp "$jars/*" kafka.tools.StorageTool format \
    -t "$(cluster_id)" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; die "formatting KRaft storage failed"; }
}

cmd_run() {
  local port=${1:?usage: kafka.sh run PORT CTLPORT} ctl=${2:?usage: kafka.sh run PORT CTLPORT}
  command -v java >/dev/null || die "java not found (make deps installs a JDK)"
  fetch_jars
  local dir pid=""
  dir=$(mktemp -d "${TMPDIR:-/tmp}/eventrig-kafka.XXXXXX")
  cleanup() {
    # a second TERM/INT must not cut the cleanup short
    trap '' INT TERM
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
  }
  trap cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  prepare "$dir" "$port" "$ctl"
  # shellcheck disable=SC2046
  java $(java_opts) -cp "$jars/*" kafka.Kafka "$dir/server.properties" &
  pid=$!
  wait "$pid"
}

cmd_start() {
  local state=${1:-$root/build/kafka-state} port ctl t0 within=${KAFKA_START_WITHIN:-90}
  command -v kcat >/dev/null || die "kcat not found"
  mkdir -p "$state"
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    die "a broker runs already (pid $(cat "$state/pid"), $(cat "$state/bootstrap" 2>/dev/null))"
  fi
  fetch_jars
  port=$(free_port)
  ctl=$(free_port)
  while [ "$ctl" = "$port" ]; do ctl=$(free_port); done
  t0=$(date +%s)
  # its own session, so that stop can signal the whole group
  setsid "$0" run "$port" "$ctl" >"$state/broker.log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  echo "127.0.0.1:$port" >"$state/bootstrap"
  while ! kcat -L -b "127.0.0.1:$port" -m 2 >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      tail -n 30 "$state/broker.log" >&2
      die "the broker exited before it answered"
    fi
    if [ $(($(date +%s) - t0)) -ge "$within" ]; then
      tail -n 30 "$state/broker.log" >&2
      cmd_stop "$state"
      die "the broker did not answer on 127.0.0.1:$port within ${within}s"
    fi
    sleep 0.2
  done
  echo "127.0.0.1:$port"
}

cmd_stop() {
  local state=${1:-$root/build/kafka-state} pid
  [ -f "$state/pid" ] || { echo "kafka.sh: no broker started from $state" >&2; return 0; }
  pid=$(cat "$state/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true # the wrapper stops java, deletes the dir
    for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "kafka.sh: broker did not stop within 20s of SIGTERM: killed" >&2
    fi
  fi
  rm -f "$state/pid" "$state/bootstrap"
}

case "${1:-}" in
  jars) fetch_jars; echo "$jars" ;;
  run) shift; cmd_run "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) echo "usage: kafka.sh jars | run PORT CTLPORT | start [STATEDIR] | stop [STATEDIR]" >&2; exit 2 ;;
esac
