# Sourced by the scripts that run real OBS Studio in a scratch HOME (obs-smoke, obs-screenshots,
# obs-secrets-check, obs-vendor-events), from the repository's root: the scratch HOME with the
# OBS settings they all need, the plugin laid out in it, psn-sim for it to sign in to, quitting
# OBS as a user does, and what the suite keeps of a run.

# write_obs_global_ini CONFIG_DIR PORT [EXTRA_INI]: no first-run wizard, obs-websocket on
# loopback at PORT without a password and without alerts; EXTRA_INI (more sections) appended.
write_obs_global_ini() {
  local config="$1" port="$2" extra="${3:-}"
  mkdir -p "$config"
  cat > "$config/global.ini" <<INI
[General]
FirstRun=true
[OBSWebSocket]
FirstLoad=false
ServerEnabled=true
ServerPort=$port
AuthRequired=false
AlertsEnabled=false
INI
  if [ -n "$extra" ]; then printf '%s\n' "$extra" >> "$config/global.ini"; fi
}

# new_obs_home NAME [EXTRA_INI]: a fresh HOME (/tmp/NAME.XXXXXX) with OBS's global.ini
# written (write_obs_global_ini). Sets `home`, `config` (its OBS config folder) and `port`
# (obs-websocket's, on loopback).
new_obs_home() {
  home="$(mktemp -d "/tmp/$1.XXXXXX")"
  config="$home/.config/obs-studio"
  port=$((20000 + RANDOM % 20000))
  write_obs_global_ini "$config" "$port" "${2:-}"
}

# stage_obs_plugin MODULE: MODULE and data/ in the HOME's plugin folder, laid out as
# tools/install.sh lays them out (for the scripts that test a build tools/install.sh does not make).
stage_obs_plugin() {
  local plugin="$config/plugins/obs-psn-party"
  mkdir -p "$plugin/bin/64bit"
  cp "$1" "$plugin/bin/64bit/obs-psn-party.so"
  cp -r data "$plugin/data"
}

# start_psn_sim OUT ARGS...: target/debug/psn-sim with ARGS in the background, what it prints
# (the plugin's environment, the party's id) in OUT; returns once it is up. Sets `sim_pid`.
start_psn_sim() {
  local out="$1"
  shift
  target/debug/psn-sim "$@" >"$out" 2>&1 &
  sim_pid=$!
  for _ in $(seq 1 100); do grep -q '^PSN_NPSSO=' "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^PSN_NPSSO=' "$out" || { cat "$out"; echo "psn-sim did not start" >&2; return 1; }
}

# sim_value OUT NAME: the value psn-sim printed for NAME (PSN_NPSSO, PSN_CLIENT_ID, ...).
sim_value() { sed -n "s/^$2=//p" "$1" | head -n1; }

# write_plugin_env OUT [client] [npsso]: the plugin's .env, as a developer writes it, from what
# psn-sim printed into OUT: where PSN is (its base URLs, voice bind address and STUN servers),
# and with `client` the client id and secret, with `npsso` the NPSSO.
write_plugin_env() {
  local out="$1" keys='^PSN_(AUTH|API|PUSH|WEB)_BASE_URL=|^PSN_VOICE_BIND=|^PSN_STUN_SERVERS='
  shift
  for what in "$@"; do
    case "$what" in
      client) keys="$keys|^PSN_CLIENT_(ID|SECRET)=" ;;
      npsso) keys="$keys|^PSN_NPSSO=" ;;
      *) echo "write_plugin_env: unknown $what" >&2; return 1 ;;
    esac
  done
  local env="$config/plugin_config/obs-psn-party/.env"
  mkdir -p "$(dirname "$env")"
  grep -E "$keys" "$out" >"$env"
  chmod 600 "$env"
}

# wait_for_obs_websocket TRIES: until obs-websocket answers on `port` (TRIES half seconds at most).
wait_for_obs_websocket() {
  for _ in $(seq 1 "$1"); do
    /usr/bin/python3 tools/obs_ws.py --port "$port" GetVersion >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# quit_obs PID: quits OBS as the user does (SIGINT); after 10 s it is killed and 1 returned.
quit_obs() {
  kill -INT "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  return 1
}

# keep_obs_artefacts NAME [MORE...]: under tools/test.sh, OBS's logs and scene collection, what
# OBS printed and MORE go to the suite's secret scan (in its artefact folder, under NAME).
keep_obs_artefacts() {
  [ -n "${PSN_PARTY_SUITE_ARTEFACTS:-}" ] || return 0
  local dest="$PSN_PARTY_SUITE_ARTEFACTS/$1"
  shift
  mkdir -p "$dest"
  cp -r "$config/logs" "$config/basic" "$home/obs-stdout.txt" "$@" "$dest/" 2>/dev/null || true
}
