#!/usr/bin/env bash
# The demo, on a fresh machine: installs what it needs, starts psn-sim with a party of four
# speaking members, loads the plugin into headless libobs, records about 10 seconds, and
# writes one WAV per member plus the mix, a PNG of their waveforms, and a table to stdout.
# No PSN account and no network: everything runs on 127.0.0.1.
#   tools/demo.sh [OUTPUT_DIR]   (default target/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo build --release --lib -p obs-psn-party
cargo build --release -p psn-party-demo
target/release/psn-party-demo --plugin target/release/libobs_psn_party.so --out "${1:-target/demo}"
