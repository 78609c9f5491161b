#!/usr/bin/env python3
"""Delays every packet of an NFQUEUE queue by a fixed time (tools/netlab.sh --impair).

This machine's kernel has no `sch_netem` (tc netem), so the NAT lab's delay is made here: the
router's iptables rules send its WAN traffic to queue N (`-j NFQUEUE --queue-num N
--queue-bypass`), this program holds each packet DELAY_MS and then lets it go on (verdict
ACCEPT), in arrival order. Loss is iptables' `statistic` match, in the kernel. Speaks the
nfnetlink_queue protocol on a raw netlink socket (no library needed); run it inside the
router's network namespace.

    netlab_delay.py QUEUE_NUM DELAY_MS
"""
import heapq
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_ACCEPT = 1
AF_INET = 2


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(msg_type, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    body = struct.pack("=BBH", AF_INET, 0, socket.htons(queue)) + b"".join(attrs)
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg_type
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def attrs_of(data):
    out = {}
    i = 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        if length < 4:
            break
        out[kind & 0x7FFF] = data[i + 4:i + length]
        i += (length + 3) & ~3
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((0, 0))
    bind = attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, socket.htons(AF_INET)))
    params = attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META))
    for seq, a in ((1, bind), (2, params)):
        s.send(message(NFQNL_MSG_CONFIG, queue, [a], NLM_F_REQUEST | NLM_F_ACK, seq))
        reply = s.recv(65536)
        length, kind = struct.unpack_from("=IH", reply, 0)
        if kind == NLMSG_ERROR and struct.unpack_from("=i", reply, 16)[0] != 0:
            print(f"netlab_delay: config refused: {struct.unpack_from('=i', reply, 16)[0]}", file=sys.stderr)
            sys.exit(1)
    print(f"delaying queue {queue} by {delay * 1000:.0f} ms", flush=True)
    held = []  # (release time, arrival order, packet id)
    order = 0
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        ready, _, _ = select.select([s], [], [], timeout)
        if ready:
            data = s.recv(65536)
            i = 0
            while i + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, i)
                if length < 16:
                    break
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    hdr = attrs_of(data[i + 20:i + length]).get(NFQA_PACKET_HDR)
                    if hdr:
                        packet_id = struct.unpack_from(">I", hdr, 0)[0]
                        order += 1
                        heapq.heappush(held, (time.monotonic() + delay, order, packet_id))
                i += (length + 3) & ~3
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, packet_id = heapq.heappop(held)
            verdict = attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, packet_id))
            s.send(message(NFQNL_MSG_VERDICT, queue, [verdict]))


main()
