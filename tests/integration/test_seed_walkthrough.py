"""The seed article's first part, step by step, with the real ``cocaine-tool`` and runtime.

    cd examples/echo && cocaine-tool app upload
    cocaine-tool profile upload --name profile@test --profile ./profile.json
    cocaine-tool app start --name echo --profile profile@test
    (a Python client calls ``ping``: two chunks; app "42" and an unknown event fail)
    cocaine-tool app upload && cocaine-tool app restart --name echo --profile profile@test
    cocaine-tool info

The tool runs as a subprocess found next to this Python and reaches the runtime through
``COCAINE_LOCATOR``, as in a shell where the article's commands take no connection options.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cocaine.client import Service
from cocaine.errors import EndOfStream, ServiceError
from support.processes import RuntimeProcess
from support.tool import tool, tool_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEADLINE = 30.0

# Our own edit of the echo app for the "upload && restart" step: a different second chunk.
EDITED_ECHO = """#!/usr/bin/env python3
from cocaine.worker import Worker


def ping(request, response):
    message = yield request.read()
    response.write(message)
    response.write(b"Additional message")
    response.close()


Worker().run({"ping": ping})
"""


@pytest.fixture
def profile_json(tmp_path: Path) -> Path:
    """The article's profile, spooling into the test's own directory."""
    path = tmp_path / "profile.json"
    spool = tmp_path / "spool"
    spool.mkdir()
    profile = {"isolate": {"args": {"spool": str(spool)}, "type": "process"}}
    path.write_text(json.dumps(profile))
    return path


async def ping(echo: Service, message: bytes) -> list[bytes]:
    """The article's client: enqueue ``ping``, send one chunk, read the reply to its end."""
    stream = await echo.enqueue("ping")  # not ``echo.ping``: that is the control message
    await stream.write(message)
    await stream.close()
    chunks = []
    while True:
        try:
            chunks.append(await stream.get())
        except EndOfStream:
            return chunks


async def test_the_echo_walkthrough(runtime: RuntimeProcess, profile_json: Path) -> None:
    step = asyncio.to_thread

    out = await step(tool, runtime, "app", "upload", cwd=EXAMPLES / "echo")
    assert out.startswith("app 'echo' uploaded")
    out = await step(
        tool, runtime, "profile", "upload", "--name", "profile@test", "--profile", str(profile_json)
    )
    assert out == "profile 'profile@test' uploaded\n"
    out = await step(tool, runtime, "app", "start", "--name", "echo", "--profile", "profile@test")
    assert out == "app 'echo' started with profile 'profile@test'\n"
    assert (profile_json.parent / "spool" / "echo" / "echo.py").is_file()

    # Two invocations at once; each answers with two chunks.
    echo = Service("echo", locator=runtime.locator, timeout=DEADLINE)
    try:
        async with asyncio.timeout(DEADLINE):
            first, second = await asyncio.gather(
                ping(echo, b"Hello World!"), ping(echo, b"Hello again!")
            )
            assert first == [b"Hello World!", b"and one more chunk"]
            assert second == [b"Hello again!", b"and one more chunk"]

            # An unknown event: the worker's "no handler" error, passed through.
            stream = await echo.enqueue("no-such-event")
            await stream.write(b"x")
            await stream.close()
            with pytest.raises(ServiceError) as unknown:
                await stream.get()
            assert unknown.value.pair == (42, 200)
    finally:
        echo.close()

    # An app that does not exist: the locator's "not available".
    missing = Service("42", locator=runtime.locator, timeout=DEADLINE)
    try:
        with pytest.raises(ServiceError) as absent:
            await asyncio.wait_for(missing.enqueue("ping"), DEADLINE)
        assert absent.value.pair == (10, 1)
    finally:
        missing.close()

    # The example client says the same.
    client = await step(
        subprocess.run,
        [sys.executable, str(EXAMPLES / "clients" / "echo_client.py")],
        env=tool_env(runtime),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert client.returncode == 0, client.stderr
    lines = client.stdout.splitlines()
    for message in ("Hello World!", "Hello again!"):
        assert f"ping({message!r}) -> {message.encode()!r}" in lines
        assert f"ping({message!r}) -> b'and one more chunk'" in lines
    assert any(line.startswith("unknown event: error [42, 200]") for line in lines), lines
    assert any(line.startswith("app '42': error [10, 1]") for line in lines), lines

    # Change the app, upload it again and restart it: the new code answers.
    edited = profile_json.parent / "echo"
    shutil.copytree(EXAMPLES / "echo", edited)
    (edited / "echo.py").write_text(EDITED_ECHO)
    await step(tool, runtime, "app", "upload", cwd=edited)
    out = await step(tool, runtime, "app", "restart", "--name", "echo", "--profile", "profile@test")
    assert "echo" in out
    echo = Service("echo", locator=runtime.locator, timeout=DEADLINE)
    try:
        reply = await asyncio.wait_for(ping(echo, b"Hello World!"), DEADLINE)
        assert reply == [b"Hello World!", b"Additional message"]
    finally:
        echo.close()

    # ``info`` shows the app running with its profile.
    assert "echo" in await step(tool, runtime, "info")
    reports = json.loads(await step(tool, runtime, "info", "--json"))
    assert set(reports) == {"echo"}
    assert reports["echo"]["state"] == "running"
    assert reports["echo"]["profile"]["name"] == "profile@test"
