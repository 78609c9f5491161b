#!/usr/bin/python3
"""A small obs-websocket 5 client for the real-OBS checks.

    obs_ws.py [--port 4455] REQUEST_TYPE [JSON_REQUEST_DATA]

Prints the response data as JSON; exits 1 if OBS answers with an error.
Uses Debian's python3-websockets (hence /usr/bin/python3). Loopback only.
"""
import argparse
import asyncio
import json
import sys

import websockets


async def call(port, request_type, data):
    async with websockets.connect(f"ws://127.0.0.1:{port}", subprotocols=["obswebsocket.json"]) as ws:
        hello = json.loads(await ws.recv())
        if hello.get("op") != 0:
            raise SystemExit(f"unexpected first message: {hello}")
        if "authentication" in hello.get("d", {}):
            raise SystemExit("obs-websocket asks for a password; the checks run it without one")
        await ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1}}))
        identified = json.loads(await ws.recv())
        if identified.get("op") != 2:
            raise SystemExit(f"not identified: {identified}")
        await ws.send(json.dumps({"op": 6, "d": {"requestType": request_type, "requestId": "1", "requestData": data}}))
        while True:
            message = json.loads(await ws.recv())
            if message.get("op") == 7 and message["d"].get("requestId") == "1":
                return message["d"]


class Session:
    """One long-lived obs-websocket connection: many requests, and events (e.g. the volume meters).

        async with Session(port, events=Session.INPUT_VOLUME_METERS) as obs:
            data = await obs.request("GetVersion")
            event = await obs.next_event("InputVolumeMeters", timeout=5)
    """

    INPUT_VOLUME_METERS = 1 << 16

    def __init__(self, port, events=0):
        self.port, self.events = port, events
        self.next_id = 0
        self.pending_events = []

    async def __aenter__(self):
        self.ws = await websockets.connect(
            f"ws://127.0.0.1:{self.port}", subprotocols=["obswebsocket.json"], max_size=None,
            # No keepalive pings: while a check sleeps, unread meter events hold the pongs back.
            ping_interval=None,
        )
        hello = json.loads(await self.ws.recv())
        if hello.get("op") != 0:
            raise SystemExit(f"unexpected first message: {hello}")
        if "authentication" in hello.get("d", {}):
            raise SystemExit("obs-websocket asks for a password; the checks run it without one")
        self.server_version = hello["d"].get("obsWebSocketVersion")
        await self.ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": self.events}}))
        identified = json.loads(await self.ws.recv())
        if identified.get("op") != 2:
            raise SystemExit(f"not identified: {identified}")
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def request(self, request_type, data=None, check=True):
        """The response data; raises RuntimeError when OBS answers with an error (if check)."""
        self.next_id += 1
        rid = str(self.next_id)
        await self.ws.send(json.dumps({"op": 6, "d": {"requestType": request_type, "requestId": rid, "requestData": data or {}}}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("op") == 5:
                self.pending_events.append(message["d"])
                del self.pending_events[:-200]  # meters arrive 20 times a second; keep the newest
            elif message.get("op") == 7 and message["d"].get("requestId") == rid:
                status = message["d"].get("requestStatus", {})
                if check and not status.get("result"):
                    raise RuntimeError(f"{request_type}: error {status.get('code')}: {status.get('comment')}")
                return message["d"].get("responseData", {}) or {}

    async def next_event(self, event_type, timeout):
        """The next event of that type (queued ones first), or None after timeout seconds."""
        for i, event in enumerate(self.pending_events):
            if event.get("eventType") == event_type:
                return self.pending_events.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            except asyncio.TimeoutError:
                return None
            if message.get("op") == 5 and message["d"].get("eventType") == event_type:
                return message["d"]

    def drop_events(self):
        self.pending_events.clear()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=4455)
    parser.add_argument("request_type")
    parser.add_argument("data", nargs="?", default="{}")
    args = parser.parse_args()
    response = asyncio.run(call(args.port, args.request_type, json.loads(args.data)))
    status = response.get("requestStatus", {})
    print(json.dumps(response.get("responseData", {}), indent=1))
    if not status.get("result"):
        print(f"error {status.get('code')}: {status.get('comment')}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
