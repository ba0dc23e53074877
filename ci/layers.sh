#!/usr/bin/env bash
# The include check: harness/ is in folders by layer, and a file may
# include headers of its own layer and of the layers below it, never of
# one above (nor of a sibling). The picture (README, "How it is built"):
#
#   cli       command line: main, the commands
#   steps     step families and the table of actions and modules
#   run       runner, sessions, safety, audit, diagnostics, dry run
#   report    console and JUnit writers
#   lang      loading, validation, positions, templates, matchers
#   adapters  one per outside system (Redis, Postgres, HTTP, Kafka,
#             processes, the fault proxy)
#   base      errors, buffers, time, secrets, text formats
#
# Every project include names its layer ("run/exec.h") and must exist.
# Usage: ci/layers.sh [HARNESS_DIR]   (default: harness/ of this checkout)
# Prints one "file:line: ..." per violation; exits 1 when there is any.
set -uo pipefail
dir=${1:-"$(cd "$(dirname "$0")/.." && pwd)/harness"}
declare -A allow=(
  [base]=""
  [adapters]="base"
  [lang]="base"
  [report]="base"
  [run]="base adapters lang report"
  [steps]="base adapters lang run"
  [cli]="base adapters lang report run steps"
)
bad=0
nfiles=0
shopt -s nullglob
for f in "$dir"/*; do
  [ -d "$f" ] && continue
  echo "${f#"$dir"/}: a file outside the layer folders (${!allow[*]})"
  bad=$((bad + 1))
done
for layer_dir in "$dir"/*/; do
  layer=$(basename "$layer_dir")
  if [ -z "${allow[$layer]+x}" ]; then
    echo "harness/$layer/: not a known layer (${!allow[*]}); add it to ci/layers.sh"
    bad=$((bad + 1))
    continue
  fi
  for f in "$layer_dir"*.c "$layer_dir"*.h; do
    nfiles=$((nfiles + 1))
    rel="harness/$layer/$(basename "$f")"
    while IFS=: read -r line inc; do
      inc=${inc#*\"}
      inc=${inc%%\"*}
      target=${inc%%/*}
      if [ "$target" = "$inc" ]; then
        echo "$rel:$line: #include \"$inc\" does not name its layer (write \"<layer>/$inc\")"
        bad=$((bad + 1))
        continue
      fi
      if [ ! -f "$dir/$inc" ]; then
        echo "$rel:$line: #include \"$inc\": no such header under harness/"
        bad=$((bad + 1))
        continue
      fi
      [ "$target" = "$layer" ] && continue
      ok=0
      for a in ${allow[$layer]}; do [ "$a" = "$target" ] && ok=1; done
      if [ $ok -eq 0 ]; then
        echo "$rel:$line: #include \"$inc\": layer '$layer' may include only ${allow[$layer]:-nothing but itself}${allow[$layer]:+ (and itself)}, not '$target'"
        bad=$((bad + 1))
      fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
  done
done
if [ $bad -gt 0 ]; then
  echo "layers: $bad violation(s) in $nfiles files"
  exit 1
fi
echo "layers: $nfiles files, every include within its layer or below"
