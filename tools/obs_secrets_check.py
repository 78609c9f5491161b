#!/usr/bin/python3
"""The checks of tools/obs-secrets-check.sh, inside Xvfb: starts real OBS, drives it over
obs-websocket (subscribed to every event) and through its properties dialog (xdotool), and
checks that the NPSSO and the client secret never appear in an event, a GetInputSettings
answer, the saved scene collection, an undo/redo entry or OBS's log, while "Sign in" still
signs in to psn-sim from what was typed. Exits 1 naming the first check that failed (never
the secret). Uses Debian's python3-websockets (hence /usr/bin/python3). Loopback only.
"""
import argparse
import asyncio
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import websockets

INPUT = "PSN Party"
# Typed into the party link field with the secrets: shows that typing, Undo and Redo took effect.
MARKER = "undo-marker-42"
# obs-websocket 5: EventSubscription::All (every non-high-volume category, Inputs included).
ALL_EVENTS = (1 << 11) - 1


class Failed(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Failed(what)
    print(f"  ok: {what}")


class Obs:
    """One obs-websocket connection: requests, and every event kept as JSON text."""

    def __init__(self, ws):
        self.ws = ws
        self.events = []
        self.answers = {}
        self.next_id = 0
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        async for text in self.ws:
            message = json.loads(text)
            if message.get("op") == 5:
                self.events.append(text)
            elif message.get("op") == 7:
                self.answers[message["d"]["requestId"]] = message["d"]

    async def call(self, request_type, data=None):
        self.next_id += 1
        rid = str(self.next_id)
        await self.ws.send(json.dumps({"op": 6, "d": {"requestType": request_type, "requestId": rid,
                                                       "requestData": data or {}}}))
        for _ in range(200):
            if rid in self.answers:
                answer = self.answers.pop(rid)
                if not answer["requestStatus"].get("result"):
                    raise Failed(f"{request_type}: {answer['requestStatus'].get('comment')}")
                return answer.get("responseData", {})
            await asyncio.sleep(0.05)
        raise Failed(f"{request_type}: no answer in 10 s")


async def connect(port):
    for _ in range(120):
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}", subprotocols=["obswebsocket.json"])
            break
        except OSError:
            await asyncio.sleep(0.5)
    else:
        raise Failed("obs-websocket answers within 60 s")
    hello = json.loads(await ws.recv())
    await ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": ALL_EVENTS}}))
    identified = json.loads(await ws.recv())
    if identified.get("op") != 2:
        raise Failed(f"obs-websocket identifies us: {identified}")
    print(f"  obs-websocket {hello['d'].get('obsWebSocketVersion')}, OBS {hello['d'].get('obsStudioVersion')}")
    return Obs(ws)


def sim_counts(sim):
    with urllib.request.urlopen(f"{sim}/_sim/counts", timeout=5) as r:
        return json.load(r)


def sim_count(sim, name):
    return sim_counts(sim).get(name, 0)


async def wait_until(what, predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise Failed(what)


def xdo(*args):
    return subprocess.run(["xdotool", *args], check=True, capture_output=True, text=True).stdout.strip()


def screenshot(shots, name):
    subprocess.run(["import", "-window", "root", os.path.join(shots, name)], check=False)


class Secrets:
    def __init__(self, args):
        self.values = {"the NPSSO": args.npsso, "the client secret": args.client_secret}

    def absent(self, text, where):
        for name, value in self.values.items():
            check(value not in text, f"{name} is not in {where}")


async def run(args):
    secrets = Secrets(args)
    obs = await connect(args.port)
    scene = (await obs.call("GetSceneList"))["currentProgramSceneName"]

    async def settings_text():
        return json.dumps(await obs.call("GetInputSettings", {"inputName": INPUT}))

    async def signed_in_after(button, counter, before):
        await obs.call("PressInputPropertiesButton", {"inputName": INPUT, "propertyName": button})

        async def done():
            return sim_count(args.sim, counter) > before
        await wait_until(f"{button} reaches psn-sim ({counter})", done)

    print("obs-websocket: CreateInput with the NPSSO and client secret in its settings")
    await obs.call("CreateInput", {"sceneName": scene, "inputName": INPUT, "inputKind": "psn_party",
                                   "inputSettings": {"npsso": args.npsso, "client_id": args.client_id,
                                                     "client_secret": args.client_secret}})
    secrets.absent(await settings_text(), "GetInputSettings after CreateInput")

    print("obs-websocket: SetInputSettings with the NPSSO and client secret")
    await obs.call("SetInputSettings", {"inputName": INPUT,
                                        "inputSettings": {"npsso": args.npsso, "client_secret": args.client_secret}})
    secrets.absent(await settings_text(), "GetInputSettings right after SetInputSettings")
    await asyncio.sleep(2)
    secrets.absent(await settings_text(), "GetInputSettings 2 s after SetInputSettings")
    authorized = sim_count(args.sim, "authorize")
    joins = sim_count(args.sim, "join")
    await signed_in_after("sign_in", "authorize", authorized)
    print("  ok: Sign in signed in to psn-sim from the settings obs-websocket set")

    async def joined():
        return sim_count(args.sim, "join") > joins
    await wait_until("the plugin joins the party", joined)
    leaves = sim_count(args.sim, "leave")
    await signed_in_after("sign_out", "leave", leaves)
    await asyncio.sleep(1)

    print("properties dialog: typing the NPSSO, the client secret and a party link (xdotool)")
    await obs.call("OpenInputPropertiesDialog", {"inputName": INPUT})
    window = None
    for _ in range(50):
        found = subprocess.run(["xdotool", "search", "--name", f"Properties for '{INPUT}'"],
                               capture_output=True, text=True).stdout.split()
        if found:
            window = found[0]
            break
        await asyncio.sleep(0.2)
    check(window is not None, "the properties dialog opened")
    await asyncio.sleep(1.5)
    geometry = xdo("getwindowgeometry", window)
    print("  " + geometry.replace("\n", "; "))
    screenshot(args.shots, "obs-secrets-dialog-empty.png")
    if args.explore:
        return

    def type_into(x, y, text):
        # Window-relative spots of the fields in a 900x1350 dialog (global.ini), top-aligned.
        xdo("mousemove", "--window", window, str(x), str(y), "click", "1")
        time.sleep(0.3)
        xdo("type", "--delay", "40", text)
        time.sleep(0.3)

    def type_secrets():
        # Bottom first: the NPSSO, once held, adds a line above the rest at the next redraw.
        type_into(457, 1065, args.client_secret)
        type_into(440, 129, args.npsso)

    type_into(495, 474, MARKER)
    type_secrets()
    await asyncio.sleep(0.5)
    screenshot(args.shots, "obs-secrets-dialog-typed.png")
    secrets.absent(await settings_text(), "GetInputSettings while the dialog is open")
    check(MARKER in await settings_text(), "what was typed reached the settings (the party link)")
    xdo("key", "Return")  # the dialog's default button, OK

    async def opened():
        return bool(subprocess.run(["xdotool", "search", "--name", f"Properties for '{INPUT}'"],
                                   capture_output=True, text=True).stdout.split())

    async def closed():
        return not await opened()
    await wait_until("OK closes the dialog", closed, 5)
    await asyncio.sleep(1)
    secrets.absent(await settings_text(), "GetInputSettings after OK")
    secrets.absent(scene_files(args.home), "the scene collection OBS saved when the dialog closed")
    authorized = sim_count(args.sim, "authorize")
    joins = sim_count(args.sim, "join")
    refusals = plugin_log(args.home, secrets).count("PSN sign-in failed")
    await signed_in_after("sign_in", "authorize", authorized)
    print("  ok: Sign in reached psn-sim with what was typed into the dialog")

    async def joined_or_refused():
        return await joined() or plugin_log(args.home, secrets).count("PSN sign-in failed") > refusals
    await wait_until("the plugin joins the party again, or says why not", joined_or_refused, 60)
    if not await joined():
        # xdotool types one key at a time and, rarely, a key does not arrive (seen once in 7
        # runs here, and in CI): psn-sim refused what arrived and the plugin's log says so.
        # Once more: Sign in with nothing typed (its one-line "paste your NPSSO first" replaces
        # the longer refusal, so the fields are where they were), type the secrets again and
        # close with Cancel (the secrets were taken at the keystroke, and Cancel adds no undo
        # entry, so the Undo/Redo checks below see one dialog's change).
        print("  psn-sim refused the typed secrets (a key lost by xdotool?); typing them again:")
        for line in plugin_log(args.home, secrets).splitlines()[-2:]:
            print(f"    {line}")
        await obs.call("PressInputPropertiesButton", {"inputName": INPUT, "propertyName": "sign_in"})
        await asyncio.sleep(1)
        await obs.call("OpenInputPropertiesDialog", {"inputName": INPUT})
        await wait_until("the properties dialog opens again", opened, 10)
        await asyncio.sleep(1.5)
        window = xdo("search", "--name", f"Properties for '{INPUT}'").split()[0]
        type_secrets()
        xdo("key", "Escape")  # Cancel
        await wait_until("Cancel closes the dialog", closed, 5)
        secrets.absent(await settings_text(), "GetInputSettings after typing again")
        authorized = sim_count(args.sim, "authorize")
        await signed_in_after("sign_in", "authorize", authorized)
        await wait_until("the plugin joins the party after typing again", joined, 60)
    print("  ok: the plugin signed in and joined the party with what was typed")
    leaves = sim_count(args.sim, "leave")
    await signed_in_after("sign_out", "leave", leaves)
    await asyncio.sleep(1)

    print("undo and redo of the dialog's change (Ctrl+Z, Ctrl+Y in the main window)")
    main_window = xdo("search", "--name", "^OBS [0-9]").split()[0]
    xdo("windowfocus", "--sync", main_window)
    xdo("key", "--window", main_window, "ctrl+z")
    await asyncio.sleep(1)
    check(MARKER not in await settings_text(), "Undo restored the settings from before the dialog")
    xdo("key", "--window", main_window, "ctrl+y")
    await asyncio.sleep(1)
    check(MARKER in await settings_text(), "Redo applied the settings from the dialog's OK")
    authorized = sim_count(args.sim, "authorize")
    await obs.call("PressInputPropertiesButton", {"inputName": INPUT, "propertyName": "sign_in"})
    await asyncio.sleep(2)
    check(sim_count(args.sim, "authorize") == authorized,
          "Sign in after Undo and Redo finds no NPSSO (neither entry held one)")

    obs.events_text = "\n".join(obs.events)
    print(f"  {len(obs.events)} obs-websocket events received: "
          f"{sorted(set(json.loads(e)['d']['eventType'] for e in obs.events))}")
    check(any(INPUT in e for e in obs.events), "the events name our input (the subscription works)")
    secrets.absent(obs.events_text, "any obs-websocket event")
    with open(os.path.join(args.home, "obs-websocket-events.txt"), "w") as f:
        f.write(obs.events_text)
    await obs.ws.close()


def scene_files(home):
    text = ""
    for path in glob.glob(os.path.join(home, ".config/obs-studio/basic/scenes/*.json*")):
        with open(path, errors="replace") as f:
            text += f.read()
    if not text:
        raise Failed("OBS saved a scene collection")
    return text


def plugin_log(home, secrets):
    """The plugin's lines of OBS's log, any secret in them shown as its name (for messages)."""
    lines = [line for line in obs_logs(home).splitlines() if "[obs-psn-party]" in line]
    text = "\n".join(lines)
    for name, value in secrets.values.items():
        text = text.replace(value, f"<{name}>")
    return text


def obs_logs(home, last_only=False):
    text = ""
    paths = sorted(glob.glob(os.path.join(home, ".config/obs-studio/logs/*.txt")))
    for path in paths[-1:] if last_only else paths:
        with open(path, errors="replace") as f:
            text += f.read()
    return text


async def main_async(args):
    home = args.home
    config = os.path.join(home, ".config/obs-studio")
    env = dict(os.environ, HOME=home)
    out = open(os.path.join(home, "obs-stdout.txt"), "w")
    obs_process = subprocess.Popen(["obs", "--disable-updater"], env=env, stdout=out, stderr=subprocess.STDOUT)
    failure = None
    try:
        await run(args)
    except Failed as e:
        failure = str(e)
        # What a reader of CI's output needs to see why (nothing secret: the secrets are named).
        screenshot(args.shots, "obs-secrets-failed.png")
        try:
            print(f"  psn-sim counts: {json.dumps(sim_counts(args.sim), sort_keys=True)}")
        except OSError as error:
            print(f"  psn-sim counts: {error}")
        print("  the plugin's last lines in OBS's log:")
        for line in plugin_log(home, Secrets(args)).splitlines()[-25:]:
            print(f"    {line}")
    finally:
        obs_process.send_signal(signal.SIGINT)
        try:
            obs_process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            obs_process.kill()
            failure = failure or "OBS exits within 15 s of SIGINT"
    if failure:
        return failure, False
    if obs_process.returncode < 0:
        return f"OBS exits cleanly (it died of signal {-obs_process.returncode} while shutting down)", True
    try:
        print("after OBS quit")
        secrets = Secrets(args)
        secrets.absent(scene_files(home), "the scene collection saved at exit")
        logs = obs_logs(home)
        check("[obs-psn-party]" in logs, "OBS's log has the plugin's lines")
        secrets.absent(logs, "OBS's log")
        check("Number of memory leaks: 0" in obs_logs(home, last_only=True), "OBS exited cleanly with 0 leaks")
    except Failed as e:
        return str(e), False
    return None, False


def main():
    parser = argparse.ArgumentParser()
    for name in ("home", "sim", "npsso", "client-id", "client-secret", "shots"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--explore", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    failure, crashed_at_exit = asyncio.run(main_async(args))
    if crashed_at_exit:
        # Seen about once in ten runs with OBS 29.0.2: a fault in Qt's painting
        # (QWidgetPrivate::drawWidget) after "All scene data cleared", before modules unload.
        # Every check before the exit passed. Once more from a fresh scene collection; a
        # second crash fails. docs/reliability.md, "Still open".
        print(f"OBS crashed at exit: {failure}; once more with a fresh scene collection")
        shutil.rmtree(os.path.join(args.home, ".config/obs-studio/basic/scenes"), ignore_errors=True)
        failure, _ = asyncio.run(main_async(args))
    if failure:
        print(f"obs-secrets-check: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("obs-secrets-check: ok")


if __name__ == "__main__":
    main()
