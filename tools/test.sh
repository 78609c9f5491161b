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

# step LOG COMMAND...: runs COMMAND with its output also in the suite's artefacts as LOG.log.
step() {
  local log="$1"
  shift
  "$@" 2>&1 | tee "$artefacts/$log.log"
}

# wait_background PID LOG WHAT: waits for one of the jobs started above (none when PID is empty);
# when it failed, shows its log and stops the suite.
wait_background() {
  [ -n "$1" ] || return 0
  wait "$1" || { cat "$2"; echo "making $3 failed" >&2; exit 1; }
  grep "ready in" "$2" || true
}

echo "== cargo test (unit, simulator and libobs end-to-end tests)"
step cargo-test cargo test --workspace --features obs-psn-party/test-producer

echo "== real OBS Studio with the installed plugin"
step obs-smoke tools/obs-smoke.sh

echo "== real OBS: no NPSSO or client secret in settings, events, undo, scene files or logs"
step obs-secrets-check tools/obs-secrets-check.sh

echo "== the .deb in clean Debian 12, Debian 13 and sid roots, with each release's OBS"
wait_background "$roots_pid" target/obs-roots.log "the Debian roots"
step deb-check tools/deb-check.sh

echo "== the OBS that users run: 29 (Debian 12), 30 (Debian 13), 32 (sid), the .deb installed"
deb="$(ls -t target/cmake-deb/obs-psn-party_*_amd64.deb | head -n1)"
step obs-matrix env OBS_MATRIX_DEB="$deb" tools/obs-matrix.sh

echo "== the demo (the README's main command)"
step demo tools/demo.sh

echo "== no test-only code in the shipped module (release build, as the demo made it)"
step release-check tools/release-check.sh

echo "== real OBS: the obs-websocket vendor events of the speaking overlay"
step obs-vendor-events tools/obs-vendor-events.sh

echo "== Windows: the DLL (mingw, in a cached Debian sid root), its tests under wine, the installer"
# A fresh machine makes the root once (about 8.5 min) and the Windows target folder once; both
# are kept in /var/cache/obs-psn-party (docs/porting.md has the cold and warm times).
wait_background "$windows_root_pid" target/windows-root.log "the Windows build root"
windows_start=$(date +%s)
# Written out, not a loop: tools/check-readme.sh finds the README's tools/windows/build.sh here.
step windows-build tools/windows/build.sh
step windows-wine-tests tools/windows/wine-tests.sh
step windows-wine-demo tools/windows/wine-demo.sh
step windows-package tools/windows/package.sh
echo "windows: $(($(date +%s) - windows_start)) s"

echo "== no secret in anything the suite wrote"
tools/secret-scan.py --self-test
tools/secret-scan.py "$artefacts/secrets.ledger" "$artefacts" target/demo
