#!/usr/bin/python3
"""Real OBS + obs-websocket 5: the obs-psn-party vendor events and GetPartyStatus
(tools/obs-vendor-events.sh runs it against OBS and psn-sim).

    obs_vendor_check.py --port WS_PORT --sim SIM_URL --party SESSION_ID --config PLUGIN_CONFIG_DIR

Creates a PSN Party input, has psn-sim add a member who talks in talkspurts and then leaves, and
checks the vendor events (MemberJoined, MemberSpeakingStarted, MemberSpeakingStopped, MemberLeft,
PartyChanged) arrive, that GetPartyStatus answers, and that no account id or the overlay token
is in anything obs-websocket hands out. Prints `CHECK` and `FIGURE` lines; exit 0 when all pass.
Debian's python3-websockets; loopback only.
"""
import argparse
import asyncio
import json
import os
import time
import urllib.request

import websockets

from check_lines import Checks

VENDOR = "obs-psn-party"
EVENT_SUB_VENDORS = 1 << 9


def sim(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/_sim/{path}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


class Obs:
    def __init__(self, ws):
        self.ws = ws
        self.events = []  # (monotonic time, vendor event type, data)
        self.pending = {}
        self.next = 0

    async def reader(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg["op"] == 5 and msg["d"]["eventType"] == "VendorEvent":
                d = msg["d"]["eventData"]
                if d.get("vendorName") == VENDOR:
                    self.events.append((time.monotonic(), d["eventType"], d.get("eventData", {})))
            elif msg["op"] == 7:
                fut = self.pending.pop(msg["d"]["requestId"], None)
                if fut:
                    fut.set_result(msg["d"])

    async def call(self, request_type, data=None):
        self.next += 1
        rid = str(self.next)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(json.dumps({"op": 6, "d": {"requestType": request_type, "requestId": rid,
                                                         "requestData": data or {}}}))
        return await asyncio.wait_for(fut, 10)

    async def wait_event(self, kind, online_id=None, timeout=20, after=0.0, where=lambda d: True):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, k, d in self.events:
                if t >= after and k == kind and (online_id is None or d.get("onlineId") == online_id) and where(d):
                    return t, d
            await asyncio.sleep(0.05)
        return None


async def run(args):
    check = Checks()

    async with websockets.connect(f"ws://127.0.0.1:{args.port}", subprotocols=["obswebsocket.json"],
                                  max_size=None) as ws:
        hello = json.loads(await ws.recv())
        await ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": EVENT_SUB_VENDORS}}))
        identified = json.loads(await ws.recv())
        assert identified["op"] == 2, identified
        print(f"FIGURE obs_websocket_version {hello['d'].get('obsWebSocketVersion')}", flush=True)
        obs = Obs(ws)
        reader = asyncio.ensure_future(obs.reader())

        scene = (await obs.call("GetCurrentProgramScene"))["responseData"]["currentProgramSceneName"]
        await obs.call("CreateInput", {"sceneName": scene, "inputName": "PSN Party", "inputKind": "psn_party",
                                       "inputSettings": {}})
        joined_party = await obs.wait_event("PartyChanged", timeout=30, where=lambda d: d.get("connection") == "inParty")
        check("party_changed_event", joined_party is not None, f"{joined_party}")
        first = await obs.wait_event("MemberJoined", "ann_ps", timeout=30)
        check("member_joined_for_the_party_members", first is not None, f"{first}")

        # A newcomer who talks, then leaves.
        t0 = time.monotonic()
        newcomer = sim(args.sim, "POST", f"parties/{args.party}/members",
                       {"onlineId": "zed_ps", "platform": "PS5",
                        "voice": {"toneHz": 640, "talkMs": 800, "silenceMs": 1200}})
        account = newcomer["accountId"]
        joined = await obs.wait_event("MemberJoined", "zed_ps", after=t0)
        check("member_joined", joined is not None, f"after {joined and joined[0] - t0:.2f} s")
        started = await obs.wait_event("MemberSpeakingStarted", "zed_ps", after=t0, timeout=30)
        check("member_speaking_started", started is not None, f"{started and started[1]}")
        stopped = await obs.wait_event("MemberSpeakingStopped", "zed_ps", after=started[0] if started else t0)
        if started and stopped:
            print(f"FIGURE talkspurt_as_events_ms {(stopped[0] - started[0]) * 1000:.0f} (talk 800 ms + hangover)", flush=True)
        check("member_speaking_stopped", stopped is not None,
              "" if stopped else f"zed's events: {[(round(t - t0, 2), k) for t, k, d in obs.events if d.get('onlineId') == 'zed_ps']}")

        # obs-websocket 5.1 refuses an empty requestData object: leave it out.
        status = await obs.call("CallVendorRequest", {"vendorName": VENDOR, "requestType": "GetPartyStatus"})
        ok = status["requestStatus"]["result"]
        data = status.get("responseData", {}).get("responseData", {})
        names = sorted(m.get("onlineId") for m in data.get("members", []))
        check("get_party_status", ok and data.get("connection") == "inParty" and "zed_ps" in names
              and isinstance(data.get("slots"), int) and all("speaking" in m for m in data.get("members", [])),
              json.dumps(status)[:600])

        t1 = time.monotonic()
        sim(args.sim, "DELETE", f"parties/{args.party}/members/{account}")
        left = await obs.wait_event("MemberLeft", "zed_ps", after=t1)
        check("member_left", left is not None, f"after {left and left[0] - t1:.2f} s")

        # Nothing handed out carries an account id, a token or the overlay's secret.
        # Building the properties (as the dialog does) fills the address field; it must stay a
        # default value, which GetInputSettings does not hand out.
        await obs.call("GetInputPropertiesListPropertyItems", {"inputName": "PSN Party", "propertyName": "party"})
        settings = await obs.call("GetInputSettings", {"inputName": "PSN Party"})
        overlay = json.load(open(os.path.join(args.config, "overlay.json")))
        everything = json.dumps([e for e in obs.events]) + json.dumps(status) + json.dumps(settings)
        accounts = [m["accountId"] for m in sim(args.sim, "GET", "state")["parties"][0]["members"]] + [account]
        leaked = [a for a in accounts if a in everything]
        check("no_account_ids_or_overlay_token", not leaked and overlay["token"] not in everything,
              f"leaked {leaked}")
        kinds = sorted({k for _, k, _ in obs.events})
        print(f"FIGURE vendor_events_seen {kinds} ({len(obs.events)} in all)", flush=True)
        state = overlay_state(args.config)
        check("overlay_served_by_obs", state is not None and "ann_ps" in json.dumps(state), f"{state}"[:200])
        # The input stays: OBS saves it, and after a restart (--after-restart) the overlay is
        # back at the same address.
        reader.cancel()
    return check.all_passed()


def overlay_state(config):
    """GET /state from the overlay at the address kept in overlay.json; None if it does not answer."""
    overlay = json.load(open(os.path.join(config, "overlay.json")))
    url = f"http://127.0.0.1:{overlay['port']}/state?token={overlay['token']}"
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def after_restart(args):
    """OBS started again with the saved scene: the same overlay URL answers, in the party."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 40:
        state = overlay_state(args.config)
        if state and state.get("connection") == "inParty" and state.get("members"):
            print(f"FIGURE overlay_back_after_obs_restart_s {time.monotonic() - t0:.1f}", flush=True)
            print("CHECK overlay_same_url_after_obs_restart ok", flush=True)
            return True
        time.sleep(0.2)
    print(f"CHECK overlay_same_url_after_obs_restart FAILED {overlay_state(args.config)}", flush=True)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--party", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--after-restart", action="store_true")
    args = ap.parse_args()
    if args.after_restart:
        raise SystemExit(0 if after_restart(args) else 1)
    raise SystemExit(0 if asyncio.run(run(args)) else 1)


if __name__ == "__main__":
    main()
