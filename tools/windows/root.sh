#!/usr/bin/env bash
# Prepares the Debian sid root the Windows build and its wine tests run in (a plain chroot made
# with debootstrap, no container engine), when it is missing or lacks a package. Sid, because it
# has what bookworm has not: rustc/cargo with rust-src recent enough for -Z build-std, mingw-w64,
# and a wine that runs the plugin's tests. The root lives outside the checkout and is kept:
#   tools/windows/root.sh [ROOT]   (default /var/cache/obs-psn-party/windows-root)
# Needs root and the network to Debian's archive (the one this machine's apt uses; DEB_MIRROR
# overrides it). Prints how long it took.
set -euo pipefail
root="${1:-${WINDOWS_ROOT:-/var/cache/obs-psn-party/windows-root}}"

say() { echo "windows-root: $*"; }
fail() { echo "windows-root: FAILED: $*" >&2; exit 1; }

# What the build and the tests need inside the root. Changing this list re-runs apt once.
packages=(
  rustc cargo rust-src
  gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 binutils-mingw-w64-x86-64
  cmake make clang libclang-dev pkg-config
  wine wine64
  nsis zip unzip python3 ca-certificates
)
stamp="$root/.obs-psn-party-packages"
wanted="$(printf '%s\n' "${packages[@]}")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  exit 0
fi

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
start=$(date +%s)

in_root() { chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"; }

mirror="${DEB_MIRROR:-}"
if [ -z "$mirror" ]; then
  # The archive this machine's apt already uses (deb822 or one-line format).
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
fi
[ -n "$mirror" ] || fail "no Debian archive found in /etc/apt; set DEB_MIRROR"

if [ ! -x "$root/usr/bin/apt-get" ]; then
  if [ -e "$root" ]; then
    # Never delete through a mount point into the host.
    if grep -q " $root/" /proc/mounts; then fail "$root still has mounts; unmount them first"; fi
    rm -rf "$root"
  fi
  mkdir -p "$(dirname "$root")"
  say "debootstrap sid (minbase) into $root from $mirror"
  debootstrap --variant=minbase sid "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
    || fail "debootstrap failed; see $root.debootstrap.log"
fi

# Sid's Release file carries a Valid-Until that this machine's clock may be past.
printf 'Acquire::Check-Valid-Until "false";\nAPT::Get::Assume-Yes "true";\nAPT::Install-Recommends "false";\nquiet "2";\n' \
  > "$root/etc/apt/apt.conf.d/90obs-psn-party"
printf 'deb %s sid main\n' "$mirror" > "$root/etc/apt/sources.list"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
# Trust what the host trusts (cargo and apt inside the root reach the same registries).
mkdir -p "$root/usr/local/share/ca-certificates/host"
cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host/host-bundle.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"

mount -t proc proc "$root/proc"
trap 'umount -l "$root/proc" 2>/dev/null || true' EXIT
say "apt-get install ${packages[*]}"
in_root apt-get update >"$root.apt.log" 2>&1 || fail "apt-get update failed; see $root.apt.log"
in_root apt-get install "${packages[@]}" >>"$root.apt.log" 2>&1 || fail "apt-get install failed; see $root.apt.log"
in_root update-ca-certificates >/dev/null 2>&1
in_root apt-get clean
printf '%s\n' "$wanted" > "$stamp"
say "ready ($(in_root rustc --version), $(in_root wine --version 2>/dev/null || echo wine?)) in $(($(date +%s) - start)) s"
