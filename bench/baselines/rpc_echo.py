#!/usr/bin/env python3
"""Baseline 3: raw msgpack round trips between two uvloop processes over TCP.

``python rpc_echo.py server [--port P]`` prints ``ready <port>`` and echoes every
``[id, payload]`` back (decoded and re-packed, replies coalesced per loop iteration).

``python rpc_echo.py client --port P --inflight 1 --count N`` makes N sequential round trips and
prints JSON ``{"median_us", "p99_us", "count"}``; ``--inflight K --duration S`` keeps K requests
outstanding for S seconds (each reply sends the next one) and prints ``{"rate", "count"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time

import msgpack
import uvloop

_pack = msgpack.Packer(use_bin_type=False, autoreset=True).pack
PAYLOAD = b"hello"


class EchoServer(asyncio.Protocol):
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
        for rid, payload in self.unpacker:
            out.append(_pack([rid, payload]))
        if first and out:
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        data = b"".join(self.out)
        self.out.clear()
        self.transport.write(data)


class Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.unpacker = msgpack.Unpacker(raw=True)
        self.waiters: dict[int, asyncio.Future[bytes]] = {}
        self.next_id = 0
        self.count = 0
        self.pump = False  # in pump mode every reply sends the next request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def call(self, payload: bytes) -> asyncio.Future[bytes]:
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiters[self.next_id] = fut
        self.transport.write(_pack([self.next_id, payload]))
        return fut

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        if self.pump:
            out = []
            for _rid, payload in self.unpacker:
                self.count += 1
                self.next_id += 1
                out.append(_pack([self.next_id, payload]))
            if out:
                self.transport.write(b"".join(out))
            return
        for rid, payload in self.unpacker:
            fut = self.waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(payload)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, "127.0.0.1", port)
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


async def client(
    port: int, inflight: int, count: int, duration: float, pump: bool
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Client, "127.0.0.1", port)
    for _ in range(200):  # warm up
        await proto.call(PAYLOAD)
    if inflight == 1:
        samples = []
        clock = time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            await proto.call(PAYLOAD)
            samples.append(clock() - t0)
        samples.sort()
        return {
            "median_us": statistics.median(samples) / 1000,
            "p99_us": samples[int(len(samples) * 0.99)] / 1000,
            "count": len(samples),
        }
    if pump:
        proto.pump = True
        proto.transport.write(b"".join(_pack([i, PAYLOAD]) for i in range(inflight)))
        tasks = []
    else:

        async def caller() -> None:
            while True:
                await proto.call(PAYLOAD)
                proto.count += 1

        tasks = [asyncio.ensure_future(caller()) for _ in range(inflight)]
    await asyncio.sleep(0.5)  # reach steady state
    start_count, t0 = proto.count, time.perf_counter()
    await asyncio.sleep(duration)
    done, elapsed = proto.count - start_count, time.perf_counter() - t0
    for task in tasks:
        task.cancel()
    proto.transport.close()
    return {"rate": done / elapsed, "count": done}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["server", "client"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--inflight", type=int, default=1)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--pump",
        action="store_true",
        help="no coroutine per call: each reply sends the next request from the protocol",
    )
    args = parser.parse_args()
    if args.mode == "server":
        uvloop.run(serve(args.port))
    else:
        result = uvloop.run(client(args.port, args.inflight, args.count, args.duration, args.pump))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
