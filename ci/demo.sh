#!/usr/bin/env bash
# make demo: runs the bundled scenarios on the embedded default, against
# throwaway local servers that eventrig starts and stops itself, and checks
# the JUnit report against the schema.
set -uo pipefail
cd "$(dirname "$0")/.."
./eventrig run --env ci/examples.env.json --junit reports/junit.xml scenarios/examples
rc=$?
if command -v xmllint >/dev/null && [ -f reports/junit.xml ]; then
  xmllint --noout --schema tests/data/junit-10.xsd reports/junit.xml 2>&1 | tail -1
fi
exit $rc
