#!/usr/bin/env bash
# Runs a command inside the Windows build root (tools/windows/root.sh), with the checkout at the
# same path, the host's cargo registry and the Windows target folder mounted in. The mounts are
# made in a mount namespace of the command's own (unshare), so they go when it ends and two runs
# never see each other's. PSN_*, WINE*, RUST*, CARGO_* and LIBOBS_* variables are passed through.
#   tools/windows/in-root.sh COMMAND [ARG]...   (run from inside the checkout; needs root)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
root="${WINDOWS_ROOT:-/var/cache/obs-psn-party/windows-root}"
target="${WINDOWS_TARGET_DIR:-/var/cache/obs-psn-party/windows-target}"
registry="${CARGO_HOME:-$HOME/.cargo}/registry"
[ -f "$root/.obs-psn-party-packages" ] || { echo "in-root: $root is not ready: run tools/windows/root.sh" >&2; exit 1; }
mkdir -p "$target" "$registry" "$root$repo" "$root$target" "$root/root/.cargo/registry"

pass=()
while IFS='=' read -r name _; do
  case "$name" in PSN_*|WINE*|RUST*|CARGO_*|LIBOBS_*) pass+=("$name=${!name}") ;; esac
done < <(env)
# Git worktrees keep their metadata in the main checkout: cargo only reads files, so that is fine.
exec unshare --mount --propagation private bash -c '
  set -e
  root=$1 repo=$2 target=$3 registry=$4 cwd=$5; shift 5
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/dev/shm"
  mount --bind "$repo" "$root$repo"
  mount --bind "$target" "$root$target"
  mount --bind "$registry" "$root/root/.cargo/registry"
  exec chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 USER=root \
    CARGO_TARGET_DIR="$target" WINEPREFIX=/root/.wine-obs-psn-party WINEDEBUG="${WINEDEBUG:--all}" \
    WINEDLLOVERRIDES="mscoree,mshtml=" "$@"
' in-root "$root" "$repo" "$target" "$registry" "$PWD" \
  "${pass[@]}" bash -c 'cd "$0" && exec "$@"' "$PWD" "$@"
