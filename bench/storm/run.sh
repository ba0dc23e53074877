#!/usr/bin/env bash
# bench/storm/run.sh: a duplicate storm against the embedded broker.
#
# Starts an embedded broker (librdkafka's mock cluster) in a process of its
# own, then produces COUNT messages of SIZE bytes to it with eventrig's
# produce path (the kafka module and one kafka.produce step, in a process
# of its own whose peak RSS is measured) and with `kcat -P`, alternating,
# RUNS times each (a fresh topic each time). Both wait for every delivery
# report; rates are wall time of the whole process. Prints every run, the
# median messages/second of both, the ratio, and eventrig's peak RSS,
# against the targets (at least kcat's rate, at most 64 MB).
#
#   bench/storm/run.sh            3 x 1,000,000 messages of 100 bytes each
#   COUNT=200000 SIZE=100 RUNS=5 bench/storm/run.sh
#
# Not part of `make test`: it is a benchmark. Takes well under a minute.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
COUNT=${COUNT:-1000000}
SIZE=${SIZE:-100}
PARTITIONS=${PARTITIONS:-3}
RUNS=${RUNS:-3}
KCAT=${KCAT:-kcat}
RSS_TARGET_KB=$((64 * 1024))
OUT="$ROOT/build/bench"
TMP=$(mktemp -d /tmp/eventrig-storm.XXXXXX)
BROKER_PID=

cleanup() {
  [ -n "$BROKER_PID" ] && kill -TERM "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

command -v "$KCAT" >/dev/null || { echo "storm: kcat is not installed (apt-get install kcat)" >&2; exit 1; }

# ---- build (release flags of the Makefile) ------------------------------
PKGS="rdkafka hiredis libcurl jansson libpq libcrypto"
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -g -Iharness $(pkg-config --cflags $PKGS) -O2"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"
make --no-print-directory -s build/rel/libeventrig.a
mkdir -p "$OUT"
# shellcheck disable=SC2086
cc $CFLAGS -o "$OUT/storm" bench/storm/storm.c build/rel/libeventrig.a $LIBS
# shellcheck disable=SC2086
cc $CFLAGS -o "$OUT/mockbroker" tests/support/mockbroker.c $LIBS

# ---- the broker -----------------------------------------------------------
topics=()
for r in $(seq 1 "$RUNS"); do topics+=("storm.eventrig.$r:$PARTITIONS" "storm.kcat.$r:$PARTITIONS"); done
"$OUT/mockbroker" "${topics[@]}" >"$TMP/broker.out" 2>"$TMP/broker.err" &
BROKER_PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/broker.out" ] && break; sleep 0.05; done
BS=$(head -1 "$TMP/broker.out")
[ -n "$BS" ] || { echo "storm: the broker did not start" >&2; cat "$TMP/broker.err" >&2; exit 1; }

# ---- kcat's input: COUNT lines of SIZE bytes -----------------------------
LINE=$(head -c "$SIZE" /dev/zero | tr '\0' 'x')
awk -v n="$COUNT" -v l="$LINE" 'BEGIN { for (i = 0; i < n; i++) print l }' >"$TMP/payload"

echo "storm: $COUNT messages of $SIZE bytes, $PARTITIONS partitions, broker $BS"

now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

er_rates=() kc_rates=() er_rss=0 missing=0
for r in $(seq 1 "$RUNS"); do
  # eventrig: wall time of the whole process, as for kcat (start, connect,
  # produce, wait for every report, exit)
  t0=$(now)
  ER_LINE=$("$OUT/storm" produce "$BS" "storm.eventrig.$r" "$COUNT" "$SIZE" 2>"$TMP/storm.err") || {
    echo "storm: eventrig's run failed" >&2; cat "$TMP/storm.err" >&2; exit 1; }
  t1=$(now)
  rate=$(echo "$COUNT / ($t1 - $t0)" | bc -l | cut -d. -f1)
  step=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$ER_LINE")
  rss=$(sed -n 's/.* peak_rss_kb=\([0-9]*\).*/\1/p' <<<"$ER_LINE")
  er_rates+=("$rate")
  [ "$rss" -gt "$er_rss" ] && er_rss=$rss
  # kcat
  t0=$(now)
  "$KCAT" -P -b "$BS" -t "storm.kcat.$r" <"$TMP/payload" 2>"$TMP/kcat.err" || {
    echo "storm: kcat failed" >&2; cat "$TMP/kcat.err" >&2; exit 1; }
  t1=$(now)
  krate=$(echo "$COUNT / ($t1 - $t0)" | bc -l | cut -d. -f1)
  kc_rates+=("$krate")
  # did both deliver everything?
  er_n=$("$OUT/storm" count "$BS" "storm.eventrig.$r")
  kc_n=$("$OUT/storm" count "$BS" "storm.kcat.$r")
  [ "$er_n" -eq "$COUNT" ] && [ "$kc_n" -eq "$COUNT" ] || missing=1
  printf 'run %d: eventrig %8s msg/s (step %.2fs, %s kB RSS, %s in topic)   kcat %8s msg/s (%s in topic)\n' \
    "$r" "$rate" "$step" "$rss" "$er_n" "$krate" "$kc_n"
done

er_rate=$(printf '%s\n' "${er_rates[@]}" | median)
kc_rate=$(printf '%s\n' "${kc_rates[@]}" | median)
ratio=$(echo "scale=2; $er_rate / $kc_rate" | bc -l)
echo "median of $RUNS runs:"
printf '  %-10s %10s msg/s\n' eventrig "$er_rate" kcat "$kc_rate"
echo "  ratio eventrig/kcat: $ratio"
echo "  eventrig peak RSS: $((er_rss / 1024)) MB ($er_rss kB, highest run)"
verdict=ok
[ "$missing" -eq 0 ] || { echo "MISS: not every message arrived"; verdict=miss; }
[ "$er_rate" -ge "$kc_rate" ] || { echo "MISS: eventrig is slower than kcat"; verdict=miss; }
[ "$er_rss" -le "$RSS_TARGET_KB" ] || { echo "MISS: eventrig's peak RSS is above 64 MB"; verdict=miss; }
echo "targets (rate >= kcat, RSS <= 64 MB): $verdict"
[ "$verdict" = ok ]
