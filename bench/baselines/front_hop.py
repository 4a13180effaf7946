#!/usr/bin/env python3
"""Baseline 2: the minimal front with one msgpack hop to a worker process.

``python front_hop.py --socket PATH [--port P]`` connects to ``hop_worker.py`` listening on the
unix socket PATH, prints ``ready <port>`` and serves HTTP until SIGTERM/SIGINT. Each request
(method, URL, headers, body) goes to the worker as one msgpack ``[id, method, url, headers,
body]`` on the single multiplexed connection; the reply ``[id, status, body]`` becomes the HTTP
response. Writes to the worker are coalesced once per loop iteration.

This is what a competent Python front with one process hop costs: the yardstick for our
two-hop path (proxy → runtime → worker).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal

import httptools
import msgpack
import uvloop

_pack = msgpack.Packer(use_bin_type=False, autoreset=True).pack


class Hop(asyncio.Protocol):
    """The one connection to the worker; replies are matched to requests by id."""

    def __init__(self) -> None:
        self.pending: dict[int, Front] = {}
        self.ids = itertools.count(1)
        self.unpacker = msgpack.Unpacker(raw=True)
        self.out: list[bytes] = []
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, front: Front, method: bytes, url: bytes, headers: list, body: bytes) -> None:
        rid = next(self.ids)
        self.pending[rid] = front
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(_pack([rid, method, url, headers, body]))

    def _flush(self) -> None:
        data = b"".join(self.out)
        self.out.clear()
        if self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        pending = self.pending
        for rid, status, body in self.unpacker:
            front = pending.pop(rid, None)
            if front is not None:
                front.reply(status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class Front(asyncio.Protocol):
    __slots__ = ("body", "closed", "headers", "hop", "parser", "transport", "url")

    def __init__(self, hop: Hop) -> None:
        self.hop = hop
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: list[list[bytes]] = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append([name, value])

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.hop.send(self, self.parser.get_method(), self.url, self.headers, self.body)

    def reply(self, status: int, body: bytes) -> None:
        if self.closed:
            return
        self.transport.write(
            b"HTTP/1.1 %d OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )


async def main(port: int, path: str) -> None:
    loop = asyncio.get_running_loop()
    _, hop = await loop.create_unix_connection(Hop, path)
    server = await loop.create_server(lambda: Front(hop), "127.0.0.1", port, backlog=4096)
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait(
        [asyncio.ensure_future(stop.wait()), hop.lost], return_when=asyncio.FIRST_COMPLETED
    )
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()
    uvloop.run(main(args.port, args.socket))
