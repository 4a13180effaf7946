"""The real runtime, driven through the client: locator, storage, logging, bad bytes."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cocaine.client import Service
from cocaine.errors import ConnectionLost, ServiceError
from support.processes import RuntimeProcess


async def test_resolve_each_builtin_service(runtime: RuntimeProcess) -> None:
    locator = Service("locator", locator=runtime.locator)
    versions = {"locator": 3, "storage": 1, "logging": 2, "node": 1}
    for name, version in versions.items():
        endpoints, got_version, graph = await locator.resolve(name)
        assert got_version == version
        assert endpoints and all(host == "127.0.0.1" for host, _ in endpoints)
        assert 65535 in graph  # control entries are part of every service graph
    endpoints, _, graph = await locator.resolve("storage")
    aliases = {mid: entry[0] for mid, entry in graph.items() if mid < 65532}
    assert aliases == {0: b"read", 1: b"write", 2: b"remove", 3: b"find"}
    locator.close()


async def test_unknown_service_is_error_10_1(runtime: RuntimeProcess) -> None:
    with pytest.raises(ServiceError) as info:
        await Service("42", locator=runtime.locator).connect()
    assert info.value.pair == (10, 1)


async def test_locator_uuid_and_cluster(runtime: RuntimeProcess) -> None:
    locator = Service("locator", locator=runtime.locator)
    uuid = await locator.uuid()
    assert await locator.cluster() == {uuid: ["127.0.0.1", runtime.port]}
    with pytest.raises(ServiceError):
        await locator.refresh(["group"])
    stream = await locator.call("connect", "some-node")
    assert [chunk async for chunk in stream.rx] == []
    locator.close()


async def test_storage_read_write_remove_find(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    blob = bytes(range(256)) * 4
    await storage.write("things", "one", blob, ["red", "round"])
    await storage.write("things", "two", b"2", ["red"])
    await storage.write("things", "three", b"3", ["round"])
    assert await storage.read("things", "one") == blob
    assert await storage.find("things", ["red"]) == ["one", "two"]
    assert await storage.find("things", ["red", "round"]) == ["one"]
    assert await storage.find("things", []) == []
    await storage.remove("things", "one")
    with pytest.raises(ServiceError) as info:
        await storage.read("things", "one")
    assert info.value.pair == (12, 2)
    assert await storage.find("things", ["red"]) == ["two"]
    # the files backend keeps the original on-disk layout
    assert (runtime.state_dir / "storage" / "things" / "two").read_bytes() == b"2"
    assert (runtime.state_dir / "storage" / "things" / "red" / "two").is_symlink()
    storage.close()


async def test_storage_refuses_escaping_names(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    for collection, key in [("..", "x"), ("a", "../x"), ("/etc", "passwd"), ("a", "x\x00y")]:
        with pytest.raises(ServiceError) as info:
            await storage.write(collection, key, b"x")
        assert info.value.pair == (12, 22)
    storage.close()


async def test_storage_bad_arguments_answered_on_the_channel(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    with pytest.raises(ServiceError) as info:
        await storage.read("only-one-arg")
    print(info.value)
    assert info.value.pair == (7, 2)
    with pytest.raises(ServiceError) as info:
        await storage.read(1, 2)
    assert info.value.pair == (7, 2)
    await storage.write("c", "k", b"still serving")
    assert await storage.read("c", "k") == b"still serving"
    storage.close()


async def test_logging_emit_reaches_the_runtime_log(runtime: RuntimeProcess) -> None:
    logging_service = Service("logging", locator=runtime.locator)
    await logging_service.emit(2, "test-source", "a warning from a client", [["key", "value"]])
    assert await logging_service.verbosity() == 1
    line = await asyncio.to_thread(runtime.wait_for_log, "a warning from a client")
    assert "test-source" in line and "key=value" in line and "WARNING" in line
    await logging_service.set_verbosity(3)
    assert await logging_service.verbosity() == 3
    logging_service.close()


async def test_bad_bytes_close_only_that_connection(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    await storage.write("c", "k", b"v")
    host, port = storage.endpoints[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"\xc1\xc1\xc1 definitely not msgpack")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the runtime hung up on us
    writer.close()
    assert await storage.read("c", "k") == b"v"  # the other connection is fine
    fresh = Service("storage", locator=runtime.locator)
    assert await fresh.read("c", "k") == b"v"
    fresh.close()
    storage.close()


async def test_unreachable_locator_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionLost) as info:
        await Service("storage", locator=f"127.0.0.1:{port}").connect()
    assert "cannot connect" in info.value.reason


def test_runtime_starts_with_no_config_and_stops_on_sigterm(runtime: RuntimeProcess) -> None:
    assert (runtime.state_dir / "run").is_dir()
    assert runtime.stop() == 0
