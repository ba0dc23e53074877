#!/usr/bin/env bash
# The include check of the layers (ci/layers.sh), clang-format (no
# changes allowed) and clang-tidy over harness/ and sut/.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
ci/layers.sh || rc=1
files=$(ls harness/*/*.c harness/*/*.h sut/*.c sut/*.h tests/unit/*.c tests/unit/*.h tests/itest/*.c 2>/dev/null)
if ! clang-format --dry-run --Werror $files; then
  echo "lint: clang-format would change the files above (run 'make format')"
  rc=1
fi
cflags="-std=c11 -D_GNU_SOURCE -Iharness $(pkg-config --cflags rdkafka hiredis libcurl jansson libpq libcrypto libmicrohttpd libxml-2.0 yaml-0.1)"
for f in harness/*/*.c sut/*.c; do
  [ -f "$f" ] || continue
  clang-tidy --quiet "$f" -- $cflags >/tmp/eventrig-tidy.$$ 2>&1 || { cat /tmp/eventrig-tidy.$$; rc=1; }
done
rm -f /tmp/eventrig-tidy.$$
[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
