"""Bad input at the edges: command lines, config files, profiles and manifests.

Each refusal must be one readable line that names what is wrong (the flag, the ``$.path`` of the
field, the member), exit with a non-zero status, and never show a traceback.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cocaine.client import Service
from cocaine.errors import ServiceError
from support.processes import RuntimeProcess

BIN = Path(sys.executable).parent
WORKER = b"#!/bin/sh\nexit 0\n"  # never runs: starting an app spawns no worker


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COCAINE_TOKEN", "COCAINE_LOCATOR"):
        monkeypatch.delenv(name, raising=False)


def run(
    tool: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, f"no message on stderr (exit {result.returncode})"
    return lines[-1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- cocaine-runtime: flags and config files ----------------------------------------------------

BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("invalid-json", "{bad", "invalid JSON at line 1"),
    ("not-an-object", "[1]", "must be a JSON object"),
    ("pinned-port-type", {"network": {"pinned": {"locator": "x"}}}, "$.network.pinned.locator"),
    ("pinned-port-range", {"network": {"pinned": {"locator": 70000}}}, "$.network.pinned.locator"),
    ("other-pinned-port", {"network": {"pinned": {"node": 1, "app": -2}}}, "$.network.pinned.app"),
    ("shared-range", {"network": {"shared": [5000, 10]}}, "$.network.shared"),
    ("shared-type", {"network": {"shared": [1, "a"]}}, "$.network.shared[1]"),
    ("frame-limit", {"limits": {"max-frame-size": 10}}, "$.limits.max-frame-size"),
    ("frame-limit-type", {"limits": {"max-frame-size": "big"}}, "$.limits.max-frame-size"),
    ("backend-field", {"storages": {"core": {"type": 7}}}, "$.storages.core.type"),
    ("backend-type", {"storages": {"core": {"type": "nosuch"}}}, "$.storages.core.type"),
    ("token-type", {"token": 42}, "$.token"),
]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [(body, fragment) for _, body, fragment in BAD_CONFIGS],
    ids=[name for name, _, _ in BAD_CONFIGS],
)
def test_runtime_refuses_a_bad_config_in_one_line(
    tmp_path: Path, config: Any, fragment: str
) -> None:
    path = tmp_path / "runtime.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    result = run("cocaine-runtime", "-c", str(path), "--state-dir", str(tmp_path / "state"))
    assert result.returncode != 0
    line = last_line(result)
    assert line.startswith("cocaine-runtime: ") and fragment in line, line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--port", "notanumber"], "argument --port: invalid int value: 'notanumber'"),
        (["--port", "70000"], "port 70000 is out of range"),
        (["--port", "-1"], "port -1 is out of range"),
        (["-c", "/nonexistent/runtime.json"], "cannot read config /nonexistent/runtime.json"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--endpoint", "192.0.2.1", "--port", "0"], "cannot listen on 192.0.2.1"),
        (["--endpoint", "nonsense.invalid", "--port", "0"], "cannot listen on nonsense.invalid"),
    ],
    ids=[
        "port-nan",
        "port-high",
        "port-negative",
        "no-config",
        "unknown-flag",
        "foreign-ip",
        "dns",
    ],
)
def test_runtime_refuses_bad_flags_in_one_line(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    result = run("cocaine-runtime", "--state-dir", str(tmp_path / "state"), *args)
    assert result.returncode != 0
    line = last_line(result)
    assert line.startswith("cocaine-runtime: ") and fragment in line, line


def test_runtime_on_a_port_in_use_exits_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            "cocaine-runtime",
            *("--state-dir", str(tmp_path / "state")),
            *("--endpoint", "127.0.0.1", "--port", str(port)),
        )
    assert result.returncode == 1
    line = last_line(result)
    assert line == f"cocaine-runtime: cannot listen on 127.0.0.1:{port} for locator: " + (
        os.strerror(98)
    ), line
    assert result.stderr.strip() == line  # nothing else was printed


# -- profiles and manifests ---------------------------------------------------------------------


def archive(mode: int = 0o755) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("worker.py")
        info.size, info.mode = len(WORKER), mode
        tar.addfile(info, io.BytesIO(WORKER))
    return msgpack.packb(buf.getvalue(), use_bin_type=False)


GOOD_MANIFEST = msgpack.packb({"slave": "worker.py"})
GOOD_PROFILE = msgpack.packb({})
MISSING = object()

# (case, manifest blob, profile blob, what the error must say)
APP_CASES: list[tuple[str, Any, Any, str]] = [
    ("pool-limit-zero", GOOD_MANIFEST, msgpack.packb({"pool-limit": 0}), "$.pool-limit"),
    ("pool-limit-text", GOOD_MANIFEST, msgpack.packb({"pool-limit": "ten"}), "$.pool-limit"),
    ("concurrency", GOOD_MANIFEST, msgpack.packb({"concurrency": -1}), "$.concurrency"),
    ("heartbeat", GOOD_MANIFEST, msgpack.packb({"heartbeat-timeout": 0}), "$.heartbeat-timeout"),
    ("queue-limit", GOOD_MANIFEST, msgpack.packb({"queue-limit": -5}), "$.queue-limit"),
    ("grow-threshold", GOOD_MANIFEST, msgpack.packb({"grow-threshold": 0}), "$.grow-threshold"),
    (
        "isolate-docker",
        GOOD_MANIFEST,
        msgpack.packb({"isolate": {"type": "docker"}}),
        "isolate.type",
    ),
    ("isolate-text", GOOD_MANIFEST, msgpack.packb({"isolate": "process"}), "$.isolate"),
    ("profile-list", GOOD_MANIFEST, msgpack.packb([1, 2]), "must be a map, got list"),
    ("profile-text", GOOD_MANIFEST, msgpack.packb("pool-limit=1"), "must be a map, got str"),
    ("profile-garbage", GOOD_MANIFEST, b"\xc1\xc1", "is not a valid msgpack value"),
    ("profile-missing", GOOD_MANIFEST, MISSING, "is not uploaded (profiles/"),
    ("no-slave", msgpack.packb({"environment": {}}), GOOD_PROFILE, "$.slave"),
    ("slave-int", msgpack.packb({"slave": 5}), GOOD_PROFILE, "$.slave"),
    ("slave-missing", msgpack.packb({"slave": "nope.py"}), GOOD_PROFILE, "$.slave"),
    ("slave-outside", msgpack.packb({"slave": "../../../bin/sh"}), GOOD_PROFILE, "$.slave"),
    ("manifest-list", msgpack.packb(["worker.py"]), GOOD_PROFILE, "must be a map, got list"),
    ("manifest-missing", MISSING, GOOD_PROFILE, "is not uploaded (manifests/"),
    (
        "environment",
        msgpack.packb({"slave": "worker.py", "environment": {"A": [1]}}),
        GOOD_PROFILE,
        "$.environment",
    ),
]


async def test_start_app_names_the_bad_profile_or_manifest_field(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    node = Service("node", locator=runtime.locator)
    for case, manifest, profile, fragment in APP_CASES:
        app, profile_name = f"app-{case}", f"profile-{case}"
        await storage.write("apps", app, archive(), [])
        if manifest is not MISSING:
            await storage.write("manifests", app, manifest, [])
        if profile is not MISSING:
            await storage.write("profiles", profile_name, profile, [])
        with pytest.raises(ServiceError) as info:
            await node.start_app(app, profile_name)
        assert info.value.pair == (12, 22), (case, info.value)
        assert fragment in info.value.reason, (case, info.value.reason)
        assert (await node.info(app, 0))["state"] == "broken", case
    # a broken app starts once its profile is fixed
    await storage.write("profiles", "profile-pool-limit-zero", GOOD_PROFILE, [])
    await node.start_app("app-pool-limit-zero", "profile-pool-limit-zero")
    assert (await node.info("app-pool-limit-zero", 0))["state"] == "running"
    await node.pause_app("app-pool-limit-zero")
    storage.close()
    node.close()


async def test_slave_that_is_not_executable(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    await storage.write("apps", "plain", archive(mode=0o644), [])
    await storage.write("manifests", "plain", GOOD_MANIFEST, [])
    await storage.write("profiles", "p", GOOD_PROFILE, [])
    node = Service("node", locator=runtime.locator)
    with pytest.raises(ServiceError) as info:
        await node.start_app("plain", "p")
    assert "$.slave" in info.value.reason and "not executable" in info.value.reason
    storage.close()
    node.close()


# -- cocaine-tool -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["app", "start", "--name", "x"], "Missing option"),
        (["--port", "notanumber", "app", "list"], "Invalid value for '--port'"),
        (["app", "list", "--port", "0"], "Invalid value for '--port'"),
        (["--timeout", "-1", "app", "list"], "Invalid value for '--timeout'"),
        (["call"], "Missing argument 'SERVICE'"),
        (["profile", "upload", "--name", "p"], "Missing option"),
        (["app", "upload", "--frobnicate"], "No such option"),
    ],
)
def test_tool_usage_errors_exit_2(args: list[str], fragment: str) -> None:
    result = run("cocaine-tool", *args)
    assert result.returncode == 2, result
    assert fragment in result.stderr and "Usage:" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def assert_one_error_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["profile", "upload", "--name", "p", "--profile", "{bad"], {}, "not valid JSON"),
        (["profile", "upload", "--name", "p", "--profile", "[1]"], {}, "must be a JSON object"),
        (["app", "upload", "/nonexistent/app"], {}, "/nonexistent/app"),
        (["runlist", "list"], {"COCAINE_LOCATOR": "host:port"}, "port must be a number"),
        (["app", "list", "--host", "127.0.0.1", "--port", "CLOSED"], {}, "cannot connect"),
    ],
    ids=["bad-json", "json-list", "no-app-dir", "bad-locator", "nothing-listening"],
)
def test_tool_failures_without_a_runtime_are_one_line(
    args: list[str], env: dict[str, str], fragment: str
) -> None:
    args = [str(closed_port()) if a == "CLOSED" else a for a in args]
    assert_one_error_line(run("cocaine-tool", *args, env=env), fragment)


def test_tool_failures_against_a_runtime_are_one_line(runtime: RuntimeProcess) -> None:
    env = {"COCAINE_LOCATOR": runtime.locator}
    cases = [
        (["profile", "view", "--name", "../x"], "invalid key name '../x'"),
        (["app", "start", "--name", "../x", "--profile", "p"], "invalid app name '../x'"),
        (["app", "start", "--name", "ghost", "--profile", "p"], "not uploaded"),
        (["call", "storage", "nosuchmethod"], "nosuchmethod"),
        (["call", "storage", "read", "only-one"], "expected 2 arguments"),
        (["call", "nosuchservice", "ping"], "nosuchservice"),
    ]
    for args, fragment in cases:
        assert_one_error_line(run("cocaine-tool", *args, env=env), fragment)


# -- cocaine-proxy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--port", "-1"], "--port -1 is out of range"),
        (["--port", "70000"], "--port 70000 is out of range"),
        (["--port", "http"], "argument --port: invalid int value"),
        (["--locator", "host:port"], "--locator: bad endpoint 'host:port'"),
        (["--locator", ""], "--locator: no endpoints"),
        (["--locator", "[::1"], "--locator: bad endpoint '[::1'"),
        (["--locator", "localhost:0"], "port out of range"),
        (["--count", "-1"], "--count must be >= 0"),
        (["--timeout", "0"], "--timeout must be > 0"),
    ],
)
def test_proxy_usage_errors_exit_2(args: list[str], fragment: str) -> None:
    result = run("cocaine-proxy", *args)
    assert result.returncode == 2, result
    line = last_line(result)
    assert line.startswith("cocaine-proxy: error: ") and fragment in line, line


def test_proxy_refuses_an_unresolvable_locator() -> None:
    proc = subprocess.Popen(
        [str(BIN / "cocaine-proxy"), "--port", "0", "--host", "127.0.0.1", "--locator", "nonsense"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()  # the ready line, or the usage error's first line
        if "ready" in first:
            raise AssertionError(f"the proxy started: {first.strip()}")
        rest = proc.stderr.read()
        assert proc.wait(10) == 2
        assert "--locator" in rest and "nonsense" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


async def test_manifest_environment_error_names_the_variable(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    await storage.write("apps", "env", archive(), [])
    manifest = {"slave": "worker.py", "environment": {"GOOD": "1", "BAD": [1]}}
    await storage.write("manifests", "env", msgpack.packb(manifest), [])
    await storage.write("profiles", "p", GOOD_PROFILE, [])
    node = Service("node", locator=runtime.locator)
    with pytest.raises(ServiceError) as info:
        await node.start_app("env", "p")
    assert "$.environment.BAD" in info.value.reason, info.value.reason
    storage.close()
    node.close()
