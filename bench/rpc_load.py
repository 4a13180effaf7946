#!/usr/bin/env python3
"""Load generator for our RPC path: the Python client → runtime → worker ``echo`` event.

Every call is what a user writes: ``enqueue("echo")``, one ``write``, ``close``, then read the
reply stream to its end. Prints one JSON line with the result (progress lines before it start
with ``progress``).

* ``one --count N``: N sequential calls; median and p99 µs per round trip.
* ``many --inflight K --duration S``: K callers on one client connection for S seconds; rate.
* ``total --inflight K --requests N``: exactly N calls by K callers (the memory test); rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

from cocaine.client import Service
from cocaine.rpc.loop import run_loop

PAYLOAD = b"hello"


async def call(service: Service) -> None:
    ch = await service.enqueue("echo")
    await ch.tx.write(PAYLOAD)
    await ch.tx.close()
    reply = [c async for c in ch.rx]
    if reply != [PAYLOAD]:
        raise RuntimeError(f"unexpected reply {reply!r}")


async def main(args: argparse.Namespace) -> dict[str, float]:
    service = Service(args.app, locator=args.locator)
    for _ in range(200):  # resolve, connect, warm the worker
        await call(service)
    if args.mode == "one":
        clock = time.perf_counter_ns
        samples = []
        for _ in range(args.count):
            t0 = clock()
            await call(service)
            samples.append(clock() - t0)
        samples.sort()
        return {
            "median_us": statistics.median(samples) / 1000,
            "p99_us": samples[int(len(samples) * 0.99)] / 1000,
            "count": len(samples),
        }
    done = 0
    errors = 0
    budget = args.requests if args.mode == "total" else -1
    report_every = max(1, args.requests // 20) if args.mode == "total" else 0

    stop = False

    async def caller() -> None:
        nonlocal done, errors, budget
        while budget != 0 and not stop:
            if budget > 0:
                budget -= 1
            try:
                await call(service)
            except Exception as exc:  # counted and reported, never fatal
                errors += 1
                if errors <= 3:
                    print(f"error: {exc!r}", file=sys.stderr, flush=True)
            done += 1
            if report_every and done % report_every == 0:
                print(f"progress {done}", flush=True)

    t0 = time.perf_counter()
    if args.mode == "many":
        tasks = [asyncio.ensure_future(caller()) for _ in range(args.inflight)]
        await asyncio.sleep(0.5)  # steady state
        start, t0 = done, time.perf_counter()
        await asyncio.sleep(args.duration)
        count, elapsed = done - start, time.perf_counter() - t0
        stop = True  # let every call in flight finish: nothing is abandoned mid-channel
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    else:
        await asyncio.gather(*(caller() for _ in range(args.inflight)))
        count, elapsed = done, time.perf_counter() - t0
    service.close()
    return {"rate": count / elapsed, "count": count, "errors": errors, "seconds": elapsed}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["one", "many", "total"])
    parser.add_argument("--locator", required=True)
    parser.add_argument("--app", default="bench")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runtime-dir", help="reach the runtime through its unix sockets here")
    args = parser.parse_args()
    if args.runtime_dir:
        os.environ["COCAINE_RUNTIME_DIR"] = args.runtime_dir
    print(json.dumps(run_loop(main(args))), flush=True)
