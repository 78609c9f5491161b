#!/usr/bin/env bash
# The one command that sets up and runs every test: unit tests, the libobs
# end-to-end tests (under Xvfb), and real OBS Studio with the plugin installed.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh

echo "== every README command is run by CI"
tools/check-readme.sh

# Everything the suite writes (test output, OBS logs, settings, protocol traces, which are
# switched on for the whole run) is kept here and scanned at the end for every secret psn-sim
# handed out (tools/secret-scan.py).
artefacts="$PWD/target/suite-artefacts"
rm -rf "$artefacts"
mkdir -p "$artefacts"
export PSN_PARTY_SUITE_ARTEFACTS="$artefacts"
export PSN_SIM_SECRET_LEDGER="$artefacts/secrets.ledger"
export PSN_PARTY_TRACE=1

# The Debian roots with each release's OBS (tools/deb-check.sh, tools/obs-matrix.sh) are made in
# the background while the tests run: about 4-7 min per release the first time, mostly download
# and unpacking; then reused from /var/cache/obs-psn-party/obs-roots (0 s).
roots_pid=""
windows_root_pid=""
if [ "$(id -u)" -eq 0 ]; then
  (
    start=$(date +%s)
    for suite in bookworm trixie sid; do tools/obs-root.sh "$suite" obs; done
    echo "obs-root: the three roots ready in $(($(date +%s) - start)) s"
  ) >target/obs-roots.log 2>&1 &
  roots_pid=$!
  # The Windows build root (tools/windows/root.sh, about 8.5 min the first time, download-bound)
  # is made alongside, so a fresh machine does not pay for it after the tests.
  (
    start=$(date +%s)
    tools/windows/root.sh
    echo "windows-root: ready in $(($(date +%s) - start)) s"
  ) >target/windows-root.log 2>&1 &
  windows_root_pid=$!
fi

echo "== cargo test (unit, simulator and libobs end-to-end tests)"
cargo test --workspace --features obs-psn-party/test-producer 2>&1 | tee "$artefacts/cargo-test.log"

echo "== real OBS Studio with the installed plugin"
tools/obs-smoke.sh 2>&1 | tee "$artefacts/obs-smoke.log"

echo "== real OBS: no NPSSO or client secret in settings, events, undo, scene files or logs"
tools/obs-secrets-check.sh 2>&1 | tee "$artefacts/obs-secrets-check.log"

echo "== the .deb in clean Debian 12, Debian 13 and sid roots, with each release's OBS"
if [ -n "$roots_pid" ]; then
  wait "$roots_pid" || { cat target/obs-roots.log; echo "making the Debian roots failed" >&2; exit 1; }
  grep "ready in" target/obs-roots.log
fi
tools/deb-check.sh 2>&1 | tee "$artefacts/deb-check.log"

echo "== the OBS that users run: 29 (Debian 12), 30 (Debian 13), 32 (sid), the .deb installed"
OBS_MATRIX_DEB="$(ls -t target/cmake-deb/obs-psn-party_*_amd64.deb | head -n1)" tools/obs-matrix.sh 2>&1 | tee "$artefacts/obs-matrix.log"

echo "== the demo (the README's main command)"
tools/demo.sh 2>&1 | tee "$artefacts/demo.log"

echo "== no test-only code in the shipped module (release build, as the demo made it)"
tools/release-check.sh 2>&1 | tee "$artefacts/release-check.log"

echo "== real OBS: the obs-websocket vendor events of the speaking overlay"
tools/obs-vendor-events.sh 2>&1 | tee "$artefacts/obs-vendor-events.log"

echo "== Windows: the DLL (mingw, in a cached Debian sid root), its tests under wine, the installer"
# A fresh machine makes the root once (about 8.5 min) and the Windows target folder once; both
# are kept in /var/cache/obs-psn-party (docs/porting.md has the cold and warm times).
if [ -n "$windows_root_pid" ]; then
  wait "$windows_root_pid" || { cat target/windows-root.log; echo "making the Windows build root failed" >&2; exit 1; }
  grep "ready in" target/windows-root.log || true
fi
windows_start=$(date +%s)
tools/windows/build.sh 2>&1 | tee "$artefacts/windows-build.log"
tools/windows/wine-tests.sh 2>&1 | tee "$artefacts/windows-wine-tests.log"
tools/windows/wine-demo.sh 2>&1 | tee "$artefacts/windows-wine-demo.log"
tools/windows/package.sh 2>&1 | tee "$artefacts/windows-package.log"
echo "windows: $(($(date +%s) - windows_start)) s"

echo "== no secret in anything the suite wrote"
tools/secret-scan.py --self-test
tools/secret-scan.py "$artefacts/secrets.ledger" "$artefacts" target/demo
