#!/usr/bin/env bash
# ci_files.sh: docker-compose.test.yml, ci/compose.env.json, sut/Dockerfile
# and the CI templates (ci/github-actions.yml, ci/github-actions-report.yml,
# ci/gitlab-ci.yml) checked offline, with no Docker engine:
# - each YAML file is validated against its published JSON schema, as
#   vendored by check-jsonschema (PyPI): the Compose specification's schema,
#   SchemaStore's GitHub workflow schema and GitLab's CI schema;
# - tests/support/check_ci_files.py parses them (PyYAML) and checks that
#   ports, topics, group and instances agree with ci/compose.env.json, and
#   that the templates run the suite and publish its JUnit file; that
#   nothing in the Compose stack is fixed per Docker host (project name,
#   images, host ports: ci/compose-env.sh picks them per run) and that the
#   checks hold with one run's ports as with the defaults; that JUnit
#   publishing is skipped on pull requests from forks (the `if:` evaluated
#   for each event) and done by the workflow_run template instead; that
#   every action is at its current major; that the jobs cache the .deb
#   files of ci/deps.sh and install only the package group they use; that
#   the suite runs as shards (a GitHub matrix, GitLab's `parallel:`) whose
#   count agrees with --shard's total, each keeping a report of its own,
#   and that a merge job waits for all of them (also after a failure),
#   merges every shard's report with `eventrig merge-reports` and publishes
#   the merged file;
# - each template's merge commands, read from the YAML, run with this
#   eventrig on two shards' reports laid out as each platform's download
#   lays them out: the merged report is the serial run's, and the job fails
#   when a shard's report is missing;
# - all of these are shown to fail on broken copies (a wrong port, an unknown
#   Compose key, a missing runtime library, a GitLab job without its JUnit
#   report, a matrix that disagrees with --shard's total, a merge job that
#   leaves a shard out, ...).
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
  ci/github-actions-report.yml:github-workflows ci/gitlab-ci.yml:gitlab-ci; do
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
check "check_ci_files.py ran all its checks (exit $rc, $n checks)" test "$n" -ge 41 -a "$rc" -le 1

# --- the checks can fail: broken copies of the files ------------------------
# copy ROOT's files into a fresh folder, then apply an edit
mkcopy() {
  local d=$T_TMP/copy-$1
  rm -rf "$d"
  mkdir -p "$d/ci" "$d/sut"
  cp "$ER_ROOT/docker-compose.test.yml" "$ER_ROOT/Makefile" "$d/"
  cp "$ER_ROOT/ci/compose.env.json" "$ER_ROOT/ci/local.env.json" "$ER_ROOT/ci/github-actions.yml" \
    "$ER_ROOT/ci/github-actions-report.yml" "$ER_ROOT/ci/gitlab-ci.yml" "$ER_ROOT/ci/compose-env.sh" \
    "$ER_ROOT/ci/deps.sh" "$d/ci/"
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
  's/EVENTRIG_SUT2_PORT:-28082}:8080/EVENTRIG_SUT2_PORT:-28092}:8080/' "published ports = SUT_URL_N"
broken "env redis port" ci/compose.env.json \
  's#EVENTRIG_REDIS_PORT:-26379}/0#EVENTRIG_REDIS_PORT:-6379}/0#' "redis.url and postgres.dsn"
broken "host listener advertised as localhost" docker-compose.test.yml \
  's#HOST://127.0.0.1:#HOST://localhost:#' "kafka.bootstrap of ci/compose.env.json"
broken "host listener advertised on a fixed port" docker-compose.test.yml \
  's#HOST://127.0.0.1:${EVENTRIG_KAFKA_PORT:-29092}#HOST://127.0.0.1:29092#' "with one run's ports"
broken "a fixed project name" docker-compose.test.yml \
  '0,/^services:/s//name: eventrig-test\nservices:/' "names no project"
broken "the service built into a fixed image" docker-compose.test.yml \
  '0,/^  build:/s//  image: eventrig-sut:test\n  build:/' "names no project, container, image"
broken "redis published on a fixed port" docker-compose.test.yml \
  's/127.0.0.1:${EVENTRIG_REDIS_PORT:-26379}:6379/127.0.0.1:26379:6379/' "every host port is chosen per run"
broken "env reads the kafka port from another variable" ci/compose.env.json \
  's/env.EVENTRIG_KAFKA_PORT:-29092/env.KAFKA_PORT:-29092/' "reads every port variable"
broken "env with a fixed sut-3 address" ci/compose.env.json \
  's#127.0.0.1:${env.EVENTRIG_SUT3_PORT:-28083}/metrics#127.0.0.1:28083/metrics#' "and no fixed port"
broken "compose-env.sh ignores GitLab's job id" ci/compose-env.sh \
  's/CI_JOB_ID:-/CI_JOB_IDX:-/' "pipeline's project name"
broken "Compose environment without a state section" ci/compose.env.json \
  's/"state": {/"state_off": {/' "ci/local.env.json's \"state\" section"
broken "Compose environment fails on stale state, the local one warns" ci/compose.env.json \
  's/"stale": "warn"/"stale": "fail"/' "ci/local.env.json's \"state\" section"
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
broken "GitHub publishes another file than the merged one" ci/github-actions.yml \
  '0,/report_paths: reports\/junit.xml/s//report_paths: junit.xml/' "uploads and publishes the merged report"
# publishing: not on pull requests from forks, on pushes also after a failure
broken "GitHub publishes on pull requests from forks" ci/github-actions.yml \
  's/github.event.pull_request.head.repo.full_name == github.repository/true/' "skipped on pull requests from forks"
broken "GitHub publishes only when the suite passed" ci/github-actions.yml \
  's/always() \&\& (github.event_name/success() \&\& (github.event_name/' "JUnit published on pushes and branch"
broken "GitHub: every job may write checks" ci/github-actions.yml \
  '0,/^  contents: read$/s//  contents: read\n  checks: write/' "only publishing jobs may write checks"
broken "report workflow runs for every workflow run" ci/github-actions-report.yml \
  "s/github.event.workflow_run.event == 'pull_request' \&\&/true ||/" "publishes the reports of pull requests from forks"
broken "report workflow checks out the pull request" ci/github-actions-report.yml \
  '0,/^    steps:$/s//    steps:\n      - uses: actions\/checkout@v7/' "runs no code"
broken "report workflow publishes on its own commit" ci/github-actions-report.yml \
  '/commit: ${{ github.event.workflow_run.head_sha }}/d' "on the head commit"
broken "report workflow leaves out the Compose job's report" ci/github-actions-report.yml \
  '/artifact: eventrig-reports-compose/,+1d' "downloads each publishing job's artifact"
# action majors
broken "an old checkout" ci/github-actions.yml 's/actions\/checkout@v7/actions\/checkout@v4/' "current major"
broken "an old junit report action in the report workflow" ci/github-actions-report.yml \
  's/mikepenz\/action-junit-report@v6/mikepenz\/action-junit-report@v4/' "current major"
broken "an action nobody vetted" ci/github-actions-report.yml \
  's/actions\/download-artifact@v8/dawidd6\/action-download-artifact@v8/' "a vetted one"
# caching
broken "GitHub caches another folder" ci/github-actions.yml \
  '0,/path: .apt-archives\/\*.deb/s//path: ~\/.cache\/apt/' "caches the .deb files"
broken "GitHub cache not keyed on ci/deps.sh" ci/github-actions.yml \
  "0,/hashFiles('ci\/deps.sh')/s//hashFiles('Makefile')/" "caches the .deb files"
broken "GitLab without the apt cache" ci/gitlab-ci.yml \
  '/- .apt-archives\/\*.deb/d' "the container job caches"
# package groups
broken "GitHub suite job installs every group" ci/github-actions.yml \
  's/--apt-archives .apt-archives demo/--apt-archives .apt-archives all/' "install only the group their job uses"
broken "GitHub Compose job installs the demo group" ci/github-actions.yml \
  's/--apt-archives .apt-archives build/--apt-archives .apt-archives demo/' "install only the group their job uses"
broken "GitLab suite job runs make deps" ci/gitlab-ci.yml \
  's/ci\/deps.sh --apt-archives .apt-archives demo/make deps/' "install only the group their job uses"
broken "the test group without the JDK" ci/deps.sh \
  '/^    test)/,/;;/{/group_pkgs kafka/d}' "groups nest"
broken "make demo installs every group" Makefile 's/@ci\/deps.sh demo/@ci\/deps.sh all/' "make demo installs"
broken "make test depends on deps again" Makefile 's/^test:$/test: deps/' "make test installs test"
# one project and one set of ports per run
broken "GitHub Compose job with a fixed project name" ci/github-actions.yml \
  's/COMPOSE_PROJECT_NAME: eventrig-.*/COMPOSE_PROJECT_NAME: eventrig-test/' "project named after the run"
broken "GitHub Compose job on the default ports" ci/github-actions.yml \
  '/ci\/compose-env.sh >> "$GITHUB_ENV"/d' "host ports from ci/compose-env.sh"
broken "GitHub Compose job keeps its images" ci/github-actions.yml \
  's/down -v --rmi local/down -v/' "down -v --rmi local always"
broken "GitLab Compose job with a fixed project name" ci/gitlab-ci.yml \
  's/COMPOSE_PROJECT_NAME: eventrig-$CI_JOB_ID/COMPOSE_PROJECT_NAME: eventrig/' "project named after CI_JOB_ID"
broken "GitLab Compose job does not export the ports" ci/gitlab-ci.yml \
  '/set -a; . .\/compose.env; set +a/d' "host ports from ci/compose-env.sh"
broken "GitLab without the JUnit report" ci/gitlab-ci.yml \
  's#junit: reports/junit.xml#junit: report.xml#' "artifacts:reports:junit"
broken "GitLab artifacts only on success" ci/gitlab-ci.yml \
  's/when: always/when: on_success/' "when: always"
broken "YAML syntax error" ci/gitlab-ci.yml \
  's/^stages:/stages: [/' "ci/gitlab-ci.yml parses as YAML"

# shards and the merge job, GitHub: the matrix, the shards' artifacts, the
# merge job's needs, if, download, merge-reports, count, upload, publishing
broken "GitHub matrix of three shards for --shard K/2" ci/github-actions.yml \
  's/shard: \[1, 2\]/shard: [1, 2, 3]/' "the matrix lists 1..N once each"
broken "GitHub shards run --shard K/3 in a matrix of two" ci/github-actions.yml \
  's#--shard ${{ matrix.shard }}/2#--shard ${{ matrix.shard }}/3#' "the matrix lists 1..N once each"
broken "GitHub shards cancelled by another's failure (fail-fast)" ci/github-actions.yml \
  '/fail-fast: false/d' "fail-fast off"
broken "GitHub shards upload under one artifact name" ci/github-actions.yml \
  's/name: eventrig-reports-shard-${{ matrix.shard }}/name: eventrig-reports-shard/' "under an artifact name of its own"
broken "GitHub shard publishes its own part" ci/github-actions.yml \
  '0,/if-no-files-found: warn/s//if-no-files-found: warn\n      - uses: mikepenz\/action-junit-report@v6\n        with:\n          report_paths: reports\/junit.xml/' \
  "publishes none"
broken "GitHub merge job does not wait for the shards" ci/github-actions.yml \
  '/^    needs: suite$/d' "needs every shard"
broken "GitHub merge job only when every shard passed" ci/github-actions.yml \
  '/^    if: ${{ !cancelled() }}$/d' "runs also after a failed one"
broken "GitHub merge job without eventrig built" ci/github-actions.yml \
  '/^  merge:/,/^  compose:/{/make -j2 eventrig/d}' "builds eventrig"
broken "GitHub merge downloads the shards into one folder" ci/github-actions.yml \
  's#^          path: shard-reports/#          path: shard-reports/\n          merge-multiple: true#' "into a folder of its own"
broken "GitHub merge downloads the Compose job's report too" ci/github-actions.yml \
  's/pattern: eventrig-reports-shard-\*/pattern: eventrig-reports-*/' "downloads each shard's artifact"
broken "GitHub merges one shard's report" ci/github-actions.yml \
  '0,/shard-reports\/\*\/junit.xml/s//shard-reports\/eventrig-reports-shard-1\/junit.xml/' "merges them all"
broken "GitHub merge does not fail when a shard's report is missing" ci/github-actions.yml \
  '/-eq 2 \]/d' "failing when one is missing"
broken "GitHub merged report not uploaded after a failure" ci/github-actions.yml \
  '/^  merge:/,/^  compose:/{s/^        if: always()$/        if: success()/}' "uploads and publishes the merged report"
broken "report workflow publishes a shard's report" ci/github-actions-report.yml \
  's/artifact: eventrig-reports-suite .*/artifact: eventrig-reports-shard-1/' "no shard's"
broken "report workflow downloads an artifact nobody uploads" ci/github-actions-report.yml \
  's/artifact: eventrig-reports-suite .*/artifact: eventrig-reports-local/' "downloads each publishing job's artifact"
# GitLab: parallel and --shard, the nodes' reports, the merge job's stage,
# needs, when, build, merge-reports, count, cache key
broken "GitLab three nodes, the merge expects two" ci/gitlab-ci.yml \
  's/parallel: 2/parallel: 3/' "failing when one is missing"
broken "GitLab nodes all run part 1 of 2" ci/gitlab-ci.yml \
  's#--junit reports/junit-$CI_NODE_INDEX.xml#--shard 1/2 &#' "CI_NODE_INDEX/CI_NODE_TOTAL as --shard"
broken "GitLab nodes run --shard K/3 with parallel: 2" ci/gitlab-ci.yml \
  's#--junit reports/junit-$CI_NODE_INDEX.xml#--shard $CI_NODE_INDEX/3 &#' "CI_NODE_INDEX/CI_NODE_TOTAL as --shard"
broken "GitLab nodes write the same report path" ci/gitlab-ci.yml \
  's#--junit reports/junit-$CI_NODE_INDEX.xml#--junit reports/junit.xml#' "a report of its own"
broken "GitLab nodes hand GitLab their own reports" ci/gitlab-ci.yml \
  '0,/^      - reports\/$/s//      - reports\/\n    reports:\n      junit: reports\/junit-$CI_NODE_INDEX.xml/' \
  "none exposed as artifacts:reports:junit"
broken "GitLab merge job does not need the nodes" ci/gitlab-ci.yml \
  '/^  needs:$/,/artifacts: true/d' "needs every node with its artifacts"
broken "GitLab merge job without the nodes' artifacts" ci/gitlab-ci.yml \
  's/artifacts: true/artifacts: false/' "needs every node with its artifacts"
broken "GitLab merge job only when every node passed" ci/gitlab-ci.yml \
  '/^  when: always$/d' "when: always"
broken "GitLab merge job in the nodes' stage" ci/gitlab-ci.yml \
  's/^  stage: report$/  stage: test/' "in a later stage"
broken "GitLab merge job's stage not declared" ci/gitlab-ci.yml \
  '/^  - report$/d' "declared stages"
broken "GitLab merge job without eventrig built" ci/gitlab-ci.yml \
  '/^eventrig-merge:/,/^eventrig-compose:/{/make -j2 eventrig/d}' "builds eventrig"
broken "GitLab merges one node's report" ci/gitlab-ci.yml \
  's#reports/junit.xml reports/junit-\*.xml#reports/junit.xml reports/junit-1.xml#' "merges every node's report"
broken "GitLab merge does not fail when a node's report is missing" ci/gitlab-ci.yml \
  '/-eq 2 \]/d' "failing when one is missing"
broken "GitLab merge job shares the suite's cache key" ci/gitlab-ci.yml \
  's/prefix: apt-debian12-build/prefix: apt-debian12/' "one key per package group"

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
schema_rejects "a permission level that does not exist" ci/github-actions-report.yml github-workflows \
  's/      actions: read /      actions: readonly /'
schema_rejects "artifacts:when with a bad value" ci/gitlab-ci.yml gitlab-ci \
  's/when: always/when: sometimes/'

# --- the templates' merge commands, run ---------------------------------------
# The shards' reports (two shards of tests/data/shards, one scenario of
# which fails) where each platform's download puts them: GitHub, a folder
# per artifact; GitLab, every node's reports/ in one workspace (the nodes
# take their part from CI_NODE_INDEX/CI_NODE_TOTAL). Then each template's
# merge commands as written, read from the YAML and run with bash -eo
# pipefail (as both platforms run them) and this eventrig as ./eventrig:
# the merged report is the serial run's; without one shard's report the
# job fails, after merging the rest.
MR=$T_TMP/merge-run
SD=$ER_ROOT/tests/data/shards
SE=$ER_ROOT/tests/data/empty.env.json
mkdir -p "$MR/base/github" "$MR/base/gitlab/reports"
cases() { # JUNIT -> "name | status" lines in document order
  "$PY" - "$1" <<'PY'
import sys, xml.etree.ElementTree as E
for t in E.parse(sys.argv[1]).iter("testcase"):
    st = "pass"
    for k in ("failure", "error", "skipped"):
        if t.find(k) is not None: st = k
    print(t.get("name"), "|", st)
PY
}
"$EVENTRIG" run --env "$SE" --report-dir "$MR/r" --junit "$MR/serial.xml" "$SD" >"$MR/run.log" 2>&1
cases "$MR/serial.xml" >"$MR/serial.txt" 2>/dev/null
for k in 1 2; do
  # the artifact names of ci/github-actions.yml's matrix
  "$EVENTRIG" run --env "$SE" --report-dir "$MR/r" --shard $k/2 \
    --junit "$MR/base/github/shard-reports/eventrig-reports-shard-$k/junit.xml" "$SD" >>"$MR/run.log" 2>&1
  CI_NODE_INDEX=$k CI_NODE_TOTAL=2 "$EVENTRIG" run --env "$SE" --report-dir "$MR/r" \
    --junit "$MR/base/gitlab/reports/junit-$k.xml" "$SD" >>"$MR/run.log" 2>&1
done
cases "$MR/base/github/shard-reports/eventrig-reports-shard-1/junit.xml" >"$MR/github.part.txt" 2>/dev/null
cases "$MR/base/gitlab/reports/junit-1.xml" >"$MR/gitlab.part.txt" 2>/dev/null
# merge_run ROOT PLATFORM [MISSING]: ROOT's merge commands for PLATFORM
# (github, gitlab) run on a fresh copy of the shards' reports (without
# shard 2's with MISSING); prints the exit status; the merged testcases in
# $MR/PLATFORM.merged.txt, the output in $MR/PLATFORM.out
merge_run() {
  local w=$MR/work-$2
  rm -rf "$w"
  cp -r "$MR/base/$2" "$w"
  if [ -n "${3:-}" ]; then
    rm -rf "$w/shard-reports/eventrig-reports-shard-2" "$w/reports/junit-2.xml"
  fi
  ln -s "$EVENTRIG" "$w/eventrig"
  "$PY" - "$1" "$2" >"$MR/$2.sh" <<'PY'
import sys, yaml
root, platform = sys.argv[1:]
if platform == "github":
    w = yaml.safe_load(open(f"{root}/ci/github-actions.yml"))
    print(next((s["run"] for j in (w.get("jobs") or {}).values() for s in j.get("steps") or []
                if "merge-reports" in s.get("run", "")), "false"))
else:
    g = yaml.safe_load(open(f"{root}/ci/gitlab-ci.yml"))
    print("\n".join(next((j["script"] for j in g.values() if isinstance(j, dict)
                          and "merge-reports" in "\n".join(j.get("script") or [])), ["false"])))
PY
  (cd "$w" && bash --noprofile --norc -eo pipefail "$MR/$2.sh") >"$MR/$2.out" 2>&1
  echo $?
  cases "$w/reports/junit.xml" >"$MR/$2.merged.txt" 2>/dev/null
}
if [ "$(grep -c . "$MR/serial.txt")" -ne 7 ] || [ ! -s "$MR/github.part.txt" ] || [ ! -s "$MR/gitlab.part.txt" ]; then
  not_ok "the serial run and the two shards of tests/data/shards wrote their reports"
  sed 's/^/# /' "$MR/run.log" | tail -5
fi
for p in github gitlab; do
  rc=$(merge_run "$ER_ROOT" $p)
  check "$p template's merge commands, run on two shards' reports: exit 0 (got $rc), the merged report is the serial run's (7 testcases, 1 failure, same order) and schema-valid" \
    bash -c '[ "$1" -eq 0 ] && cmp -s "$2" "$3" && xmllint --noout --schema "$4" "$5" 2>/dev/null' _ \
    "$rc" "$MR/$p.merged.txt" "$MR/serial.txt" "$ER_XSD" "$MR/work-$p/reports/junit.xml"
  [ "$rc" -ne 0 ] && sed 's/^/# /' "$MR/$p.out" | tail -5
  rc=$(merge_run "$ER_ROOT" $p missing)
  check "$p template's merge commands without shard 2's report: the job fails (exit $rc) after merging shard 1's" \
    bash -c '[ "$1" -ne 0 ] && cmp -s "$2" "$3" && grep -q "1 of 2" "$4"' _ \
    "$rc" "$MR/$p.merged.txt" "$MR/$p.part.txt" "$MR/$p.out"
done
# and on broken copies: the merge step of each fails to merge both shards
# merge_broken NAME PLATFORM FILE SED-EXPR
merge_broken() {
  local d rc
  d=$(mkcopy "merge-$1")
  sed -i -e "$4" "$d/$3"
  if cmp -s "$ER_ROOT/$3" "$d/$3"; then
    not_ok "merge commands of broken copy '$1': the edit changed $3"
    return
  fi
  rc=$(merge_run "$d" "$2")
  if [ "$rc" -ne 0 ] || ! cmp -s "$MR/$2.merged.txt" "$MR/serial.txt"; then
    ok "merge commands of broken copy '$1', run: exit $rc, $(grep -c . "$MR/$2.merged.txt") of 7 testcases merged"
  else
    not_ok "merge commands of broken copy '$1', run: fail to merge both shards"
  fi
}
merge_broken "GitHub merge step writes into a folder nobody made" github ci/github-actions.yml \
  '/^          mkdir -p reports$/d;s#reports/junit.xml shard-reports#out/junit.xml shard-reports#'
merge_broken "GitLab merge job merges one node's report" gitlab ci/gitlab-ci.yml \
  's#reports/junit.xml reports/junit-\*.xml#reports/junit.xml reports/junit-1.xml#'

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

# the Compose environment's stale-state audit, on one run's ports: a Redis
# and a broker (librdkafka's mock cluster) on ports handed out for this run,
# an idempotency key left by "an earlier run": `eventrig audit` finds it on
# EVENTRIG_REDIS_PORT and audits the group on EVENTRIG_KAFKA_PORT
MOCK=$ER_ROOT/build/asan/support/mockbroker
if [ ! -x "$MOCK" ] && ! (cd "$ER_ROOT" && make -s build/asan/support/mockbroker) >"$T_TMP/mock-build.log" 2>&1; then
  not_ok "build/asan/support/mockbroker is built"
  sed 's/^/# /' "$T_TMP/mock-build.log" | tail -5
elif start_redis; then
  "$MOCK" essay.content.provisioned.v1:3 >"$T_TMP/mock.out" 2>"$T_TMP/mock.err" &
  T_PIDS+=($!)
  for _ in $(seq 1 100); do [ -s "$T_TMP/mock.out" ] && break; sleep 0.05; done
  BS=$(head -n 1 "$T_TMP/mock.out")
  redis-cli -p "$REDIS_PORT" set els:idempotency:v2:els:essay.content.provisioned.v1:old 1 EX 86400 >/dev/null
  EVENTRIG_REDIS_PORT=$REDIS_PORT EVENTRIG_KAFKA_PORT=${BS##*:} \
    "$EVENTRIG" audit --env "$ER_ROOT/ci/compose.env.json" >"$T_TMP/audit.out" 2>&1
  rc=$?
  check "eventrig audit --env ci/compose.env.json: stale key found on this run's Redis port (exit $rc)" \
    bash -c '[ "$1" -eq 1 ] && grep -qx "idempotency keys in redis://127.0.0.1:$2/0:" "$3" &&
      grep -q "els:idempotency:v2:els:essay.content.provisioned.v1:old" "$3"' _ "$rc" "$REDIS_PORT" "$T_TMP/audit.out"
  check "eventrig audit --env ci/compose.env.json: group els-group audited on this run's broker port" \
    bash -c 'grep -qx "consumer groups on $2:" "$1" && grep -q "consumer group els-group: lag 0" "$1"' _ "$T_TMP/audit.out" "$BS"
  grep -q . "$T_TMP/audit.out" && [ "$rc" -ne 1 ] && sed 's/^/# /' "$T_TMP/audit.out" | head -10
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
check "the Compose filter leaves happy-path, duplicate-storms, stale-keys, poison-messages, readiness and excess-content (12 scenarios: batch-sizes is 3 cases)" \
  bash -c '[ "$(grep -c . "$1")" -eq 12 ] && for f in happy-path duplicate-storms stale-keys poison-messages readiness excess-content; do grep -q $f "$1" || exit 1; done' _ "$T_TMP/list.out"

t_done
