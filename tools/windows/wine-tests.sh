#!/usr/bin/env bash
# Unit tests of the Windows build, run under wine: the library's own tests (token store, config,
# trace, audio, voice...), the config paths test, and the PSN client against psn-sim
# (tests/psn_party.rs). The test programs import obs.dll: they find the libobs test double
# (target/windows/test/obs.dll) through WINEPATH.
#   tools/windows/wine-tests.sh     (needs root; run tools/windows/build.sh first)
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "wine-tests: $*"; }
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=PATH,CARGO_HOME "$0" "$@"
[ -f target/windows/test/obs.dll ] || { echo "wine-tests: run tools/windows/build.sh first" >&2; exit 1; }
start=$(date +%s)
cp Cargo.lock target/windows-Cargo.lock.keep # cargo writes the patched quinn-udp into it (build.sh)
trap 'cp target/windows-Cargo.lock.keep Cargo.lock' EXIT
export WINDOWS_TARGET_DIR="${WINDOWS_TARGET_DIR:-/var/cache/obs-psn-party/windows-target}"
tools/windows/in-root.sh wineboot -i >/dev/null 2>&1 || true
LIBOBS_INCLUDE_DIR=/opt/libobs-headers/include/obs RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
  WINEPATH="Z:${PWD//\//\\}\\target\\windows\\test" \
  tools/windows/in-root.sh cargo test --config "$WINDOWS_TARGET_DIR/cargo-patch.toml" --release -Z build-std=std,panic_abort,panic_unwind \
  --target x86_64-pc-windows-gnu -p obs-psn-party --lib --test config_paths --test psn_party
say "done in $(($(date +%s) - start)) s"
