#!/usr/bin/env bash
# The mutation check as a test: the suite passes against the correct
# reference service and catches every mutant, the sixteen of the contract
# (ci/mutants.sh, the same as `make mutants`, here with the ASan/UBSan
# build of eventrig); every mutant's failure has a verdict that names a
# pattern, never "no known pattern".
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"
MARK="eventrig-mutants-$$-$RANDOM"
export ER_TEST_MARK="$MARK"
ALL="spop-outside-multi no-idempotency envelope-hash fail-closed no-watch no-retry ready-unguarded keep-key-on-error no-ttl
commit-before-process no-commit poison-stall key-collision pg-fail-drop ready-early excess-silent"
ci/mutants.sh --eventrig "$EVENTRIG" >"$T_TMP/mutants.out" 2>&1
rc=$?
sed 's/^/# /' "$T_TMP/mutants.out"
check "the correct service passes the suite" grep -qE '^\(correct service\) +passes' "$T_TMP/mutants.out"
for m in $ALL; do
  check "mutant $m is caught" grep -qE "^$m +caught " "$T_TMP/mutants.out"
  check "mutant $m: its verdict names a pattern" \
    bash -c 'v=$(awk -F"\t" -v m="$1" "\$1 == m {print \$4}" reports/mutants/verdicts.tsv); [ -n "$v" ] && [ "$v" != "no known pattern" ] && [ "$v" != "(no verdict)" ]' _ "$m"
done
check "no verdict is 'no known pattern'" bash -c '! grep -q "no known pattern" reports/mutants/verdicts.tsv'
check "mutation score: 16/16, exit 0 (got $rc)" bash -c '[ "$1" -eq 0 ] && grep -qx "mutation score: 16/16" "$2"' _ $rc "$T_TMP/mutants.out"
check "no process of the runs is left" no_children_left
t_done
