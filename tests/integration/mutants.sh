#!/usr/bin/env bash
# The mutation check as a test: the suite passes against the correct
# reference service and catches every mutant (ci/mutants.sh, the same as
# `make mutants`, here with the ASan/UBSan build of eventrig).
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
MARK="eventrig-mutants-$$-$RANDOM"
export ER_TEST_MARK="$MARK"
ci/mutants.sh --eventrig "$EVENTRIG" >"$T_TMP/mutants.out" 2>&1
rc=$?
sed 's/^/# /' "$T_TMP/mutants.out"
check "the correct service passes the suite" grep -qE '^\(correct service\) +passes' "$T_TMP/mutants.out"
for m in spop-outside-multi no-idempotency envelope-hash fail-closed no-watch no-retry ready-unguarded keep-key-on-error no-ttl; do
  check "mutant $m is caught" grep -qE "^$m +caught " "$T_TMP/mutants.out"
done
check "mutation score: 9/9, exit 0 (got $rc)" bash -c '[ "$1" -eq 0 ] && grep -qx "mutation score: 9/9" "$2"' _ $rc "$T_TMP/mutants.out"
check "no process of the runs is left" no_children_left
t_done
