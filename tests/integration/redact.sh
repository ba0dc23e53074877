#!/usr/bin/env bash
# redact: a canary secret never leaves eventrig. One random canary per run;
# each place a secret can enter gets its own value CANARY<n><where>, so a
# grep for CANARY<n> finds any of them, and each recording path is proved
# on its own (none of them is also a "secrets" var):
#   run A (tests/data/redact/env.json, scenarios in sc/), with --verbose:
#     - postgres step DSN password=, connection refused (libpq error text)
#     - postgres step DSN libpq cannot parse, the password echoed around
#     - redis step URL password against a redis-server --requirepass other
#       (WRONGPASS)
#     - http step Authorization: Bearer / Cookie headers, echoed back by
#       echo.py in a body that lands in the failure detail; so are
#       X-Api-Key, X-Upload-Token (names that look secret) and X-Tenant-Key
#       (secret by the environment's "secret_headers": ["X-Tenant-*"])
#     - http URL user:password@ to a closed port (libcurl error text)
#     - a var named in "secrets" sent in a request body, echoed back and
#       shown as "last seen" by await
#     - the echo service's env (the secret var, a secret-looking name) and
#       command (a URL password): the service prints them to its own log
#   run B (pgenv/): the environment's postgres.dsn password, libpq error
#   runs C, D (kafka/): a real-cluster Kafka config with sasl.password
#     (PLAIN) and sasl.oauthbearer.config against a closed port: the run
#     stops with exit 3 and librdkafka's error on stderr
#   run E (svcfail/): a service never ready: eventrig's own stderr message
#     names the ready URL, with a password and a "secrets" var in it
#   run F: `run --dry-run` of the headers scenario: the plan it prints
#     shows *** for each of those header values
#   itest_redact: librdkafka's own log lines with both secrets in the
#     config, as eventrig keeps them for diagnostics
# Then stdout, stderr, the JUnit files and every file eventrig wrote under
# the report dirs except the services' own logs hold no canary, and every
# failure expected is there with "***" where the secret was.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
D=tests/data/redact
CANARY="CANARY$RANDOM$RANDOM"
CLOSED=$(free_port)
export RD_CLOSED=$CLOSED
export RD_VAR=${CANARY}var RD_SVC_URL_PW=${CANARY}svcurl RD_SVC_TOKEN=${CANARY}svctok
export RD_PG_PW=${CANARY}pg RD_PG_PW2=${CANARY}pgparse RD_REDIS_PW=${CANARY}redis
export RD_AUTH=${CANARY}auth RD_COOKIE=${CANARY}cookie RD_URL_PW=${CANARY}urlpw
export RD_PGENV_PW=${CANARY}pgenv RD_KAFKA_PW=${CANARY}kafka RD_KAFKA_OAUTH=${CANARY}oauth
export RD_SVC_VAR2=${CANARY}var2 RD_READY_PW=${CANARY}ready
export RD_APIKEY=${CANARY}apikey RD_UPTOKEN=${CANARY}uptoken RD_TENANT=${CANARY}tenant

# a redis that wants another password
RD_REDIS_PORT=$(free_port)
export RD_REDIS_PORT
redis-server --port "$RD_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --requirepass other --daemonize no --logfile "$T_TMP/redis.log" &
T_PIDS+=($!)
wait_port "$RD_REDIS_PORT" 10 || { not_ok "redis-server starts"; exit 1; }

run() { # name env scenario... -> $T_TMP/name.{out,err,xml}, reports/name
  local name=$1 env=$2
  shift 2
  timeout -k 5 120 "$EVENTRIG" run --verbose --env "$env" \
    --junit "$T_TMP/$name.xml" --report-dir "$T_TMP/reports/$name" "$@" \
    >"$T_TMP/$name.out" 2>"$T_TMP/$name.err"
}

run A "$D/env.json" "$D/sc"
rcA=$?
run B "$D/pgenv/env.json" "$D/pgenv/uses-env.json"
rcB=$?
run C "$D/kafka/env.json" "$D/kafka/produce.json"
rcC=$?
run D "$D/kafka/oauth.env.json" "$D/kafka/produce.json"
rcD=$?
run E "$D/svcfail/env.json" "$D/pgenv/uses-env.json"
rcE=$?
"$EVENTRIG" run --dry-run --env "$D/env.json" "$D/sc/http-headers.json" \
  >"$T_TMP/F.out" 2>"$T_TMP/F.err"
rcF=$?
check "run A: scenarios fail (exit 1, got $rcA)" [ "$rcA" -eq 1 ]
check "run B: the scenario fails (exit 1, got $rcB)" [ "$rcB" -eq 1 ]
check "run C: Kafka unreachable stops the run (exit 3, got $rcC)" [ "$rcC" -eq 3 ]
check "run D: Kafka unreachable stops the run (exit 3, got $rcD)" [ "$rcD" -eq 3 ]

# ---- the canary went through each path ----------------------------------
has() { # file fixed-text
  grep -qF -- "$2" "$1" || { diag "$1 lacks: $2"; return 1; }
}
# the JUnit file's text and attribute values, unescaped
python3 - "$T_TMP/A.xml" >"$T_TMP/A.xml.txt" <<'PY'
import sys, xml.etree.ElementTree as ET
for el in ET.parse(sys.argv[1]).iter():
    for v in el.attrib.values(): print(v)
    if el.text: print(el.text)
PY
check "A.xml is well-formed XML" [ -s "$T_TMP/A.xml.txt" ]
for f in "$T_TMP/A.out" "$T_TMP/A.xml.txt"; do
  n=$(basename "$f")
  check "$n: libpq refused the DSN with the password hidden" \
    has "$f" "port=$CLOSED user=u password=*** dbname=x connect_timeout=3: connection to server at"
  check "$n: the unparsable DSN shows *** for the password" \
    has "$f" "password=*** ***junk"
  check "$n: redis WRONGPASS with the URL password hidden" \
    has "$f" "redis://:***@127.0.0.1:$RD_REDIS_PORT/0: AUTH failed: WRONGPASS"
  check "$n: the echoed Authorization header is ***" has "$f" '"Authorization": "***"'
  check "$n: the echoed Cookie header is ***" has "$f" '"Cookie": "***"'
  check "$n: the echoed X-Api-Key header is ***" has "$f" '"X-Api-Key": "***"'
  check "$n: the echoed X-Upload-Token header is ***" has "$f" '"X-Upload-Token": "***"'
  check "$n: the echoed X-Tenant-Key header (secret_headers) is ***" has "$f" '"X-Tenant-Key": "***"'
  check "$n: libcurl's error with the URL password hidden" \
    has "$f" "http://user:***@127.0.0.1:$CLOSED/x: http: Couldn't connect to server"
  check "$n: the secret var is *** in what was last seen" \
    has "$f" 'last seen: http POST'
  check "$n: ... in the echoed request body" has "$f" 'token\":\"***\"'
done
check "run F: --dry-run exits 0 (got $rcF)" [ "$rcF" -eq 0 ]
for h in Authorization Cookie X-Api-Key X-Upload-Token X-Tenant-Key; do
  check "F.out: the dry run shows $h as ***" has "$T_TMP/F.out" "\"$h\":\"***\""
done
check "A.out: --verbose printed the step logs" has "$T_TMP/A.out" "[step] http GET"
check "B.out: the environment's DSN password hidden in libpq's error" \
  has "$T_TMP/B.out" "postgresql://u:***@127.0.0.1:$CLOSED/x?connect_timeout=3: connection to server at"
check "C.err: librdkafka's error for the SASL/PLAIN config" \
  has "$T_TMP/C.err" "eventrig: kafka: no metadata from 127.0.0.1:$CLOSED"
check "D.err: librdkafka's error for the OAUTHBEARER config" \
  has "$T_TMP/D.err" "eventrig: kafka: no metadata from 127.0.0.1:$CLOSED"
check "run E: a service not ready stops the run (exit 3, got $rcE)" [ "$rcE" -eq 3 ]
check "E.err: eventrig's message with the URL password and the secret var hidden" \
  has "$T_TMP/E.err" "awaited http http://u:***@127.0.0.1:$CLOSED/ready?token=*** to answer 200"
# ---- "secrets" naming something unknown -----------------------------------
"$EVENTRIG" validate --env "$D/bad/env.json" "$D/pgenv/uses-env.json" >"$T_TMP/bad.out" 2>"$T_TMP/bad.err"
rc=$?
check "validate: an unknown secret name is unusable input (exit 2, got $rc)" [ "$rc" -eq 2 ]
check "validate: the error names it at file:line:col" has "$T_TMP/bad.err" \
  "$D/bad/env.json:3:20: error: secret 'RD_NOT_SET_ANYWHERE' is neither a var of this file nor set in the environment"
check "validate: a name that is not a string" has "$T_TMP/bad.err" \
  "$D/bad/env.json:3:43: error: each element of 'secrets' must be a var name (a string), not a number"
RD_NOT_SET_ANYWHERE=now-set "$EVENTRIG" validate --env "$D/bad/env.json" "$D/pgenv/uses-env.json" >/dev/null 2>"$T_TMP/bad2.err"
check "validate: a name set in the process environment is fine" \
  bash -c "! grep -q RD_NOT_SET_ANYWHERE '$T_TMP/bad2.err'"

svclog=$(find "$T_TMP/reports/A" -path '*/services/*' -type f | head -n 1)
check "the echo service got the secrets (its own log has them)" \
  bash -c "[ -n '$svclog' ] && grep -qF '${CANARY}var' '$svclog' && grep -qF '${CANARY}svctok' '$svclog' && grep -qF '${CANARY}svcurl' '$svclog'"

# ---- librdkafka's log, as kept for diagnostics ----------------------------
bin="$ER_ROOT/build/asan/itest/itest_redact"
if [ -x "$bin" ]; then
  RD_CANARY=$CANARY timeout -k 5 120 "$bin" >"$T_TMP/itest.out" 2>&1
  rc=$?
  sed 's/^/  /' "$T_TMP/itest.out" | grep -v '^  ok' || true
  check "itest_redact exits 0 (status $rc)" [ "$rc" -eq 0 ]
else
  not_ok "itest_redact is built (make tests-build)"
fi

# ---- no canary anywhere eventrig wrote ------------------------------------
leaks=$( (
  grep -lF -- "$CANARY" "$T_TMP"/*.out "$T_TMP"/*.err "$T_TMP"/*.xml "$T_TMP"/*.txt 2>/dev/null
  find "$T_TMP/reports" -type f ! -path '*/services/*' -print0 |
    xargs -0 -r grep -lF -- "$CANARY"
) | sort -u)
nfiles=$(find "$T_TMP/reports" -type f ! -path '*/services/*' | wc -l)
diag "searched $(ls "$T_TMP"/*.out "$T_TMP"/*.err "$T_TMP"/*.xml | wc -l) outputs and $nfiles report files for $CANARY"
if [ -z "$leaks" ]; then
  ok "the canary is in no output, JUnit file or report file"
else
  not_ok "the canary is in no output, JUnit file or report file"
  for f in $leaks; do diag "leak in $f:"; grep -nF -- "$CANARY" "$f" | head -n 5 | sed 's/^/#   /'; done
fi
t_done
