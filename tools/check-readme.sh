#!/usr/bin/env bash
# A README command that rots must fail the build. Every command line in the README's ```sh
# blocks must be run, as written (less a leading `sudo`), by CI: it must appear in .ci/run,
# tools/test.sh, or a tools/ script that tools/test.sh runs. This check runs first in
# tools/test.sh; the scripts it points at then run those lines for real.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-readme: FAILED: $*" >&2; exit 1; }

# The scripts CI runs: .ci/run, tools/test.sh, and the tools/*.sh that tools/test.sh calls.
ci_scripts=(.ci/run tools/test.sh)
while read -r script; do
  [ -f "$script" ] && ci_scripts+=("$script")
done < <(grep -v '^\s*#' tools/test.sh | grep -o 'tools/[a-z0-9_-]*\.sh' | sort -u)

# The README's commands: lines of ```sh blocks, without comments, prompts or `sudo`.
mapfile -t commands < <(awk '
  /^```sh[[:space:]]*$/ { inside = 1; next }
  /^```/ { inside = 0; next }
  inside {
    line = $0
    sub(/[[:space:]]+#.*$/, "", line)      # trailing comment
    sub(/^[[:space:]]*#.*$/, "", line)     # whole-line comment
    sub(/^[[:space:]]*(\$ )?/, "", line)   # indentation, "$ " prompt
    sub(/^sudo /, "", line)
    sub(/[[:space:]]+$/, "", line)
    if (line != "") print line
  }' README.md)

((${#commands[@]})) || fail "the README has no \`\`\`sh command blocks"

missing=0
for command in "${commands[@]}"; do
  where=""
  for script in "${ci_scripts[@]}"; do
    # No `grep -q` here: it exits at the first match, the writer upstream then dies of SIGPIPE
    # and, under pipefail, a command that is there reads as missing (CI failed this way).
    if grep -v '^\s*#' "$script" | grep -F -- "$command" >/dev/null; then where="$script"; break; fi
  done
  if [ -n "$where" ]; then
    echo "check-readme: ok   $command   (run by $where)"
  else
    echo "check-readme: MISSING   $command   (no CI script runs it)" >&2
    missing=$((missing + 1))
  fi
done
((missing == 0)) || fail "$missing README command(s) are not run by CI: run them in a CI script or fix the README"
echo "check-readme: all ${#commands[@]} README commands are run by CI (${ci_scripts[*]})"
