#!/usr/bin/env bash
# Screenshots of the properties dialogs in real OBS Studio under Xvfb, signed
# in to psn-sim through the dialog as a user would: psn-sim starts with a
# party of four speaking members, OBS starts with the plugin installed into a
# scratch HOME, obs-websocket adds the sources and opens their properties,
# xdotool types the NPSSO and clicks "Sign in". Saves PNGs to docs/images/
# (or $SCREENSHOT_DIR):
#   props-party-signed-out.png, props-party-signed-in.png,
#   props-party-member-failed.png, props-member.png
# Needs: obs-studio, xvfb, xdotool, imagemagick (tools/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
out="${SCREENSHOT_DIR:-$repo/docs/images}"
. tools/lib/obs-home.sh

ws() { /usr/bin/python3 "$repo/tools/obs_ws.py" --port "$port" "$@"; }
sim() { curl -sf -X "$1" -H 'content-type: application/json' "$sim_url/_sim/$2" ${3:+-d "$3"}; }

# The properties window of `name`, moved to the top left and given a size
# that shows every group.
open_dialog() {
  local name="$1" wid=""
  ws OpenInputPropertiesDialog "{\"inputName\": \"$name\"}" >/dev/null
  for _ in $(seq 1 50); do
    wid="$(xdotool search --name "^Properties for '$name'\$" 2>/dev/null | head -n1 || true)"
    [ -n "$wid" ] && break
    sleep 0.2
  done
  [ -n "$wid" ] || { echo "obs-screenshots: no properties window for $name" >&2; return 1; }
  # Qt may replace the first window it maps; take the one that stays.
  sleep 1
  wid="$(xdotool search --name "^Properties for '$name'\$" | tail -n1)"
  xdotool windowmove "$wid" 0 0 windowsize "$wid" 820 "$2" windowactivate "$wid" 2>/dev/null || true
  sleep 1.5
  echo "$wid"
}

shot() {
  import -window "$1" "$out/$2"
  echo "obs-screenshots: $out/$2"
}

run_inside() {
  HOME="$home" obs --disable-updater --minimize-to-tray >"$home/obs-stdout.txt" 2>&1 &
  obs_pid=$!
  trap 'kill -INT $obs_pid 2>/dev/null || true' EXIT
  wait_for_obs_websocket 60 || true
  sleep 2
  scene="$(ws GetCurrentProgramScene | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["currentProgramSceneName"])')"
  ws CreateInput "{\"sceneName\": \"$scene\", \"inputName\": \"PSN Party\", \"inputKind\": \"psn_party\", \"inputSettings\": {}}" >/dev/null
  ws CreateInput "{\"sceneName\": \"$scene\", \"inputName\": \"Ann\", \"inputKind\": \"psn_party_member\", \"inputSettings\": {\"member\": \"slot:1\"}}" >/dev/null

  # 1. Signed out.
  wid="$(open_dialog "PSN Party" 1000)"
  shot "$wid" props-party-signed-out.png
  # 2. Sign in as a user would: click into the NPSSO field, type, click Sign in.
  eval "$(cat "$home/coords")"
  # Typing into a fresh X server can drop keys. The NPSSO never shows in the settings (the
  # plugin moves it into memory at once), so whether it arrived whole shows by Sign in working.
  for _ in 1 2 3; do
    xdotool mousemove --window "$wid" "$npsso_x" "$npsso_y" click 1
    sleep 0.5
    xdotool key --clearmodifiers ctrl+a BackSpace
    xdotool type --delay 25 "$npsso"
    sleep 0.5
    xdotool mousemove --window "$wid" "$signin_x" "$signin_y" click 1
    signed_in=""
    for _ in $(seq 1 20); do
      [ "$(sim GET counts | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("token",0))')" -ge 1 ] && { signed_in=1; break; }
      sleep 0.25
    done
    [ -n "$signed_in" ] && break
    echo "obs-screenshots: Sign in did not work with what was typed (keys dropped?); typing again" >&2
  done
  # Wait until all four members are connected.
  for _ in $(seq 1 60); do
    [ "$(sim GET voice | /usr/bin/python3 -c 'import json,sys; print(sum(v["state"]=="connected" for v in json.load(sys.stdin)))')" = 4 ] && break
    sleep 0.5
  done
  sleep 2
  shot "$wid" props-party-signed-in.png
  # 3. A fifth member whose voice connection fails: PSN refuses our answers to their offers.
  sim POST faults '{"kind":"custom_message400","count":5}' >/dev/null
  sim POST "parties/$sid/members" '{"onlineId":"eve_ps","platform":"PS4","voice":{"toneHz":900}}' >/dev/null
  sleep 2.5
  shot "$wid" props-party-member-failed.png
  # 4. The member source (OBS closes the open dialog for the next).
  wid="$(open_dialog "Ann" 260)"
  shot "$wid" props-member.png
  quit_obs "$obs_pid" || true
  trap - EXIT
}

if [ "${1:-}" = "--inside-xvfb" ]; then
  home="$2" port="$3" sim_url="$4" npsso="$5" sid="$6" out="$7"
  run_inside
  exit 0
fi

mkdir -p "$out"
new_obs_home obs-psn-party-shots
sim_port=$((40000 + RANDOM % 20000))

# The plugin (debug build: no release build needed for pictures), laid out
# the way tools/install.sh installs it.
cargo build --lib -q
cargo build -p psn-sim -q
stage_obs_plugin target/debug/libobs_psn_party.so

sim_pid=""
trap 'kill $sim_pid 2>/dev/null || true; rm -rf "$home"' EXIT
start_psn_sim "$home/sim.txt" --port "$sim_port" --party "Friday night" \
  --member ann_ps:PS5:300 --member ben_ps:PS5:470 --member cat_ps:PS4:730 --member dan_ps:PS5:1030
sim_url="http://127.0.0.1:$sim_port"
# Where PSN is and the client credentials go in the plugin's .env (as a
# developer sets them); the NPSSO is typed into the dialog.
write_plugin_env "$home/sim.txt" client
npsso="$(sim_value "$home/sim.txt" PSN_NPSSO)"
sid="$(sed -n 's/^# party \([^ ]*\).*/\1/p' "$home/sim.txt" | head -n1)"
# Where the NPSSO field and the Sign in button are in the 820-wide dialog
# (relative to its window; measured on the signed-out screenshot).
cat > "$home/coords" <<'C'
npsso_x=390 npsso_y=128 signin_x=118 signin_y=236
C
xvfb-run -a -s "-screen 0 1280x1024x24" bash "$0" --inside-xvfb "$home" "$port" "$sim_url" "$npsso" "$sid" "$out"
cp "$config"/logs/*.txt "${OBS_LOG_COPY:-/dev/null}" 2>/dev/null || true
grep -h "obs-psn-party\|Properties\|crash" "$config"/logs/*.txt | tail -n 30 || true
