"""Apps on a real runtime: deploy, publish, call, inspect, stop, and the ways a start can fail."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgpack
import pytest

from cocaine.client import Service
from cocaine.errors import ServiceError
from support.apps import app_info, call, deploy, slaves, upload
from support.processes import RuntimeProcess

NODE_CATEGORY = 0x51FF

WORKER = """
import os
from cocaine.worker import Worker


def ping(request, response):
    message = yield request.read()
    response.write(message)
    response.write(b"and one more chunk")


async def echo(request, response):
    async for chunk in request:
        response.write(chunk)


async def fail(request, response):
    raise ValueError("boom: the handler failed")


async def env(request, response):
    response.write(os.environ.get("FOO", "<unset>").encode())


async def cwd(request, response):
    response.write(os.getcwd().encode())


async def pid(request, response):
    response.write(str(os.getpid()).encode())


Worker().run({"ping": ping, "echo": echo, "fail": fail, "env": env, "cwd": cwd, "pid": pid})
"""

PROFILE = {"pool-limit": 2, "concurrency": 4, "terminate-timeout": 2}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_echo_app_is_published_and_answers(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "echo", WORKER, PROFILE)
    locator = Service("locator", locator=runtime.locator)
    endpoints, version, graph = await locator.resolve("echo")
    locator.close()
    assert endpoints and version == 1
    assert {graph[mid][0] for mid in (0, 1, 2)} == {b"enqueue", b"info", b"control"}

    assert await call(runtime.locator, "echo", "ping", b"hello") == [
        b"hello",
        b"and one more chunk",
    ]
    assert await call(runtime.locator, "echo", "echo", b"one", b"two") == [b"one", b"two"]


async def test_unknown_event_and_handler_exception(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "errs", WORKER, PROFILE)
    with pytest.raises(ServiceError) as info:
        await call(runtime.locator, "errs", "no-such-event")
    assert info.value.pair == (42, 200)
    assert "no-such-event" in info.value.reason

    with pytest.raises(ServiceError) as info:
        await call(runtime.locator, "errs", "fail")
    assert info.value.pair == (42, 100)
    assert "boom: the handler failed" in info.value.reason
    # the worker survived both
    assert await call(runtime.locator, "errs", "echo", b"still here") == [b"still here"]


async def test_list_and_info_reports(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "inspect", WORKER, PROFILE, profile_name="small")
    node = Service("node", locator=runtime.locator)
    try:
        assert "inspect" in await node.list()
        await call(runtime.locator, "inspect", "echo", b"x")
        for report in (await node.info("inspect", 1), await app_info(runtime.locator, "inspect")):
            assert report["state"] == "running"
            assert report["profile"]["name"] == "small"
            assert {"pool", "queue", "requests"} <= set(report)
            assert report["requests"]["accepted"] >= 1
            assert report["queue"]["capacity"] == 100
            assert report["pool"]["capacity"] == 2
            assert len(slaves(report)) == 1
        expanded = await node.info("inspect", 1 | 2 | 4)
        assert expanded["manifest"]["slave"] == "worker.py"
        assert expanded["profile"]["data"]["pool-limit"] == 2
    finally:
        node.close()


async def test_start_twice_and_pause_unknown(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "twice", WORKER, PROFILE)
    node = Service("node", locator=runtime.locator)
    try:
        with pytest.raises(ServiceError) as info:
            await node.start_app("twice", "twice")
        assert info.value.pair == (NODE_CATEGORY, 5)
        with pytest.raises(ServiceError) as info:
            await node.pause_app("never-started")
        assert info.value.pair == (NODE_CATEGORY, 6)
        with pytest.raises(ServiceError) as info:
            await node.info("never-started")
        assert info.value.pair == (NODE_CATEGORY, 6)
    finally:
        node.close()


async def test_pause_unpublishes_and_stops_workers(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "pausing", WORKER, PROFILE)
    pid = int((await call(runtime.locator, "pausing", "pid"))[0])
    assert _alive(pid)
    report = await app_info(runtime.locator, "pausing")
    assert [s["pid"] for s in slaves(report).values()] == [pid]

    node = Service("node", locator=runtime.locator)
    try:
        await node.pause_app("pausing")
        assert "pausing" not in await node.list()
    finally:
        node.close()
    assert not _alive(pid)  # pause returns once its workers have exited and been reaped
    with pytest.raises(ServiceError) as info:
        await Service("pausing", locator=runtime.locator).connect()
    assert info.value.pair == (10, 1)


@pytest.mark.parametrize(
    ("missing", "collection", "words"),
    [
        ("manifest", "manifests", ("manifest", "not uploaded")),
        ("profile", "profiles", ("profile", "not uploaded")),
        ("archive", "apps", ("app archive", "not uploaded")),
    ],
)
async def test_missing_pieces_break_the_start(
    runtime: RuntimeProcess, missing: str, collection: str, words: tuple[str, ...]
) -> None:
    name = f"no-{missing}"
    await upload(runtime.locator, name, WORKER, PROFILE)
    storage = Service("storage", locator=runtime.locator)
    await storage.remove(collection, name)
    storage.close()

    node = Service("node", locator=runtime.locator)
    try:
        with pytest.raises(ServiceError) as info:
            await node.start_app(name, name)
        for word in words:
            assert word in info.value.reason, info.value.reason
        report = await node.info(name, 0)
        assert report["state"] == "broken"
        for word in words:
            assert word in report["error"], report
    finally:
        node.close()
    with pytest.raises(ServiceError) as info:
        await Service(name, locator=runtime.locator).connect()
    assert info.value.pair == (10, 1)


async def test_slave_not_executable(runtime: RuntimeProcess) -> None:
    node = Service("node", locator=runtime.locator)
    try:
        with pytest.raises(ServiceError) as info:
            await deploy(runtime.locator, "noexec", WORKER, PROFILE, mode=0o644)
        assert "executable" in info.value.reason
        report = await node.info("noexec", 0)
        assert report["state"] == "broken" and "executable" in report["error"]
        # fixing the archive and starting again works: a broken app may be restarted
        await deploy(runtime.locator, "noexec", WORKER, PROFILE)
        assert await call(runtime.locator, "noexec", "echo", b"ok") == [b"ok"]
    finally:
        node.close()


async def test_manifest_environment_and_cwd(runtime: RuntimeProcess) -> None:
    manifest = {"slave": "worker.py", "environment": {"FOO": "bar from the manifest"}}
    await deploy(runtime.locator, "envapp", WORKER, PROFILE, manifest=manifest)
    assert await call(runtime.locator, "envapp", "env") == [b"bar from the manifest"]
    [cwd] = await call(runtime.locator, "envapp", "cwd")
    spool = runtime.state_dir / "spool" / "envapp"
    assert Path(cwd.decode()).resolve() == spool.resolve()
    assert (spool / "worker.py").is_file()


async def test_runlist_starts_apps_after_restart(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "durable", WORKER, PROFILE, profile_name="keep")
    storage = Service("storage", locator=runtime.locator)
    await storage.write("runlists", "default", msgpack.packb({"durable": "keep"}), ["runlist"])
    storage.close()

    await asyncio.to_thread(runtime.restart)

    node = Service("node", locator=runtime.locator)
    try:
        assert await node.list() == ["durable"]
        report = await node.info("durable", 1)
        assert report["state"] == "running" and report["profile"]["name"] == "keep"
    finally:
        node.close()
    assert await call(runtime.locator, "durable", "ping", b"again") == [
        b"again",
        b"and one more chunk",
    ]
