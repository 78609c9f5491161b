#!/usr/bin/env bash
# Real OBS Studio under Xvfb, signed in to psn-sim: the NPSSO and the client secret never sit
# in a PSN Party source's settings, whichever way they arrive (obs-websocket's CreateInput and
# SetInputSettings, typing into the properties dialog with xdotool), so no obs-websocket event
# or GetInputSettings answer, no saved scene collection, no undo/redo entry and no OBS log holds
# them; and "Sign in" still signs in from what was typed (docs/security.md, issue 17 item 1).
# The checks themselves are in tools/obs_secrets_check.py.
#   tools/obs-secrets-check.sh          (the release plugin, as tools/install.sh builds it)
#   PLUGIN_BINARY=target/debug/libobs_psn_party.so tools/obs-secrets-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
started=$(date +%s)

if [ "${1:-}" = "--inside-xvfb" ]; then
  shift
  exec /usr/bin/python3 tools/obs_secrets_check.py "$@"
fi

command -v cargo >/dev/null && pkg-config --exists libobs && command -v xdotool >/dev/null || tools/setup.sh
# The feature set of tools/test.sh's cargo test, so the binary it built is reused.
cargo build --workspace --features obs-psn-party/test-producer --bin psn-sim
binary="${PLUGIN_BINARY:-}"
if [ -z "$binary" ]; then
  cargo build --release --lib
  binary="$repo/target/release/libobs_psn_party.so"
fi
binary="$(realpath "$binary")"

# No first-run wizard; obs-websocket on loopback without a password; a properties dialog tall
# enough to show every field without scrolling.
. tools/lib/obs-home.sh
new_obs_home obs-psn-party-secrets $'[PropertiesWindow]\ncx=900\ncy=1350'
plugin_config="$config/plugin_config/obs-psn-party"
sim_pid=""
finish() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  # What obs-websocket sent goes to the suite's secret scan as well. Not psn-sim.txt: it prints
  # the secrets it hands out (they are in the ledger).
  keep_obs_artefacts obs-secrets-check "$plugin_config" "$home/obs-websocket-events.txt"
  if [ -n "${KEEP_HOME:-}" ]; then echo "kept $home"; else rm -rf "$home"; fi
}
trap finish EXIT

# psn-sim with a party to join; the plugin gets only where PSN is (the client id, client
# secret and NPSSO arrive through the source's settings, as a user's would).
start_psn_sim "$home/psn-sim.txt" --party "Secrets check" --member ann_ps:PS5
write_plugin_env "$home/psn-sim.txt"
value() { sim_value "$home/psn-sim.txt" "$1"; }
sim_url="$(value PSN_API_BASE_URL)"

plugins="$config/plugins"
cmake -S cmake -B "$home/cmake" -DPLUGIN_BINARY="$binary" \
  -DOBS_PSN_PARTY_USER_INSTALL=ON -DCMAKE_INSTALL_PREFIX="$plugins" >/dev/null
cmake --install "$home/cmake" >/dev/null

HOME="$home" xvfb-run -a -s "-screen 0 1600x1400x24" bash "$0" --inside-xvfb \
  --home "$home" --port "$port" --sim "$sim_url" \
  --npsso "$(value PSN_NPSSO)" --client-id "$(value PSN_CLIENT_ID)" --client-secret "$(value PSN_CLIENT_SECRET)" \
  --shots "${SCREENSHOT_DIR:-$repo/target/screenshots}" ${OBS_SECRETS_EXPLORE:+--explore}
echo "obs-secrets-check: took $(( $(date +%s) - started )) s"
