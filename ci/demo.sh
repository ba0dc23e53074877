#!/usr/bin/env bash
# make demo: the bundled scenario suite on the embedded default: eventrig
# starts throwaway Redis and Postgres, the embedded Kafka broker and three
# instances of the reference service, runs scenarios/ and leaves
# reports/junit.xml, checked against the JUnit schema.
set -uo pipefail
cd "$(dirname "$0")/.."
./eventrig run --env ci/local.env.json --junit reports/junit.xml scenarios
rc=$?
if command -v xmllint >/dev/null && [ -f reports/junit.xml ]; then
  xmllint --noout --schema tests/data/junit-10-fileline.xsd reports/junit.xml 2>&1 | tail -1
fi
exit $rc
