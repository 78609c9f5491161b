#!/usr/bin/env bash
# Real OBS Studio under Xvfb with the plugin installed the way a user installs
# it (tools/install.sh into ~/.config/obs-studio/plugins of a scratch HOME).
# Checks: the module loads, obs-websocket lists both source kinds, OBS exits
# cleanly with "Number of memory leaks: 0". Takes screenshots of the Add
# Source menu into $SCREENSHOT_DIR (default: target/screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
shots="${SCREENSHOT_DIR:-$repo/target/screenshots}"
mkdir -p "$shots"
. tools/lib/obs-home.sh

run_obs() {
  # Runs inside xvfb-run: start OBS, check it, screenshot, quit with SIGINT.
  HOME="$home" obs --disable-updater >"$home/obs-stdout.txt" 2>&1 &
  local obs_pid=$!
  local log=""
  for _ in $(seq 1 60); do
    log="$(ls "$config"/logs/*.txt 2>/dev/null | head -n1 || true)"
    [ -n "$log" ] && grep -q "Number of memory leaks\|obs-websocket.*WebSocket server started\|Switched to scene" "$log" 2>/dev/null && break
    sleep 0.5
  done
  sleep 2
  /usr/bin/python3 tools/obs_ws.py --port "$port" GetInputKindList '{"unversioned": true}' > "$home/kinds.json" || true
  # The Add Source menu: the "+" under the Sources dock of the default layout.
  import -window root "$shots/obs-main-window.png" || true
  xdotool mousemove 236 684 click 1 || true
  sleep 1
  import -window root "$shots/obs-add-source-menu.png" || true
  xdotool key Escape || true
  quit_obs "$obs_pid" || echo "OBS did not exit within 10 s" > "$home/exit-problem"
  wait "$obs_pid" || true
}
if [ "${1:-}" = "--inside-xvfb" ]; then
  home="$2" config="$3" port="$4" shots="$5"
  run_obs
  exit 0
fi


# Skip the first-run wizard; let obs-websocket listen on loopback without a password.
new_obs_home obs-psn-party-home
trap 'keep_obs_artefacts obs-smoke; rm -rf "$home"' EXIT

OBS_PLUGINS_DIR="$config/plugins" tools/install.sh
xvfb-run -a -s "-screen 0 1600x1000x24" bash "$0" --inside-xvfb "$home" "$config" "$port" "$shots"

fail() { echo "obs-smoke: FAILED: $*" >&2; exit 1; }

log="$(ls "$config"/logs/*.txt | head -n1)"
cp "$log" "$shots/obs-log.txt"
[ ! -e "$home/exit-problem" ] || fail "$(cat "$home/exit-problem")"
grep -q "\[obs-psn-party\] version .* loaded" "$log" || fail "the module did not log that it loaded ($log)"
grep -q "^.*:     obs-psn-party.so$" "$log" || fail "obs-psn-party.so is not among the loaded modules"
grep -q '"psn_party"' "$home/kinds.json" || fail "obs-websocket does not list psn_party: $(cat "$home/kinds.json")"
grep -q '"psn_party_member"' "$home/kinds.json" || fail "obs-websocket does not list psn_party_member"
grep -q "Number of memory leaks: 0$" "$log" || fail "OBS did not exit cleanly: $(tail -n 3 "$log")"
# Removing it again (the README's uninstall command) leaves no trace of it in the plugins folder.
OBS_PLUGINS_DIR="$config/plugins" tools/install.sh --uninstall
[ ! -e "$config/plugins/obs-psn-party" ] || fail "tools/install.sh --uninstall left $config/plugins/obs-psn-party"
echo "obs-smoke: ok (module loaded, both source kinds listed, clean exit with 0 leaks, uninstalled; screenshots in $shots)"
