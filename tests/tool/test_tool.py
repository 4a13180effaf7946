"""cocaine-tool without a runtime: packing, manifests, JSON arguments, options and errors."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import tarfile
from pathlib import Path
from typing import Any

import msgpack
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from cocaine.tool import cli
from cocaine.tool.arguments import load_json_object, parse_call_arg
from cocaine.tool.crashlog import CrashlogKey, format_lines
from cocaine.tool.info import format_uptime, render
from cocaine.tool.package import PackageError, build, check_archive, pack_directory
from cocaine.tool.proxy import proxy_command
from cocaine.tool.storage import decode, decode_map, encode

# -- helpers ---------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    env = {"COCAINE_LOCATOR": "", "COCAINE_TOKEN": "", **(env or {})}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def make_app(root: Path, manifest: Any = None, slave_mode: int = 0o755) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(
        json.dumps({"slave": "echo.py"} if manifest is None else manifest)
    )
    (root / "echo.py").write_text("#!/usr/bin/env python3\n")
    (root / "echo.py").chmod(slave_mode)
    (root / "data").mkdir()
    (root / "data" / "table.txt").write_text("x")
    (root / "data" / "table.txt").chmod(0o640)
    for junk in (root / "__pycache__", root / "data" / "__pycache__", root / ".git"):
        junk.mkdir()
        (junk / "stale.pyc").write_bytes(b"\0")
    return root


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


# -- packing ---------------------------------------------------------------------------------


def test_pack_members_are_relative_with_modes_and_no_junk(tmp_path: Path) -> None:
    root = make_app(tmp_path / "echo")
    found = members(pack_directory(root))
    assert set(found) == {"manifest.json", "echo.py", "data", "data/table.txt"}
    assert stat.S_IMODE(found["echo.py"].mode) == 0o755
    assert stat.S_IMODE(found["data/table.txt"].mode) == 0o640
    assert found["data"].isdir()


def test_pack_is_reproducible(tmp_path: Path) -> None:
    root = make_app(tmp_path / "echo")
    assert pack_directory(root) == pack_directory(root)


def test_build_names_the_app(tmp_path: Path) -> None:
    root = make_app(tmp_path / "echo")
    assert build(root).name == "echo"
    assert build(root, name="other").name == "other"
    named = make_app(tmp_path / "dir", {"slave": "echo.py", "name": "fromManifest"})
    assert build(named).name == "fromManifest"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"environment": {}}, "$.slave is required"),
        ({"slave": 7}, "$.slave must be a non-empty string"),
        (["echo.py"], "must be a JSON object"),
        ({"slave": "echo.py", "environment": {"A": 1}}, "$.environment"),
        ({"slave": "missing.py"}, "'missing.py' named by the manifest is not a file"),
    ],
)
def test_manifest_errors(tmp_path: Path, manifest: Any, message: str) -> None:
    root = make_app(tmp_path / "echo", manifest)
    with pytest.raises(PackageError, match=re.escape(message)):
        build(root)


def test_manifest_that_is_not_json(tmp_path: Path) -> None:
    root = make_app(tmp_path / "echo")
    (root / "manifest.json").write_text("{slave: echo.py}")
    with pytest.raises(PackageError, match="invalid JSON"):
        build(root)


def test_slave_must_be_executable(tmp_path: Path) -> None:
    root = make_app(tmp_path / "echo", slave_mode=0o644)
    with pytest.raises(PackageError, match="not executable"):
        build(root)


def test_upload_errors_before_connecting(tmp_path: Path) -> None:
    port = str(closed_port())
    no_manifest = tmp_path / "empty"
    no_manifest.mkdir()
    result = invoke("app", "upload", str(no_manifest), "--port", port)
    assert_one_line_error(result, "no manifest")
    root = make_app(tmp_path / "echo", slave_mode=0o600)
    assert_one_line_error(invoke("app", "upload", str(root), "--port", port), "chmod u+x")


def test_upload_with_a_ready_package(tmp_path: Path) -> None:
    root = make_app(tmp_path / "echo")
    archive = pack_directory(root)
    check_archive(archive, "echo.py", "pkg")
    with pytest.raises(PackageError, match="not a file in the archive"):
        check_archive(archive, "other.py", "pkg")
    with pytest.raises(PackageError, match=re.escape("not a tar.gz")):
        check_archive(b"plain bytes", "echo.py", "pkg")
    (root / "echo.py").chmod(0o644)
    with pytest.raises(PackageError, match="not executable in the archive"):
        check_archive(pack_directory(root), "echo.py", "pkg")
    package = tmp_path / "echo.tar.gz"
    package.write_bytes(archive)
    manifest = root / "manifest.json"
    built = build(tmp_path / "elsewhere", name="echo", manifest_file=manifest, package_file=package)
    assert built.archive == archive


# -- stored values ---------------------------------------------------------------------------


def test_app_blob_is_a_msgpack_raw_of_the_tarball(tmp_path: Path) -> None:
    archive = pack_directory(make_app(tmp_path / "echo"))
    blob = encode(archive)
    assert blob[0] in (0xDA, 0xDB)  # raw 16 / raw 32, not bin
    assert msgpack.unpackb(blob, raw=True) == archive


def test_decode_maps_old_and_new_style() -> None:
    assert decode_map(msgpack.packb({"slave": "x"}, use_bin_type=True), "m") == {"slave": "x"}
    assert decode_map(msgpack.packb({b"slave": b"x"}, use_bin_type=False), "m") == {"slave": "x"}
    assert decode(msgpack.packb({"k": b"\xff"}, use_bin_type=False)) == {"k": b"\xff"}
    with pytest.raises(ValueError, match="not a map"):
        decode_map(msgpack.packb([1]), "profile 'p'")


# -- JSON arguments --------------------------------------------------------------------------


def test_profile_from_file_or_inline(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text('{"pool-limit": 4}')
    assert load_json_object(str(path), "profile") == {"pool-limit": 4}
    assert load_json_object('{"isolate": {"type": "process"}}', "profile") == {
        "isolate": {"type": "process"}
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("./nope.json", "profile file './nope.json' does not exist"),
        ('{"a": }', "the inline profile is not valid JSON"),
        ("[1, 2]", "must be a JSON object, not an array"),
        ("42", "must be a JSON object, not a number"),
    ],
)
def test_profile_json_errors(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_json_object(source, "profile")


def test_profile_upload_rejects_bad_json_in_one_line() -> None:
    result = invoke("profile", "upload", "--name", "p", "--profile", "[1]")
    assert_one_line_error(result, "must be a JSON object")


def test_call_args_are_json_or_text() -> None:
    assert parse_call_arg("42") == 42
    assert parse_call_arg('["app"]') == ["app"]
    assert parse_call_arg('"42"') == "42"
    assert parse_call_arg("manifests") == "manifests"
    assert parse_call_arg("Hello World!") == "Hello World!"


# -- options and errors ----------------------------------------------------------------------


def test_nothing_listening_is_one_line_and_exit_1() -> None:
    port = closed_port()
    result = invoke("--host", "127.0.0.1", "--port", str(port), "app", "list")
    assert_one_line_error(result, f"cannot connect to 127.0.0.1:{port}", "cocaine-runtime")
    assert result.stdout == ""


def test_connection_options_after_the_command() -> None:
    port = closed_port()
    result = invoke("profile", "list", "--host", "127.0.0.1", "--port", str(port))
    assert_one_line_error(result, f"127.0.0.1:{port}")
    # The command's options win over the group's.
    result = invoke("--port", "1", "app", "view", "-n", "x", "--port", str(port), "--timeout", "5")
    assert_one_line_error(result, f"localhost:{port}")


def test_cocaine_locator_env_and_overrides() -> None:
    port = closed_port()
    env = {"COCAINE_LOCATOR": f"127.0.0.1:{port}"}
    assert_one_line_error(invoke("runlist", "list", env=env), f"127.0.0.1:{port}")
    other = closed_port()
    result = invoke("runlist", "list", "--port", str(other), env=env)
    assert_one_line_error(result, f"127.0.0.1:{other}")
    bad = invoke("runlist", "list", env={"COCAINE_LOCATOR": "host:port"})
    assert_one_line_error(bad, "port must be a number")


def test_usage_errors_exit_2() -> None:
    assert invoke("app", "start", "--name", "echo").exit_code == 2
    assert invoke("app", "list", "--timeout", "0").exit_code == 2
    assert invoke("app", "frobnicate").exit_code == 2


def test_help_of_every_group() -> None:
    for group in ("app", "profile", "runlist", "crashlog", "proxy"):
        result = invoke(group, "--help")
        assert result.exit_code == 0 and "--port" in result.stdout
    assert "METHOD is the" in invoke("call", "--help").stdout


# -- proxy, crashlogs, info ------------------------------------------------------------------


def test_proxy_start_execs_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = proxy_command(8080, 32, "127.0.0.1:10053")
    assert argv[-6:] == ["--port", "8080", "--count", "32", "--locator", "127.0.0.1:10053"]
    seen: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, args: seen.append(list(args)))
    result = invoke("--host", "10.0.0.1", "proxy", "start", "--count=32")
    assert result.exit_code == 0, result.output
    assert seen[0][-6:] == ["--port", "8080", "--count", "32", "--locator", "10.0.0.1:10053"]


def test_crashlog_keys() -> None:
    key = CrashlogKey.parse("1700000000123456:5a3c")
    assert key == CrashlogKey(1700000000123456, "5a3c")
    assert key.key == "1700000000123456:5a3c" and key.when.startswith("2023-11-1")
    assert CrashlogKey.parse("cocaine-2023-11-14") is None
    assert format_lines([b"line 1\n", "line 2"]) == ["line 1", "line 2"]


def test_info_tables() -> None:
    assert format_uptime(93784) == "1d 02:03:04" and format_uptime(None) == "-"
    report = {
        "state": "running",
        "uptime": 61,
        "profile": {"name": "default"},
        "queue": {"depth": 0, "capacity": 100},
        "pool": {
            "active": 1,
            "idle": 0,
            "capacity": 10,
            "slaves": {"5a3c": {"state": "active", "load": 2, "accepted": 7, "uptime": 60}},
        },
        "requests": {"accepted": 7, "rejected": 0},
    }
    out = io.StringIO()
    render(
        {"echo": report, "broken": {"state": "error", "error": "boom"}},
        Console(file=out, width=120),
    )
    text = out.getvalue()
    for fragment in (
        "app echo",
        "running",
        "default",
        "0 / 100",
        "1 / 0 / 10",
        "7 / 0",
        "5a3c",
        "boom",
    ):
        assert fragment in text
