"""Real HTTP clients against the real proxy: curl always; ``ab`` and ``wrk`` when installed.

Each client is strict about framing in its own way (curl reuses connections and reads chunked
bodies, ab counts length mismatches, wrk counts socket and status errors), so a framing bug in
the proxy shows up as a failure here even when our own small test client would miss it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.apps import deploy
from support.processes import RuntimeProcess
from support.proxy import ProxyProcess

WORKER = """
import hashlib
import json

import msgpack

from cocaine.worker import Worker


def head(response, code=200, headers=()):
    fields = [[b"Content-Type", b"text/plain"], *headers]
    response.write(msgpack.packb([code, fields], use_bin_type=False))


async def echo(request, response):
    method, uri, version, headers, body = msgpack.unpackb(await request.read(), raw=True)
    head(response)
    response.write(json.dumps({
        "method": method.decode(),
        "uri": uri.decode(),
        "version": version.decode(),
        "headers": [[name.decode(), value.decode()] for name, value in headers],
        "length": len(body),
        "md5": hashlib.md5(body).hexdigest(),
    }).encode())


async def stream(request, response):
    await request.read()
    head(response)
    for part in (b"alpha ", b"beta ", b"gamma"):
        response.write(part)


async def sized(request, response):
    await request.read()
    body = b"a fixed body of known length"
    head(response, 200, [[b"Content-Length", str(len(body)).encode()]])
    response.write(body)


async def nocontent(request, response):
    await request.read()
    head(response, 204)


Worker().run({"echo": echo, "stream": stream, "sized": sized, "nocontent": nocontent})
"""

PROFILE = {"pool-limit": 2, "concurrency": 16, "terminate-timeout": 1, "seal-timeout": 1}


@pytest.fixture
def proxy(runtime: RuntimeProcess) -> Iterator[ProxyProcess]:
    """The ``conf`` app deployed on a fresh runtime, with a proxy in front of it."""
    asyncio.run(deploy(runtime.locator, "conf", WORKER, PROFILE))
    with ProxyProcess(runtime.locator).start() as started:
        yield started


def url(proxy: ProxyProcess, path: str) -> str:
    return f"http://127.0.0.1:{proxy.port}{path}"


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run curl (silent, errors shown, no proxy from the environment); fail on its errors."""
    done = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done


def curl_json(*args: str) -> dict[str, Any]:
    """What the ``echo`` handler saw, as curl received it."""
    done = curl("--fail-with-body", *args)
    found: dict[str, Any] = json.loads(done.stdout)
    return found


# -- curl ------------------------------------------------------------------------------------


def test_curl_get(proxy: ProxyProcess) -> None:
    seen = curl_json(url(proxy, "/conf/echo/some/path?x=1&y=2"))
    assert (seen["method"], seen["uri"], seen["version"]) == ("GET", "/some/path?x=1&y=2", "1.1")
    assert seen["length"] == 0
    assert ["X-Cocaine-Event", "echo"] in seen["headers"]


def test_curl_post_form(proxy: ProxyProcess) -> None:
    seen = curl_json("-d", "a=2&b=3", url(proxy, "/conf/echo"))
    assert seen["method"] == "POST"
    assert seen["md5"] == hashlib.md5(b"a=2&b=3").hexdigest()
    assert ["Content-Type", "application/x-www-form-urlencoded"] in seen["headers"]


def test_curl_chunked_upload(proxy: ProxyProcess, tmp_path: Path) -> None:
    data = bytes(range(256)) * 300
    (tmp_path / "upload").write_bytes(data)
    seen = curl_json(
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        f"@{tmp_path / 'upload'}",
        url(proxy, "/conf/echo"),
    )
    assert (seen["length"], seen["md5"]) == (len(data), hashlib.md5(data).hexdigest())
    assert ["Transfer-Encoding", "chunked"] in seen["headers"]


def test_curl_large_upload_gets_100_continue(proxy: ProxyProcess, tmp_path: Path) -> None:
    data = b"z" * (2 * 1024 * 1024)  # large enough for curl to send Expect: 100-continue
    (tmp_path / "upload").write_bytes(data)
    done = curl(
        "--fail-with-body",
        "-v",
        "--expect100-timeout",
        "60",  # without a 100 Continue, curl would wait this long: the run times out first
        "--data-binary",
        f"@{tmp_path / 'upload'}",
        url(proxy, "/conf/echo"),
        timeout=15,
    )
    assert "< HTTP/1.1 100 Continue" in done.stderr
    seen = json.loads(done.stdout)
    assert (seen["length"], seen["md5"]) == (len(data), hashlib.md5(data).hexdigest())


def test_curl_reuses_one_connection_across_framings(proxy: ProxyProcess) -> None:
    paths = ["/conf/stream", "/conf/sized", "/conf/nocontent", "/conf/stream", "/ping"]
    done = curl("-v", *(url(proxy, p) for p in paths))
    assert (
        done.stdout
        == "alpha beta gamma" + "a fixed body of known length" + "alpha beta gamma" + "OK\n"
    )
    assert done.stderr.count("Re-using existing connection") == len(paths) - 1
    assert "< Transfer-Encoding: chunked" in done.stderr


def test_curl_head_and_http10(proxy: ProxyProcess) -> None:
    done = curl("-I", url(proxy, "/conf/stream"), url(proxy, "/conf/sized"))
    assert done.stdout.count("HTTP/1.1 200 OK") == 2
    done = curl("--http1.0", "-i", url(proxy, "/conf/stream"))
    assert done.stdout.endswith("\n\nalpha beta gamma")  # text mode: CRLF reads as LF
    assert "Transfer-Encoding" not in done.stdout and "Connection: close" in done.stdout


def test_curl_errors(proxy: ProxyProcess) -> None:
    for path, code in [("/", "404"), ("/nosuchapp/web", "503"), ("/conf/nosuchevent", "500")]:
        done = curl("-o", "/dev/null", "-w", "%{http_code}", url(proxy, path))
        assert done.stdout == code, path


# -- load generators -------------------------------------------------------------------------

needs_ab = pytest.mark.skipif(shutil.which("ab") is None, reason="ab (apache2-utils) is missing")
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is missing")


def _ab_field(output: str, name: str) -> int:
    match = re.search(rf"^{name}:\s+(\d+)", output, re.MULTILINE)
    assert match, f"no {name!r} in ab output:\n{output}"
    return int(match.group(1))


@needs_ab
@pytest.mark.parametrize("keep_alive", [False, True], ids=["close", "keep-alive"])
def test_ab(proxy: ProxyProcess, keep_alive: bool) -> None:
    args = ["ab", "-q", "-n", "200", "-c", "8", *(["-k"] if keep_alive else [])]
    done = subprocess.run(
        [*args, url(proxy, "/conf/sized")], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert _ab_field(out, "Complete requests") == 200
    assert _ab_field(out, "Failed requests") == 0, out
    assert "Non-2xx responses" not in out, out
    if keep_alive:
        assert _ab_field(out, "Keep-Alive requests") == 200, out


@needs_wrk
def test_wrk(proxy: ProxyProcess) -> None:
    done = subprocess.run(
        ["wrk", "-t1", "-c8", "-d1s", url(proxy, "/conf/stream")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Socket errors" not in out, out
    assert "Non-2xx or 3xx responses" not in out, out
    match = re.search(r"(\d+) requests in", out)
    assert match and int(match.group(1)) > 100, out
