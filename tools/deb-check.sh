#!/usr/bin/env bash
# Builds the .deb and proves it installs like a Debian package should, in a clean
# Debian 12 root made with debootstrap (a plain chroot, no container engine):
#   1. installing the .deb alone pulls libobs0 and never libobs-dev;
#   2. real OBS Studio, installed in that root, starts under Xvfb and logs the module as loaded;
#   3. `apt-get purge obs-psn-party` leaves none of its files, and OBS then starts without it.
# Needs root (debootstrap, chroot, mounts) and the network to Debian's package archive; the
# archive is the one this machine's apt uses (DEB_MIRROR overrides it). Takes a few minutes.
#   tools/deb-check.sh [ROOT_DIR]       (default target/deb-root, made anew each run)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
root="$(realpath -m "${1:-target/deb-root}")"
suite=bookworm

say() { echo "deb-check: $*"; }
fail() { echo "deb-check: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "needs root (debootstrap and chroot), and sudo is not installed"
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,DEB_MIRROR "$0" "$@"
fi
command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

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

# --- a clean root -----------------------------------------------------------------------
mounted=()
cleanup() {
  local m
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_in_root() { # type, target under root
  mount -t "$1" "$1" "$root$2"
  mounted+=("$root$2")
}
in_root() { chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"; }

if [ -e "$root" ]; then
  # Never delete through a mount point into the host.
  if grep -q " $root/" /proc/mounts; then fail "$root still has mounts; unmount them first"; fi
  rm -rf "$root"
fi
mirror="${DEB_MIRROR:-}"
if [ -z "$mirror" ]; then
  # The archive this machine's apt already uses (deb822 or one-line format).
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
fi
[ -n "$mirror" ] || fail "no Debian archive found in /etc/apt; set DEB_MIRROR"
say "debootstrap $suite (minbase) into $root"
start=$(date +%s)
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$repo/target/deb-check-debootstrap.log" 2>&1 \
  || fail "debootstrap failed; see target/deb-check-debootstrap.log"
# Same archives as this machine (updates and security too), so versions match the host's.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
  rm -f "$root/etc/apt/sources.list"
fi
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
# apt answers yes by itself, so the README's install and purge lines run unchanged.
printf 'APT::Get::Assume-Yes "true";\nquiet "2";\n' > "$root/etc/apt/apt.conf.d/90deb-check"
mount_in_root proc /proc
mount_in_root devpts /dev/pts
mount_in_root tmpfs /dev/shm
mount_in_root tmpfs /tmp
in_root apt-get update -qq
say "clean root ready in $(($(date +%s) - start)) s"

# --- 1. the package alone ---------------------------------------------------------------
mkdir -p "$root/build/target/cmake-deb"
cp "$deb" "$root/build/target/cmake-deb/"
in_root sh -c 'cd /build && apt-get install ./target/cmake-deb/obs-psn-party_*_amd64.deb' >/dev/null \
  || fail "apt-get could not install the .deb into a clean root"
in_root dpkg-query -W -f='${Status}' libobs0 | grep -q "install ok installed" || fail "libobs0 was not pulled in"
if in_root dpkg-query -W -f='${Status}' libobs-dev 2>/dev/null | grep -q "install ok installed"; then
  fail "libobs-dev was pulled in"
fi
for f in "${package_files[@]}"; do [ -e "$root$f" ] || fail "$f is not installed"; done
say "installed: ${#package_files[@]} files, libobs0 $(in_root dpkg-query -W -f='${Version}' libobs0) pulled in, no libobs-dev"

# --- 2. real OBS in that root ----------------------------------------------------------
in_root apt-get install -y -qq --no-install-recommends obs-studio xvfb xauth >/dev/null \
  || fail "could not install obs-studio into the root"
cat > "$root/tmp/run-obs.sh" <<'SH'
#!/bin/sh
# Starts OBS under Xvfb with a fresh profile, waits for it to finish loading, quits with SIGINT.
set -e
rm -rf /root/.config/obs-studio
mkdir -p /root/.config/obs-studio
printf '[General]\nFirstRun=true\n[OBSWebSocket]\nFirstLoad=false\nServerEnabled=false\n' \
  > /root/.config/obs-studio/global.ini
xvfb-run -a -s "-screen 0 1280x800x24" sh -c '
  obs --disable-updater >/tmp/obs-stdout.txt 2>&1 &
  pid=$!
  for i in $(seq 1 120); do
    grep -qs "Switched to scene\|==== Startup complete" /root/.config/obs-studio/logs/*.txt && break
    sleep 0.5
  done
  sleep 2
  kill -INT $pid
  for i in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -0 $pid 2>/dev/null && { kill -9 $pid; echo "OBS did not exit within 10 s"; exit 1; }
  exit 0'
cat /root/.config/obs-studio/logs/*.txt
SH
chmod +x "$root/tmp/run-obs.sh"
log="$repo/target/deb-check-obs.log"
in_root /tmp/run-obs.sh > "$log" 2>&1 || fail "OBS in the root failed; see $log"
grep -q "\[obs-psn-party\] version $version loaded" "$log" || fail "OBS did not load the module (see $log)"
grep -q "^.*:     obs-psn-party.so$" "$log" || fail "obs-psn-party.so is not among OBS's loaded modules"
grep -q "Number of memory leaks: 0$" "$log" || fail "OBS did not exit cleanly: $(tail -n 3 "$log")"
say "OBS $(in_root dpkg-query -W -f='${Version}' obs-studio) in the clean root loaded obs-psn-party $version and exited with 0 leaks"

# --- 3. uninstall -----------------------------------------------------------------------
in_root apt-get purge obs-psn-party >/dev/null || fail "apt-get purge failed"
for f in "${package_files[@]}"; do [ ! -e "$root$f" ] || fail "$f is still there after purge"; done
[ ! -e "$root/usr/share/obs/obs-plugins/obs-psn-party" ] || fail "the data folder is still there after purge"
in_root /tmp/run-obs.sh > "$log.after-purge" 2>&1 || fail "OBS failed after the purge; see $log.after-purge"
if grep -q "obs-psn-party" "$log.after-purge"; then fail "OBS still sees obs-psn-party after the purge"; fi
grep -q "Number of memory leaks: 0$" "$log.after-purge" || fail "OBS did not exit cleanly after the purge"
say "purged: none of the package's files remain, and OBS starts without it"
say "ok ($(($(date +%s) - start)) s)"
