#!/usr/bin/env bash
# Builds the plugin in release mode and installs it for the current user:
#   ~/.config/obs-studio/plugins/obs-psn-party/bin/64bit/obs-psn-party.so
#   ~/.config/obs-studio/plugins/obs-psn-party/data/
# `tools/install.sh --uninstall` removes it again. Restart OBS afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

plugins="${OBS_PLUGINS_DIR:-$HOME/.config/obs-studio/plugins}"

if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$plugins/obs-psn-party"
  echo "install: removed $plugins/obs-psn-party"
  exit 0
fi

command -v cargo >/dev/null && pkg-config --exists libobs && command -v cmake >/dev/null || tools/setup.sh

cargo build --release --lib
cmake -S cmake -B target/cmake-user -DPLUGIN_BINARY="$PWD/target/release/libobs_psn_party.so" \
  -DOBS_PSN_PARTY_USER_INSTALL=ON -DCMAKE_INSTALL_PREFIX="$plugins" >/dev/null
cmake --install target/cmake-user >/dev/null
echo "install: installed into $plugins/obs-psn-party (restart OBS to load it)"
