#!/usr/bin/env bash
# Runs a command inside the Windows build root (tools/windows/root.sh), with the checkout at the
# same path, the host's cargo registry, and the Windows target folder mounted in; the mounts go
# when the command ends. PSN_*, WINE*, RUST*, CARGO_* and LIBOBS_* variables are passed through.
#   tools/windows/in-root.sh COMMAND [ARG]...   (run from anywhere; needs root)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
root="${WINDOWS_ROOT:-/var/cache/obs-psn-party/windows-root}"
target="${WINDOWS_TARGET_DIR:-/var/cache/obs-psn-party/windows-target}"
registry="${CARGO_HOME:-$HOME/.cargo}/registry"
[ -f "$root/.obs-psn-party-packages" ] || { echo "in-root: $root is not ready: run tools/windows/root.sh" >&2; exit 1; }
mkdir -p "$target" "$registry"

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { # host path, path in the root
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  mounted+=("$root$2")
}
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
bind /dev /dev
mount -t tmpfs tmpfs "$root/dev/shm" && mounted+=("$root/dev/shm")
bind "$repo" "$repo"
bind "$target" "$target"
bind "$registry" /root/.cargo/registry
# Git worktrees keep their metadata in the main checkout: cargo only reads files, so that is fine.

pass=()
while IFS='=' read -r name _; do
  case "$name" in PSN_*|WINE*|RUST*|CARGO_*|LIBOBS_*) pass+=("$name=${!name}") ;; esac
done < <(env)
chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 USER=root \
  CARGO_TARGET_DIR="$target" WINEPREFIX=/root/.wine-obs-psn-party WINEDEBUG="${WINEDEBUG:--all}" \
  WINEDLLOVERRIDES="mscoree,mshtml=" "${pass[@]}" \
  bash -c 'cd "$0" && exec "$@"' "$PWD" "$@"
