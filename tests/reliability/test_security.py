"""Where the runtime listens, what names and archives it refuses, and what its token guards.

Every test runs a real ``cocaine-runtime`` bound to 127.0.0.1 with its state under the test's
``tmp_path``, so "nothing was written outside" is checked by listing that tree before and after.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cocaine.client import Service
from cocaine.errors import ConfigError, ServiceError
from cocaine.protocol.framing import Frame, FrameDecoder
from cocaine.runtime.isolate.archive import unpack
from support.processes import RuntimeProcess

BIN = Path(sys.executable).parent
TOKEN = "s3cret"
WORKER = b"#!/bin/sh\nexit 0\n"  # never runs: starting an app spawns no worker


@pytest.fixture(autouse=True)
def no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients and runtimes read COCAINE_TOKEN; these tests set tokens explicitly."""
    monkeypatch.delenv("COCAINE_TOKEN", raising=False)


# -- helpers ------------------------------------------------------------------------------------


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


def tarball(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in (member("worker.py", data=WORKER), *members):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


async def upload(locator: str, app: str, archive: bytes, token: str | None = None) -> None:
    storage = Service("storage", locator=locator, token=token)
    try:
        await storage.write("apps", app, msgpack.packb(archive, use_bin_type=False), ["app"])
        await storage.write("manifests", app, msgpack.packb({"slave": "worker.py"}), ["app"])
        await storage.write("profiles", "p", msgpack.packb({}), ["profile"])
    finally:
        storage.close()


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (links not followed), relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


# -- where the runtime listens ------------------------------------------------------------------


def _listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:
                continue
            hexaddr, hexport = local.split(":")
            raw = bytes.fromhex(hexaddr)
            # /proc prints each 32-bit word of the address in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((socket.inet_ntop(family, words), int(hexport, 16)))
    return found


async def test_endpoint_flag_binds_and_advertises_loopback_only(runtime: RuntimeProcess) -> None:
    await upload(runtime.locator, "guarded", tarball())
    node = Service("node", locator=runtime.locator)
    await node.start_app("guarded", "p")  # an app publishes a service of its own
    locator = Service("locator", locator=runtime.locator)
    advertised = set()
    for name in ("locator", "storage", "logging", "node", "guarded"):
        endpoints, _, _ = await locator.resolve(name)
        assert endpoints and {host for host, _ in endpoints} == {"127.0.0.1"}, (name, endpoints)
        advertised |= {port for _, port in endpoints}
    locator.close()
    assert runtime.proc is not None
    listening = _listening(runtime.proc.pid)
    assert {addr for addr, _ in listening} == {"127.0.0.1"}, listening
    assert advertised <= {port for _, port in listening}
    await node.pause_app("guarded")
    node.close()


# -- names --------------------------------------------------------------------------------------

BAD_NAMES = ["..", ".", "", "../x", "/abs", "/etc/passwd", "a/b", "a\\b", "x\x00y", "é" * 200]


async def test_storage_refuses_escaping_names_everywhere(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    await storage.write("ok", "key", b"v", ["tag"])
    before = tree(runtime.state_dir.parent)
    calls = []
    for bad in BAD_NAMES:
        calls += [
            ("write", bad, "key", b"v", ["t"]),
            ("write", "ok", bad, b"v", ["t"]),
            ("write", "ok", "key2", b"v", ["t", bad]),
            ("read", bad, "key"),
            ("read", "ok", bad),
            ("remove", bad, "key"),
            ("remove", "ok", bad),
            ("find", bad, ["tag"]),
            ("find", "ok", ["tag", bad]),
        ]
    for method, *args in calls:
        with pytest.raises(ServiceError) as info:
            await storage.call(method, *args)
        assert info.value.pair == (12, 22), (method, args, info.value)
    assert tree(runtime.state_dir.parent) == before
    assert await storage.read("ok", "key") == b"v"
    storage.close()


async def test_node_refuses_escaping_app_names(runtime: RuntimeProcess) -> None:
    await upload(runtime.locator, "ok", tarball())
    before = tree(runtime.state_dir.parent)
    node = Service("node", locator=runtime.locator)
    bad = [("../x", "p"), ("a/b", "p"), ("..", "p"), ("/tmp/x", "p"), ("x\x00", "p")]
    forged = "x\ncocaine-runtime: ready, locator on 6.6.6.6:1"  # names reach the log
    for app, profile in [*bad, (forged, "p"), ("x\ry", "p"), ("ok", "../p"), ("ok", "p\n")]:
        with pytest.raises(ServiceError) as info:
            await node.start_app(app, profile)
        assert info.value.pair == (12, 22), (app, profile)
    assert tree(runtime.state_dir.parent) == before
    assert await node.list() == []
    node.close()


async def test_log_records_cannot_forge_log_lines(runtime: RuntimeProcess) -> None:
    logging_service = Service("logging", locator=runtime.locator)
    forged = "cocaine-runtime: ready, locator on 6.6.6.6:1"
    await logging_service.emit(
        3,
        "source\nFORGED-SOURCE",
        f"first\n{forged}\rFORGED-CR\u2028FORGED-LS\x1b[2J",
        [["key\n", "FORGED-ATTR\nx"]],
    )
    await logging_service.emit(3, "barrier", "after the hostile record")  # logged in order
    await asyncio.to_thread(runtime.wait_for_log, "after the hostile record")
    lines = runtime.log.splitlines()
    assert not any(
        line.startswith(("FORGED", "cocaine-runtime: ready, locator on 6")) for line in lines
    )
    (record,) = [line for line in lines if "FORGED" in line]
    assert "first\\ncocaine-runtime" in record and "\x1b" not in record
    with pytest.raises(ServiceError) as info:
        await logging_service.set_verbosity(7)
    assert info.value.pair == (12, 22)
    assert "Traceback" not in runtime.log
    logging_service.close()


# -- archives -----------------------------------------------------------------------------------


def hostile_archives(outside: Path) -> dict[str, tuple[str, bytes]]:
    """name → (the member the error must name, archive). ``outside`` is a dir to stay out of."""
    target = str(outside / "target.txt")
    return {
        "dotdot": ("../../../evil", tarball(member("../../../evil", data=b"x"))),
        "nested-dotdot": ("a/../../../../evil", tarball(member("a/../../../../evil", data=b"x"))),
        "absolute": (str(outside / "evil"), tarball(member(str(outside / "evil"), data=b"x"))),
        "symlink-absolute": (
            "escape",
            tarball(
                member("escape", tarfile.SYMTYPE, link=str(outside)),
                member("escape/evil", data=b"x"),
            ),
        ),
        "symlink-relative": (
            "escape",
            tarball(
                member("escape", tarfile.SYMTYPE, link="../../.."),
                member("escape/evil", data=b"x"),
            ),
        ),
        "hardlink-absolute": ("hard", tarball(member("hard", tarfile.LNKTYPE, link=target))),
        "hardlink-relative": (
            "hard",
            tarball(member("hard", tarfile.LNKTYPE, link="../../../outside/target.txt")),
        ),
        "char-device": ("null", tarball(member("null", tarfile.CHRTYPE))),
        "block-device": ("disk", tarball(member("disk", tarfile.BLKTYPE))),
        "fifo": ("pipe", tarball(member("pipe", tarfile.FIFOTYPE))),
    }


CASES = sorted(hostile_archives(Path("/unused")))


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A directory next to the runtime's state, with a file a hardlink could steal."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "target.txt").write_text("do not touch")
    yield path
    assert sorted(p.name for p in path.iterdir()) == ["target.txt"]
    assert (path / "target.txt").stat().st_nlink == 1
    assert (path / "target.txt").read_text() == "do not touch"


async def test_start_app_refuses_hostile_archives(runtime: RuntimeProcess, outside: Path) -> None:
    root = runtime.state_dir.parent
    spool = os.path.relpath(runtime.state_dir / "spool", root)
    node = Service("node", locator=runtime.locator)
    for case, (bad_member, archive) in hostile_archives(outside).items():
        app = f"hostile-{case}"
        await upload(runtime.locator, app, archive)
        before = tree(root)
        with pytest.raises(ServiceError) as info:
            await node.start_app(app, "p")
        assert bad_member in info.value.reason, case
        report = await node.info(app, 0)
        assert report["state"] == "broken" and bad_member in report["error"], case
        new = tree(root) - before
        assert all(p.startswith(spool + os.sep) for p in new), (case, new)  # an empty app dir
        assert not any("evil" in p or p.endswith(("null", "disk", "pipe", "hard")) for p in new)
        assert not (root / "evil").exists() and not (root.parent / "evil").exists()
    node.close()


async def test_archive_with_links_inside_starts(runtime: RuntimeProcess) -> None:
    archive = tarball(
        member("lib", tarfile.DIRTYPE),
        member("lib/data.txt", data=b"d"),
        member("alias", tarfile.SYMTYPE, link="lib/data.txt"),
        member("copy", tarfile.LNKTYPE, link="lib/data.txt"),
    )
    await upload(runtime.locator, "linked", archive)
    node = Service("node", locator=runtime.locator)
    await node.start_app("linked", "p")
    workdir = runtime.state_dir / "spool" / "linked"
    assert (workdir / "alias").read_bytes() == b"d" and (workdir / "copy").read_bytes() == b"d"
    await node.pause_app("linked")
    node.close()


@pytest.mark.parametrize("case", CASES)
def test_unpack_refuses_hostile_members_and_keeps_the_old_tree(
    tmp_path: Path, outside: Path, case: str
) -> None:
    bad_member, archive = hostile_archives(outside)[case]
    dest = tmp_path / "spool" / "app"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("previous version")
    before = tree(tmp_path)
    with pytest.raises(ConfigError) as info:
        unpack(archive, dest)
    assert repr(bad_member) in info.value.reason
    assert tree(tmp_path) == before


def test_unpack_refuses_a_non_tar_without_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        unpack(b"definitely not a tarball", tmp_path / "spool" / "app")
    assert "not a valid tar archive" in info.value.reason
    assert tree(tmp_path) == {"spool"}


def test_unpack_replaces_the_old_tree(tmp_path: Path) -> None:
    dest = tmp_path / "spool" / "app"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("previous version")
    unpack(tarball(member("new.txt", data=b"n")), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt", "worker.py"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["app"]  # no staging left behind


# -- the token ----------------------------------------------------------------------------------


async def assert_token_required(runtime: RuntimeProcess, token: str) -> None:
    anonymous = Service("storage", locator=runtime.locator)
    wrong = Service("storage", locator=runtime.locator, token=token + "-wrong")
    right = Service("storage", locator=runtime.locator, token=token)
    for client in (anonymous, wrong):
        with pytest.raises(ServiceError) as info:
            await client.write("c", "k", b"v")
        assert info.value.pair == (9, 2)
        with pytest.raises(ServiceError) as info:
            await client.remove("c", "k")
        assert info.value.pair == (9, 2)
    await right.write("c", "k", b"v", ["t"])
    assert await anonymous.read("c", "k") == b"v"  # reads need no token
    assert await anonymous.find("c", ["t"]) == ["k"]
    for client in (anonymous, wrong, right):
        client.close()


async def test_token_guards_storage_writes(runtime_factory: Any) -> None:
    runtime = runtime_factory("--token", TOKEN)
    await assert_token_required(runtime, TOKEN)


async def test_token_guards_node_but_not_listing(runtime_factory: Any) -> None:
    runtime = runtime_factory("--token", TOKEN)
    await upload(runtime.locator, "myapp", tarball(), token=TOKEN)
    anonymous = Service("node", locator=runtime.locator)
    for method, args in (("start_app", ("myapp", "p")), ("pause_app", ("myapp",))):
        with pytest.raises(ServiceError) as info:
            await anonymous.call(method, *args)
        assert info.value.pair == (9, 2), method
    control = await anonymous.call("control", "myapp")
    with pytest.raises(ServiceError) as info:
        await control.get(timeout=10)
    assert info.value.pair == (9, 2)
    assert await anonymous.list() == []
    admin = Service("node", locator=runtime.locator, token=TOKEN)
    await admin.start_app("myapp", "p")
    assert await anonymous.list() == ["myapp"]
    assert (await anonymous.info("myapp", 0))["state"] == "running"
    await admin.pause_app("myapp")
    anonymous.close()
    admin.close()


async def test_token_from_the_environment(runtime_factory: Any) -> None:
    runtime = runtime_factory(env={"COCAINE_TOKEN": "from-env"})
    await assert_token_required(runtime, "from-env")


async def test_token_from_the_config_file(runtime_factory: Any, tmp_path: Path) -> None:
    config = tmp_path / "runtime.json"
    config.write_text(json.dumps({"token": "from-config"}))
    runtime = runtime_factory("-c", str(config))
    await assert_token_required(runtime, "from-config")


def raw_frames(port: int, *frames: Any, until: set[int]) -> list[Frame]:
    """Send hand-made frames; return every frame received until each channel of ``until``
    has had a reply."""
    decoder = FrameDecoder()
    got: list[Frame] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(msgpack.packb(f, use_bin_type=False) for f in frames))
        while not until <= {f.channel for f in got}:
            data = sock.recv(65536)
            assert data, f"closed before replies on channels {until}"
            got += decoder.feed(data)
    return got


def test_authorization_header_forms_on_the_wire(runtime_factory: Any) -> None:
    runtime = runtime_factory("--token", TOKEN)

    async def storage_port() -> int:
        locator = Service("locator", locator=runtime.locator)
        try:
            return int((await locator.resolve("storage"))[0][0][1])
        finally:
            locator.close()

    port = asyncio.run(storage_port())
    write = [b"c", b"k", b"v", []]
    frames = raw_frames(
        port,
        [1, 1, write, [23]],  # the static entry: authorization with an empty value
        [2, 1, write, [[False, b"authorization", b"nope"]]],
        [3, 1, write, [[True, 23, TOKEN.encode()]]],  # right, and stored in the table
        [4, 1, write, [83]],  # the stored entry by index
        until={1, 2, 3, 4},
    )
    replies = {f.channel: (f.type, f.args) for f in frames}
    assert replies[1][0] == 1 and replies[1][1][0] == [9, 2]
    assert replies[2][0] == 1 and replies[2][1][0] == [9, 2]
    assert replies[3] == (0, []) and replies[4] == (0, [])


def run_tool(runtime: RuntimeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COCAINE_TOKEN"}
    env["COCAINE_LOCATOR"] = runtime.locator
    return subprocess.run(
        [str(BIN / "cocaine-tool"), *args], capture_output=True, text=True, env=env, timeout=30
    )


def test_tool_with_and_without_the_token(runtime_factory: Any) -> None:
    runtime = runtime_factory("--token", TOKEN)
    upload_args = ("profile", "upload", "--name", "p", "--profile", "{}")
    denied = run_tool(runtime, *upload_args)
    assert denied.returncode == 1, denied
    assert denied.stderr.count("\n") == 1 and "Traceback" not in denied.stderr
    assert "unauthorized" in denied.stderr.lower() or "token" in denied.stderr.lower()
    allowed = run_tool(runtime, "--token", TOKEN, *upload_args)
    assert allowed.returncode == 0, allowed.stderr
    listed = run_tool(runtime, "profile", "list")  # reading needs no token
    assert listed.returncode == 0 and listed.stdout.split() == ["p"]


async def test_app_control_requires_the_token_too(runtime_factory: Any) -> None:
    runtime = runtime_factory("--token", TOKEN)
    await upload(runtime.locator, "myapp", tarball(), token=TOKEN)
    admin = Service("node", locator=runtime.locator, token=TOKEN)
    await admin.start_app("myapp", "p")
    admin.close()
    locator = Service("locator", locator=runtime.locator)
    (_host, port), *_ = (await locator.resolve("myapp"))[0]
    locator.close()
    # control (2) without a token, then info (1) as a barrier: a refusal of channel 1 is
    # written before the reply on channel 2, so it has arrived once that reply has.
    frames = await asyncio.to_thread(raw_frames, port, [1, 2, [], []], [2, 1, [], []], until={2})
    refused = [f for f in frames if f.channel == 1 and f.type == 1]
    assert refused and refused[0].args[0] == [9, 2]
