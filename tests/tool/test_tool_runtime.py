"""cocaine-tool against a real runtime: profiles, runlists, apps, crashlogs, locate and call."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import msgpack
import pytest
from click.testing import CliRunner, Result

from cocaine.client import Service
from cocaine.errors import ServiceError
from cocaine.tool import cli
from support.processes import RuntimeProcess

ECHO = f"""#!{sys.executable}
from cocaine.worker import Worker


def echo(request, response):
    message = yield request.read()
    response.write(message)
    response.write(b"Additional message")
    response.close()


Worker().run({{"ping": echo}})
"""


def tool(runtime: RuntimeProcess, *args: str) -> Result:
    env = {"COCAINE_LOCATOR": runtime.locator, "COCAINE_TOKEN": ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def failed(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


def storage_read(runtime: RuntimeProcess, collection: str, key: str) -> bytes:
    async def read() -> bytes:
        storage = Service("storage", locator=runtime.locator)
        try:
            blob: bytes = await storage.read(collection, key)
            return blob
        finally:
            storage.close()

    return asyncio.run(read())


def make_echo(root: Path) -> Path:
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"slave": "echo.py"}))
    (root / "echo.py").write_text(ECHO)
    (root / "echo.py").chmod(0o755)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "echo.cpython-311.pyc").write_bytes(b"\0")
    return root


def test_profiles(runtime: RuntimeProcess, tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text('{"isolate": {"args": {}, "type": "process"}}')
    out = ok(tool(runtime, "profile", "upload", "--name", "profile@test", "--profile", str(path)))
    assert out == "profile 'profile@test' uploaded\n"
    ok(tool(runtime, "profile", "upload", "-n", "small", "-r", '{"pool-limit": 2}'))
    assert ok(tool(runtime, "profile", "list")).split() == ["profile@test", "small"]
    view = json.loads(ok(tool(runtime, "profile", "view", "--name", "small")))
    assert view == {"pool-limit": 2}
    stored = msgpack.unpackb(storage_read(runtime, "profiles", "profile@test"), raw=False)
    assert stored == {"isolate": {"args": {}, "type": "process"}}
    ok(tool(runtime, "profile", "remove", "--name", "small"))
    assert ok(tool(runtime, "profile", "list")).split() == ["profile@test"]
    failed(tool(runtime, "profile", "remove", "--name", "small"), "profile 'small' is not found")
    failed(tool(runtime, "profile", "view", "--name", "small"), "profile 'small' is not found")


def test_runlists(runtime: RuntimeProcess) -> None:
    ok(tool(runtime, "runlist", "create", "--name", "default"))
    failed(tool(runtime, "runlist", "create", "--name", "default"), "already exists")
    ok(tool(runtime, "runlist", "add-app", "-n", "default", "--app", "echo", "-r", "p1"))
    ok(tool(runtime, "runlist", "add-app", "-n", "default", "--app", "qr", "--profile", "p2"))
    assert json.loads(ok(tool(runtime, "runlist", "view", "-n", "default"))) == {
        "echo": "p1",
        "qr": "p2",
    }
    ok(tool(runtime, "runlist", "remove-app", "-n", "default", "--app", "qr"))
    failed(tool(runtime, "runlist", "remove-app", "-n", "default", "--app", "qr"), "not in")
    failed(tool(runtime, "runlist", "add-app", "-n", "new", "--app", "a", "-r", "p"), "not found")
    ok(tool(runtime, "runlist", "add-app", "-n", "new", "--app", "a", "-r", "p", "--force"))
    assert ok(tool(runtime, "runlist", "list")).split() == ["default", "new"]
    stored = msgpack.unpackb(storage_read(runtime, "runlists", "default"), raw=False)
    assert stored == {"echo": "p1"}
    ok(tool(runtime, "runlist", "remove", "-n", "new"))
    assert ok(tool(runtime, "runlist", "list")).split() == ["default"]


def test_app_upload_list_view_remove(
    runtime: RuntimeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_echo(tmp_path / "echo")
    monkeypatch.chdir(root)
    assert "app 'echo' uploaded" in ok(tool(runtime, "app", "upload"))
    ok(tool(runtime, "app", "upload", str(root), "--name", "echo2"))
    assert ok(tool(runtime, "app", "list")).split() == ["echo", "echo2"]
    assert json.loads(ok(tool(runtime, "app", "view", "--name", "echo"))) == {"slave": "echo.py"}
    archive = msgpack.unpackb(storage_read(runtime, "apps", "echo"), raw=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["echo.py", "manifest.json"]
        assert tar.getmember("echo.py").mode & 0o100
    ok(tool(runtime, "app", "remove", "--name", "echo2"))
    assert ok(tool(runtime, "app", "list")).split() == ["echo"]
    failed(tool(runtime, "app", "remove", "--name", "echo2"), "app 'echo2' is not found")
    with pytest.raises(ServiceError):
        storage_read(runtime, "apps", "echo2")


def test_crashlogs_of_an_app_without_any(runtime: RuntimeProcess) -> None:
    assert ok(tool(runtime, "crashlog", "list", "--name", "echo")) == ""
    failed(tool(runtime, "crashlog", "view", "--name", "echo"), "has no crashlogs")
    assert "0 crashlogs" in ok(tool(runtime, "crashlog", "remove", "--name", "echo"))


def test_locate_and_call(runtime: RuntimeProcess) -> None:
    out = ok(tool(runtime, "locate", "-n", "storage"))
    assert "version 1" in out and "read" in out and "find" in out
    failed(tool(runtime, "locate", "-n", "nope"), "service 'nope' is not available [10, 1]")
    ok(tool(runtime, "call", "storage", "write", "things", "k", "v", '["t"]'))
    assert json.loads(ok(tool(runtime, "call", "storage", "find", "things", '["t"]'))) == ["k"]
    assert ok(tool(runtime, "call", "storage", "read", "things", "k")) == "v\n"
    failed(tool(runtime, "call", "storage", "nope"), "has no method 'nope'")
    failed(tool(runtime, "call", "storage", "read", "things", "missing"), "[12, 2]")


def node_ready(runtime: RuntimeProcess) -> None:
    """Skip while the runtime's node service does not answer ``list`` yet."""

    async def probe() -> Any:
        node = Service("node", locator=runtime.locator)
        try:
            return await node.list()
        finally:
            node.close()

    try:
        asyncio.run(probe())
    except ServiceError as exc:
        pytest.skip(f"the node service is not ready: {exc}")


def test_app_start_call_info_restart_stop(runtime: RuntimeProcess, tmp_path: Path) -> None:
    node_ready(runtime)
    root = make_echo(tmp_path / "echo")
    ok(tool(runtime, "app", "upload", str(root)))
    ok(tool(runtime, "profile", "upload", "--name", "profile@test", "--profile", "{}"))
    ok(tool(runtime, "app", "start", "--name", "echo", "--profile", "profile@test"))
    assert json.loads(ok(tool(runtime, "info", "--json"))).keys() == {"echo"}
    out = ok(tool(runtime, "call", "echo", "ping", "Hello World!"))
    assert out == "Hello World!\nAdditional message\n"
    out = ok(tool(runtime, "call", "echo", "enqueue", "ping", "again"))
    assert out == "again\nAdditional message\n"
    assert "app echo" in ok(tool(runtime, "info"))
    report = json.loads(ok(tool(runtime, "info", "-n", "echo", "--json")))["echo"]
    assert report["profile"]["name"] == "profile@test"
    assert "profile@test" in ok(tool(runtime, "app", "restart", "--name", "echo"))
    ok(tool(runtime, "app", "stop", "--name", "echo"))
    failed(tool(runtime, "app", "pause", "--name", "echo"), "[20991, 6]")
    assert json.loads(ok(tool(runtime, "info", "--json"))) == {}
