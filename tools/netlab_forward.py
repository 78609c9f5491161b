#!/usr/bin/env python3
"""Carries TCP across network namespaces through a Unix socket (tools/netlab.sh, docs/network.md).

The plugin accepts plain HTTP only from loopback, and must go on refusing it elsewhere: in the NAT
tests psn-sim's HTTP and push stay on the plugin namespace's own 127.0.0.1, and this forwarder
carries them to psn-sim's namespace. A Unix socket's path is the same in every network namespace.

    netlab_forward.py tcp-to-unix PORT SOCKET   listen on 127.0.0.1:PORT, connect to SOCKET
    netlab_forward.py unix-to-tcp SOCKET PORT   listen on SOCKET, connect to 127.0.0.1:PORT
"""
import asyncio
import os
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("tcp-to-unix", "unix-to-tcp"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode = sys.argv[1]

    async def handle(reader, writer):
        try:
            if mode == "tcp-to-unix":
                up_reader, up_writer = await asyncio.open_unix_connection(sys.argv[3])
            else:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(sys.argv[3]))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    if mode == "tcp-to-unix":
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[2]))
    else:
        try:
            os.unlink(sys.argv[2])
        except FileNotFoundError:
            pass
        server = await asyncio.start_unix_server(handle, sys.argv[2])
    print("forwarding", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
