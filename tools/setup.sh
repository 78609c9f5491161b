#!/usr/bin/env bash
# Installs what building and testing obs-psn-party needs on Debian 12 / Ubuntu 22.04+,
# skipping whatever is already there. Safe to run again.
set -euo pipefail

packages=(
  build-essential pkg-config cmake      # C toolchain; cmake builds libopus for the opus crate
  clang libclang-dev                    # bindgen
  libobs-dev obs-studio                 # libobs headers + the real OBS for the end-to-end checks
  xvfb xauth xdotool x11-utils imagemagick  # a virtual X display (libobs needs one) and screenshots
  sox                                   # listening to the demo's WAVs
  python3 python3-websockets            # drives real OBS through obs-websocket in the checks
  python3-aiortc python3-numpy          # a party member on another WebRTC stack (interop test)
  iproute2 iptables coturn              # the NAT lab: namespaces, NAT routers, a real STUN server
  chromium                              # the speaking overlay page, headless (tests/libobs_overlay.rs)
  debootstrap                           # Debian roots (deb-check, obs-matrix; iproute2 above for their namespaces)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is not installed. Install it with rustup (see the README), then run this again." >&2
  exit 1
fi
echo "setup: ready ($(pkg-config --modversion libobs | sed 's/^/libobs /'), $(cargo --version))"
