#!/usr/bin/env bash
# Where the plugin's CPU time goes: a perf profile (software clock sampling: this VM has no
# hardware counters) of the 14-voice steady benchmark, the plugin's threads' samples sorted
# into libopus, our code, webrtc-rs, tokio, libc (malloc, memcpy), libobs, libswresample and
# the kernel. Prints "RESULT profile ..." rows; tools/bench.sh runs it as its "profile" part.
# Usage: tools/bench/profile.sh [seconds]   (default 40)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-40}
command -v perf >/dev/null || { echo "profile: perf is not installed (apt-get install linux-perf)"; exit 1; }
cargo bench --features test-host --bench party_obs --no-run >/dev/null 2>&1
exe=$(ls -t target/release/deps/party_obs-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
BENCH_STEADY_SECONDS=$seconds xvfb-run -a perf record -q -e cpu-clock -F 497 -o "$work/perf.data" \
    -- "$exe" --bench steady >"$work/steady.log" 2>&1 || true
grep '^RESULT   plugin total\|^RESULT   bare libopus' "$work/steady.log" | sed 's/^RESULT  */profile run: /' || true
# The bench stages the module in a temporary plugin folder and removes it at the end: put it
# back where perf saw it, so its symbols resolve.
staged=$(perf script -i "$work/perf.data" --show-mmap-events 2>/dev/null \
    | grep -o '/[^ ]*/plugins/obs-psn-party/bin/64bit/obs-psn-party.so' | head -1 || true)
if [[ -n $staged ]]; then
    mkdir -p "$(dirname "$staged")"
    cp target/release/deps/libobs_psn_party.so "$staged"
    trap 'rm -rf "$work" "${staged%/plugins/*}"' EXIT
fi
perf report -i "$work/perf.data" --no-children --comm psn-rt,psn-playout,psn-delivery \
    --sort comm,dso,sym -g none -q 2>/dev/null | grep -v '^$' | awk -v secs="$seconds" '
{
    share = $1; sub("%", "", share); thread = $2; dso = $3; sym = ""
    for (i = 5; i <= NF; i++) sym = sym " " $i
    part = "other (unresolved)"
    if (dso ~ /kernel/) part = "kernel (syscalls, wakes)"
    else if (dso ~ /libc|ld-linux/) part = "libc (malloc, memcpy, futex)"
    else if (dso ~ /swresample|avutil/) part = "libswresample (libobs resampling)"
    else if (dso ~ /libobs/) part = "libobs"
    else if (sym ~ /silk_|celt_|ec_|opus_|clt_|quant_|unquant|alg_|comb_filter|pitch|exp_rotation|renormalise|spreading|denormalise|tf_|anti_collapse|compute_|decode_pulses|cwrs|kiss_|haar|interp_bits|deemph/) part = "libopus"
    else if (sym ~ /obs_psn_party/) part = "ours"
    else if (sym ~ /rtc|webrtc|srtp|dtls|stun|ice|interceptor|sansio|ring::/) part = "webrtc-rs (incl. SRTP)"
    else if (sym ~ /tokio|futures|mio|concurrent_queue|async|waker|parking/) part = "tokio"
    by[thread SUBSEP part] += share; total[thread] += share; all += share
    if (part == "libopus") opus += share
}
END {
    for (key in by) {
        split(key, k, SUBSEP)
        printf "RESULT profile %-13s %-36s %5.1f %% of the thread, %5.1f %% of the plugin\n", k[1], k[2], 100 * by[key] / total[k[1]], 100 * by[key] / all
    }
    for (t in total) printf "RESULT profile %-13s %-36s %5.1f %% of the plugin\n", t, "(whole thread)", 100 * total[t] / all
    if (opus > 0) printf "RESULT profile: the plugin'"'"'s samples / its libopus samples = %.2f (libopus is %.0f %% of the plugin)\n", all / opus, 100 * opus / all
}' | sort
