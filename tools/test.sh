#!/usr/bin/env bash
# The one command that sets up and runs every test: unit tests, the libobs
# end-to-end tests (under Xvfb), and real OBS Studio with the plugin installed.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh

echo "== every README command is run by CI"
tools/check-readme.sh

echo "== cargo test (unit, simulator and libobs end-to-end tests)"
cargo test --workspace --features obs-psn-party/test-producer

echo "== real OBS Studio with the installed plugin"
tools/obs-smoke.sh

echo "== the .deb in a clean Debian 12 root, with real OBS"
tools/deb-check.sh

echo "== the demo (the README's main command)"
tools/demo.sh
