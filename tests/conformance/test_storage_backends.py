"""One conformance suite that every storage backend passes (spec §4 ``storage``).

Each test runs against the files backend (in ``tmp_path``) and the PostgreSQL backend (a fresh
table per test, dropped afterwards). PostgreSQL comes from ``COCAINE_TEST_POSTGRES_DSN``; when it
cannot be reached its cases are skipped, unless ``CI`` is set, where they fail instead.

No pytest-asyncio: a test is a sync function handing a coroutine to :meth:`Store.run`, which opens
the backend inside ``asyncio.run`` and closes it afterwards.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cocaine.errors import CocaineError
from cocaine.runtime.services.storage import Backend, FilesBackend, PostgresBackend

DSN = os.environ.get("COCAINE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T = TypeVar("T")


@dataclass
class Store:
    """A backend under test: how to open it, and what it holds seen from outside the backend."""

    open: Callable[[], Awaitable[Backend]]
    contents: Callable[[], set[str]]  # "collection/key" of every stored blob

    def run(self, body: Callable[[Backend], Awaitable[T]]) -> T:
        async def main() -> T:
            backend = await self.open()
            try:
                return await body(backend)
            finally:
                await backend.close()

        return asyncio.run(main())


async def _sql(query: str) -> list[Any]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(DSN, timeout=10)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_reachable() -> None:
    """Skip (or, under CI, fail) the PostgreSQL cases once if the server is not there."""
    table = f"cocaine_probe_{secrets.token_hex(6)}"

    async def probe() -> None:
        backend = await PostgresBackend.connect(DSN, table=table)
        await backend.close()
        await _sql(f'DROP TABLE IF EXISTS "{table}"')

    try:
        asyncio.run(probe())
    except CocaineError as exc:
        reason = f"PostgreSQL at COCAINE_TEST_POSTGRES_DSN is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["files", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "files":
        root = tmp_path / "root"

        async def open_files() -> Backend:
            return FilesBackend(root)

        def files() -> set[str]:
            found = {p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
            assert all(root in p.parents for p in found), f"written outside the root: {found}"
            return {p.relative_to(root).as_posix() for p in found}

        yield Store(open_files, files)
        return

    request.getfixturevalue("postgres_reachable")
    table = f"cocaine_test_{secrets.token_hex(6)}"

    async def open_postgres() -> Backend:
        return await PostgresBackend.connect(DSN, table=table)

    def rows() -> set[str]:
        found = asyncio.run(_sql(f'SELECT collection, key FROM "{table}"'))
        return {f"{row[0]}/{row[1]}" for row in found}

    yield Store(open_postgres, rows)
    asyncio.run(_sql(f'DROP TABLE IF EXISTS "{table}"'))


def error_pair(awaitable: Awaitable[object]) -> Awaitable[tuple[int, int]]:
    async def catch() -> tuple[int, int]:
        with pytest.raises(CocaineError) as info:
            await awaitable
        return info.value.pair

    return catch()


BLOBS = [b"", b"\x00", b"a\x00b\x00\x00", bytes(range(256)) * 64, "κόσμε".encode()]


def test_round_trip_binary_blobs(store: Store) -> None:
    async def body(b: Backend) -> list[bytes]:
        for i, blob in enumerate(BLOBS):
            await b.write("blobs", f"k{i}", blob)
        return [await b.read("blobs", f"k{i}") for i in range(len(BLOBS))]

    assert store.run(body) == BLOBS
    assert store.contents() == {f"blobs/k{i}" for i in range(len(BLOBS))}


def test_unicode_names_round_trip(store: Store) -> None:
    async def body(b: Backend) -> tuple[bytes, list[str]]:
        await b.write("コレクション", "キー と 空白", b"v", ["タグ", ".hidden"])
        return await b.read("コレクション", "キー と 空白"), await b.find("コレクション", ["タグ"])

    assert store.run(body) == (b"v", ["キー と 空白"])


def test_overwrite_replaces_value(store: Store) -> None:
    async def body(b: Backend) -> bytes:
        await b.write("c", "k", b"first, and longer than the second")
        await b.write("c", "k", b"second")
        return await b.read("c", "k")

    assert store.run(body) == b"second"


def test_missing_key_is_generic_enoent(store: Store) -> None:
    async def body(b: Backend) -> list[tuple[int, int]]:
        await b.write("c", "present", b"x")
        return [await error_pair(b.read("c", "absent")), await error_pair(b.read("none", "k"))]

    assert store.run(body) == [(12, errno.ENOENT)] * 2


def test_remove_then_read_and_find(store: Store) -> None:
    async def body(b: Backend) -> tuple[tuple[int, int], list[str]]:
        await b.write("c", "k", b"x", ["t"])
        await b.write("c", "other", b"y", ["t"])
        await b.remove("c", "k")
        return await error_pair(b.read("c", "k")), await b.find("c", ["t"])

    assert store.run(body) == ((12, 2), ["other"])
    assert store.contents() == {"c/other"}


def test_remove_missing_is_fine(store: Store) -> None:
    async def body(b: Backend) -> None:
        await b.remove("never", "written")
        await b.write("c", "k", b"x")
        await b.remove("c", "absent")
        await b.remove("c", "k")
        await b.remove("c", "k")

    store.run(body)
    assert store.contents() == set()


def test_find_is_the_intersection_of_tags(store: Store) -> None:
    async def body(b: Backend) -> list[list[str]]:
        await b.write("c", "both", b"1", ["a", "b"])
        await b.write("c", "only-a", b"2", ["a"])
        await b.write("c", "only-b", b"3", ["b"])
        await b.write("elsewhere", "both", b"4", ["a", "b"])
        queries = [["a", "b"], ["b", "a", "a"], ["a"], ["b"], ["a", "z"], ["z"]]
        return [await b.find("c", tags) for tags in queries] + [await b.find("none", ["a"])]

    both = ["both"]
    assert store.run(body) == [both, both, ["both", "only-a"], ["both", "only-b"], [], [], []]


def test_find_without_tags_is_empty(store: Store) -> None:
    async def body(b: Backend) -> list[str]:
        await b.write("c", "k", b"x", ["a"])
        await b.write("c", "untagged", b"y")
        return await b.find("c", [])

    assert store.run(body) == []


def test_find_is_sorted_by_code_point(store: Store) -> None:
    keys = ["b", "B", "a", "é", "Z", "a b", "a-b", "10", "9"]

    async def body(b: Backend) -> list[str]:
        for key in keys:
            await b.write("c", key, b"", ["t"])
        return await b.find("c", ["t"])

    assert store.run(body) == sorted(keys)


def test_tags_are_replaced_on_rewrite(store: Store) -> None:
    async def body(b: Backend) -> list[list[str]]:
        await b.write("c", "k", b"x", ["a", "b"])
        await b.write("c", "k", b"y", ["b", "c"])
        after_first = [await b.find("c", [tag]) for tag in ("a", "b", "c")]
        await b.write("c", "k", b"z")
        return after_first + [await b.find("c", [tag]) for tag in ("a", "b", "c")]

    assert store.run(body) == [[], ["k"], ["k"], [], [], []]


BAD_NAMES = ["..", "a/b", "", "x\x00y", "/abs", ".", "a\\b", "\udc80", "é" * 128]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=[ascii(name)[:12] for name in BAD_NAMES])
def test_bad_names_are_refused(store: Store, bad: str) -> None:
    async def body(b: Backend) -> set[tuple[int, int]]:
        calls: list[Awaitable[object]] = [
            b.write(bad, "k", b"x"),
            b.write("c", bad, b"x"),
            b.write("c", "k", b"x", [bad]),
            b.write("c", "k", b"x", ["fine", bad]),
            b.read(bad, "k"),
            b.read("c", bad),
            b.remove(bad, "k"),
            b.remove("c", bad),
            b.find(bad, ["t"]),
            b.find("c", [bad]),
        ]
        return {await error_pair(call) for call in calls}

    assert store.run(body) == {(12, errno.EINVAL)}
    assert store.contents() == set()


def test_many_keys(store: Store) -> None:
    count = 120

    async def body(b: Backend) -> tuple[list[str], list[str], bool]:
        keys = [f"key-{i:04d}" for i in range(count)]
        await asyncio.gather(
            *(
                b.write("many", k, k.encode() * 100, ["odd" if i % 2 else "even", "all"])
                for i, k in enumerate(keys)
            )
        )
        blobs = await asyncio.gather(*(b.read("many", k) for k in keys))
        intact = all(blob == k.encode() * 100 for blob, k in zip(blobs, keys, strict=True))
        return await b.find("many", ["all"]), await b.find("many", ["odd", "all"]), intact

    everything, odd, intact = store.run(body)
    assert intact
    assert everything == [f"key-{i:04d}" for i in range(count)]
    assert odd == [f"key-{i:04d}" for i in range(1, count, 2)]
    assert len(store.contents()) == count
