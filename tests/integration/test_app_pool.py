"""The pool and the queue of a real app: limits, growth under a burst, idle shrink, control.

Requests that must stay busy wait for the client's own "go" chunk, so the tests decide when
work ends; the only sleeping is the worker's simulated work. Pool sizes are read from the
runtime's info report through ``wait_until``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cocaine.client import Service, Stream
from cocaine.errors import ServiceError
from support.apps import app_info, call, deploy, slaves, wait_until
from support.processes import RuntimeProcess

OVERSEER = 0x52FF

WORKER = """
import asyncio
import os

from cocaine.worker import Worker


async def gated(request, response):
    response.write(b"started")
    await request.read()  # the client's "go" chunk
    response.write(b"finished")


async def work(request, response):
    await asyncio.sleep(float(os.environ.get("WORK_SECONDS", "0.3")))  # simulated work
    response.write(str(os.getpid()).encode())


Worker().run({"gated": gated, "work": work})
"""

FAST_STOP = {"terminate-timeout": 1, "seal-timeout": 1}


def _pool(report: dict[str, Any]) -> tuple[int, int]:
    """(workers in the report, active workers)."""
    return len(slaves(report)), report["pool"]["active"]


async def _first(stream: Stream) -> bytes | ServiceError:
    try:
        chunk: bytes = await stream.get()
        return chunk
    except ServiceError as exc:
        return exc


async def test_queue_full_rejects_at_once(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 1, "concurrency": 1, "queue-limit": 2, **FAST_STOP}
    await deploy(runtime.locator, "narrow", WORKER, profile)
    clients = [Service("narrow", locator=runtime.locator) for _ in range(5)]
    try:
        streams = await asyncio.gather(*(c.call("enqueue", "gated") for c in clients))
        firsts = {asyncio.ensure_future(_first(s)): s for s in streams}

        async def all_answered() -> dict[str, Any] | None:
            report = await app_info(runtime.locator, "narrow")
            requests = report["requests"]
            return requests if requests["accepted"] + requests["rejected"] == 5 else None

        requests = await wait_until(all_answered, 5, "the runtime to take all 5 requests")
        assert requests["rejected"] >= 2

        # the rejections arrive while every accepted request is still held by its client
        rejected, accepted = [], []
        for done in asyncio.as_completed(list(firsts)):
            result = await done
            if isinstance(result, ServiceError):
                assert result.pair == (OVERSEER, 1), result
                rejected.append(result)
            if len(rejected) == requests["rejected"]:
                break
        assert len(rejected) == requests["rejected"]
        report = await app_info(runtime.locator, "narrow")
        assert report["queue"]["depth"] <= 2 and report["load"] <= 1

        for task, stream in firsts.items():
            if not task.done() or not isinstance(task.result(), ServiceError):
                accepted.append((task, stream))
                await stream.write(b"go")
                await stream.close()
        assert len(accepted) == requests["accepted"] == 5 - len(rejected)
        for task, stream in accepted:
            assert await task == b"started"
            assert [chunk async for chunk in stream] == [b"finished"]
    finally:
        for client in clients:
            client.close()


async def test_pool_grows_under_a_burst(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 4, "concurrency": 1, "grow-threshold": 1, **FAST_STOP}
    await deploy(runtime.locator, "burst", WORKER, profile)
    seen: list[int] = []

    async def grown() -> bool:
        workers, _ = _pool(await app_info(runtime.locator, "burst"))
        seen.append(workers)
        return workers > 1

    calls = [call(runtime.locator, "burst", "work") for _ in range(12)]
    *replies, _ = await asyncio.gather(*calls, wait_until(grown, 5, "a second worker"))
    assert len(replies) == 12 and all(len(r) == 1 for r in replies)
    pids = {int(r[0]) for r in replies}
    assert 1 < len(pids) <= 4
    assert max(seen) <= 4
    report = await app_info(runtime.locator, "burst")
    assert report["requests"]["accepted"] == 12 and report["requests"]["rejected"] == 0


async def test_idle_workers_shrink_back_to_one(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 3, "concurrency": 1, "grow-threshold": 1, "idle-timeout": 0.5}
    await deploy(runtime.locator, "shrink", WORKER, {**profile, **FAST_STOP})
    replies = await asyncio.gather(*(call(runtime.locator, "shrink", "work") for _ in range(6)))
    assert len({int(r[0]) for r in replies}) > 1

    async def one_left() -> dict[str, Any] | None:
        report = await app_info(runtime.locator, "shrink")
        return report if _pool(report) == (1, 1) else None

    await wait_until(one_left, 4, "the pool to shrink to one worker")
    assert await call(runtime.locator, "shrink", "work")
    storage = Service("storage", locator=runtime.locator)
    try:
        assert await storage.find("crashlogs", ["shrink"]) == []  # idle stops are not crashes
    finally:
        storage.close()


async def test_manual_control_then_automatic(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 4, "concurrency": 1, "idle-timeout": 0.5, **FAST_STOP}
    await deploy(runtime.locator, "manual", WORKER, profile)

    async def pool_is(workers: int, target: int) -> dict[str, Any] | None:
        report = await app_info(runtime.locator, "manual")
        ok = _pool(report) == (workers, workers) and report["pool"]["target"] == target
        return report if ok else None

    app = Service("manual", locator=runtime.locator)
    try:
        control = await app.call("control")
        await control.write(3)
        await wait_until(lambda: pool_is(3, 3), 5, "three workers")
        assert await call(runtime.locator, "manual", "work")
        await control.write(2)
        await wait_until(lambda: pool_is(2, 2), 5, "two workers")

        async def idle_but_kept() -> bool:
            report = await app_info(runtime.locator, "manual")
            assert _pool(report) == (2, 2), report  # the manual target outranks idle-timeout
            return all(s["uptime"] >= 1.2 for s in slaves(report).values())

        await wait_until(idle_but_kept, 5, "workers idle for longer than idle-timeout")
        await control.close()
        # automatic again: the target falls back to one, and the idle extra worker leaves
        await wait_until(lambda: pool_is(1, 1), 5, "one worker after control ended")
    finally:
        app.close()


async def test_first_worker_spawns_on_first_enqueue(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "lazy", WORKER, {"pool-limit": 2, **FAST_STOP})
    report = await app_info(runtime.locator, "lazy")
    assert slaves(report) == {} and report["pool"]["target"] == 0
    assert report["state"] == "running"
    await call(runtime.locator, "lazy", "work")
    report = await app_info(runtime.locator, "lazy")
    assert len(slaves(report)) == 1 and report["pool"]["active"] == 1
