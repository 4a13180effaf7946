#!/usr/bin/env python3
"""The worker behind ``front_hop.py``: decodes each ``[id, method, url, headers, body]`` and
answers ``[id, 200, body or b"hello"]`` on the same unix connection, replies coalesced per loop
iteration. ``python hop_worker.py --socket PATH`` prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import msgpack
import uvloop

_pack = msgpack.Packer(use_bin_type=False, autoreset=True).pack


class Worker(asyncio.Protocol):
    def __init__(self) -> None:
        self.unpacker = msgpack.Unpacker(raw=True)
        self.out: list[bytes] = []
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        out = self.out
        first = not out
        for rid, _method, _url, _headers, body in self.unpacker:
            out.append(_pack([rid, 200, body or b"hello"]))
        if first and out:
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        data = b"".join(self.out)
        self.out.clear()
        self.transport.write(data)


async def main(path: str) -> None:
    loop = asyncio.get_running_loop()
    if os.path.exists(path):
        os.unlink(path)
    server = await loop.create_unix_server(Worker, path)
    print("ready", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()
    uvloop.run(main(args.socket))
