#!/usr/bin/env bash
# The demo scenario for the Windows build, under wine: psn-sim here on Linux (127.0.0.1), the
# real obs-psn-party.dll loaded by tests/windows/obs-double's host through its libobs test double
# (obs.dll), staged as the installer lays it out. Sign in, join, four members, one WAV per member
# and the mix, checked with the demo's isolation analysis; clean unload.
#   tools/windows/wine-demo.sh [OUTPUT_DIR]   (default target/windows/wine-demo; needs root;
#                                               run tools/windows/build.sh first)
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "wine-demo: $*"; }
fail() { echo "wine-demo: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=PATH,CARGO_HOME "$0" "$@"
for f in target/windows/obs-psn-party.dll target/windows/test/obs.dll target/windows/test/obs-double-host.exe; do
  [ -f "$f" ] || fail "$f is missing: run tools/windows/build.sh"
done
out="$(realpath -m "${1:-target/windows/wine-demo}")"
start=$(date +%s)
# Debug, as cargo test built it already (the analysis is light; the members are psn-sim's).
cargo build -p psn-party-demo --bin psn-party-wine-demo

stage="$PWD/target/windows/wine-demo-plugins/obs-psn-party"
rm -rf "$stage" && mkdir -p "$stage/bin/64bit" "$stage/data"
cp target/windows/obs-psn-party.dll "$stage/bin/64bit/"
cp -r data/. "$stage/data/"
win() { echo "Z:${1//\//\\}"; } # a Linux path as wine names it

# The wine prefix lives in the root; the first run makes it (tens of seconds), later runs reuse it.
boot=$(date +%s)
tools/windows/in-root.sh wineboot -i >/dev/null 2>&1 || true
say "wine prefix ready in $(($(date +%s) - boot)) s"
target/debug/psn-party-wine-demo --out "$out" -- \
  tools/windows/in-root.sh wine "$(win "$PWD/target/windows/test/obs-double-host.exe")" \
  --plugin "$(win "$stage/bin/64bit/obs-psn-party.dll")" --data "$(win "$stage/data")" \
  --out "$(win "$out")"
say "done in $(($(date +%s) - start)) s"
