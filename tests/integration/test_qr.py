"""The QR example app on a real runtime: the ``generate`` event, its cache, and HTTP via the proxy.

The app is deployed the article's way (``cocaine-tool app upload`` in ``examples/qr``, the
article's profile, ``app start``); the HTTP tests run a real ``cocaine-proxy`` on an ephemeral
port and wait for its readiness line.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from PIL import Image

from cocaine.client import Service
from cocaine.errors import EndOfStream, ServiceError
from support.processes import RuntimeProcess
from support.proxy import ProxyProcess
from support.tool import tool, tool_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEADLINE = 30.0
MESSAGE = "What is best in life?"


@pytest.fixture
def qr_app(runtime: RuntimeProcess, tmp_path: Path) -> None:
    """``cd examples/qr && cocaine-tool app upload && cocaine-tool app start …``."""
    profile = tmp_path / "profile.json"
    (tmp_path / "spool").mkdir()
    spool = str(tmp_path / "spool")
    profile.write_text(json.dumps({"isolate": {"args": {"spool": spool}, "type": "process"}}))
    tool(runtime, "profile", "upload", "--name", "profile@test", "--profile", str(profile))
    assert tool(runtime, "app", "upload", cwd=EXAMPLES / "qr").startswith("app 'qr' uploaded")
    tool(runtime, "app", "start", "--name", "qr", "--profile", "profile@test")


def fetch(
    proxy: ProxyProcess,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request (GET, or POST with ``body``): status, lower-cased headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=DEADLINE)
    try:
        conn.request("GET" if body is None else "POST", path, body, headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


@pytest.fixture
def proxy(runtime: RuntimeProcess, qr_app: None) -> Iterator[ProxyProcess]:
    proc = ProxyProcess(runtime.locator).start()
    try:
        yield proc
    finally:
        proc.stop()
        proc.kill()


async def generate(runtime: RuntimeProcess, message: object, size: object) -> list[bytes]:
    """``enqueue("generate")`` with msgpack ``[message, size]``; every chunk of the reply."""
    qr = Service("qr", locator=runtime.locator, timeout=DEADLINE)
    try:
        async with asyncio.timeout(DEADLINE):
            stream = await qr.enqueue("generate")
            await stream.write(msgpack.packb([message, size]))
            await stream.close()
            chunks = []
            while True:
                try:
                    chunks.append(await stream.get())
                except EndOfStream:
                    return chunks
    finally:
        qr.close()


async def stored(runtime: RuntimeProcess, key: str) -> bytes:
    storage = Service("storage", locator=runtime.locator, timeout=DEADLINE)
    try:
        blob: bytes = await storage.read("qr-codes", key)
        return blob
    finally:
        storage.close()


async def store(runtime: RuntimeProcess, key: str, blob: bytes) -> None:
    storage = Service("storage", locator=runtime.locator, timeout=DEADLINE)
    try:
        await storage.write("qr-codes", key, blob)
    finally:
        storage.close()


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image


# -- the generate event ---------------------------------------------------------------------------


async def test_generate_renders_a_png(runtime: RuntimeProcess, qr_app: None) -> None:
    [small] = await generate(runtime, MESSAGE, 5)
    image = png(small)
    assert image.width == image.height and image.width % 5 == 0
    [bigger] = await generate(runtime, MESSAGE.encode(), 7)  # a bin-typed message works too
    assert png(bigger).width == image.width // 5 * 7
    with pytest.raises(ServiceError) as not_cached:
        await stored(runtime, f"{MESSAGE}size=5")
    assert not_cached.value.pair == (12, 2)


async def test_big_codes_are_cached_and_read_from_the_cache(
    runtime: RuntimeProcess, qr_app: None
) -> None:
    key = f"{MESSAGE}size=12"
    [first] = await generate(runtime, MESSAGE, 12)
    assert png(first).width % 12 == 0
    assert await stored(runtime, key) == first
    # Put a different picture under the key: the next call must serve it from the cache.
    [planted] = await generate(runtime, "planted", 3)
    await store(runtime, key, planted)
    assert await generate(runtime, MESSAGE, 12) == [planted]


async def test_a_message_that_is_no_storage_key_is_served_uncached(
    runtime: RuntimeProcess, qr_app: None
) -> None:
    [image] = await generate(runtime, "https://example.org/a/b", 10)
    assert png(image).width % 10 == 0


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        (30, "size must be between 1 and 19, not 30"),
        (0, "size must be between 1 and 19, not 0"),
        ("big", "size must be an integer, not 'big'"),
    ],
)
async def test_generate_refuses_bad_sizes(
    runtime: RuntimeProcess, qr_app: None, size: object, reason: str
) -> None:
    with pytest.raises(ServiceError) as refused:
        await generate(runtime, MESSAGE, size)
    assert refused.value.pair == (43, 1)
    assert refused.value.reason == reason


def test_the_example_client_saves_qr_png(
    runtime: RuntimeProcess, qr_app: None, tmp_path: Path
) -> None:
    out = tmp_path / "client"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "clients" / "qr_client.py")],
        cwd=out,
        env=tool_env(runtime),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Result: a ")
    assert png((out / "qr.png").read_bytes()).width % 10 == 0


# -- generate-http through cocaine-proxy ----------------------------------------------------------


def test_http_generate_through_the_proxy(runtime: RuntimeProcess, proxy: ProxyProcess) -> None:
    status, headers, body = fetch(proxy, "/qr/generate-http?message=Hello%20World!&size=10")
    assert status == 200, body
    assert headers["content-type"] == "image/png"
    assert headers["x-cocaine-application"] == "qr"
    assert png(body).width % 10 == 0
    assert asyncio.run(stored(runtime, "Hello World!size=10")) == body

    status, headers, body = fetch(proxy, "/qr/generate-http?message=Hello&size=4")
    assert status == 200 and png(body).width % 4 == 0

    # A form body works as well as the query string.
    status, headers, body = fetch(
        proxy,
        "/qr/generate-http",
        body=b"message=from+a+form&size=3",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and headers["content-type"] == "image/png"
    assert png(body).width % 3 == 0


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?message=Hello%20World!&size=30", b"size must be between 1 and 19, not 30"),
        ("?message=Hello&size=x", b"size must be an integer, not 'x'"),
        ("?size=10", b'Query field "message" is required'),
        ("", b'Query field "message" is required'),
    ],
)
def test_http_bad_requests_get_400_with_the_reason(
    proxy: ProxyProcess, query: str, reason: bytes
) -> None:
    status, headers, body = fetch(proxy, f"/qr/generate-http{query}")
    assert status == 400
    assert headers["content-type"] == "text/plain"
    assert body == reason
