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
