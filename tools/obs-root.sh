#!/usr/bin/env bash
# Debian roots with that release's own OBS Studio, for tools/obs-matrix.sh and tools/deb-check.sh.
# Made with debootstrap (plain chroots, no container engine) and kept OUTSIDE the checkout, under
# $OBS_ROOTS (default /var/cache/obs-psn-party/obs-roots), because they are large and slow to make:
#   <suite>/base/          minbase + the archive's sources and lists; no OBS (deb-check's clean root)
#   <suite>/obs/           base + obs-studio + ffmpeg (the OBS a user of that release runs)
#   <suite>/apt-archives/  the downloaded .debs, shared by both and by every rebuild
# A root is reused when its stamp matches the recipe below and rebuilt when missing or different.
# The archive is the one this machine's apt uses (as in tools/deb-check.sh; DEB_MIRROR overrides).
#   tools/obs-root.sh SUITE [base|obs]   prints the root's path (bookworm, trixie or sid)
# Sourced, it gives other scripts ensure_root, the chroot helpers (root_overlay, root_mount_standard,
# root_unmount_all, in_root, make_netns) and OBS in a root (start_xvfb, write_obs_profile,
# start_obs, quit_obs).
set -euo pipefail

OBS_ROOTS="${OBS_ROOTS:-/var/cache/obs-psn-party/obs-roots}"
# What the obs root holds. Changing this list rebuilds the roots (it is part of the stamp).
# obs-studio without recommends (they are obs-plugins' ~200 extra packages; OBS's own plugins,
# obs-websocket among them, are in obs-studio); libgl1 because OBS's GL loader opens libGL.so.1,
# which every desktop has but sid's obs-studio no longer pulls in ("Failed to load OpenGL entry
# functions" without it); ffmpeg gives ffprobe/ffmpeg of the same release to read OBS's
# recordings; fonts so the properties dialog shows text.
OBS_ROOT_PACKAGES="obs-studio libgl1 ffmpeg ca-certificates fonts-dejavu-core"
OBS_ROOT_RECIPE="4 $OBS_ROOT_PACKAGES"
# Per release: Qt 6's SVG plugin, without which OBS 30's theme draws no checkboxes, arrows or
# help icons (Debian 13's obs-studio does not depend on it, sid's does; a desktop has it).
# OBS 29 in Debian 12 is built with Qt 5.
obs_root_extra() { # suite
  case "$1" in trixie | sid) echo "qt6-svg-plugins" ;; esac
}
obs_root_recipe() { # suite
  local extra
  extra="$(obs_root_extra "$1")"
  echo "$OBS_ROOT_RECIPE${extra:+ $extra}"
}
# What the base root holds (minbase, sources, apt settings); its own stamp, so a change to the
# package list above does not debootstrap again.
BASE_ROOT_RECIPE="base 1"

root_say() { echo "obs-root: $*" >&2; }
root_fail() { echo "obs-root: FAILED: $*" >&2; exit 1; }

# The Debian archive this machine's apt uses: deb822 first, then the one-line format.
debian_mirror() {
  local mirror="${DEB_MIRROR:-}"
  if [ -z "$mirror" ]; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  fi
  [ -n "$mirror" ] || root_fail "no Debian archive found in /etc/apt; set DEB_MIRROR"
  echo "$mirror"
}

# The security archive next to it (the second URIs line of debian.sources); empty if none.
debian_security_mirror() {
  [ -z "${DEB_MIRROR:-}" ] || { echo "${DEB_SECURITY_MIRROR:-}"; return; }
  awk '/^URIs:/ && /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true
}

# --- chroot helpers (mounts are tracked so the caller's EXIT trap can undo them) ---------------
ROOT_MOUNTS=()
root_mount() { # root, fstype or "bind:SRC", target inside the root
  local root="$1" what="$2" target="$1$3"
  mkdir -p "$target"
  if [[ "$what" == bind:* ]]; then
    mount --bind "${what#bind:}" "$target"
  else
    mount -t "$what" "$what" "$target"
  fi
  ROOT_MOUNTS+=("$target")
}
root_unmount_all() {
  local i
  for ((i = ${#ROOT_MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${ROOT_MOUNTS[i]}" 2>/dev/null || true; done
  ROOT_MOUNTS=()
}
# The mounts a root needs to run apt and OBS: proc, ptys, shm, a private /tmp, the apt cache.
root_mount_standard() { # root, suite
  root_mount "$1" proc /proc
  root_mount "$1" devpts /dev/pts
  root_mount "$1" tmpfs /dev/shm
  root_mount "$1" tmpfs /tmp
  mkdir -p "$OBS_ROOTS/$2/apt-archives/partial"
  root_mount "$1" "bind:$OBS_ROOTS/$2/apt-archives" /var/cache/apt/archives
}
in_root() { # root, command...
  local root="$1"
  shift
  chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}
# Deletes a root, never through a mount point into the host.
root_remove() {
  local root="$1"
  [ -e "$root" ] || return 0
  if grep -q " $root/" /proc/mounts; then root_fail "$root still has mounts; unmount them first"; fi
  rm -rf --one-file-system "$root"
}

# --- making the roots --------------------------------------------------------------------------
write_sources() { # root, suite
  local root="$1" suite="$2" mirror security
  mirror="$(debian_mirror)"
  security="$(debian_security_mirror)"
  rm -f "$root/etc/apt/sources.list"
  {
    case "$suite" in
      sid)
        printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\n' "$mirror"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        ;;
      *)
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$security" ]; then
          printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
          printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
        ;;
    esac
  } > "$root/etc/apt/sources.list.d/debian.sources"
  {
    printf 'APT::Get::Assume-Yes "true";\nquiet "2";\nAPT::Install-Recommends "false";\n'
    # Keep downloaded .debs: the apt cache is bind-mounted from outside and reused by rebuilds.
    printf 'APT::Keep-Downloaded-Packages "true";\nBinary::apt::APT::Keep-Downloaded-Packages "true";\n'
    # sid's Release is only valid for a week after it was made; this machine's clock runs past it.
    [ "$suite" != sid ] || printf 'Acquire::Check-Valid-Until "false";\n'
  } > "$root/etc/apt/apt.conf.d/90obs-psn-party"
  rm -f "$root/etc/apt/apt.conf.d/docker-clean"
  # No daemons start in the root.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
}

make_base() { # suite
  local suite="$1" dir="$OBS_ROOTS/$1/base" start
  start=$(date +%s)
  root_remove "$dir"
  mkdir -p "$OBS_ROOTS/$suite/apt-archives/partial" "$(dirname "$dir")"
  root_say "debootstrap $suite (minbase) into $dir"
  debootstrap --variant=minbase --cache-dir="$OBS_ROOTS/$suite/apt-archives" "$suite" "$dir" "$(debian_mirror)" \
    >"$OBS_ROOTS/$suite/debootstrap.log" 2>&1 || root_fail "debootstrap $suite failed; see $OBS_ROOTS/$suite/debootstrap.log"
  write_sources "$dir" "$suite"
  root_mount_standard "$dir" "$suite"
  in_root "$dir" apt-get update -qq || { root_unmount_all; root_fail "apt-get update in the $suite root failed"; }
  root_unmount_all
  echo "$BASE_ROOT_RECIPE" > "$dir/.obs-psn-party-root"
  root_say "$suite base ready in $(($(date +%s) - start)) s"
}

make_obs() { # suite
  local suite="$1" base="$OBS_ROOTS/$1/base" dir="$OBS_ROOTS/$1/obs" start
  start=$(date +%s)
  root_remove "$dir"
  cp -a "$base" "$dir"
  root_mount_standard "$dir" "$suite"
  in_root "$dir" apt-get install -y -qq $OBS_ROOT_PACKAGES $(obs_root_extra "$suite") >"$OBS_ROOTS/$suite/obs-install.log" 2>&1 \
    || { root_unmount_all; root_fail "installing OBS into the $suite root failed; see $OBS_ROOTS/$suite/obs-install.log"; }
  # The host's CA certificates, so TLS inside the root trusts what the host trusts; the root's
  # own bundle rebuilt with them.
  mkdir -p "$dir/usr/local/share/ca-certificates"
  if [ -d /usr/local/share/ca-certificates ]; then cp -a /usr/local/share/ca-certificates/. "$dir/usr/local/share/ca-certificates/"; fi
  in_root "$dir" update-ca-certificates >/dev/null 2>&1 || true
  root_unmount_all
  obs_root_recipe "$suite" > "$dir/.obs-psn-party-root"
  root_say "$suite obs root ready in $(($(date +%s) - start)) s (obs-studio $(in_root "$dir" dpkg-query -W -f='${Version}' obs-studio))"
}

root_ready() { # dir, recipe
  [ -f "$1/.obs-psn-party-root" ] && [ "$(cat "$1/.obs-psn-party-root")" = "$2" ]
}

# Makes (or reuses) the root and prints its path.
ensure_root() { # suite, base|obs
  local suite="$1" kind="${2:-obs}"
  case "$suite" in bookworm | trixie | sid) ;; *) root_fail "unknown suite $suite (bookworm, trixie, sid)";; esac
  [ "$(id -u)" -eq 0 ] || root_fail "needs root (debootstrap, chroot, mounts)"
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  mkdir -p "$OBS_ROOTS/$suite"
  # One maker per suite at a time (two scripts may ask at once).
  exec {lock}>"$OBS_ROOTS/$suite/.lock"
  flock "$lock"
  root_ready "$OBS_ROOTS/$suite/base" "$BASE_ROOT_RECIPE" || make_base "$suite"
  if [ "$kind" = obs ]; then root_ready "$OBS_ROOTS/$suite/obs" "$(obs_root_recipe "$suite")" || make_obs "$suite"; fi
  flock -u "$lock"
  echo "$OBS_ROOTS/$suite/$kind"
}

# --- running OBS in a root -----------------------------------------------------------------------
# A throwaway overlay over a cached root: whatever a run installs or writes lands in `upper` and
# goes with it, so the cached root stays as made. Sets OVERLAY_ROOT to the merged root's path
# (not printed: the mount must be recorded in this shell, not in a subshell).
root_overlay() { # cached root, scratch dir
  local lower="$1" scratch="$2"
  mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
  ROOT_MOUNTS+=("$scratch/root")
  OVERLAY_ROOT="$scratch/root"
}

# A network namespace with only a loopback, so OBS and what it talks to reach nothing else (OBS
# would fetch rtmp-services updates from the internet) and take no port of this machine.
# WebRTC's mDNS joins a multicast group; on a loopback that cannot multicast that fails with
# ENODEV and no voice connection is made: multicast on lo, routed there.
make_netns() { # name
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip -n "$1" link set lo multicast on
  ip -n "$1" route add 224.0.0.0/4 dev lo
}

# An X server on the host for OBS in a root (its socket bind-mounted into the root's /tmp).
# Sets XVFB_PID and XVFB_DISPLAY (":N").
start_xvfb() { # root
  local fd_file
  fd_file="$(mktemp)"
  Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"$fd_file" >/dev/null 2>&1 &
  XVFB_PID=$!
  for _ in $(seq 1 100); do [ -s "$fd_file" ] && break; sleep 0.1; done
  [ -s "$fd_file" ] || root_fail "Xvfb did not start"
  XVFB_DISPLAY=":$(head -n1 "$fd_file")"
  rm -f "$fd_file"
  root_mount "$1" bind:/tmp/.X11-unix /tmp/.X11-unix
}
stop_xvfb() {
  [ -z "${XVFB_PID:-}" ] || { kill "$XVFB_PID" 2>/dev/null || true; wait "$XVFB_PID" 2>/dev/null || true; }
  XVFB_PID=""
}

# A fresh OBS profile in the root, written before the first start so no dialog opens: the
# first-run wizard off (global.ini up to OBS 30, user.ini from 31), obs-websocket on PORT without
# a password (global.ini for obs-websocket 5.0-5.3, plugin_config/obs-websocket/config.json from
# 5.4), the Advanced output mode recording to MKV in /tmp/obs-recordings, a small canvas (the
# video only has to exist; two shared cores encode it).
write_obs_profile() { # root, websocket port (0: obs-websocket off)
  local config="$1/root/.config/obs-studio" port="$2" enabled=true
  [ "$port" != 0 ] || { enabled=false; port=4455; }
  rm -rf "$config"
  mkdir -p "$config/basic/profiles/Matrix" "$config/basic/scenes" "$config/plugin_config/obs-websocket" "$1/tmp/obs-recordings"
  local general
  general="$(printf '[General]\nFirstRun=true\nLastVersion=999999999\n[Basic]\nProfile=Matrix\nProfileDir=Matrix\nSceneCollection=Matrix\nSceneCollectionFile=Matrix\nConfigOnNewProfile=false\n')"
  printf '%s\n[OBSWebSocket]\nFirstLoad=false\nServerEnabled=%s\nServerPort=%s\nAuthRequired=false\nAlertsEnabled=false\n' \
    "$general" "$enabled" "$port" > "$config/global.ini"
  printf '%s\n' "$general" > "$config/user.ini"
  printf '{"alerts_enabled": false, "auth_required": false, "first_load": false, "server_enabled": %s, "server_password": "", "server_port": %s}\n' \
    "$enabled" "$port" > "$config/plugin_config/obs-websocket/config.json"
  cat > "$config/basic/profiles/Matrix/basic.ini" <<'INI'
[General]
Name=Matrix
[Output]
Mode=Advanced
[AdvOut]
RecType=Standard
RecFilePath=/tmp/obs-recordings
RecFormat=mkv
RecFormat2=mkv
RecEncoder=obs_x264
RecTracks=1
RecUseRescale=false
[Video]
BaseCX=320
BaseCY=180
OutputCX=320
OutputCY=180
FPSType=1
FPSInt=10
[Audio]
SampleRate=48000
ChannelSetup=Stereo
INI
}

# OBS in the root under the host's Xvfb; sets OBS_PID. Extra environment as NAME=VALUE words.
start_obs() { # root, netns ("" for the host's), log file, env...
  local root="$1" netns="$2" log="$3"
  shift 3
  local prefix=()
  [ -z "$netns" ] || prefix=(ip netns exec "$netns")
  "${prefix[@]}" chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DISPLAY="$XVFB_DISPLAY" "$@" obs --disable-updater >"$log" 2>&1 &
  OBS_PID=$!
}
# Quits OBS as a user's window manager would (SIGINT), waits up to 20 s; sets OBS_SHUTDOWN_MS and
# OBS_EXIT (its exit status; "killed" if it had to be killed).
quit_obs() {
  local start waited=0
  start=$(date +%s%N)
  kill -INT "$OBS_PID" 2>/dev/null || true
  while kill -0 "$OBS_PID" 2>/dev/null && [ $waited -lt 200 ]; do sleep 0.1; waited=$((waited + 1)); done
  OBS_SHUTDOWN_MS=$((($(date +%s%N) - start) / 1000000))
  if kill -0 "$OBS_PID" 2>/dev/null; then
    kill -9 "$OBS_PID" 2>/dev/null || true
    wait "$OBS_PID" 2>/dev/null || true
    OBS_EXIT=killed
  else
    OBS_EXIT=0
    wait "$OBS_PID" 2>/dev/null || OBS_EXIT=$?
  fi
  OBS_PID=""
}
# The log OBS wrote in the root (the newest).
obs_log_of() { ls -t "$1"/root/.config/obs-studio/logs/*.txt 2>/dev/null | head -n1; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $# -ge 1 ] || { echo "usage: $0 SUITE [base|obs]" >&2; exit 2; }
  trap root_unmount_all EXIT
  ensure_root "$1" "${2:-obs}"
fi
