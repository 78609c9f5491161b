#!/usr/bin/env bash
# The performance benchmarks of issues 7 and 21 (docs/performance.md), in one command:
#   receive path: CPU time vs bare libopus (criterion, thread CPU time) + callgrind cross-check,
#     allocations per 10 ms block on the audio path (counting allocator)
#   libobs under Xvfb (benches/party_obs.rs), one process per part:
#     startup (source added -> first audible member), latency (socket -> OBS, 0 / 30 ms jitter),
#     steady (14 voices: the plugin's threads' CPU / bare libopus on the same packets, OBS's
#     buffering), pair (the same, 2 members), silent (CPU per silent member), wake (CPU and
#     wake-ups, 8 and 2 members at 48 kHz in 20 ms packets), stress (timestamp jumps, i.e.
#     re-anchors, under stress-ng --cpu 2)
#   callgrind: bare libopus on the packets of steady / pair / wake8 (instruction counts)
#   profile: where the plugin's threads spend their time (perf, tools/bench/profile.sh)
#   compare: OBS + plugin vs headless Chromium receiving the same 14 voices (whole processes)
# Usage: tools/bench.sh [quick]
#   quick: steady, pair and stress 60 s (instead of 600), silent and wake 30 s (instead of 120),
#   allocations 2 min (instead of 10).
# Environment: BENCH_<PART>_SECONDS (STEADY PAIR SILENT WAKE STRESS LATENCY COMPARE),
# BENCH_OBS (the libobs parts to run, default all), BENCH_SKIP (space-separated: receive
# callgrind obs profile compare), BENCH_PROFILE_SECONDS. The results are the RESULT lines, and
# the rows of issue 21's table ("RESULT | figure | measured | goal |") are printed again at the
# end as a Markdown table; the whole output goes to target/bench/bench-<date>.log.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=full
if [[ "${1:-}" == quick ]]; then
    mode=quick
    export BENCH_STEADY_SECONDS=${BENCH_STEADY_SECONDS:-60}
    export BENCH_PAIR_SECONDS=${BENCH_PAIR_SECONDS:-60}
    export BENCH_STRESS_SECONDS=${BENCH_STRESS_SECONDS:-60}
    export BENCH_SILENT_SECONDS=${BENCH_SILENT_SECONDS:-30}
    export BENCH_WAKE_SECONDS=${BENCH_WAKE_SECONDS:-30}
    export ALLOC_MINUTES=${ALLOC_MINUTES:-2}
fi
skip=" ${BENCH_SKIP:-} "
obs_parts=${BENCH_OBS:-startup latency steady pair silent wake stress}
mkdir -p target/bench
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="target/bench/bench-$stamp.log"
export BENCH_PACKETS_DIR="$PWD/target/bench/packets-$stamp"
exec > >(tee "$log") 2>&1

tools/setup.sh
# Only the comparison needs a browser, the cross-check valgrind, the load stress-ng and the profile perf; CI
# does not run this.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v valgrind >/dev/null || need+=(valgrind)
command -v stress-ng >/dev/null || need+=(stress-ng)
command -v perf >/dev/null || need+=(linux-perf)
if ((${#need[@]})); then
    sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

echo "== machine"
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches || echo ' (+ local changes)')"
echo "commit $commit on $(git rev-parse --abbrev-ref HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), tools/bench.sh $mode"
grep -m1 'model name' /proc/cpuinfo; echo "cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "chromium: $(chromium --version 2>/dev/null || echo none); $(stress-ng --version 2>/dev/null | head -1)"

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
            printf "RESULT callgrind: (a) bare libopus %.1f M instructions, (b) receive path %.1f M, ratio %.3f\n", a/1e6, b/1e6, b/a
            printf "RESULT | receive path / bare libopus, 16 members, instructions (callgrind, issue 7) | %.3f (%.1f / %.1f M) | <= 1.25 |\n", b/a, b/1e6, a/1e6 }'
    fi
fi
if [[ $skip != *" obs "* ]]; then
    for part in $obs_parts; do
        echo "== libobs: $part (load: $(cut -d' ' -f1-3 /proc/loadavg))"
        cargo bench --features test-host --bench party_obs -- "$part" || status=1
    done
fi
if [[ $skip != *" callgrind "* ]] && [[ -d $BENCH_PACKETS_DIR ]]; then
    echo "== instructions of the libobs ratios' reference: bare libopus on the same packets (callgrind)"
    exe=$(ls -t target/release/deps/party_obs-* 2>/dev/null | grep -v '\.d$' | head -1)
    for f in "$BENCH_PACKETS_DIR"/{steady,pair,wake8}.packets; do
        [[ -f $f && -n $exe ]] || continue
        out=$(mktemp)
        valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
            --toggle-collect='*decode_window*' "$exe" bare-decode "$f" >/dev/null 2>&1
        irs=$(awk '/^summary:|^totals:/ {print $2; exit}' "$out")
        rm -f "$out"
        name=$(basename "$f" .packets)
        secs=$(grep -o "RESULT $name: [0-9]* s" "$log" | tail -1 | awk '{print $3}')
        awk -v ir="$irs" -v s="${secs:-0}" -v n="$name" 'BEGIN {
            if (s > 0) printf "RESULT | callgrind: bare libopus on the packets of %s (the CPU ratio'"'"'s reference) | %.1f M instructions per min of audio (%.0f M in %d s) | (instruction counts of the plugin in libobs: none, see docs/performance.md) |\n", n, ir/1e6*60/s, ir/1e6, s }'
    done
    rm -rf "$BENCH_PACKETS_DIR"
fi
if [[ $skip != *" profile "* ]]; then
    echo "== where the time goes: perf profile of the steady run, the plugin's threads by part"
    tools/bench/profile.sh "${BENCH_PROFILE_SECONDS:-40}" || status=1
fi
if [[ $skip != *" compare "* ]]; then
    echo "== 3: OBS + plugin vs headless Chromium"
    cargo bench --features test-host --bench party_obs -- compare || status=1
fi
echo "== results (load at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
grep -h '^RESULT' "$log" | grep -v '^RESULT |' | sed 's/^RESULT //'
echo
echo "== issue 21's table: commit $commit, $(date -u '+%Y-%m-%d'), tools/bench.sh $mode"
echo "| figure | measured | goal |"
echo "|---|---|---|"
grep -h '^RESULT |' "$log" | sed 's/^RESULT //'
echo "(full log: $log)"
exit $status
