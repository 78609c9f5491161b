#!/usr/bin/python3
"""A party member on a WebRTC stack other than the plugin's (aiortc, Debian's python3-aiortc).

It offers in the shape PROTOCOL.md section 6 records for a PS5 member (BUNDLE of audio and a
data channel, Opus with stereo=0;useinbandfec=1, ptime 40, RED, CN at three rates,
telephone-event, the Sony payload-signature extmap, msid "<uuid>_1_CELT/40"), except that the Opus
RTP clock is the standard 48000: aiortc cannot send at the recorded 16000 clock, and the plugin
must accept both. It then sends a sine tone.

Protocol on stdin/stdout, one JSON object per line:
  out: {"type": "offer", "sdp": "..."}
  in:  {"type": "answer", "sdp": "..."}
  out: {"type": "done", "connected": true, "seconds": 5.0, "datachannel": "open"}
       ("datachannel" is the state of the data channel the offer creates: whether the SCTP
       association over the BUNDLE transport came up.)

Loopback only: ICE gathers 127.0.0.1 and nothing else.
"""
import argparse
import asyncio
import fractions
import json
import math
import sys
import uuid

import aioice.ice
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription, MediaStreamTrack
from av import AudioFrame

# Tests use loopback only: make ICE gather 127.0.0.1 and nothing else.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []

SONY_EXTMAP = "urn:uuid:84a86fab-a84f-4d61-b376-2ee79d2b67d2#sie:rtp-hdrext:rtp-payload-signature"


class Tone(MediaStreamTrack):
    """A sine at `hz`, 20 ms frames of 48 kHz mono, paced in real time."""

    kind = "audio"

    def __init__(self, hz, amplitude=0.5):
        super().__init__()
        self.hz = hz
        self.amplitude = amplitude
        self.pts = 0
        self.start = None

    async def recv(self):
        loop = asyncio.get_event_loop()
        if self.start is None:
            self.start = loop.time()
        due = self.start + self.pts / 48000
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        n = 960
        t = (np.arange(n) + self.pts) / 48000
        samples = (self.amplitude * np.sin(2 * math.pi * self.hz * t) * 32767).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, 48000)
        self.pts += n
        return frame


def recorded_shape(sdp):
    """Rewrites aiortc's offer into the recorded member shape (see the module doc)."""
    out = []
    stream = uuid.uuid4()
    section = None
    for line in sdp.splitlines():
        if line.startswith("m=audio"):
            section = "audio"
            parts = line.split()
            # Opus, then the recorded extras (aiortc sends only Opus; the others are offered).
            out.append(" ".join(parts[:3] + ["96", "63", "106", "105", "13", "110", "113"]))
            continue
        if line.startswith("m=application"):
            section = "application"
            port = line.split()[1]
            out.append(f"m=application {port} UDP/DTLS/SCTP webrtc-datachannel")
            continue
        if section == "audio" and (line.startswith("a=rtpmap:0 ") or line.startswith("a=rtpmap:8 ")):
            continue
        if section == "audio" and line.startswith("a=msid:"):
            out.append(f"a=msid:- {stream}_1_CELT/40")
            continue
        if section == "application" and line.startswith("a=sctpmap:"):
            out.append("a=sctp-port:5000")
            continue
        if section == "application" and line.startswith("a=max-message-size"):
            out.append("a=max-message-size:262144")
            continue
        out.append(line)
        if section == "audio" and line.startswith("a=rtpmap:96 "):
            out += [
                "a=fmtp:96 minptime=10;stereo=0;useinbandfec=1",
                "a=rtpmap:63 red/48000/2",
                "a=fmtp:63 96/96",
                "a=rtpmap:106 CN/32000",
                "a=rtpmap:105 CN/16000",
                "a=rtpmap:13 CN/8000",
                "a=rtpmap:110 telephone-event/48000",
                "a=rtpmap:113 telephone-event/16000",
                "a=ptime:40",
            ]
        if section == "audio" and line.startswith("a=extmap:2 "):
            out.append(f"a=extmap:5 {SONY_EXTMAP}")
    return "\r\n".join(out) + "\r\n"


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def run(hz, seconds):
    pc = RTCPeerConnection()
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            connected.set()

    pc.addTrack(Tone(hz))
    channel = pc.createDataChannel("party")
    await pc.setLocalDescription(await pc.createOffer())
    send({"type": "offer", "sdp": recorded_shape(pc.localDescription.sdp)})

    line = await asyncio.get_event_loop().run_in_executor(None, sys.stdin.readline)
    answer = json.loads(line)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    try:
        await asyncio.wait_for(connected.wait(), timeout=10)
    except asyncio.TimeoutError:
        send({"type": "done", "connected": False, "seconds": 0, "datachannel": channel.readyState})
        await pc.close()
        return 1
    await asyncio.sleep(seconds)
    send({"type": "done", "connected": True, "seconds": seconds, "datachannel": channel.readyState})
    await pc.close()
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hz", type=float, default=440.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.hz, args.seconds)))


if __name__ == "__main__":
    main()
