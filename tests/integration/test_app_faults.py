"""Workers that misbehave, on a real runtime: no handshake, no heartbeats, crashes, slowness.

Every fault is a real process: a worker that sleeps instead of connecting, a raw script that
handshakes and goes silent, a handler that calls ``os._exit``. Slow handlers wait for the
client's own "go" chunk or for an event that never comes, so the tests never sleep to
synchronise; the runtime's report (``info``, stored crashlogs) is awaited through
``wait_until``.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cocaine.client import Service
from cocaine.errors import ServiceError
from support.apps import app_info, call, call_stream, deploy, read_lines, slaves, wait_until
from support.processes import RuntimeProcess

NODE, SLAVE = 0x51FF, 0x53FF

NEVER_HANDSHAKES = """
import time

print("never-handshakes: sleeping instead of connecting", flush=True)
time.sleep(60)
"""

GOES_SILENT = """
import socket
import sys
import time

import msgpack

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(args["--endpoint"])
sock.sendall(msgpack.packb([1, 0, [args["--uuid"]]]))
print("goes-silent: handshake sent, no heartbeats from now on", flush=True)
time.sleep(60)
"""

CRASHER = """
import asyncio
import os

from cocaine.worker import Worker


async def crash(request, response):
    await request.read()
    print("CRASH-MARKER: worker", os.getpid(), "exits with status 3", flush=True)
    response.write(b"first chunk")
    await asyncio.sleep(0)  # let the connection flush its batched writes before dying
    os._exit(3)


Worker().run({"crash": crash})
"""

EXITS_AT_ONCE = """
import sys

print("exits-at-once: status 3", flush=True)
sys.exit(3)
"""

# Every handler notes its event in $EVENTS_FILE before doing anything else.
NOTING = """
import asyncio
import os

from cocaine.worker import Worker


def note(event):
    with open(os.environ["EVENTS_FILE"], "a") as f:
        f.write(event + "\\n")


async def gated(request, response):
    note(request.event)
    response.write(b"started")
    await request.read()  # the client's "go" chunk
    response.write(b"finished")


async def hang(request, response):
    note(request.event)
    await asyncio.Event().wait()


async def quick(request, response):
    note(request.event)
    response.write(b"quick")


Worker().run({"gated": gated, "hang": hang, "victim": quick, "mark": quick})
"""


async def _crashlogs(locator: str, app: str) -> list[str]:
    storage = Service("storage", locator=locator)
    try:
        keys: list[str] = await storage.find("crashlogs", [app])
        return keys
    finally:
        storage.close()


async def _read_crashlog(locator: str, key: str) -> list[str]:
    storage = Service("storage", locator=locator)
    try:
        lines: list[str] = msgpack.unpackb(await storage.read("crashlogs", key), raw=False)
        return lines
    finally:
        storage.close()


async def test_worker_that_never_handshakes(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 1, "handshake-timeout": 0.5}
    await deploy(runtime.locator, "mute", NEVER_HANDSHAKES, profile)
    # no request timeout: the error comes from the failed start, not from a deadline
    with pytest.raises(ServiceError) as info:
        await call(runtime.locator, "mute", "anything", b"x", timeout=4)
    assert info.value.pair == (SLAVE, 4)  # activate_timeout

    [key] = await wait_until(lambda: _crashlogs(runtime.locator, "mute"), 3, "a crashlog")
    assert key.split(":")[0].isdigit()
    lines = await _read_crashlog(runtime.locator, key)
    assert "never-handshakes: sleeping instead of connecting" in lines

    async def handshaking() -> bool:
        report = await app_info(runtime.locator, "mute")
        return any(s["state"] == "handshaking" for s in slaves(report).values())

    # after the backoff a new worker is tried; stopping the app does not wait for its handshake
    # (nor for terminate-timeout: there is no connection to send terminate on)
    await wait_until(handshaking, 3, "the next worker to be spawned")
    node = Service("node", locator=runtime.locator)
    try:
        async with asyncio.timeout(3):
            await node.pause_app("mute")
    finally:
        node.close()


async def test_worker_that_stops_heartbeating_is_replaced(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 1, "heartbeat-timeout": 1, "terminate-timeout": 0.5}
    await deploy(runtime.locator, "silent", GOES_SILENT, profile)
    with pytest.raises(ServiceError) as info:
        await call(runtime.locator, "silent", "anything", b"x", timeout=4)
    assert info.value.pair == (SLAVE, 8)  # heartbeat_timeout

    first = set(slaves(await app_info(runtime.locator, "silent")))

    async def replaced() -> set[str]:
        return set(slaves(await app_info(runtime.locator, "silent"))) - first

    # the dead worker leaves the pool and, after the 1 s respawn backoff, a new one is spawned
    assert await wait_until(replaced, 4, "a replacement worker")


async def test_crash_mid_request_and_backoff(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 1, "crashlog-limit": 20}
    await deploy(runtime.locator, "crashy", CRASHER, profile)
    chunks, error = await call_stream(runtime.locator, "crashy", "crash", b"go", timeout=4)
    assert chunks == [b"first chunk"]
    assert error is not None

    [key] = await wait_until(lambda: _crashlogs(runtime.locator, "crashy"), 3, "a crashlog")
    lines = await _read_crashlog(runtime.locator, key)
    assert all(isinstance(line, str) for line in lines)
    assert any("CRASH-MARKER: worker" in line for line in lines), lines

    async def backoff(expected: float) -> dict[str, Any] | None:
        report = await app_info(runtime.locator, "crashy")
        return report if report["backoff"] == expected else None

    assert await wait_until(lambda: backoff(1), 2, "a 1 s backoff after the first crash")
    # the next request waits out the backoff, meets a new worker, which crashes too: doubling
    chunks, error = await call_stream(runtime.locator, "crashy", "crash", b"go", timeout=4)
    assert chunks == [b"first chunk"] and error is not None
    assert await wait_until(lambda: backoff(2), 2, "a 2 s backoff after the second crash")


async def test_a_pool_dying_at_once_counts_as_one_failure(runtime: RuntimeProcess) -> None:
    profile = {"pool-limit": 3, "handshake-timeout": 2}
    await deploy(runtime.locator, "dying", EXITS_AT_ONCE, profile)
    app = Service("dying", locator=runtime.locator)
    try:
        control = await app.call("control")
        await control.write(3)

        async def all_dead() -> dict[str, Any] | None:
            report = await app_info(runtime.locator, "dying")
            return report if not slaves(report) and report["backoff"] else None

        report = await wait_until(all_dead, 3, "three workers to die")
        assert report["backoff"] == 1  # not 4: the backoff doubles per failure, not per worker
        await control.close()
    finally:
        app.close()
    keys = await wait_until(lambda: _crashlogs(runtime.locator, "dying"), 3, "crashlogs")
    assert len(keys) >= 3


async def test_request_timeout_from_the_profile(runtime: RuntimeProcess, tmp_path: Path) -> None:
    events = tmp_path / "events"
    manifest = {"slave": "worker.py", "environment": {"EVENTS_FILE": str(events)}}
    profile = {"pool-limit": 1, "request-timeout": 0.5, "terminate-timeout": 0.5}
    await deploy(runtime.locator, "slowpoke", NOTING, profile, manifest=manifest)
    with pytest.raises(ServiceError) as info:
        await call(runtime.locator, "slowpoke", "hang", timeout=4)
    assert info.value.pair == (NODE, 3)  # timeout_error
    assert read_lines(events) == ["hang"]
    # the worker is still there for the next event
    assert await call(runtime.locator, "slowpoke", "mark") == [b"quick"]


async def test_event_expires_in_the_queue(runtime: RuntimeProcess, tmp_path: Path) -> None:
    events = tmp_path / "events"
    manifest = {"slave": "worker.py", "environment": {"EVENTS_FILE": str(events)}}
    profile = {"pool-limit": 1, "concurrency": 1}
    await deploy(runtime.locator, "busy", NOTING, profile, manifest=manifest)

    app = Service("busy", locator=runtime.locator)
    try:
        gated = await app.call("enqueue", "gated")
        assert await gated.get(timeout=5) == b"started"  # the only worker slot is taken

        deadline = [(b"request_timeout", struct.pack("<Q", 200))]
        with pytest.raises(ServiceError) as info:
            await call(runtime.locator, "busy", "victim", timeout=4, headers=deadline)
        assert info.value.pair == (NODE, 1)  # deadline_error: expired in the queue

        await gated.write(b"go")
        await gated.close()
        assert [chunk async for chunk in gated] == [b"finished"]
    finally:
        app.close()
    # FIFO on one worker: had the victim been delivered, it would come before the mark
    assert await call(runtime.locator, "busy", "mark") == [b"quick"]
    assert read_lines(events) == ["gated", "mark"]


GARBAGE_AFTER_HANDSHAKE = """
import socket
import sys
import time

import msgpack

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(args["--endpoint"])
sock.sendall(msgpack.packb([1, 0, [args["--uuid"]]]))
sock.recv(65536)  # wait for the first invoke
print("garbage: answering an invoke with bytes that are not msgpack frames", flush=True)
sock.sendall(b"\\xc1\\xc1 this is not a frame")
time.sleep(60)
"""

EXITS_AFTER_HANDSHAKE = """
import socket
import sys

import msgpack

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(args["--endpoint"])
sock.sendall(msgpack.packb([1, 0, [args["--uuid"]]]))
sock.recv(65536)  # wait for the first invoke
print("exits-after-handshake: status 4", flush=True)
sys.exit(4)
"""


@pytest.mark.parametrize(
    ("source", "marker"),
    [
        (GARBAGE_AFTER_HANDSHAKE, "garbage: answering an invoke"),
        (EXITS_AFTER_HANDSHAKE, "exits-after-handshake: status 4"),
    ],
    ids=["garbage-on-the-socket", "exit-after-handshake"],
)
async def test_a_worker_breaking_its_connection_fails_only_its_events(
    runtime: RuntimeProcess, source: str, marker: str
) -> None:
    """Garbage on the worker socket or an exit right after the handshake: the event gets a
    slave error long before any heartbeat timeout, and the worker's last lines are kept."""
    profile = {"pool-limit": 1, "heartbeat-timeout": 30}
    await deploy(runtime.locator, "broken", source, profile)
    with pytest.raises(ServiceError) as info:
        await call(runtime.locator, "broken", "anything", b"x", timeout=5)
    assert info.value.category == SLAVE
    [key] = await wait_until(lambda: _crashlogs(runtime.locator, "broken"), 5, "a crashlog")
    lines = await _read_crashlog(runtime.locator, key)
    assert any(marker in line for line in lines), lines
    # the app is not broken: it keeps trying (with backoff), it can still run
    report = await app_info(runtime.locator, "broken")
    assert report["state"] == "running"
