#!/usr/bin/env bash
# The plugin in the OBS that users run: for each Debian release, that release's own OBS Studio
# (Debian 12: 29.0.2, Debian 13: 30.2.3, sid: 32.2.x) in a debootstrap root, the project's .deb
# (built once, here, against the 29 headers) installed with apt, OBS started under Xvfb with
# obs-websocket on, psn-sim running a party of four talking members. One PASS/FAIL line per
# release and check:
#   1 load     the module logs that it loaded; obs-websocket lists both source kinds
#   2 members  a PSN Party source signed in by its "Sign in" button; four PSN Party Member sources
#              by slot, every member connected, each source audible (InputVolumeMeters)
#   3 record   members on tracks 2-5, the party on track 1, 20 s to MKV: ffprobe finds six streams
#              (video + tracks 1-5), each member's track carries their tone and not the others'
#   4 dialog   the PSN Party properties dialog opened and saved as a PNG
#   5 quit     OBS quits on SIGINT without a crash and "Number of memory leaks: 0"; time printed
# Everything runs in a network namespace of its own (loopback only). Roots are cached under
# /var/cache/obs-psn-party/obs-roots (tools/obs-root.sh); each run works in an overlay over them.
#   tools/obs-matrix.sh [--write] [SUITE...]    (default: bookworm trixie sid)
# --write puts the results into docs/install.md's "Tested with" table. Needs root.
# Results and screenshots: target/obs-matrix/<suite>/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

write_docs=0
suites=()
for arg in "$@"; do
  case "$arg" in
    --write) write_docs=1 ;;
    bookworm | trixie | sid) suites+=("$arg") ;;
    *) echo "usage: $0 [--write] [bookworm|trixie|sid ...]" >&2; exit 2 ;;
  esac
done
((${#suites[@]})) || suites=(bookworm trixie sid)

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "obs-matrix: needs root (debootstrap, chroot, mounts, netns)" >&2; exit 1; }
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,DEB_MIRROR,OBS_ROOTS,OBS_MATRIX_DEB,PSN_PARTY_SUITE_ARTEFACTS,PSN_SIM_SECRET_LEDGER,PSN_PARTY_TRACE "$0" "$@"
fi
# shellcheck source=tools/obs-root.sh
source tools/obs-root.sh

say() { echo "obs-matrix: $*"; }
out="$repo/target/obs-matrix"
mkdir -p "$out"

# --- built once, on this machine --------------------------------------------------------------
# The README's commands (as tools/deb-check.sh runs them); OBS_MATRIX_DEB=<file> tests that
# .deb instead.
t=$(date +%s)
if [ -n "${OBS_MATRIX_DEB:-}" ]; then
  deb="$(realpath "$OBS_MATRIX_DEB")"
else
  rm -f target/cmake-deb/obs-psn-party_*_amd64.deb
  cargo build --release --lib -q
  cmake -S cmake -B target/cmake-deb -DPLUGIN_BINARY=$PWD/target/release/libobs_psn_party.so -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
  (cd target/cmake-deb && cpack) >/dev/null
  deb="$(ls -t target/cmake-deb/obs-psn-party_*_amd64.deb | head -n1)"
fi
version="$(dpkg-deb -f "$deb" Version)"
cargo build -p psn-sim -q
say "built $deb and psn-sim in $(($(date +%s) - t)) s"

# --- one release ----------------------------------------------------------------------------------
declare -A verdict=() obs_version=()
results=()
line() { # suite, check, PASS|FAIL, detail
  local l
  l="$(printf '%-4s  %-8s  OBS %-8s  %-8s %s' "$3" "$1" "${obs_version[$1]:-?}" "$2" "$4")"
  results+=("$l")
  echo "obs-matrix: $l"
  [ "$3" = PASS ] || verdict[$1]=FAIL
}

netns=""
sim_pid=""
cleanup() {
  [ -z "${OBS_PID:-}" ] || { kill -9 "$OBS_PID" 2>/dev/null || true; wait "$OBS_PID" 2>/dev/null || true; }
  OBS_PID=""
  [ -z "$sim_pid" ] || { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
  sim_pid=""
  stop_xvfb
  root_unmount_all
  [ -z "$netns" ] || ip netns delete "$netns" 2>/dev/null || true
  netns=""
  [ -z "${scratch:-}" ] || rm -rf --one-file-system "$scratch"
  scratch=""
}
trap cleanup EXIT

run_suite() {
  local suite="$1" t0 t_root dir cached root log port=4455 sim_port=47000
  dir="$out/$suite"
  rm -rf "$dir"
  mkdir -p "$dir"
  verdict[$suite]=PASS
  t0=$(date +%s)
  cached="$(ensure_root "$suite" obs)"
  t_root=$(($(date +%s) - t0))
  obs_version[$suite]="$(in_root "$cached" dpkg-query -W -f='${Version}' obs-studio | sed 's/[+~-].*//')"
  say "== $suite: OBS ${obs_version[$suite]} (obs-studio $(in_root "$cached" dpkg-query -W -f='${Version}' obs-studio), $(in_root "$cached" dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 'libobs0*' | awk '$1 == "ii" {print $2 " " $3}')); root ready in $t_root s"

  scratch="$(mktemp -d /var/tmp/obs-matrix-"$suite".XXXXXX)"
  root_overlay "$cached" "$scratch"
  root="$OVERLAY_ROOT"
  root_mount_standard "$root" "$suite"
  # The .deb, installed with apt as a user installs it (libobs0 is there already: no download).
  cp "$deb" "$root/tmp/"
  if ! in_root "$root" sh -c 'apt-get install -y -qq /tmp/obs-psn-party_*_amd64.deb' >"$dir/apt-install.log" 2>&1; then
    line "$suite" load FAIL "apt-get could not install the .deb (see $dir/apt-install.log)"
    cleanup
    return
  fi

  # psn-sim and OBS in a network namespace of their own: loopback only, fixed ports, no clash
  # with anything else on this machine.
  netns="obs-matrix-$$"
  make_netns "$netns"
  ip netns exec "$netns" env ${PSN_SIM_SECRET_LEDGER:+PSN_SIM_SECRET_LEDGER="$PSN_SIM_SECRET_LEDGER"} \
    target/debug/psn-sim --port "$sim_port" --party "Matrix night" \
    --member ann_ps:PS5:300 --member ben_ps:PS5:470 --member cat_ps:PS4:730 --member dan_ps:PS5:1030 \
    >"$scratch/sim.txt" 2>&1 &
  sim_pid=$!
  for _ in $(seq 1 300); do grep -q PSN_NPSSO "$scratch/sim.txt" 2>/dev/null && break; sleep 0.1; done
  grep -q PSN_NPSSO "$scratch/sim.txt" || { line "$suite" load FAIL "psn-sim did not start: $(tail -n 3 "$scratch/sim.txt")"; cleanup; return; }

  write_obs_profile "$root" "$port"
  # Where PSN is, the client credentials and (psn-sim being on loopback) PSN_VOICE_BIND: the
  # plugin's .env, as a developer writes it from what psn-sim prints. The
  # NPSSO goes in through the properties (obs_matrix.py).
  mkdir -p "$root/root/.config/obs-studio/plugin_config/obs-psn-party"
  grep -E '^PSN_(AUTH|API|PUSH|WEB)_BASE_URL=|^PSN_CLIENT_(ID|SECRET)=|^PSN_VOICE_BIND=|^PSN_STUN_SERVERS=' "$scratch/sim.txt" \
    >"$root/root/.config/obs-studio/plugin_config/obs-psn-party/.env"
  start_xvfb "$root"
  local t_start
  t_start=$(date +%s%N)
  start_obs "$root" "$netns" "$dir/obs-stdout.txt" ${PSN_PARTY_TRACE:+PSN_PARTY_TRACE=1}
  local up=0
  for _ in $(seq 1 240); do
    if ip netns exec "$netns" /usr/bin/python3 tools/obs_ws.py --port "$port" GetVersion >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$OBS_PID" 2>/dev/null || break
    sleep 0.5
  done
  say "$suite: OBS up (obs-websocket answering) after $((($(date +%s%N) - t_start) / 1000000)) ms"
  log="$(obs_log_of "$root")"
  if [ "$up" = 0 ]; then
    line "$suite" load FAIL "OBS did not come up (obs-websocket silent; stdout: $(tail -n 2 "$dir/obs-stdout.txt" | tr '\n' ' '))"
    quit_obs
    cp "$log" "$dir/obs-log.txt" 2>/dev/null || true
    cleanup
    return
  fi

  # 1, 2, 4 and the recording itself: over obs-websocket.
  ip netns exec "$netns" env OBS_MATRIX_NPSSO="$(sed -n 's/^PSN_NPSSO=//p' "$scratch/sim.txt" | head -n1)" \
    DISPLAY="$XVFB_DISPLAY" /usr/bin/python3 tools/obs_matrix.py drive --port "$port" \
    --sim "http://127.0.0.1:$sim_port" --members ann_ps:300,ben_ps:470,cat_ps:730,dan_ps:1030 --out "$dir" 2>&1 | tee "$dir/drive.txt" || true

  # 5: quit as a user does.
  quit_obs
  log="$(obs_log_of "$root")"
  cp "$log" "$dir/obs-log.txt"
  check() { /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["checks"].get(sys.argv[2],{}); print(("PASS" if c.get("ok") else "FAIL")+"\t"+c.get("detail","not run"))' "$dir/drive.json" "$1" 2>/dev/null || printf 'FAIL\tobs_matrix.py wrote no results\n'; }
  local r d
  local running
  running="$(sed -n 's/.*\[obs-psn-party\] version .* loaded (.*running in libobs \([0-9.]*\)).*/\1/p' "$log" | head -n1)"
  if grep -q "\[obs-psn-party\] version $version loaded" "$log" && grep -q "^.*:     obs-psn-party.so$" "$log"; then
    IFS=$'\t' read -r r d <<<"$(check kinds)"
    # The module sees the libobs it runs in (obs_get_version): the release's own.
    [ "$running" = "${obs_version[$suite]}" ] || { r=FAIL; d="the module reports libobs '${running}', not ${obs_version[$suite]}; $d"; }
    line "$suite" load "$r" "version $version loaded from /usr/lib/x86_64-linux-gnu/obs-plugins in libobs $running; $d"
  else
    line "$suite" load FAIL "no '[obs-psn-party] version $version loaded' in OBS's log"
  fi
  IFS=$'\t' read -r r d <<<"$(check members)"
  line "$suite" members "$r" "$d"
  check_recording "$suite" "$root" "$dir"
  IFS=$'\t' read -r r d <<<"$(check dialog)"
  line "$suite" dialog "$r" "$d"
  local leaks crash=""
  leaks="$(sed -n 's/.*Number of memory leaks: \([0-9]*\)$/\1/p' "$log" | tail -n1)"
  grep -qi "crash\|segmentation\|Aborted" "$dir/obs-stdout.txt" "$log" && crash="; the log names a crash"
  if [ "$OBS_EXIT" = 0 ] && [ "$leaks" = 0 ] && [ -z "$crash" ]; then
    line "$suite" quit PASS "exit 0 on SIGINT in $OBS_SHUTDOWN_MS ms, 0 memory leaks"
  else
    line "$suite" quit FAIL "exit ${OBS_EXIT}, memory leaks ${leaks:-not reported}${crash}; shutdown $OBS_SHUTDOWN_MS ms"
  fi

  keep_artefacts "$suite" "$root" "$dir"
  cleanup
  say "$suite: $(($(date +%s) - t0)) s in all (root $t_root s)"
}

# 3: what OBS wrote, read by that release's own ffprobe/ffmpeg.
check_recording() { # suite, root, dir
  local suite="$1" root="$2" dir="$3" mkv streams audio
  mkv="$(ls -t "$root"/tmp/obs-recordings/*.mkv 2>/dev/null | head -n1 || true)"
  if [ -z "$mkv" ]; then
    line "$suite" record FAIL "no MKV in /tmp/obs-recordings ($(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checks"].get("record",{}).get("detail",""))' "$dir/drive.json" 2>/dev/null))"
    return
  fi
  mkv="/tmp/obs-recordings/$(basename "$mkv")"
  in_root "$root" ffprobe -v error -show_entries stream=index,codec_type,codec_name,channels -of csv=p=0 "$mkv" >"$dir/ffprobe.txt" 2>&1 || true
  streams="$(grep -c . "$dir/ffprobe.txt" || true)"
  audio="$(grep -c ',audio' "$dir/ffprobe.txt" || true)"
  for n in 1 2 3 4 5; do
    in_root "$root" ffmpeg -v error -y -i "$mkv" -map "0:a:$((n - 1))" -ac 1 -ar 48000 -f f32le "/tmp/track-$n.f32" 2>>"$dir/ffmpeg.txt" || true
    mv "$root/tmp/track-$n.f32" "$dir/" 2>/dev/null || true
  done
  local tracks_ok=0
  /usr/bin/python3 tools/obs_matrix.py tracks --out "$dir" | tee "$dir/tracks-check.txt" && tracks_ok=1
  rm -f "$dir"/track-*.f32
  if [ "$streams" = 6 ] && [ "$audio" = 5 ] && [ "$tracks_ok" = 1 ]; then
    line "$suite" record PASS "six streams (video + audio tracks 1-5, $(grep ',audio' "$dir/ffprobe.txt" | cut -d, -f2 | sort -u | tr '\n' ' ')); $(grep -c 'own/others' "$dir/tracks.txt") members each alone on their track ($(sed -n 's/.*own\/others \([0-9.-]*\) dB/\1/p' "$dir/tracks.txt" | sort -n | head -n1) dB at least), the mix on track 1"
  else
    line "$suite" record FAIL "ffprobe: $streams streams, $audio audio ($(tr '\n' ' ' <"$dir/ffprobe.txt")); tracks: $(tail -n1 "$dir/tracks-check.txt")"
  fi
}

# Under tools/test.sh: OBS's log, scene collection and the plugin's trace go to the secret scan.
keep_artefacts() { # suite, root, dir
  local config="$2/root/.config/obs-studio"
  cp -r "$config/basic" "$3/basic" 2>/dev/null || true
  cp "$config/plugin_config/obs-psn-party/psn-trace.log" "$3/" 2>/dev/null || true
  [ -n "${PSN_PARTY_SUITE_ARTEFACTS:-}" ] || return 0
  mkdir -p "$PSN_PARTY_SUITE_ARTEFACTS/obs-matrix/$1"
  cp -r "$3/obs-log.txt" "$3/obs-stdout.txt" "$3/basic" "$3/drive.txt" "$PSN_PARTY_SUITE_ARTEFACTS/obs-matrix/$1/" 2>/dev/null || true
  cp "$3/psn-trace.log" "$PSN_PARTY_SUITE_ARTEFACTS/obs-matrix/$1/" 2>/dev/null || true
}

started=$(date +%s)
for suite in "${suites[@]}"; do run_suite "$suite"; done

echo
say "results (obs-psn-party $version, commit $(git rev-parse --short HEAD)):"
printf '%s\n' "${results[@]}" | sed 's/^/obs-matrix: /'

if [ "$write_docs" = 1 ]; then
  rows=()
  for suite in "${suites[@]}"; do
    case "$suite" in bookworm) rel="Debian 12 (bookworm)" ;; trixie) rel="Debian 13 (trixie)" ;; sid) rel="Debian sid" ;; esac
    rows+=("$suite|${obs_version[$suite]:-?}|$rel|$(date -u +%F)|$(git rev-parse --short HEAD)|${verdict[$suite]}")
  done
  /usr/bin/python3 - docs/install.md "${rows[@]}" <<'PY'
import re, sys
path, rows = sys.argv[1], [r.split("|") for r in sys.argv[2:]]
text = open(path).read()
begin, end = "<!-- tested-with:begin -->", "<!-- tested-with:end -->"
head, rest = text.split(begin)
table, tail = rest.split(end)
kept = {}
for l in table.strip().splitlines()[2:]:
    cells = [c.strip() for c in l.strip("|").split("|")]
    kept[cells[1]] = cells
for suite, obs, rel, date, commit, result in rows:
    kept[rel] = [obs, rel, date, commit, f"{result} (`tools/obs-matrix.sh {suite}`)"]
order = ["Debian 12 (bookworm)", "Debian 13 (trixie)", "Debian sid"]
lines = ["| OBS | Debian release | date | commit | result |", "|---|---|---|---|---|"]
lines += ["| " + " | ".join(kept[r]) + " |" for r in order if r in kept]
open(path, "w").write(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)
PY
  say "docs/install.md: Tested with table updated"
fi

for suite in "${suites[@]}"; do [ "${verdict[$suite]}" = PASS ] || exit 1; done
say "ok: ${suites[*]} ($(($(date +%s) - started)) s)"
