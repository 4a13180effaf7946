"""The HTTP proxy end to end (spec §7): a real runtime, real workers and a real ``cocaine-proxy``.

Each test starts the proxy as a subprocess on an ephemeral loopback port and talks raw HTTP to
it, so it sees exactly what the proxy sends. The apps are defined inline below; any sleeping
happens inside an app handler (simulated work), never in a test to wait for something.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.apps import app_info, deploy, slaves, wait_until
from support.processes import RuntimeProcess
from support.proxy import Client, ProxyProcess, exchange, get, request, reserve_port

WORKER = """
import asyncio
import json

import msgpack

from cocaine.worker import Worker


def head(response, code=200, headers=(), content_type=b"text/plain"):
    fields = [[b"Content-Type", content_type], *headers]
    response.write(msgpack.packb([code, fields], use_bin_type=False))


async def unpack(request):
    return msgpack.unpackb(await request.read(), raw=True)


async def echo(request, response):
    method, uri, version, headers, body = await unpack(request)
    text = [method.decode(), uri.decode(), version.decode()]
    pairs = [[name.decode(), value.decode()] for name, value in headers]
    head(response, content_type=b"application/json")
    response.write(json.dumps([*text, pairs, body.decode()]).encode())


async def stream(request, response):
    await unpack(request)
    head(response)
    response.write(b"one")
    response.write(b"two")
    response.write(b"three")


async def sized(request, response):
    await unpack(request)
    body = b"exactly this"
    head(response, 201, [[b"Content-Length", str(len(body)).encode()], [b"X-App", b"yes"]])
    response.write(body)


async def trace(request, response):
    await unpack(request)
    head(response)
    response.write(b"%x" % int.from_bytes(request.header("trace_id") or b"", "little"))


async def nocontent(request, response):
    await unpack(request)
    head(response, 204)
    response.write(b"dropped")  # a 204 has no body


async def badhead(request, response):
    await unpack(request)
    response.write(msgpack.packb([200, 5]))  # the headers are not a list


async def splithead(request, response):
    await unpack(request)
    head(response, 200, [[b"X-Evil", b"a\\r\\nSet-Cookie: stolen=1"]])
    response.write(b"body")


async def fail(request, response):
    await unpack(request)
    raise ValueError("boom before the head")


async def silent(request, response):
    await unpack(request)  # returns without a head: the stream just closes


async def slow(request, response):
    uri = (await unpack(request))[1]
    await asyncio.sleep(0.3)  # simulated work, longer than fast's
    head(response)
    response.write(b"slow " + uri)


async def fast(request, response):
    uri = (await unpack(request))[1]
    head(response)
    response.write(b"fast " + uri)


async def slowbody(request, response):
    await unpack(request)
    head(response)
    await asyncio.sleep(0.3)  # simulated work between the head and the body
    response.write(b"finished")


async def hang(request, response):
    await unpack(request)
    await asyncio.sleep(5)  # far longer than the proxy's --timeout in the test


async def flood(request, response):
    await unpack(request)
    head(response)
    for _ in range(48):
        response.write(b"x" * (1 << 20))
        await response.drain()


async def work(request, response):
    await unpack(request)
    await asyncio.sleep(0.02)  # simulated work
    head(response)
    response.write(b"done")


Worker().run({
    "echo": echo, "stream": stream, "sized": sized, "fail": fail, "silent": silent,
    "slow": slow, "fast": fast, "slowbody": slowbody, "hang": hang, "work": work,
    "nocontent": nocontent, "trace": trace, "flood": flood, "badhead": badhead,
    "splithead": splithead,
})
"""

PROFILE = {"pool-limit": 2, "concurrency": 8, "terminate-timeout": 1, "seal-timeout": 1}

Start = Callable[..., ProxyProcess]


@pytest.fixture
def proxies(runtime: RuntimeProcess) -> Iterator[Start]:
    """Start ``cocaine-proxy`` processes pointed at the runtime; all stopped at the end."""
    started: list[ProxyProcess] = []

    def start(*args: str, port: int = 0, servers: int = 1) -> ProxyProcess:
        proxy = ProxyProcess(runtime.locator, list(args), port=port, servers=servers)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        try:
            proxy.stop()
        finally:
            proxy.kill()


async def web(runtime: RuntimeProcess, proxies: Start, *args: str) -> ProxyProcess:
    """Deploy the ``web`` app and start a proxy (with ``args``) in front of it."""
    await deploy(runtime.locator, "web", WORKER, PROFILE)
    return proxies(*args)


# -- routing and the request the app sees ----------------------------------------------------


async def test_ping_is_answered_by_the_proxy(runtime: RuntimeProcess, proxies: Start) -> None:
    proxy = proxies()  # no app deployed at all
    reply = await get(proxy.port, "/ping")
    assert (reply.status, reply.body) == (200, b"OK\n")


async def test_the_app_sees_method_uri_version_headers_and_body(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    data = request("POST", "/web/echo/a/b?x=1", b"a=2", headers={"X-Custom": "value"})
    reply = await exchange(proxy.port, data)
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/json"
    assert reply.header("X-Powered-By") == "Cocaine"
    assert reply.header("X-Cocaine-Application") == "web"
    method, uri, version, headers, body = json.loads(reply.body)
    assert (method, uri, version, body) == ("POST", "/a/b?x=1", "1.1", "a=2")
    assert headers == [
        ["Host", "127.0.0.1"],
        ["X-Custom", "value"],
        ["Content-Length", "3"],
        ["X-Cocaine-Service", "web"],
        ["X-Cocaine-Event", "echo"],
    ]


async def test_cocaine_headers_route_when_both_are_present(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    both = {"X-Cocaine-Service": "web", "X-Cocaine-Event": "echo"}
    reply = await get(proxy.port, "/any/path?q=1", headers=both)
    assert reply.status == 200
    method, uri, _, headers, body = json.loads(reply.body)
    assert (method, uri, body) == ("GET", "/any/path?q=1", "")
    cocaine = [pair for pair in headers if pair[0].lower().startswith("x-cocaine-")]
    assert cocaine == [["X-Cocaine-Service", "web"], ["X-Cocaine-Event", "echo"]]

    # one header alone does not route: the URL does
    reply = await get(proxy.port, "/", headers={"X-Cocaine-Service": "web"})
    assert reply.status == 404
    reply = await get(proxy.port, "/web/echo?q=2", headers={"X-Cocaine-Event": "stream"})
    assert reply.status == 200 and json.loads(reply.body)[1] == "/?q=2"


@pytest.mark.parametrize("target", ["/", "/web", "/web/", "//echo", "/favicon.ico"])
async def test_a_url_without_app_and_event_is_404(
    runtime: RuntimeProcess, proxies: Start, target: str
) -> None:
    proxy = proxies()
    reply = await get(proxy.port, target)
    assert (reply.status, reply.body) == (404, b"Invalid url\n")


async def test_an_unknown_app_is_503(runtime: RuntimeProcess, proxies: Start) -> None:
    proxy = proxies()
    reply = await get(proxy.port, "/nosuchapp/web")
    assert (reply.status, reply.body) == (503, b"No such application\n")


async def test_an_app_failing_before_its_head_is_500(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    reply = await get(proxy.port, "/web/fail")
    assert reply.status == 500
    assert b"boom before the head" in reply.body
    reply = await get(proxy.port, "/web/silent")
    assert reply.status == 500
    reply = await get(proxy.port, "/web/nosuchevent")
    assert reply.status == 500
    assert (await get(proxy.port, "/web/sized")).status == 201  # the proxy still serves


async def test_request_id_is_echoed_or_made_up(runtime: RuntimeProcess, proxies: Start) -> None:
    proxy = await web(runtime, proxies)
    given = {"X-Request-Id": "00000000deadbeef"}
    assert (await get(proxy.port, "/web/sized", headers=given)).header(
        "X-Request-Id"
    ) == "00000000deadbeef"
    assert (await get(proxy.port, "/nosuch", headers=given)).header(
        "X-Request-Id"
    ) == "00000000deadbeef"
    made_up = (await get(proxy.port, "/web/sized")).header("X-Request-Id")
    assert made_up is not None and len(made_up) == 16
    int(made_up, 16)


async def test_the_request_id_reaches_the_worker_as_its_trace_id(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    reply = await get(proxy.port, "/web/trace", headers={"X-Request-Id": "00000000deadbeef"})
    assert reply.body == b"deadbeef"
    reply = await get(proxy.port, "/web/trace")
    assert reply.body == reply.header("X-Request-Id").lstrip("0").encode()


# -- the response ----------------------------------------------------------------------------


async def test_a_body_without_length_is_streamed_in_chunks(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    reply = await get(proxy.port, "/web/stream")
    assert reply.status == 200
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.header("Content-Length") is None
    assert reply.chunks == [b"one", b"two", b"three"]
    assert reply.raw.endswith(b"3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")


async def test_an_app_content_length_is_kept_without_chunking(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    reply = await get(proxy.port, "/web/sized")
    assert (reply.status, reply.body, reply.chunks) == (201, b"exactly this", None)
    assert reply.header("Content-Length") == "12"
    assert reply.header("Transfer-Encoding") is None
    assert reply.header("X-App") == "yes"


async def test_http10_gets_no_chunks_and_the_connection_closes(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    client = await Client.connect(proxy.port)
    try:
        await client.send(request("GET", "/web/stream", version="1.0"))
        reply = await client.response()
        assert (reply.status, reply.body, reply.chunks) == (200, b"onetwothree", None)
        assert reply.header("Transfer-Encoding") is None
        assert reply.header("Connection") == "close"
        assert await client.at_eof()
    finally:
        await client.close()


async def test_head_and_204_responses_carry_no_body(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    client = await Client.connect(proxy.port)
    try:
        targets = [("HEAD", "/web/stream"), ("GET", "/web/nocontent"), ("GET", "/web/sized")]
        await client.send(b"".join(request(method, target) for method, target in targets))
        head = await client.response("HEAD")
        assert (head.status, head.header("Transfer-Encoding")) == (200, None)
        empty = await client.response()
        assert (empty.status, empty.header("Transfer-Encoding")) == (204, None)
        # had either response carried a body, it would be read as the start of this one
        assert (await client.response()).raw.startswith(b"HTTP/1.1 201 Created\r\n")
    finally:
        await client.close()


async def test_a_malformed_head_is_500_and_spares_other_requests(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    busy = await Client.connect(proxy.port)
    try:
        await busy.send(request("GET", "/web/slowbody"))
        async with asyncio.timeout(10):
            await busy.reader.readuntil(b"\r\n\r\n")  # in flight on the app's connection
        for target in ("/web/badhead", "/web/splithead"):
            reply = await get(proxy.port, target)
            assert reply.status == 500, target
            assert reply.header("Set-Cookie") is None
        async with asyncio.timeout(10):
            rest = await busy.reader.readuntil(b"0\r\n\r\n")
        assert rest == b"8\r\nfinished\r\n0\r\n\r\n"
    finally:
        await busy.close()


async def test_expect_100_continue_is_answered(runtime: RuntimeProcess, proxies: Start) -> None:
    proxy = await web(runtime, proxies)
    client = await Client.connect(proxy.port)
    try:
        headers = {"Content-Length": "5", "Expect": "100-continue"}
        await client.send(request("POST", "/web/echo", headers=headers))
        async with asyncio.timeout(10):
            interim = await client.reader.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"hello")
        reply = await client.response()
        assert reply.status == 200 and json.loads(reply.body)[4] == "hello"
    finally:
        await client.close()


# -- connections -----------------------------------------------------------------------------


async def test_keep_alive_serves_several_requests_on_one_connection(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    client = await Client.connect(proxy.port)
    try:
        for target, status in [("/web/sized", 201), ("/web/stream", 200), ("/web/echo", 200)]:
            await client.send(request("GET", target))
            reply = await client.response()
            assert reply.status == status, target
            assert reply.header("Connection") is None
        await client.send(request("GET", "/ping"))
        assert (await client.response()).status == 200
    finally:
        await client.close()


async def test_pipelined_responses_come_back_in_request_order(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    client = await Client.connect(proxy.port)
    try:
        targets = ["/web/slow?n=1", "/web/fast?n=2", "/ping", "/web/fast?n=3", "/web/sized"]
        await client.send(b"".join(request("GET", target) for target in targets))
        replies = [await client.response() for _ in targets]
        assert [r.body for r in replies] == [
            b"slow /?n=1",
            b"fast /?n=2",
            b"OK\n",
            b"fast /?n=3",
            b"exactly this",
        ]
        await client.send(request("GET", "/web/fast?n=4"))  # the connection is still good
        assert (await client.response()).body == b"fast /?n=4"
    finally:
        await client.close()


# -- limits and bad requests -----------------------------------------------------------------


async def test_oversized_headers_are_431_and_bodies_413(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies, "--max-header", "1024", "--max-body", "1000")
    reply = await get(proxy.port, "/web/echo", headers={"X-Big": "x" * 2000})
    assert reply.status == 431 and reply.header("Connection") == "close"
    reply = await get(proxy.port, "/web/echo?" + "q" * 2000)
    assert reply.status == 431

    reply = await exchange(proxy.port, request("POST", "/web/echo", b"b" * 1001))
    assert reply.status == 413 and reply.header("Connection") == "close"
    chunked = request("POST", "/web/echo", headers={"Transfer-Encoding": "chunked"})
    chunked += b"".join(b"%x\r\n%s\r\n" % (300, b"c" * 300) for _ in range(4)) + b"0\r\n\r\n"
    assert (await exchange(proxy.port, chunked)).status == 413

    reply = await exchange(proxy.port, request("POST", "/web/echo", b"b" * 1000))
    assert reply.status == 200 and json.loads(reply.body)[4] == "b" * 1000


@pytest.mark.parametrize(
    "data",
    [
        b"NOT AN HTTP REQUEST\r\n\r\n",
        b"GET /web/echo HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        b"GET /web/echo HTTP/9.9.9\r\n\r\n",
        b"POST /web/echo HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
)
async def test_a_malformed_request_is_400_and_the_proxy_keeps_serving(
    runtime: RuntimeProcess, proxies: Start, data: bytes
) -> None:
    proxy = await web(runtime, proxies)
    client = await Client.connect(proxy.port)
    try:
        await client.send(data)
        reply = await client.response()
        assert reply.status == 400
        assert await client.at_eof()
    finally:
        await client.close()
    assert (await get(proxy.port, "/web/sized")).status == 201


async def test_a_slow_app_is_504_after_the_timeout(runtime: RuntimeProcess, proxies: Start) -> None:
    proxy = await web(runtime, proxies, "--timeout", "0.5")
    started = time.monotonic()
    reply = await get(proxy.port, "/web/hang")
    elapsed = time.monotonic() - started
    assert reply.status == 504
    assert 0.4 <= elapsed < 3, elapsed
    assert (await get(proxy.port, "/web/sized")).status == 201


# -- stopping and scaling --------------------------------------------------------------------


async def test_sigterm_lets_the_request_in_flight_finish(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    proxy = await web(runtime, proxies)
    idle, busy = await Client.connect(proxy.port), await Client.connect(proxy.port)
    try:
        await idle.send(request("GET", "/web/sized"))
        assert (await idle.response()).status == 201  # kept alive, now idle
        await busy.send(request("GET", "/web/slowbody"))
        async with asyncio.timeout(10):
            head = await busy.reader.readuntil(b"\r\n\r\n")  # the app is now mid-response
        assert head.startswith(b"HTTP/1.1 200 ")
        proxy.terminate()
        assert await idle.at_eof()  # closed without waiting for the busy one
        async with asyncio.timeout(10):
            rest = await busy.reader.read()  # the body, then the proxy closes
        assert rest == b"8\r\nfinished\r\n0\r\n\r\n"
    finally:
        await idle.close()
        await busy.close()
    assert await asyncio.to_thread(proxy.wait, 10) == 0


async def test_count_runs_processes_sharing_the_port(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    await deploy(runtime.locator, "web", WORKER, PROFILE)
    reserved = reserve_port()
    try:
        port = reserved.getsockname()[1]
        proxy = proxies("--count", "2", port=port, servers=2)
    finally:
        reserved.close()
    assert proxy.ports == [port, port]
    replies = await asyncio.gather(*(get(port, f"/web/fast?n={i}") for i in range(20)))
    assert [r.body for r in replies] == [b"fast /?n=%d" % i for i in range(20)]
    assert await asyncio.to_thread(proxy.stop) == 0


# -- load --------------------------------------------------------------------------------------

LOAD_PROFILE = {
    "pool-limit": 4,
    "concurrency": 2,
    "grow-threshold": 2,
    "idle-timeout": 1,
    "terminate-timeout": 1,
    "seal-timeout": 1,
}


async def test_a_client_that_stops_reading_is_cut_off(
    runtime: RuntimeProcess, proxies: Start
) -> None:
    """Replies share the proxy's connection to the app, so a client that does not read its
    48 MiB reply is dropped once 4 MB wait for it; the proxy stays small and keeps serving."""
    proxy = await web(runtime, proxies, "--max-output", "4000000")
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", proxy.port))
    await loop.sock_sendall(sock, request("GET", "/web/flood"))
    line = await asyncio.to_thread(proxy.wait_for_log, "left .* reply bytes unread", 30)
    assert "closing a client" in line
    received = 0
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10):
            received += len(chunk)
    sock.close()
    assert received < 24 * (1 << 20)  # cut off long before the whole reply
    assert (await get(proxy.port, "/ping")).status == 200
    assert proxy.rss_mb() < 200


async def _load(port: int, total: int, clients: int) -> list[int]:
    """``total`` requests to ``/loaded/work`` over ``clients`` keep-alive connections."""
    statuses: list[int] = []
    remaining = iter(range(total))

    async def one_client() -> None:
        client = await Client.connect(port)
        try:
            for _ in remaining:
                await client.send(request("GET", "/loaded/work"))
                reply = await client.response()
                statuses.append(reply.status if reply.body == b"done" else -reply.status)
        finally:
            await client.close()

    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(one_client())
    return statuses


async def test_load_grows_the_pool_then_it_shrinks(runtime: RuntimeProcess, proxies: Start) -> None:
    await deploy(runtime.locator, "loaded", WORKER, LOAD_PROFILE)
    proxy = proxies()
    sizes: list[int] = []

    async def pool_size(report: dict[str, Any]) -> int:
        size = len(slaves(report))
        sizes.append(size)
        return size

    async def grown() -> bool:
        return await pool_size(await app_info(runtime.locator, "loaded")) > 1

    statuses, _ = await asyncio.gather(
        _load(proxy.port, 200, 16), wait_until(grown, 10, "the pool to grow under load")
    )
    assert len(statuses) == 200 and set(statuses) == {200}
    assert 1 < max(sizes) <= 4

    async def one_left() -> bool:
        return await pool_size(await app_info(runtime.locator, "loaded")) == 1

    await wait_until(one_left, 10, "the pool to shrink back to one worker after idling")
    report = await app_info(runtime.locator, "loaded")
    assert report["requests"]["accepted"] == 200 and report["requests"]["rejected"] == 0
