"""What only the files storage backend promises: the original on-disk layout and crash safety.

The shared semantics are in ``tests/conformance/test_storage_backends.py``; here we look at the
files themselves, at name collisions between keys and tag directories, at failed writes, and at
a writer SIGKILLed mid-write, which must leave the old value or the new one, never a torn one.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from cocaine.errors import CocaineError
from cocaine.runtime.services.storage import FilesBackend
from cocaine.runtime.services.storage.files import TEMP_PREFIX

SRC = Path(__file__).resolve().parents[2] / "src"
T = TypeVar("T")


def run(root: Path, body: Callable[[FilesBackend], Awaitable[T]]) -> T:
    async def main() -> T:
        backend = FilesBackend(root)
        try:
            return await body(backend)
        finally:
            await backend.close()

    return asyncio.run(main())


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: ``"dir"``, ``"-> <link target>"`` or the file's text."""
    entries: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            entries[name] = "dir"
        else:
            entries[name] = path.read_bytes().decode()
    return entries


async def pair_of(awaitable: Awaitable[object]) -> tuple[int, int]:
    with pytest.raises(CocaineError) as info:
        await awaitable
    return info.value.pair


def test_on_disk_layout(tmp_path: Path) -> None:
    async def body(b: FilesBackend) -> None:
        await b.write("manifests", "echo", b"manifest", ["app"])
        await b.write("crashlogs", "1700000000000000:uuid", b"log", ["echo", "cocaine-2024-01-01"])
        await b.write("crashlogs", "1700000000000001:uuid", b"log2", ["echo"])

    run(tmp_path, body)
    assert tree(tmp_path) == {
        "crashlogs": "dir",
        "crashlogs/1700000000000000:uuid": "log",
        "crashlogs/1700000000000001:uuid": "log2",
        "crashlogs/cocaine-2024-01-01": "dir",
        "crashlogs/cocaine-2024-01-01/1700000000000000:uuid": "-> ../1700000000000000:uuid",
        "crashlogs/echo": "dir",
        "crashlogs/echo/1700000000000000:uuid": "-> ../1700000000000000:uuid",
        "crashlogs/echo/1700000000000001:uuid": "-> ../1700000000000001:uuid",
        "manifests": "dir",
        "manifests/app": "dir",
        "manifests/app/echo": "-> ../echo",
        "manifests/echo": "manifest",
    }


def test_rewrite_and_remove_keep_the_layout_clean(tmp_path: Path) -> None:
    async def body(b: FilesBackend) -> list[dict[str, str]]:
        snapshots = []
        for i in range(20):
            await b.write("c", "k", f"v{i}".encode(), ["a"] if i % 2 else ["b"])
        snapshots.append(tree(tmp_path))
        await b.remove("c", "k")
        snapshots.append(tree(tmp_path))
        return snapshots

    rewritten, removed = run(tmp_path, body)
    assert rewritten == {"c": "dir", "c/a": "dir", "c/a/k": "-> ../k", "c/b": "dir", "c/k": "v19"}
    assert removed == {"c": "dir", "c/a": "dir", "c/b": "dir"}  # no temp files, ever


def test_missing_key_reason_is_the_path(tmp_path: Path) -> None:
    async def body(b: FilesBackend) -> CocaineError:
        with pytest.raises(CocaineError) as info:
            await b.read("c", "k")
        return info.value

    error = run(tmp_path, body)
    assert error.to_wire() == [[12, errno.ENOENT], str(tmp_path / "c" / "k")]


def test_key_colliding_with_a_tag_directory(tmp_path: Path) -> None:
    async def body(b: FilesBackend) -> list[object]:
        await b.write("c", "tagged", b"x", ["app"])
        await b.write("c", "plain", b"y")
        refused = [
            await pair_of(b.write("c", "app", b"z")),  # key over a tag directory
            await pair_of(b.write("c", "new", b"z", ["plain"])),  # tag over a key
            await pair_of(b.write("c", "self", b"z", ["self"])),  # key among its own tags
            await pair_of(b.read("c", "app")),  # a tag directory is not a key
        ]
        await b.remove("c", "app")  # nor is it removed as one
        return [
            *refused,
            await b.find("c", ["app"]),
            await b.read("c", "plain"),
        ]

    results = run(tmp_path, body)
    assert results == [(12, 22), (12, 22), (12, 22), (12, 2), ["tagged"], b"y"]
    assert tree(tmp_path) == {
        "c": "dir",
        "c/app": "dir",
        "c/app/tagged": "-> ../tagged",
        "c/plain": "y",
        "c/tagged": "x",
    }


def test_failed_write_leaves_old_value_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "injected fsync failure")

    async def body(b: FilesBackend) -> tuple[tuple[int, int], bytes]:
        await b.write("c", "k", b"old", ["t"])
        monkeypatch.setattr(os, "fsync", broken_fsync)
        failed = await pair_of(b.write("c", "k", b"new", ["t"]))
        monkeypatch.undo()
        return failed, await b.read("c", "k")

    assert run(tmp_path, body) == ((12, errno.EIO), b"old")
    assert tree(tmp_path) == {"c": "dir", "c/k": "old", "c/t": "dir", "c/t/k": "-> ../k"}


def test_dangling_links_and_stray_temp_files_are_not_found(tmp_path: Path) -> None:
    async def body(b: FilesBackend) -> list[str]:
        await b.write("c", "kept", b"x", ["t"])
        await b.write("c", "gone", b"y", ["t"])
        (tmp_path / "c" / "gone").unlink()  # as if a remove had been cut short
        (tmp_path / "c" / f"{TEMP_PREFIX}0123").write_bytes(b"half")  # a killed writer's debris
        return await b.find("c", ["t"])

    assert run(tmp_path, body) == ["kept"]


WRITER = """
import asyncio, sys
from cocaine.runtime.services.storage import FilesBackend

async def main() -> None:
    backend = FilesBackend(sys.argv[1])
    values = [b"A" * (1 << 20), b"B" * (1 << 20)]
    await backend.write("c", "k", values[0], ["t"])
    print("ready", flush=True)
    i = 1
    while True:
        print(i, flush=True)  # announced first: a kill right after tends to land mid-write
        await backend.write("c", "k", values[i % 2], ["t"])
        i += 1

asyncio.run(main())
"""


def test_sigkill_mid_write_never_tears_the_value(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    values = {b"A" * (1 << 20), b"B" * (1 << 20)}
    rng = random.Random(20240101)
    blob = tmp_path / "c" / "k"
    for kill in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n", "the writer did not start"
            for _ in range(rng.randrange(4)):  # let a random number of writes complete
                assert child.stdout.readline()
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        assert blob.read_bytes() in values, f"torn value after kill #{kill}"

    async def body(b: FilesBackend) -> tuple[bytes, list[str]]:
        return await b.read("c", "k"), await b.find("c", ["t"])

    value, found = run(tmp_path, body)
    assert value in values
    assert found == ["k"]
