#!/usr/bin/env bash
# Builds the .deb and proves it installs like a Debian package should on each Debian release whose
# OBS users run (Debian 12: OBS 29, Debian 13: OBS 30, sid: OBS 32), in clean roots made with
# debootstrap (plain chroots, no container engine; tools/obs-root.sh keeps them under
# /var/cache/obs-psn-party/obs-roots and each check works in a throwaway overlay over them):
#   1. in a minbase root: installing the .deb alone pulls libobs0 and never libobs-dev, and
#      `apt-get purge obs-psn-party` then leaves none of its files;
#   2. in a root with that release's OBS Studio: OBS starts under Xvfb and logs the module as
#      loaded, exits with 0 leaks, and after the purge starts without it.
# Needs root (debootstrap, chroot, mounts) and, the first time, the network to Debian's package
# archive; the archive is the one this machine's apt uses (DEB_MIRROR overrides it).
#   tools/deb-check.sh [SUITE...]       (default: bookworm trixie sid)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie sid)

say() { echo "deb-check: $*"; }
fail() { echo "deb-check: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "needs root (debootstrap and chroot), and sudo is not installed"
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,DEB_MIRROR,OBS_ROOTS "$0" "$@"
fi
# shellcheck source=tools/obs-root.sh
source tools/obs-root.sh

# --- the package ------------------------------------------------------------------------
# The README's commands, as written there (tools/check-readme.sh holds them to that).
rm -f target/cmake-deb/obs-psn-party_*_amd64.deb
cargo build --release --lib
cmake -S cmake -B target/cmake-deb -DPLUGIN_BINARY=$PWD/target/release/libobs_psn_party.so -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
(cd target/cmake-deb && cpack) >/dev/null
deb="$(ls -t target/cmake-deb/obs-psn-party_*_amd64.deb | head -n1)"
[ -f "$deb" ] || fail "cpack made no .deb"
version="$(dpkg-deb -f "$deb" Version)"
depends="$(dpkg-deb -f "$deb" Depends)"
say "built $deb (version $version; Depends: $depends)"
case "$depends" in *libobs-dev*) fail "the package depends on libobs-dev";; esac
case "$depends" in *"libobs0 (>= 29.0)"*) ;; *) fail "the package does not ask for libobs0 (>= 29.0)";; esac
mapfile -t package_files < <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}')
((${#package_files[@]})) || fail "the package holds no files"

# --- each release -------------------------------------------------------------------------------
scratch=""
netns="deb-check-$$"
cleanup() {
  [ -z "${OBS_PID:-}" ] || { kill -9 "$OBS_PID" 2>/dev/null || true; wait "$OBS_PID" 2>/dev/null || true; }
  OBS_PID=""
  stop_xvfb
  root_unmount_all
  [ -z "$scratch" ] || rm -rf --one-file-system "$scratch"
  scratch=""
  ip netns delete "$netns" 2>/dev/null || true
}
trap cleanup EXIT
logs="$repo/target/deb-check"
mkdir -p "$logs"

# Starts OBS in the root under Xvfb (obs-websocket off; in a network namespace with only a
# loopback), waits until it has loaded everything and settled, quits it with SIGINT; OBS's log
# goes to $2.
run_obs() { # root, log copy
  write_obs_profile "$1" 0
  ip netns list | grep -q "^$netns\b" || make_netns "$netns"
  start_obs "$1" "$netns" "$2.stdout"
  for _ in $(seq 1 240); do
    grep -qs "Switched to scene" "$1"/root/.config/obs-studio/logs/*.txt && break
    kill -0 "$OBS_PID" 2>/dev/null || break
    sleep 0.5
  done
  # Settle first: OBS 29 segfaulted once here on a SIGINT 2 s after "Switched to scene" (in
  # its shutdown, "QWidget::repaint: Recursive repaint detected"; no source of ours existed).
  sleep 5
  quit_obs
  cp "$(obs_log_of "$1")" "$2" 2>/dev/null || : >"$2"
  [ "$OBS_EXIT" = 0 ] || fail "OBS exited with $OBS_EXIT (see $2)"
}

check_suite() { # suite
  local suite="$1" start root cached
  start=$(date +%s)
  # 1. The package alone, in a minbase root.
  scratch="$(mktemp -d /var/tmp/deb-check-"$suite".XXXXXX)"
  cached="$(ensure_root "$suite" base)"
  root_overlay "$cached" "$scratch"
  root="$OVERLAY_ROOT"
  root_mount_standard "$root" "$suite"
  mkdir -p "$root/build/target/cmake-deb"
  cp "$deb" "$root/build/target/cmake-deb/"
  # The README's install line as written; the root's package lists are refreshed if they are stale.
  if ! in_root "$root" sh -c 'cd /build && apt-get install ./target/cmake-deb/obs-psn-party_*_amd64.deb' >"$logs/$suite-install.log" 2>&1; then
    in_root "$root" apt-get update -qq
    in_root "$root" sh -c 'cd /build && apt-get install ./target/cmake-deb/obs-psn-party_*_amd64.deb' >"$logs/$suite-install.log" 2>&1 \
      || fail "apt-get could not install the .deb into a clean $suite root (see $logs/$suite-install.log)"
  fi
  # libobs0, or from Debian 13 on libobs0t64 (the 64-bit time_t rename, which provides libobs0).
  local libobs
  libobs="$(in_root "$root" dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 'libobs0*' 2>/dev/null | awk '$1 == "ii" {print $2 " " $3}' | head -n1)"
  [ -n "$libobs" ] || fail "$suite: libobs0 was not pulled in"
  if in_root "$root" dpkg-query -W -f='${Status}' libobs-dev 2>/dev/null | grep -q "install ok installed"; then
    fail "$suite: libobs-dev was pulled in"
  fi
  for f in "${package_files[@]}"; do [ -e "$root$f" ] || fail "$suite: $f is not installed"; done
  say "$suite: installed alone: ${#package_files[@]} files, $libobs pulled in, no libobs-dev"
  in_root "$root" apt-get purge obs-psn-party >/dev/null || fail "$suite: apt-get purge failed"
  for f in "${package_files[@]}"; do [ ! -e "$root$f" ] || fail "$suite: $f is still there after purge"; done
  [ ! -e "$root/usr/share/obs/obs-plugins/obs-psn-party" ] || fail "$suite: the data folder is still there after purge"
  cleanup

  # 2. With that release's OBS.
  scratch="$(mktemp -d /var/tmp/deb-check-"$suite".XXXXXX)"
  cached="$(ensure_root "$suite" obs)"
  root_overlay "$cached" "$scratch"
  root="$OVERLAY_ROOT"
  root_mount_standard "$root" "$suite"
  start_xvfb "$root"
  mkdir -p "$root/build/target/cmake-deb"
  cp "$deb" "$root/build/target/cmake-deb/"
  in_root "$root" sh -c 'cd /build && apt-get install ./target/cmake-deb/obs-psn-party_*_amd64.deb' >>"$logs/$suite-install.log" 2>&1 \
    || fail "$suite: apt-get could not install the .deb next to OBS (see $logs/$suite-install.log)"
  local obs log="$logs/$suite-obs.log"
  obs="$(in_root "$root" dpkg-query -W -f='${Version}' obs-studio)"
  run_obs "$root" "$log"
  grep -q "\[obs-psn-party\] version $version loaded" "$log" || fail "$suite: OBS $obs did not load the module (see $log)"
  grep -q "^.*:     obs-psn-party.so$" "$log" || fail "$suite: obs-psn-party.so is not among OBS's loaded modules"
  grep -q "Number of memory leaks: 0$" "$log" || fail "$suite: OBS did not exit cleanly: $(tail -n 3 "$log")"
  say "$suite: OBS $obs loaded obs-psn-party $version and exited with 0 leaks in $OBS_SHUTDOWN_MS ms"
  in_root "$root" apt-get purge obs-psn-party >/dev/null || fail "$suite: apt-get purge failed"
  for f in "${package_files[@]}"; do [ ! -e "$root$f" ] || fail "$suite: $f is still there after purge"; done
  run_obs "$root" "$log.after-purge"
  if grep -q "obs-psn-party" "$log.after-purge"; then fail "$suite: OBS still sees obs-psn-party after the purge"; fi
  grep -q "Number of memory leaks: 0$" "$log.after-purge" || fail "$suite: OBS did not exit cleanly after the purge"
  say "$suite: purged: none of the package's files remain, and OBS starts without it"
  cleanup
  say "$suite: ok ($(($(date +%s) - start)) s)"
}

total=$(date +%s)
for suite in "${suites[@]}"; do check_suite "$suite"; done
say "ok: ${suites[*]} ($(($(date +%s) - total)) s)"
