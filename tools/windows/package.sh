#!/usr/bin/env bash
# Packages target/windows/obs-psn-party.dll (tools/windows/build.sh) the way OBS 30+ finds plugins
# on Windows, and proves the installer under wine:
#   target/windows/obs-psn-party-<version>-windows-x64-installer.exe   (NSIS, with an uninstaller)
#   target/windows/obs-psn-party-<version>-windows-x64.zip             (the same layout, by hand)
# The check: a silent install (/S) puts the DLL and data under
# %ProgramData%\obs-studio\plugins\obs-psn-party\ and registers the uninstaller; a silent
# uninstall takes every one of those files away again.
#   tools/windows/package.sh        (needs root; run tools/windows/build.sh first)
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "windows-package: $*"; }
fail() { echo "windows-package: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=PATH,CARGO_HOME "$0" "$@"
[ -f target/windows/obs-psn-party.dll ] || fail "target/windows/obs-psn-party.dll is missing: run tools/windows/build.sh"
start=$(date +%s)
version="$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)"
name="obs-psn-party-$version-windows-x64"

stage=target/windows/stage
rm -rf "$stage" && mkdir -p "$stage/obs-psn-party/bin/64bit" "$stage/obs-psn-party/data"
cp target/windows/obs-psn-party.dll "$stage/obs-psn-party/bin/64bit/"
cp -r data/. "$stage/obs-psn-party/data/"
sed 's/$/\r/' LICENSE > "$stage/LICENSE.txt"

rm -f "target/windows/$name.zip" "target/windows/$name-installer.exe"
tools/windows/in-root.sh bash -c "cd '$stage' && zip -qr '../$name.zip' obs-psn-party"
tools/windows/in-root.sh makensis -V2 -DVERSION="$version" -DSTAGE="$PWD/$stage" \
  -DOUTFILE="$PWD/target/windows/$name-installer.exe" tools/windows/installer.nsi
[ -s "target/windows/$name-installer.exe" ] || fail "makensis made no installer"
say "made $name-installer.exe ($(stat -c %s "target/windows/$name-installer.exe") bytes) and $name.zip"

# --- silent install and uninstall under wine ---------------------------------------------
# wine's C:\ProgramData, seen from Linux inside the root.
prefix_dir=/var/cache/obs-psn-party/windows-root/root/.wine-obs-psn-party
plugin_dir="$prefix_dir/drive_c/ProgramData/obs-studio/plugins/obs-psn-party"
expected=(bin/64bit/obs-psn-party.dll data/locale/en-US.ini uninstall.exe)
tools/windows/in-root.sh wineboot -i >/dev/null 2>&1 || true
rm -rf "$plugin_dir"
tools/windows/in-root.sh wine "Z:${PWD//\//\\}\\target\\windows\\$name-installer.exe" /S
# wine can hand back before the installer's own process is done (seen once right after the
# wine demo): wait for every wine process of the prefix to end, then for the files.
tools/windows/in-root.sh /usr/lib/x86_64-linux-gnu/wine/wineserver -w || true
for _ in $(seq 1 60); do
  [ -f "$plugin_dir/uninstall.exe" ] && break
  sleep 0.5
done
for f in "${expected[@]}"; do
  [ -f "$plugin_dir/$f" ] || fail "the silent install did not put $f into C:\\ProgramData\\obs-studio\\plugins\\obs-psn-party"
done
cmp -s "$plugin_dir/bin/64bit/obs-psn-party.dll" target/windows/obs-psn-party.dll || fail "the installed DLL differs"
tools/windows/in-root.sh wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\obs-psn-party' /v DisplayVersion \
  | tr -d '\r' | grep -q "$version" || fail "no uninstall entry for version $version"
say "silent install: ${expected[*]} in C:\\ProgramData\\obs-studio\\plugins\\obs-psn-party, uninstall entry $version"

# The uninstaller copies itself away and returns at once (NSIS): wait for the files to go.
tools/windows/in-root.sh wine 'C:\ProgramData\obs-studio\plugins\obs-psn-party\uninstall.exe' /S
for _ in $(seq 1 120); do
  [ -e "$plugin_dir" ] || break
  sleep 0.5
done
[ ! -e "$plugin_dir" ] || fail "the silent uninstall left: $(cd "$plugin_dir" && find . -type f | tr '\n' ' ')"
if tools/windows/in-root.sh wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\obs-psn-party' >/dev/null 2>&1; then
  fail "the uninstall entry is still there"
fi
say "silent uninstall: every file and the uninstall entry gone"

# The zip holds exactly the installer's files (less the uninstaller).
zip_list="$(tools/windows/in-root.sh unzip -Z1 "target/windows/$name.zip" | grep -v '/$' | sort)"
want="$(printf 'obs-psn-party/%s\n' bin/64bit/obs-psn-party.dll $(cd data && find . -type f | sed 's|^\./|data/|') | sort)"
[ "$zip_list" = "$want" ] || fail "the zip holds: $zip_list"
say "done in $(($(date +%s) - start)) s"
