#!/usr/bin/env bash
# The performance benchmarks of issue 7 (docs/performance.md), in one command:
#   1. receive-path CPU time vs bare libopus (criterion, thread CPU time) + callgrind cross-check,
#      and allocations per 10 ms block on the audio path (counting allocator)
#   2. latency packet -> OBS, 4. source added -> first audible member,
#   5. 16 members steady state: OBS buffering, CPU per thread group    (libobs under Xvfb)
#   3. OBS + plugin vs headless Chromium receiving the same 16 members (whole processes)
# Usage: tools/bench.sh [quick]      ("quick": 60 s steady state instead of 10 min)
# Environment: BENCH_STEADY_SECONDS, BENCH_COMPARE_SECONDS, BENCH_LATENCY_SECONDS, BENCH_SKIP
# (space-separated: receive callgrind obs compare). Results are the RESULT lines; the whole
# output goes to target/bench/bench-<date>.log as well.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == quick ]]; then
    export BENCH_STEADY_SECONDS=${BENCH_STEADY_SECONDS:-60}
    export ALLOC_MINUTES=${ALLOC_MINUTES:-2}
fi
skip=" ${BENCH_SKIP:-} "
mkdir -p target/bench
log="target/bench/bench-$(date -u +%Y%m%dT%H%M%SZ).log"
exec > >(tee "$log") 2>&1

tools/setup.sh
# Only the comparison needs a browser (and valgrind the cross-check); CI does not run this.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v valgrind >/dev/null || need+=(valgrind)
if ((${#need[@]})); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

echo "== machine"
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches || echo ' (+ local changes)'), $(date -u '+%Y-%m-%d %H:%M UTC')"
grep -m1 'model name' /proc/cpuinfo; echo "cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "chromium: $(chromium --version 2>/dev/null || echo none)"

status=0
if [[ $skip != *" receive "* ]]; then
    echo "== 1 + 5a: receive path vs bare libopus (CPU time), allocations per block"
    cargo bench --features test-host --bench receive_path || status=1
fi
if [[ $skip != *" callgrind "* ]]; then
    echo "== 1 cross-check: instructions (callgrind), one run of each side"
    exe=$(ls -t target/release/deps/receive_path-* 2>/dev/null | grep -v '\.d$' | head -1)
    if [[ -n $exe ]]; then
        declare -A ir
        for side in a b; do
            out=$(mktemp)
            RECEIVE_PATH_ONLY=$side valgrind --tool=callgrind --callgrind-out-file="$out" \
                --collect-atstart=no --toggle-collect='*run_once*' "$exe" >/dev/null 2>&1
            ir[$side]=$(awk '/^summary:|^totals:/ {print $2; exit}' "$out")
            rm -f "$out"
        done
        awk -v a="${ir[a]}" -v b="${ir[b]}" 'BEGIN {
            printf "RESULT callgrind: (a) bare libopus %.1f M instructions, (b) receive path %.1f M, ratio %.3f\n", a/1e6, b/1e6, b/a }'
    fi
fi
if [[ $skip != *" obs "* ]]; then
    echo "== 2, 4, 5: latency, startup, steady state in libobs"
    cargo bench --features test-host --bench party_obs || status=1
fi
if [[ $skip != *" compare "* ]]; then
    echo "== 3: OBS + plugin vs headless Chromium"
    cargo bench --features test-host --bench party_obs -- compare || status=1
fi
echo "== results"
grep -h '^RESULT' "$log" | sed 's/^RESULT //'
echo "(full log: $log)"
exit $status
