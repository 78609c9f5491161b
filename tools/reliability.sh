#!/usr/bin/env bash
# The reliability figures of issue 6 (docs/reliability.md), printed by one command:
# the fault matrix against psn-sim in real libobs, the jitter-buffer rows on virtual time, the
# hostile-server tests, and a short libFuzzer run of every fuzz target.
# Usage: tools/reliability.sh [--write] [FUZZ_SECONDS]
#   --write        also put the figures into docs/reliability.md (between its FIGURES markers),
#                  with the date and the commit
#   FUZZ_SECONDS   per fuzz target (default 60; 0 skips libFuzzer, which needs nightly + cargo-fuzz)
# PSN_PARTY_LONG=1 is set: the long variants of the rows run (500 create/destroy cycles, ...).
set -uo pipefail
cd "$(dirname "$0")/.."

write=0
if [[ "${1:-}" == --write ]]; then write=1; shift; fi
fuzz_seconds="${1:-60}"
export PSN_PARTY_LONG=1

mkdir -p target/reliability
log="target/reliability/reliability-$(date -u +%Y%m%dT%H%M%SZ).log"
exec > >(tee "$log") 2>&1

tools/setup.sh
echo "== commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tests tools || echo ' (+ local changes)'), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
status=0
# --nocapture: the libtest harness keeps a passing test's output otherwise, FIGURE lines included.
cargo test --features test-producer \
    --test libobs_fault_matrix --test psn_hostile --test voice_member --test voice_jitter \
    -- --nocapture || status=1

if [[ "$fuzz_seconds" != 0 ]]; then
    if cargo +nightly fuzz --version >/dev/null 2>&1; then
        fuzz/run.sh "$fuzz_seconds" || status=1
    else
        echo "FIGURE fuzz: not run (needs the nightly toolchain and cargo-fuzz)"
    fi
fi

figures=$(grep -h '^FIGURE ' "$log" | sed 's/^FIGURE //')
echo "== figures"
echo "$figures"
if ((write)); then
    {
        echo "Measured $(date -u '+%Y-%m-%d') on commit $(git rev-parse --short HEAD) ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), by \`tools/reliability.sh --write\`:"
        echo
        echo '```'
        echo "$figures"
        echo '```'
    } > target/reliability/figures.md
    python3 - "$status" <<'PY'
import re, sys
doc = open("docs/reliability.md").read()
new = open("target/reliability/figures.md").read()
begin, end = "<!-- FIGURES BEGIN -->", "<!-- FIGURES END -->"
if begin not in doc or end not in doc:
    sys.exit("docs/reliability.md has no FIGURES markers")
head, rest = doc.split(begin, 1)
_, tail = rest.split(end, 1)
open("docs/reliability.md", "w").write(head + begin + "\n" + new + end + tail)
PY
    echo "(written into docs/reliability.md)"
fi
echo "(full log: $log)"
exit $status
