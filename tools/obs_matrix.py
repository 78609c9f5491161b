#!/usr/bin/python3
"""What tools/obs-matrix.sh does inside a running OBS, over obs-websocket and psn-sim's control API.

    obs_matrix.py drive --port P --sim URL --out DIR     (the NPSSO in $OBS_MATRIX_NPSSO)
    obs_matrix.py tracks --out DIR                       (after ffmpeg extracted the tracks)

`drive`, in a running OBS whose psn-sim party of four talking members is up:
  kinds     both source kinds listed (GetInputKindList);
  members   a PSN Party source signed in through its "Sign in" button (PressInputPropertiesButton,
            the NPSSO put into its settings as the dialog does), four PSN Party Member sources by
            slot, every member's voice connected, each source audible (InputVolumeMeters);
  record    the members on tracks 2-5 and the party source on track 1 (SetInputAudioTracks), the
            Advanced output recording tracks 1-5 to MKV (SetProfileParameter), 20 s recorded;
  dialog    the PSN Party source's properties opened and saved as a PNG (xdotool, import).
It writes DIR/drive.json: each check's result, which member each slot carries, the recording.
`tracks` reads DIR/track-<n>.f32 (mono float, 48 kHz) and checks each member's track carries
that member's tone and not the others' (as the demo does), and the mix all four.
Uses Debian's python3-websockets and python3-numpy (hence /usr/bin/python3).
"""
import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obs_ws import Session  # noqa: E402

MEMBERS = 4
RECORD_SECONDS = 20
AUDIBLE_DB = -40.0  # a talking member's peak in their source is around -10 dBFS
SEPARATION_DB = 30.0  # own tone above every other member's in a member's track (the tests' bar)


def sim(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/_sim/{path}", data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def field(record, camel, snake):
    return record[camel] if camel in record else record[snake]


def db(x):
    return 20 * math.log10(x) if x > 0 else -200.0


async def peaks(obs, names, seconds):
    """The highest peak (dBFS, any channel) of each input over `seconds` of meter events."""
    obs.drop_events()
    best = {name: -200.0 for name in names}
    over = {name: [] for name in names}  # readings above full scale (kept for the report)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    events = 0
    while loop.time() < deadline:
        event = await obs.next_event("InputVolumeMeters", timeout=max(0.05, deadline - loop.time()))
        if event is None:
            continue
        events += 1
        for entry in event["eventData"]["inputs"]:
            name = entry.get("inputName")
            if name in best:
                for channel in entry.get("inputLevelsMul", []):
                    # Magnitude 0 is no measurement: obs-websocket then reports whatever peak it
                    # holds (seen: 2e29 with magnitude 0.0 in OBS 29 and 30, for an input whose
                    # audio had not reached the meter yet). Real audio always has a magnitude.
                    if channel[0] <= 0.0:
                        continue
                    best[name] = max(best[name], db(channel[1]))
                    if channel[1] > 1.0:
                        over[name].append(channel)
    if events == 0:
        raise RuntimeError("no InputVolumeMeters events")
    over = {n: v for n, v in over.items() if v}
    if over:
        raise RuntimeError(f"meter readings above full scale in {events} events: {json.dumps(over)[:1500]}")
    return best


async def wait_connected(base, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        voices = sim(base, "GET", "voice")
        if sum(field(v, "state", "state") == "connected" for v in voices) == MEMBERS:
            return voices
        await asyncio.sleep(0.5)
    raise RuntimeError(f"not every member connected within {timeout} s: {[field(v, 'state', 'state') for v in sim(base, 'GET', 'voice')]}")


def screenshot(name, path):
    """The properties window of `name`, found by its title, saved as a PNG."""
    title = f"^Properties for '{name}'$"
    wid = ""
    for _ in range(50):
        found = subprocess.run(["xdotool", "search", "--name", title], capture_output=True, text=True).stdout.split()
        if found:
            wid = found[-1]
            break
        time.sleep(0.2)
    if not wid:
        raise RuntimeError(f"no window titled {title}")
    time.sleep(1)  # Qt may replace the first window it maps; take the one that stays
    wid = subprocess.run(["xdotool", "search", "--name", title], capture_output=True, text=True).stdout.split()[-1]
    subprocess.run(["xdotool", "windowmove", wid, "0", "0", "windowsize", wid, "820", "1000"], capture_output=True)
    time.sleep(2)
    subprocess.run(["import", "-window", wid, path], check=True)
    return wid


async def drive(args):
    npsso = os.environ["OBS_MATRIX_NPSSO"]
    results = {}
    report = {"checks": results}

    def record_check(name, ok, detail):
        results[name] = {"ok": bool(ok), "detail": detail}
        print(f"obs-matrix:   {name}: {'ok' if ok else 'FAILED'}: {detail}", flush=True)

    async with Session(args.port, events=Session.INPUT_VOLUME_METERS) as obs:
        version = await obs.request("GetVersion")
        report["obs_version"] = version.get("obsVersion")
        report["obs_websocket_version"] = version.get("obsWebSocketVersion")

        kinds = (await obs.request("GetInputKindList", {"unversioned": True}))["inputKinds"]
        ok = "psn_party" in kinds and "psn_party_member" in kinds
        record_check("kinds", ok, "psn_party and psn_party_member listed" if ok else f"listed: {kinds}")

        # Slots are given in the order members joined (the order psn-sim was given them);
        # which member each source really carries is checked by tone in the recording.
        report["slots"] = {online: {"slot": k, "tone_hz": hz} for k, (online, hz) in enumerate(args.members, 1)}

        # --- check 2: signed in through the properties, each member in their own source -----
        try:
            scene = (await obs.request("GetCurrentProgramScene"))["currentProgramSceneName"]
            await obs.request("CreateInput", {"sceneName": scene, "inputName": "PSN Party", "inputKind": "psn_party", "inputSettings": {}})
            names = [f"Member {k}" for k in range(1, MEMBERS + 1)]
            for k, name in enumerate(names, 1):
                await obs.request("CreateInput", {"sceneName": scene, "inputName": name, "inputKind": "psn_party_member", "inputSettings": {"member": f"slot:{k}"}})
            # Let OBS's scene saves after the new sources pass first, as they have long passed
            # when a user has pasted an NPSSO (before a8ddfc3 a save could take an NPSSO set
            # in that moment out of the settings: docs/decisions/0007).
            await asyncio.sleep(2)
            # What the dialog does when the NPSSO is pasted, then the "Sign in" button.
            await obs.request("SetInputSettings", {"inputName": "PSN Party", "inputSettings": {"npsso": npsso}})
            await obs.request("PressInputPropertiesButton", {"inputName": "PSN Party", "propertyName": "sign_in"})
            left = (await obs.request("GetInputSettings", {"inputName": "PSN Party"}))["inputSettings"]
            if left.get("npsso"):
                raise RuntimeError("the NPSSO is still in the source's settings after signing in")
            for _ in range(100):  # the sign-in runs on the plugin's runtime, off OBS's thread
                counts = sim(args.sim, "GET", "counts")
                if counts.get("authorize"):
                    break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"pressing Sign in did not sign in (psn-sim saw no authorize request in 20 s: {counts})")
            voices = await wait_connected(args.sim, 60)
            await asyncio.sleep(2)
            levels = await peaks(obs, ["PSN Party"] + names, 2.0)
            quiet = [n for n in ["PSN Party"] + names if levels[n] < AUDIBLE_DB]
            if quiet:
                raise RuntimeError(f"not audible: {quiet} ({levels})")
            slot_of = report["slots"]
            for online, v in slot_of.items():
                voice = next(x for x in voices if field(x, "onlineId", "online_id") == online)
                if abs(field(voice, "toneHz", "tone_hz") - v["tone_hz"]) > 1:
                    raise RuntimeError(f"psn-sim gave {online} {field(voice, 'toneHz', 'tone_hz')} Hz, not {v['tone_hz']}")
            summary = ", ".join(f"slot:{v['slot']}={m} {levels[names[v['slot'] - 1]]:.1f} dB" for m, v in sorted(slot_of.items(), key=lambda kv: kv[1]["slot"]))
            record_check("members", True, f"signed in by the Sign in button, NPSSO gone from the settings; 4 connected; peaks {summary}; mix {levels['PSN Party']:.1f} dB")
        except Exception as e:  # every failure is a FAIL line, the later checks still run
            record_check("members", False, str(e))
            names = [f"Member {k}" for k in range(1, MEMBERS + 1)]

        # --- check 3: the recording -----------------------------------------------------------
        try:
            all_off = {str(t): False for t in range(1, 7)}
            await obs.request("SetInputAudioTracks", {"inputName": "PSN Party", "inputAudioTracks": {**all_off, "1": True}})
            for k, name in enumerate(names, 1):
                await obs.request("SetInputAudioTracks", {"inputName": name, "inputAudioTracks": {**all_off, str(k + 1): True}})
            tracks = {n: (await obs.request("GetInputAudioTracks", {"inputName": n}))["inputAudioTracks"] for n in ["PSN Party"] + names}
            report["input_tracks"] = tracks
            # Tracks 1-5 (bit mask 31) to MKV. OBS 30 moved the format to RecFormat2; set both.
            for key, value in (("RecTracks", "31"), ("RecFormat", "mkv"), ("RecFormat2", "mkv")):
                await obs.request("SetProfileParameter", {"parameterCategory": "AdvOut", "parameterName": key, "parameterValue": value})
            await obs.request("StartRecord")
            started = time.monotonic()
            await asyncio.sleep(RECORD_SECONDS)
            stopped = await obs.request("StopRecord")
            path = stopped.get("outputPath")
            for _ in range(100):
                if not (await obs.request("GetRecordStatus"))["outputActive"]:
                    break
                await asyncio.sleep(0.1)
            report["recording"] = {"path": path, "seconds": round(time.monotonic() - started, 1)}
            record_check("record", bool(path), f"{report['recording']['seconds']} s recorded to {path}")
        except Exception as e:
            record_check("record", False, str(e))

        # --- check 4: the properties dialog ------------------------------------------------------
        try:
            await obs.request("OpenInputPropertiesDialog", {"inputName": "PSN Party"})
            shot = os.path.join(args.out, "props-party.png")
            screenshot("PSN Party", shot)
            # A drawn dialog has text and widgets: many colours (an empty window has a few).
            colours = int(subprocess.run(["identify", "-format", "%k", shot], capture_output=True, text=True, check=True).stdout)
            record_check("dialog", colours >= 100, f"{shot} ({colours} colours)")
        except Exception as e:
            record_check("dialog", False, str(e))

    with open(os.path.join(args.out, "drive.json"), "w") as f:
        json.dump(report, f, indent=1)


def band_db(spectrum, freqs, hz, width=15.0):
    import numpy as np

    band = (freqs > hz - width) & (freqs < hz + width)
    return 10 * np.log10(np.sum(spectrum[band]) + 1e-20)


def tracks(args):
    """Each member's track carries their tone and not the others'; the mix carries all four."""
    import numpy as np

    with open(os.path.join(args.out, "drive.json")) as f:
        report = json.load(f)
    slots = report.get("slots") or {}
    if len(slots) != MEMBERS:
        print("obs-matrix:   tracks: FAILED: no slot-to-member map from the members check")
        return 1
    tones = {v["slot"]: (m, v["tone_hz"]) for m, v in slots.items()}
    failures, rows = [], []

    def load(n):
        samples = np.fromfile(os.path.join(args.out, f"track-{n}.f32"), dtype=np.float32)
        samples = samples[48000 * 2 : -48000] if samples.size > 48000 * 6 else samples  # skip the edges
        window = np.hanning(samples.size)
        spectrum = np.abs(np.fft.rfft(samples * window)) ** 2
        return samples, spectrum, np.fft.rfftfreq(samples.size, 1 / 48000)

    for slot in range(1, MEMBERS + 1):
        member, hz = tones[slot]
        samples, spectrum, freqs = load(slot + 1)
        own = band_db(spectrum, freqs, hz)
        others = [band_db(spectrum, freqs, tones[s][1]) for s in tones if s != slot]
        margin = own - max(others)
        peak = db(float(np.max(np.abs(samples)))) if samples.size else -200.0
        rows.append(f"track {slot + 1}: {member} {hz:.0f} Hz peak {peak:.1f} dB own/others {margin:.1f} dB")
        if samples.size < 48000 * 10 or peak < AUDIBLE_DB or margin < SEPARATION_DB:
            failures.append(rows[-1])
    samples, spectrum, freqs = load(1)
    mix = [band_db(spectrum, freqs, tones[s][1]) for s in tones]
    spread = max(mix) - min(mix)
    rows.append(f"track 1 (mix): the four tones within {spread:.1f} dB of each other")
    if samples.size < 48000 * 10 or spread > 12:
        failures.append(rows[-1])
    with open(os.path.join(args.out, "tracks.txt"), "w") as f:
        f.write("\n".join(rows) + "\n")
    for row in rows:
        print(f"obs-matrix:     {row}")
    if failures:
        print(f"obs-matrix:   tracks: FAILED: {'; '.join(failures)}")
        return 1
    print("obs-matrix:   tracks: ok: each member's track carries only their tone, the mix all four")
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["drive", "tracks"])
    parser.add_argument("--port", type=int, default=4455)
    parser.add_argument("--sim")
    parser.add_argument("--out", required=True)
    parser.add_argument("--members", default="", help="ONLINE_ID:TONE_HZ,... in the order they joined")
    args = parser.parse_args()
    args.members = [(m.split(":")[0], float(m.split(":")[1])) for m in args.members.split(",") if m]
    if args.what == "drive":
        asyncio.run(drive(args))
        return 0
    return tracks(args)


if __name__ == "__main__":
    sys.exit(main())
