#!/usr/bin/env bash
# audit.sh: the stale-state audit. itest_audit checks the audit function
# against a real Redis and the embedded broker (exact counts, TTLs, lag);
# then `eventrig audit` and the audit before `eventrig run`, against a
# real Redis seeded with redis-cli.
source "$(dirname "$0")/../lib.sh"
ITEST=${ITEST_AUDIT:-$ER_ROOT/build/asan/itest/itest_audit}
[ -x "$ITEST" ] || { echo "not ok - $ITEST not built (make tests-build)"; exit 1; }
D=$ER_ROOT/tests/data/audit

start_redis || exit 1
REDIS_URL=$REDIS_URL "$ITEST"
rc=$?
check "itest_audit: every check passed" [ $rc -eq 0 ]
redis-cli -p "$REDIS_PORT" flushall >/dev/null

# an environment file for this Redis, from the templates in tests/data/audit
envfile() { # $1 template, $2 output, $3 redis url
  sed -e "s|@REDIS_URL@|$3|g" "$D/$1" >"$T_TMP/$2"
}
envfile warn.env.json warn.json "$REDIS_URL"
envfile fail.env.json fail.json "$REDIS_URL"
R() { redis-cli -p "$REDIS_PORT" "$@" >/dev/null; }

# (a) clean
"$EVENTRIG" audit --env "$T_TMP/warn.json" >"$T_TMP/a.out" 2>"$T_TMP/a.err"
rc=$?
check "(a) clean Redis: exit 0 (got $rc)" [ $rc -eq 0 ]
check "(a) says clean" grep -qx "clean: no idempotency keys, no consumer lag" "$T_TMP/a.out"
check "(a) names the redis and the pattern" grep -qx "  au:idempotency:v2:\* : no keys" "$T_TMP/a.out"
check "(a) embedded broker: groups not audited, said so" \
  grep -qx "kafka: embedded broker (fresh for each run): nothing to audit" "$T_TMP/a.out"

# (b) stale keys: two with a TTL, one without, one not matching
R set au:idempotency:v2:els:ev:aaa 1 EX 86400
R set au:idempotency:v2:els:ev:bbb 1 PX 90000
R set au:idempotency:v2:els:ev:ccc 1
R set au:other:ddd 1
"$EVENTRIG" audit --env "$T_TMP/warn.json" >"$T_TMP/b.out" 2>"$T_TMP/b.err"
rc=$?
check "(b) stale keys: exit 1 (got $rc)" [ $rc -eq 1 ]
check "(b) header names the server" grep -qx "idempotency keys in $REDIS_URL:" "$T_TMP/b.out"
check "(b) count right" grep -qx "  au:idempotency:v2:\* : 3 keys" "$T_TMP/b.out"
check "(b) aaa with its TTL (23h59m or 1d00h)" \
  grep -qE "^    au:idempotency:v2:els:ev:aaa  TTL (23h59m|1d00h)$" "$T_TMP/b.out"
check "(b) bbb with its TTL (1m2x..1m30s)" \
  grep -qE "^    au:idempotency:v2:els:ev:bbb  TTL 1m[0-9]{2}s$" "$T_TMP/b.out"
check "(b) ccc: no TTL made obvious" \
  grep -qx "    au:idempotency:v2:els:ev:ccc  no TTL (never expires)" "$T_TMP/b.out"
check "(b) the key not matching is not listed" bash -c "! grep -q au:other '$T_TMP/b.out'"
check "(b) summary" grep -qx "stale state: 3 idempotency keys, consumer lag 0" "$T_TMP/b.out"
check "(b) nothing on stderr" bash -c "[ ! -s '$T_TMP/b.err' ]"
check "(b) audit did not touch the keys" [ "$(redis-cli -p "$REDIS_PORT" dbsize)" = 4 ]

# (c) before a run: "warn" warns and runs the scenario
R del au:ran
"$EVENTRIG" run --env "$T_TMP/warn.json" --report-dir "$T_TMP/rw" "$D/touch.json" \
  >"$T_TMP/cw.out" 2>"$T_TMP/cw.err"
rc=$?
check "(c) warn: the run passes (exit $rc)" [ $rc -eq 0 ]
check "(c) warn: warning on stderr" grep -q "^eventrig: warning: stale state left by earlier runs:" "$T_TMP/cw.err"
check "(c) warn: the keys listed" grep -qx "    au:idempotency:v2:els:ev:ccc  no TTL (never expires)" "$T_TMP/cw.err"
check "(c) warn: the scenario ran (side effect)" [ "$(redis-cli -p "$REDIS_PORT" exists au:ran)" = 1 ]
check "(c) warn: the scenario passed" grep -q "^PASS" "$T_TMP/cw.out"
check "(c) warn: the report is kept as reports/<run>/audit.txt" \
  bash -c 'grep -qx "    au:idempotency:v2:els:ev:ccc  no TTL (never expires)" "$1"/*/audit.txt' _ "$T_TMP/rw"

# "fail" stops the run before any scenario
R del au:ran
"$EVENTRIG" run --env "$T_TMP/fail.json" --report-dir "$T_TMP/rf" "$D/touch.json" \
  >"$T_TMP/cf.out" 2>"$T_TMP/cf.err"
rc=$?
check "(c) fail: exit 3 (got $rc)" [ $rc -eq 3 ]
check "(c) fail: the scenario did not run (no side effect)" [ "$(redis-cli -p "$REDIS_PORT" exists au:ran)" = 0 ]
check "(c) fail: the keys listed" grep -qE "^    au:idempotency:v2:els:ev:aaa  TTL (23h59m|1d00h)$" "$T_TMP/cf.err"
check "(c) fail: says why and how to clean" \
  grep -q 'stale state found before the run (3 idempotency key(s), consumer lag 0), and state.stale is "fail": delete the keys (a redis.clean step' "$T_TMP/cf.err"
check "(c) fail: no scenario result printed" bash -c "! grep -qE '^(PASS|FAIL)' '$T_TMP/cf.out'"

# once clean, "fail" lets the run through
R del au:idempotency:v2:els:ev:aaa au:idempotency:v2:els:ev:bbb au:idempotency:v2:els:ev:ccc
"$EVENTRIG" run --env "$T_TMP/fail.json" --report-dir "$T_TMP/rf2" "$D/touch.json" \
  >"$T_TMP/cf2.out" 2>"$T_TMP/cf2.err"
rc=$?
check "(c) fail on a clean Redis: the run passes (exit $rc)" [ $rc -eq 0 ]
check "(c) fail on a clean Redis: no warning" bash -c "! grep -q 'stale state' '$T_TMP/cf2.err'"

# (d) unreachable Redis
DEAD=$(free_port)
envfile warn.env.json dead.json "redis://127.0.0.1:$DEAD/0"
"$EVENTRIG" audit --env "$T_TMP/dead.json" >"$T_TMP/d.out" 2>"$T_TMP/d.err"
rc=$?
check "(d) unreachable Redis: exit 3 (got $rc)" [ $rc -eq 3 ]
check "(d) the message names it" grep -q "^eventrig: audit: .*127.0.0.1:$DEAD" "$T_TMP/d.err"
"$EVENTRIG" run --env "$T_TMP/dead.json" --report-dir "$T_TMP/rd" "$D/touch.json" \
  >"$T_TMP/rd.out" 2>"$T_TMP/rd.err"
rc=$?
check "(d) run with an unreachable Redis: exit 3 (got $rc)" [ $rc -eq 3 ]
check "(d) run: the message names the audit and the server" \
  grep -q "^eventrig: stale-state audit: .*127.0.0.1:$DEAD" "$T_TMP/rd.err"

# bad input: exit 2
"$EVENTRIG" audit --env "$D/bad-stale.env.json" >/dev/null 2>"$T_TMP/e.err"
rc=$?
check "bad state.stale: exit 2 (got $rc)" [ $rc -eq 2 ]
check "bad state.stale: says what is allowed" grep -q 'state.stale must be "warn" or "fail"' "$T_TMP/e.err"
"$EVENTRIG" run --env "$D/bad-stale.env.json" --report-dir "$T_TMP/re" "$D/touch.json" >/dev/null 2>&1
rc=$?
check "bad state.stale in a run: exit 2 (got $rc)" [ $rc -eq 2 ]
"$EVENTRIG" audit --env "$D/nothing.env.json" >/dev/null 2>"$T_TMP/n.err"
rc=$?
check "nothing to audit: exit 2 (got $rc)" [ $rc -eq 2 ]
check "nothing to audit: says so" grep -q "nothing to audit" "$T_TMP/n.err"
"$EVENTRIG" audit >/dev/null 2>&1
check "audit without --env: exit 2" [ $? -eq 2 ]

# a Redis the run starts on a fresh port: nothing to audit (exit 0)
"$EVENTRIG" audit --env "$D/fresh-port.env.json" >"$T_TMP/f.out" 2>"$T_TMP/f.err"
rc=$?
check "redis on \${port.X}: exit 0 (got $rc)" [ $rc -eq 0 ]
check "redis on \${port.X}: says why nothing is audited" grep -q "^redis: the URL uses \${port.NAME}" "$T_TMP/f.out"
t_done
