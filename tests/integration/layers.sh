#!/usr/bin/env bash
# The include check of ci/layers.sh (also run by `make lint`): the tree
# passes it, and each kind of wrong include in a copy of harness/ fails it
# with the file and line named.
source "$(dirname "$0")/../lib.sh"
cd "$ER_ROOT"

out=$(ci/layers.sh 2>&1)
check "the tree passes the include check" test $? -eq 0
check "it says how many files it read" grep -q '^layers: [0-9][0-9]* files' <<<"$out"

# $1: label; $2: file under harness/ (relative); $3: line to append; $4:
# text the report must hold
wrong() {
  local copy="$T_TMP/h.$T_N"
  rm -rf "$copy"
  cp -r harness "$copy"
  printf '%s\n' "$3" >>"$copy/$2"
  out=$(ci/layers.sh "$copy" 2>&1)
  local rc=$?
  check "$1: exits 1" test $rc -eq 1
  check "$1: names the file and line" grep -q "^harness/$2:[0-9][0-9]*: " <<<"$out"
  check "$1: says why" grep -qF "$4" <<<"$out"
}

wrong "an adapter including the runner's header" adapters/redis.c \
  '#include "run/exec.h"' "layer 'adapters' may include only base"
wrong "the language including a step module's header" lang/scenario.c \
  '#include "steps/actions.h"' "no such header"
wrong "the language including an adapter" lang/env.c \
  '#include "adapters/services.h"' "not 'adapters'"
wrong "a report writer including the loader" report/report_junit.c \
  '#include "lang/scenario.h"' "not 'lang'"
wrong "run including a step family" run/diag.c \
  '#include "cli/x.h"' "no such header"
copy="$T_TMP/h.up"
cp -r harness "$copy"
: >"$copy/steps/steps_only.h"
echo '#include "steps/steps_only.h"' >>"$copy/run/runner.c"
out=$(ci/layers.sh "$copy" 2>&1)
check "run including a header of steps (above it) fails" test $? -eq 1
check "... and says which layers run may use" grep -qF "layer 'run' may include only base adapters lang report" <<<"$out"
wrong "an include without its layer" base/util.c '#include "redact.h"' \
  'does not name its layer'
copy="$T_TMP/h.flat"
cp -r harness "$copy"
: >"$copy/stray.c"
out=$(ci/layers.sh "$copy" 2>&1)
check "a file outside the layer folders fails" test $? -eq 1
check "... and is named" grep -q '^stray.c: a file outside the layer folders' <<<"$out"
t_done
