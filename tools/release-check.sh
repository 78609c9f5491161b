#!/usr/bin/env bash
# The shipped module holds no test-only code: builds the release library (as the README and
# the .deb do) and checks that neither the module OBS loads nor the crate's rlib has a symbol
# or a string of the libobs test host (obs::host), the audio measurements (audio::analysis)
# or the fuzz bodies (fuzz_bodies): they are compiled only with the `test-host` feature.
# Also: the module exports OBS's entry points and nothing else. Takes seconds once built.
#   tools/release-check.sh [DIR]   (default target/release; a DIR built with the feature fails)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
dir="${1:-target/release}"
if [[ $# -eq 0 ]]; then
    cargo build --release --lib
fi
so="$dir/libobs_psn_party.so"
rlib="$dir/libobs_psn_party.rlib"
fail() { echo "release-check: FAILED: $*" >&2; exit 1; }
[[ -f $so && -f $rlib ]] || fail "no $so or $rlib"

test_only='obs_psn_party::obs::host|obs_psn_party::audio::analysis|obs_psn_party::fuzz_bodies|obs::host::|audio::analysis::|fuzz_bodies::'
for f in "$so" "$rlib"; do
    found=$( (nm -C "$f" 2>/dev/null; strings -a "$f") | grep -E -c "$test_only" || true)
    [[ $found == 0 ]] || fail "$f has $found symbols or strings of test-only code, e.g. $( (nm -C "$f" 2>/dev/null; strings -a "$f") | grep -E -m1 "$test_only")"
done
exports=$(nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | grep -v -E '^obs_(module_[a-z_]+|current_module)$' || true)
[[ -z $exports ]] || fail "the module exports more than OBS's entry points: $exports"
echo "release-check: $so and its rlib hold no test-only code; exports: $(nm -D --defined-only "$so" | awk '$2 == "T"' | wc -l) OBS entry points ($((SECONDS - started)) s)"
