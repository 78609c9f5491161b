# Sourced by the scripts that start real OBS in a scratch HOME (obs-smoke, obs-screenshots,
# obs-secrets-check, obs-vendor-events): one place for the OBS settings they all need.

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
