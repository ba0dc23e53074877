#!/usr/bin/env bash
# ci/compose-env.sh: the Compose project name and free host ports for one
# run of docker-compose.test.yml, as NAME=value lines, so that two
# pipelines on one Docker host (shell runners, Jenkins agents, self-hosted
# runners) neither share a stack nor collide on a port:
#
#   ci/compose-env.sh >> "$GITHUB_ENV"                      # GitHub Actions
#   ci/compose-env.sh > compose.env && set -a && . ./compose.env && set +a
#
# docker-compose.test.yml publishes its ports as ${EVENTRIG_*_PORT:-default}
# and ci/compose.env.json reads the same variables with ${env.NAME:-default}.
# The project name is COMPOSE_PROJECT_NAME when set, else eventrig- and the
# pipeline's job id (GitLab CI_JOB_ID, GitHub GITHUB_RUN_ID-GITHUB_RUN_ATTEMPT-
# GITHUB_JOB, Jenkins BUILD_TAG, Buildkite BUILDKITE_JOB_ID), made a valid
# project name (lower case, [a-z0-9_-]); outside a pipeline no name is
# printed (Compose then names the project after the folder).
# The ports are free loopback ports the kernel hands out (bind to port 0),
# distinct from each other.
set -euo pipefail

PORT_VARS=(EVENTRIG_KAFKA_PORT EVENTRIG_REDIS_PORT EVENTRIG_PG_PORT
  EVENTRIG_SUT1_PORT EVENTRIG_SUT2_PORT EVENTRIG_SUT3_PORT)

name=${COMPOSE_PROJECT_NAME:-}
if [ -z "$name" ]; then
  if [ -n "${CI_JOB_ID:-}" ]; then
    name="eventrig-$CI_JOB_ID"
  elif [ -n "${GITHUB_RUN_ID:-}" ]; then
    name="eventrig-$GITHUB_RUN_ID-${GITHUB_RUN_ATTEMPT:-1}-${GITHUB_JOB:-job}"
  elif [ -n "${BUILD_TAG:-}" ]; then
    name="eventrig-$BUILD_TAG"
  elif [ -n "${BUILDKITE_JOB_ID:-}" ]; then
    name="eventrig-$BUILDKITE_JOB_ID"
  fi
fi
if [ -n "$name" ]; then
  # Compose: lower case letters, digits, dashes and underscores, starting
  # with a letter or digit
  name=$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_-' '-' | sed 's/^[^a-z0-9]*//')
  echo "COMPOSE_PROJECT_NAME=$name"
fi

# all ports held open at once, so the kernel hands out distinct ones
python3 - "${PORT_VARS[@]}" <<'EOF'
import socket
import sys

socks = []
for var in sys.argv[1:]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    print(f"{var}={s.getsockname()[1]}")
for s in socks:
    s.close()
EOF
