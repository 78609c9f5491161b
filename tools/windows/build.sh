#!/usr/bin/env bash
# Builds obs-psn-party.dll for 64-bit Windows on this Linux machine (release), and the libobs test
# double + host the wine test uses (tests/windows/obs-double). One command; a fresh machine pays
# once for the Debian sid root it builds in (tools/windows/root.sh), both cached outside the
# checkout (/var/cache/obs-psn-party/windows-root and .../windows-target).
#   tools/windows/build.sh          (needs root: debootstrap, chroot, mounts)
# Output: target/windows/obs-psn-party.dll, target/windows/test/{obs.dll,obs-double-host.exe}.
# The DLL must import obs.dll and Windows system DLLs only: checked here with objdump -p.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
root="${WINDOWS_ROOT:-/var/cache/obs-psn-party/windows-root}"
export WINDOWS_TARGET_DIR="${WINDOWS_TARGET_DIR:-/var/cache/obs-psn-party/windows-target}"
say() { echo "windows-build: $*"; }
fail() { echo "windows-build: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=PATH,CARGO_HOME,DEB_MIRROR "$0" "$@"

start=$(date +%s)
tools/windows/root.sh "$root"
say "root ready after $(($(date +%s) - start)) s"

# The headers the Linux build uses (libobs-dev 29.0 and the simde headers they include), copied
# into the root: the Windows bindings come from the same files.
headers=/opt/libobs-headers/include
[ -f /usr/include/obs/obs-module.h ] && [ -d /usr/include/simde ] \
  || fail "libobs-dev's headers (and libsimde-dev's) are missing on this machine: run tools/setup.sh"
mkdir -p target/windows
rm -rf "$root$headers" && mkdir -p "$root$headers"
cp -a /usr/include/obs /usr/include/simde "$root$headers/"

# One dependency patched for the Windows build, shipped and tested alike: quinn-udp (webrtc's UDP
# sockets) asks every socket for IPV6_V6ONLY, which wine refuses on IPv4 sockets, failing every
# member's connection; the patch asks IPv6 sockets only (the answer means nothing on IPv4 ones).
# The crate comes from the registry, our diff is applied to a copy kept beside the target folder,
# and cargo takes it through --config (written to $WINDOWS_TARGET_DIR/cargo-patch.toml).
# Cargo writes the patched source into Cargo.lock, and sid's newer cargo re-resolves an entry
# (cargo fetch too): the checkout's lock file is put back when this script ends.
cp Cargo.lock target/windows-Cargo.lock.keep
trap 'cp target/windows-Cargo.lock.keep Cargo.lock' EXIT
command -v patch >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patch >/dev/null
tools/windows/in-root.sh cargo fetch --target x86_64-pc-windows-gnu -q
quinn_src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/quinn-udp-0.6.3 | head -n1)"
quinn="$WINDOWS_TARGET_DIR/patched/quinn-udp-0.6.3"
quinn_patch=tools/windows/quinn-udp-0.6.3-ipv6-only.patch
if ! cmp -s "$quinn/.applied" "$quinn_patch"; then
  rm -rf "$quinn" && mkdir -p "$(dirname "$quinn")" && cp -a "$quinn_src" "$quinn"
  patch -s -d "$quinn" -p1 < "$quinn_patch"
  cp "$quinn_patch" "$quinn/.applied"
fi
printf '[patch.crates-io]\nquinn-udp = { path = "%s" }\n' "$quinn" > "$WINDOWS_TARGET_DIR/cargo-patch.toml"

cargo_windows() {
  LIBOBS_INCLUDE_DIR="$headers/obs" RUSTC_BOOTSTRAP=1 tools/windows/in-root.sh \
    cargo build --config "$WINDOWS_TARGET_DIR/cargo-patch.toml" --release \
    -Z build-std=std,panic_abort,panic_unwind --target x86_64-pc-windows-gnu "$@"
}
build_start=$(date +%s)
say "cargo build (plugin, release, x86_64-pc-windows-gnu)"
cargo_windows --lib -p obs-psn-party
say "cargo build (libobs test double and its host, tests/windows/obs-double)"
cargo_windows --manifest-path tests/windows/obs-double/Cargo.toml
say "built in $(($(date +%s) - build_start)) s"

out="$WINDOWS_TARGET_DIR/x86_64-pc-windows-gnu/release"
mkdir -p target/windows/test
cp "$out/obs_psn_party.dll" target/windows/obs-psn-party.dll
cp "$out/obs.dll" "$out/obs-double-host.exe" target/windows/test/
# Symbols out of what ships (the Linux .so keeps none either: debug = false).
tools/windows/in-root.sh x86_64-w64-mingw32-strip --strip-unneeded target/windows/obs-psn-party.dll

# Imports: obs.dll and the system's own DLLs only (no libgcc, winpthread, MSVC runtime).
allowed='^(obs\.dll|kernel32\.dll|ntdll\.dll|advapi32\.dll|bcrypt\.dll|bcryptprimitives\.dll|ws2_32\.dll|userenv\.dll|msvcrt\.dll|iphlpapi\.dll|secur32\.dll|crypt32\.dll|ole32\.dll|oleaut32\.dll|shell32\.dll|user32\.dll|api-ms-win-[a-z0-9-]+\.dll|ncrypt\.dll|ntdll\.dll|synchronization\.dll)$'
imports="$(tools/windows/in-root.sh x86_64-w64-mingw32-objdump -p target/windows/obs-psn-party.dll \
  | awk '/DLL Name:/ {print tolower($3)}' | sort -u)"
say "obs-psn-party.dll imports: $(echo $imports)"
bad="$(echo "$imports" | grep -Ev "$allowed" || true)"
[ -z "$bad" ] || fail "obs-psn-party.dll imports DLLs that are not Windows's own: $bad"
echo "$imports" | grep -qx obs.dll || fail "obs-psn-party.dll does not import obs.dll"

# The test double must export every libobs function the plugin imports.
tools/windows/in-root.sh bash -c '
  x86_64-w64-mingw32-objdump -p target/windows/obs-psn-party.dll | awk "
    /DLL Name:/ { in_obs = (\$3 == \"obs.dll\") }
    in_obs && /^\t[0-9a-f]+ +<none> +[0-9a-f]+ / { print \$4 }" | sort -u > target/windows/plugin-obs-imports.txt
  x86_64-w64-mingw32-objdump -p target/windows/test/obs.dll | awk "
    /^\[Ordinal\/Name Pointer\] Table/ { t = 1; next } t && /\[/ { print \$NF }" | sort -u > target/windows/double-exports.txt'
missing="$(comm -23 target/windows/plugin-obs-imports.txt target/windows/double-exports.txt)"
[ -s target/windows/plugin-obs-imports.txt ] || fail "found no obs.dll imports in the plugin"
[ -z "$missing" ] || fail "the test double lacks: $missing"
say "the plugin imports $(wc -l < target/windows/plugin-obs-imports.txt) libobs functions; the test double exports them all"
say "target/windows/obs-psn-party.dll ($(stat -c %s target/windows/obs-psn-party.dll) bytes) in $(($(date +%s) - start)) s"
