#!/usr/bin/env bash
# The C sources are clang-format clean (.clang-format at the root).
# clang-tidy runs in `make lint` (slower; kept out of the test run).
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
for f in harness/*/*.c harness/*/*.h sut/*.c sut/*.h tests/unit/*.c tests/unit/*.h tests/itest/*.c tests/itest/*.h tests/support/*.c bench/*/*.c; do
  [ -f "$f" ] || continue
  check "clang-format: $f" clang-format --dry-run --Werror "$f"
done
t_done
