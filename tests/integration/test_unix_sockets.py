"""Each service also listens on ``<runtime dir>/<port>.sock``; local clients that know the dir
use it instead of loopback TCP, and fall back to TCP when the socket is stale."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from cocaine.client import Service
from cocaine.client.endpoints import parse_endpoints
from cocaine.client.service import resolve
from cocaine.idl import STORAGE
from cocaine.rpc import Inbox
from cocaine.rpc.connection import connect_endpoint
from support.apps import deploy
from support.processes import RuntimeProcess
from support.proxy import ProxyProcess, get

T = 10.0

WORKER = """
import os

import msgpack

from cocaine.services import Service
from cocaine.worker import Worker


async def where(request, response):
    await request.read()
    storage = Service("storage")
    await storage.write("unix", "key", b"from the app", [])
    response.write(os.environ.get("COCAINE_RUNTIME_DIR", "").encode())


async def web(request, response):
    await request.read()
    response.write(msgpack.packb([200, [[b"Content-Length", b"2"]]], use_bin_type=False))
    response.write(b"ok")


Worker().run({"where": where, "web": web})
"""
PROFILE = {"pool-limit": 1, "concurrency": 4}


def run_dir(runtime: RuntimeProcess) -> Path:
    return runtime.state_dir / "run"


async def port_of(runtime: RuntimeProcess, name: str) -> int:
    endpoints, _, _ = await resolve(name, list(parse_endpoints(runtime.locator)))
    return int(endpoints[0][1])


async def test_every_service_has_a_socket_that_serves_it(runtime: RuntimeProcess) -> None:
    for name in ("locator", "storage", "node", "logging"):
        assert (run_dir(runtime) / f"{await port_of(runtime, name)}.sock").is_socket(), name
    port = await port_of(runtime, "storage")
    conn = await connect_endpoint("127.0.0.1", port, runtime_dir=str(run_dir(runtime)))
    try:
        assert conn.peer == str(run_dir(runtime) / f"{port}.sock")
        inbox = Inbox(conn)
        conn.open(STORAGE.root, STORAGE.root.id_of("find"), ["none", []], receiver=inbox)
        message, args, _ = await asyncio.wait_for(inbox.get_message(), T)
        assert (message.alias, args) == ("value", [[]])
    finally:
        conn.close()


async def test_a_stale_socket_falls_back_to_tcp(runtime: RuntimeProcess, tmp_path: Path) -> None:
    port = await port_of(runtime, "storage")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / f"{port}.sock"))
    stale.close()  # the file stays, nobody listens
    conn = await connect_endpoint("127.0.0.1", port, runtime_dir=str(tmp_path))
    try:
        assert conn.peer == ("127.0.0.1", port)
    finally:
        conn.close()


async def test_workers_reach_services_through_the_runtime_dir(runtime: RuntimeProcess) -> None:
    await deploy(runtime.locator, "unixapp", WORKER, PROFILE)
    app = Service("unixapp", locator=runtime.locator)
    stream = await app.enqueue("where")
    await stream.write(b"")
    await stream.close()
    assert await stream.get() == str(run_dir(runtime)).encode()
    storage = Service("storage", locator=runtime.locator)
    assert await storage.read("unix", "key") == b"from the app"
    app.close()
    storage.close()


async def test_the_proxy_uses_the_app_socket_and_it_goes_when_the_app_stops(
    runtime: RuntimeProcess,
) -> None:
    await deploy(runtime.locator, "unixweb", WORKER, PROFILE)
    path = run_dir(runtime) / f"{await port_of(runtime, 'unixweb')}.sock"
    assert path.is_socket()
    proxy = ProxyProcess(runtime.locator, ["-v", "--runtime-dir", str(run_dir(runtime))]).start()
    try:
        reply = await get(proxy.port, "/unixweb/web")
        assert (reply.status, reply.body) == (200, b"ok")
        proxy.wait_for_log(rf"app unixweb: connected to {path}")
    finally:
        proxy.stop()
        proxy.kill()
    node = Service("node", locator=runtime.locator)
    await node.pause_app("unixweb")
    node.close()
    assert not os.path.exists(path)
