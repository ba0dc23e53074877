#!/usr/bin/env bash
# Service steps end to end through the CLI, against services eventrig
# starts itself (tests/data/svc/env.json: redis-server, three instances of
# a small python HTTP server, one that ignores SIGTERM, one whose restarts
# are slow): instances' names and ports, service.stop/start/kill/restart
# of an instance, of a group and of redis, a restart from a parallel
# branch that outlives the branch, redis.contend in a parallel step,
# services a scenario stopped running again for the next one, and no
# child process left after any run, also after SIGINT in the middle of a
# stop or a start and after SIGKILL following a restart.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/svc
MARK="eventrig-svc-$$-$RANDOM"
export ER_TEST_MARK="$MARK" # inherited by every child eventrig starts
export SVC_TMP="$T_TMP"     # the slow service's flag file goes here

for tool in redis-server python3 xmllint; do
  check "$tool is installed" command -v "$tool" >/dev/null
done

# wait_for FILE-GLOB TEXT SECONDS: until a file matching the glob holds TEXT
wait_for() {
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    grep -qs -- "$2" $1 && return 0
    sleep 0.05
  done
  return 1
}
count_in() { grep -c -- "$2" <<<"$1"; }

# --- validation ------------------------------------------------------------
out=$("$EVENTRIG" validate --env $D/env.json $D/pass $D/fail $D/intr 2>&1); rc=$?
check "the scenarios and the environment with instances are valid" [ $rc -eq 0 ] || diag "$out"
err=$("$EVENTRIG" validate --env $D/env.json $D/bad 2>&1); rc=$?
check "bad redis.contend / service arguments exit 2" [ $rc -eq 2 ]
for want in \
  'contend.json:4:48: error: "for" must be from 1ms to 10m' \
  'contend.json:4:69: error: connections must be between 1 and 64' \
  'contend.json:5:34: error: give 1 to 1000 keys' \
  'contend.json:5:66: error: connections must be between 1 and 64' \
  'contend.json:6:65: error: write "{key}" where each key goes' \
  'contend.json:7:74: error: the key placeholder is "{key}"' \
  "contend.json:8:42: error: unknown key 'within' in 'service.stop'" \
  "contend.json:9:26: error: unknown key 'nam' in 'service.start' (did you mean 'name'?)"; do
  check "validate says: $want" grep -qF -- "$want" <<<"$err"
done
for f in $D/bad/*.env.json; do
  exp="${f%.env.json}.expected"
  got=$("$EVENTRIG" validate --env "$f" $D/pass/01-instances.json 2>&1 >/dev/null); rc=$?
  check "environment $(basename "$f"): exit 2 with the expected messages" \
    bash -c '[ "$1" -eq 2 ] && diff <(sed "s|^.*/||" <<<"$2") "$3"' _ $rc "$got" "$exp" ||
    diag "$got"
done

# --- passing scenarios ------------------------------------------------------
J=$T_TMP/pass.xml
out=$("$EVENTRIG" run -v --env $D/env.json --junit "$J" --report-dir "$T_TMP/reports" $D/pass 2>&1); rc=$?
printf '%s\n' "$out" >"$T_TMP/pass.out"
check "service steps: every passing scenario passes (exit 0)" [ $rc -eq 0 ] || grep -E "^(PASS|FAIL|ERROR)|^      " <<<"$out" | sed 's/^/# /'
check "JUnit: 9 testcases, no failure" \
  bash -c '[ "$(xmllint --xpath "count(//testcase)" "$1")" = 9 ] && [ "$(xmllint --xpath "count(//failure|//error)" "$1")" = 0 ]' _ "$J"
check "service.stop logs the pid and how it stopped" \
  grep -qE "service\.stop: service 'web-2' \(pid [0-9]+\) stopped by SIGTERM in [0-9.]+m?s" <<<"$out"
check "stopping a stopped service says so" \
  grep -qE "service\.stop: service 'web-2' \(pid [0-9]+\) is stopped already" <<<"$out"
check "starting a running service says so" \
  grep -qE "service\.start: service 'web-2' \(pid [0-9]+\) is running already" <<<"$out"
check "service.kill logs SIGKILL" \
  grep -qE "service\.kill: service 'web-3' \(pid [0-9]+\) killed with SIGKILL" <<<"$out"
# the step on the group: one line per instance, stopped in reverse order
grp=$(sed -n '/a step on the group/,/^PASS/p' <<<"$out")
check "service.stop on the group stops web-3, web-2, web-1 (in that order)" \
  bash -c 'grep -oE "service\.stop: service .web-[0-9]" <<<"$1" | tr -d "\n" | grep -q "web-3.*web-2.*web-1"' _ "$grp"
check "service.start on the group starts web-1, web-2, web-3 and awaits each" \
  bash -c '[ "$(grep -cE "service\.start: service .web-[123]. started \(pid [0-9]+\), ready in" <<<"$1")" -eq 3 ]' _ "$grp"
check "service.restart on the group: three stops and three starts" \
  bash -c '[ "$(grep -cE "service\.restart: service .web-[123]. \(pid [0-9]+\) stopped" <<<"$1")" -eq 3 ] && [ "$(grep -cE "service\.restart: service .web-[123]. started" <<<"$1")" -eq 3 ]' _ "$grp"
# the restart in a branch: pid logged at the start equals the pid that kept answering
pnew=$(grep -oE "service\.restart: service 'web-1' started \(pid [0-9]+\)" <<<"$(sed -n '/outlives the branch/,/^PASS/p' <<<"$out")" | grep -oE "[0-9]+" | tail -1)
check "the restarted web-1 (pid $pnew) answered for 1s after its branch's thread ended" \
  bash -c 'grep -q "captured pnew = $1" <<<"$2" && grep -q "http held for 1.000s" <<<"$2"' _ "$pnew" "$out"
line=$(grep -m1 "redis.contend: 4 connection(s) wrote" <<<"$out")
diag "$line"
writes=$(sed -E 's/.* wrote ([0-9]+) time.*/\1/' <<<"$line")
check "redis.contend: 4 connections wrote more than 100 times in 500ms ($writes)" \
  bash -c '[ -n "$1" ] && [ "$1" -gt 100 ]' _ "$writes"
pl=$(grep -m1 "parallel: 2 branches" <<<"$(sed -n '/redis.contend alongside/,/^PASS/p' <<<"$out")")
check "redis.contend ran alongside the other branch (measured overlap)" grep -q "all overlapped" <<<"$pl" || diag "$pl"
check "services a scenario stopped run again for the next one" grep -q "^PASS  svc: the next scenario finds them running again" <<<"$out"
check "no child process left after the passing run" no_children_left

# --- expected failures -------------------------------------------------------
out=$("$EVENTRIG" run --env $D/env.json --report-dir "$T_TMP/reports" $D/fail 2>&1); rc=$?
check "failing scenarios exit 1" [ $rc -eq 1 ] || diag "$out"
check "a stopped instance refuses: the http step fails with connection refused" \
  grep -qE "http GET http://127\.0\.0\.1:[0-9]+/who: http: Couldn't connect to server.*Connection refused" <<<"$out"
check "the failing step is named" grep -q "step: step 2 'web-2 while stopped'" <<<"$out"
check "the redis step errors while redis is stopped" \
  grep -qE "redis \[\"PING\"\]: redis://127\.0\.0\.1:[0-9]+/1: cannot connect: Connection refused" <<<"$out"
check "an unknown name is an error with a did-you-mean and the names there are" \
  grep -qF "service.restart 'web-4': no service or group named 'web-4' (did you mean 'web-1'?); the environment has: redis, web (web-1, web-2, web-3), stubborn, slow" <<<"$out"
check "no child process left after the failing run" no_children_left
out=$("$EVENTRIG" run --env tests/data/empty.env.json --report-dir "$T_TMP/reports" $D/fail/unknown-name.json 2>&1); rc=$?
check "without services, a service step says so" \
  bash -c '[ "$1" -eq 1 ] && grep -qF "service.restart '"'"'web-4'"'"': the environment starts no services" <<<"$2"' _ $rc "$out"

# --- interruption ---------------------------------------------------------------
# run_bg SCENARIO: eventrig in the background; its report folder in R
run_bg() {
  R=$T_TMP/rep-$1
  rm -rf "$R"
  "$EVENTRIG" run --env $D/env.json --report-dir "$R" $D/intr/$1.json >"$T_TMP/$1.out" 2>&1 &
  EPID=$!
}
stop_wait() { # SIGNAL: exit status in RC, ms it took in MS
  local t0
  t0=$(date +%s%N)
  kill -"$1" $EPID
  { wait $EPID; } 2>/dev/null
  RC=$?
  MS=$((($(date +%s%N) - t0) / 1000000))
}

run_bg stop-stubborn
check "SIGINT during a stop: the stop is underway (the service got SIGTERM)" \
  wait_for "$R/*/services/stubborn.log" "ignoring SIGTERM" 30
stop_wait INT
check "SIGINT during a stop: exit 130 (got $RC)" [ $RC -eq 130 ] || cat "$T_TMP/stop-stubborn.out"
check "SIGINT during a stop: bounded by the stop timeout of 3s (${MS} ms)" [ $MS -lt 8000 ]
check "SIGINT during a stop: no child process left" no_children_left

run_bg start-slow
check "SIGINT during a start: the start is underway (slow start)" \
  wait_for "$R/*/services/slow.log" "slow start" 30
stop_wait INT
check "SIGINT during a start: exit 130 (got $RC)" [ $RC -eq 130 ]
check "SIGINT during a start: the readiness wait was cut short (${MS} ms; 60s otherwise)" [ $MS -lt 10000 ]
check "SIGINT during a start: the step names what it awaited" \
  grep -q "service.restart 'slow': interrupted while awaiting service 'slow'" "$T_TMP/start-slow.out"
check "SIGINT during a start: no child process left" no_children_left

run_bg killed-after-restart
check "SIGKILL after a restart: web-2 was restarted and answered" \
  wait_for "$R/*/services/web-2.log" "mark=restarted" 30
check "SIGKILL after a restart: its log shows two starts" \
  bash -c '[ "$(grep -c "starting service .web-2." $1/*/services/web-2.log)" -eq 2 ]' _ "$R"
stop_wait KILL
check "SIGKILL after a restart: eventrig died (status $RC)" [ $RC -eq 137 ]
check "SIGKILL after a restart: every service died with it, the restarted one too" no_children_left

t_done
