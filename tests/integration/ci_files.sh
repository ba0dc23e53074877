#!/usr/bin/env bash
# ci_files.sh: docker-compose.test.yml, ci/compose.env.json, sut/Dockerfile
# and the CI templates (ci/github-actions.yml, ci/gitlab-ci.yml) checked
# offline, with no Docker engine:
# - each YAML file is validated against its published JSON schema, as
#   vendored by check-jsonschema (PyPI): the Compose specification's schema,
#   SchemaStore's GitHub workflow schema and GitLab's CI schema;
# - tests/support/check_ci_files.py parses them (PyYAML) and checks that
#   ports, topics, group and instances agree with ci/compose.env.json, and
#   that the templates run the suite and publish its JUnit file;
# - both checks are shown to fail on broken copies (a wrong port, an unknown
#   Compose key, a missing runtime library, a GitLab job without its JUnit
#   report, ...).
# check-jsonschema and PyYAML are installed from PyPI into a virtualenv in
# build/ci-venv on first use (cached; pinned versions).
. "$(dirname "$0")/../lib.sh"

VENV="$ER_ROOT/build/ci-venv"
PINS=(check-jsonschema==0.39.0 pyyaml==6.0.3)
STAMP="$VENV/.installed-$(echo "${PINS[*]}" | tr ' =' '_-')"
CHECK="$ER_ROOT/tests/support/check_ci_files.py"

if [ ! -f "$STAMP" ]; then
  rm -rf "$VENV"
  if python3 -m venv "$VENV" >"$T_TMP/venv.log" 2>&1 &&
    timeout 300 "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" >>"$T_TMP/venv.log" 2>&1; then
    touch "$STAMP"
  else
    not_ok "check-jsonschema and PyYAML installed into build/ci-venv (python3-venv and PyPI needed)"
    sed 's/^/# /' "$T_TMP/venv.log" | tail -20
    exit 1
  fi
fi
PY="$VENV/bin/python"
CJS="$VENV/bin/check-jsonschema"

if [ ! -x "$ER_ROOT/sut/eventrig-sut" ]; then
  not_ok "sut/eventrig-sut is built (make sut)"
  exit 1
fi

# schema FILE SCHEMA: validate ROOT-relative FILE against a vendored schema
schema() {
  "$CJS" --builtin-schema "vendor.$2" "$1" >"$T_TMP/cjs.out" 2>&1
}
for pair in docker-compose.test.yml:compose-spec ci/github-actions.yml:github-workflows \
  ci/gitlab-ci.yml:gitlab-ci; do
  f=${pair%%:*} s=${pair#*:}
  if schema "$ER_ROOT/$f" "$s"; then
    ok "$f validates against the $s schema"
  else
    not_ok "$f validates against the $s schema"
    sed 's/^/# /' "$T_TMP/cjs.out" | head -20
  fi
done

# the consistency checks on the real files: one ok / not ok per check
"$PY" "$CHECK" "$ER_ROOT" >"$T_TMP/check.out" 2>&1
rc=$?
n=0
while IFS=$'\t' read -r status desc; do
  case "$status" in
    ok) ok "$desc"; n=$((n + 1)) ;;
    "not ok") not_ok "$desc"; n=$((n + 1)) ;;
    "#"*) echo "$status${desc:+ $desc}" ;;
    *) echo "# $status${desc:+ $desc}" ;;
  esac
done <"$T_TMP/check.out"
check "check_ci_files.py ran all its checks (exit $rc, $n checks)" test "$n" -ge 21 -a "$rc" -le 1

# --- the checks can fail: broken copies of the files ------------------------
# copy ROOT's files into a fresh folder, then apply an edit
mkcopy() {
  local d=$T_TMP/copy-$1
  rm -rf "$d"
  mkdir -p "$d/ci" "$d/sut"
  cp "$ER_ROOT/docker-compose.test.yml" "$d/"
  cp "$ER_ROOT/ci/compose.env.json" "$ER_ROOT/ci/local.env.json" "$ER_ROOT/ci/github-actions.yml" \
    "$ER_ROOT/ci/gitlab-ci.yml" "$d/ci/"
  cp "$ER_ROOT/sut/Dockerfile" "$d/sut/"
  ln -s "$ER_ROOT/sut/eventrig-sut" "$d/sut/eventrig-sut"
  ln -s "$ER_ROOT/scenarios" "$d/scenarios"
  echo "$d"
}
# broken NAME FILE SED-EXPR EXPECTED-FAILING-CHECK-TEXT
broken() {
  local name=$1 file=$2 expr=$3 want=$4 d
  d=$(mkcopy "$name")
  sed -i -e "$expr" "$d/$file"
  if cmp -s "$ER_ROOT/$file" "$d/$file"; then
    not_ok "broken copy '$name': the edit changed $file"
    return
  fi
  if "$PY" "$CHECK" "$d" >"$T_TMP/broken.out" 2>&1; then
    not_ok "broken copy '$name' is rejected"
    return
  fi
  if grep -q "^not ok	.*$want" "$T_TMP/broken.out"; then
    ok "broken copy '$name' is rejected by: $want"
  else
    not_ok "broken copy '$name' is rejected by: $want"
    sed 's/^/# /' "$T_TMP/broken.out" | grep -v '^# ok' | head -10
  fi
}

broken "sut-2 published on another port" docker-compose.test.yml \
  's/127.0.0.1:28082:8080/127.0.0.1:28092:8080/' "published ports = SUT_URL_N"
broken "env redis port" ci/compose.env.json \
  's#redis://127.0.0.1:26379/0#redis://127.0.0.1:6379/0#' "redis.url and postgres.dsn"
broken "host listener advertised as localhost" docker-compose.test.yml \
  's#HOST://127.0.0.1:29092#HOST://localhost:29092#' "kafka.bootstrap of ci/compose.env.json"
broken "controller quorum on another port" docker-compose.test.yml \
  's/KAFKA_CONTROLLER_QUORUM_VOTERS: 1@kafka:9093/KAFKA_CONTROLLER_QUORUM_VOTERS: 1@kafka:9094/' "KRaft combined mode"
broken "a topic missing from the job" docker-compose.test.yml \
  's/ essay.excess.content.v1;/;/' "kafka-topics job creates exactly"
broken "another consumer group" ci/compose.env.json \
  's/"SUT_GROUP": "els-group"/"SUT_GROUP": "other"/' "one group = SUT_GROUP"
broken "postgres database renamed" docker-compose.test.yml \
  's/POSTGRES_DB: sut/POSTGRES_DB: app/' "redis.url and postgres.dsn"
broken "redis without health check" docker-compose.test.yml \
  '/test: \["CMD", "redis-cli", "ping"\]/d' "health checks"
broken "the instances only wait for the topic job to start" docker-compose.test.yml \
  '0,/condition: service_completed_successfully/s//condition: service_started/' "wired to kafka/redis/postgres"
broken "runtime without libmicrohttpd" sut/Dockerfile \
  's/ libmicrohttpd12//' "every linked library's package"
broken "runtime without curl" sut/Dockerfile \
  's/^      curl ca-certificates/      ca-certificates/' "runtime stage with curl"
broken "compose job runs the proxy families" ci/github-actions.yml \
  "s/--filter '!tag:crash-mid-storm,!tag:offsets,!tag:postgres-fault,!tag:redis-outage,!tag:watch-conflicts'/--filter '!tag:redis-outage'/" "GitHub workflow"
broken "GitHub publishes another file" ci/github-actions.yml \
  '0,/report_paths: reports\/junit.xml/s//report_paths: junit.xml/' "JUnit published"
broken "GitLab without the JUnit report" ci/gitlab-ci.yml \
  's#junit: reports/junit.xml#junit: report.xml#' "artifacts:reports:junit"
broken "GitLab artifacts only on success" ci/gitlab-ci.yml \
  's/when: always/when: on_success/' "when: always"
broken "YAML syntax error" ci/gitlab-ci.yml \
  's/^stages:/stages: [/' "ci/gitlab-ci.yml parses as YAML"

# schema_rejects NAME FILE SCHEMA SED-EXPR
schema_rejects() {
  local d
  d=$(mkcopy "schema-$1")
  sed -i -e "$4" "$d/$2"
  if cmp -s "$ER_ROOT/$2" "$d/$2"; then
    not_ok "schema: broken copy '$1': the edit changed $2"
  elif schema "$d/$2" "$3"; then
    not_ok "schema: the $3 schema rejects $1"
  else
    ok "schema: the $3 schema rejects $1"
  fi
}
schema_rejects "an unknown health check key" docker-compose.test.yml compose-spec \
  '0,/    healthcheck:/s//    healthcheck:\n      tset: ["CMD", "true"]/'
schema_rejects "depends_on with an unknown condition" docker-compose.test.yml compose-spec \
  '0,/condition: service_healthy/s//condition: service_ready/'
schema_rejects "a job without runs-on" ci/github-actions.yml github-workflows \
  '/runs-on: ubuntu-latest/d'
schema_rejects "artifacts:when with a bad value" ci/gitlab-ci.yml gitlab-ci \
  's/when: always/when: sometimes/'

# sut/Dockerfile's build stage, as far as this Debian 12 machine can show
# it without an engine: the build context (sut/ less .dockerignore) holds no
# host build output, and the stage's own command builds the service from it
CTX=$T_TMP/context
mkdir -p "$CTX"
(cd "$ER_ROOT/sut" && tar --exclude-from=<(grep -v '^#' .dockerignore | sed 's#/$##') -cf - .) | tar -C "$CTX" -xf -
check "the image's build context (sut/ less .dockerignore) has no host build output" \
  test -f "$CTX/Makefile" -a ! -e "$CTX/build" -a ! -e "$CTX/eventrig-sut" -a ! -e "$CTX/eventrig-sut-asan"
build_cmd=$(sed -n 's/^RUN \(make .*\)$/\1/p' "$ER_ROOT/sut/Dockerfile")
if [ -n "$build_cmd" ] && (cd "$CTX" && bash -c "$build_cmd") >"$T_TMP/ctxbuild.log" 2>&1 && [ -x "$CTX/eventrig-sut" ]; then
  ok "the build stage's '$build_cmd' builds eventrig-sut from the context alone"
else
  not_ok "the build stage's '${build_cmd:-RUN make ...}' builds eventrig-sut from the context alone"
  sed 's/^/# /' "$T_TMP/ctxbuild.log" | tail -10
fi

# the environment file is one eventrig accepts with the bundled suite
if "$EVENTRIG" validate --env "$ER_ROOT/ci/compose.env.json" "$ER_ROOT/scenarios" >"$T_TMP/validate.out" 2>&1; then
  ok "eventrig validate --env ci/compose.env.json scenarios"
else
  not_ok "eventrig validate --env ci/compose.env.json scenarios"
  sed 's/^/# /' "$T_TMP/validate.out" | head -10
fi
# the families left for the Compose stack are not empty
"$EVENTRIG" list --filter '!tag:crash-mid-storm,!tag:offsets,!tag:postgres-fault,!tag:redis-outage,!tag:watch-conflicts' "$ER_ROOT/scenarios" >"$T_TMP/list.out" 2>&1
check "the Compose filter leaves happy-path, duplicate-storms, stale-keys, poison-messages, readiness and excess-content (9 scenarios)" \
  bash -c '[ "$(grep -c . "$1")" -eq 9 ] && for f in happy-path duplicate-storms stale-keys poison-messages readiness excess-content; do grep -q $f "$1" || exit 1; done' _ "$T_TMP/list.out"

t_done
