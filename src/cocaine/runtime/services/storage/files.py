"""The files storage backend: the original Cocaine on-disk layout (spec §4, `files.cpp`).

Layout under the root ``path``::

    <path>/<collection>/<key>          the blob, a regular file
    <path>/<collection>/<tag>/<key>    one symlink per tag, pointing at ``../<key>``

so keys and tag directories share each collection's directory, and a name cannot be both.

Theory of operation. A write first checks that the key and its tags do not collide with each other
or with what is on disk, then writes the blob to a temporary file in the collection directory,
flushes and fsyncs it, ``os.replace``-s it over ``<key>`` and fsyncs the directory: a crash at any
point leaves the old blob or the new one, never a torn one (a leftover temporary file at worst;
its name starts with :data:`TEMP_PREFIX` and it lives outside every tag directory, so ``find``
never sees it). Only then are the tag links brought in line: links for the new tags created,
links for tags no longer listed removed. ``remove`` unlinks the tag links first and the blob last,
so ``find`` never names a key whose blob is gone; ``find`` also skips dangling links.

All the blocking file work of one operation runs in one ``asyncio.to_thread`` call. Writes and
removes of the same key are serialised by a small set of striped thread locks; reads take none.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import stat
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import ParamSpec, TypeVar

from cocaine.errors import Category, CocaineError
from cocaine.runtime.services.storage.backend import check_name, check_names, check_tags

#: Temporary files of in-flight writes are named ``<TEMP_PREFIX><32 hex digits>``.
TEMP_PREFIX = ".cocaine-tmp-"
_LOCK_STRIPES = 64

_P = ParamSpec("_P")
_T = TypeVar("_T")


class FilesBackend:
    """Blobs as files under ``path``, tags as symlinks; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(path))
        self._locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))

    def __repr__(self) -> str:
        return f"FilesBackend({self.root!r})"

    async def read(self, collection: str, key: str) -> bytes:
        check_names(collection, key)
        return await _off_loop(self._read, collection, key)

    async def write(self, collection: str, key: str, blob: bytes, tags: Sequence[str] = ()) -> None:
        wanted = check_names(collection, key, tags)
        await _off_loop(self._write, collection, key, bytes(blob), wanted)

    async def remove(self, collection: str, key: str) -> None:
        check_names(collection, key)
        await _off_loop(self._remove, collection, key)

    async def find(self, collection: str, tags: Sequence[str]) -> list[str]:
        check_name("collection", collection)
        wanted = check_tags(tags)
        if not wanted:
            return []
        return await _off_loop(self._find, collection, wanted)

    async def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""

    # The blocking halves, run in a worker thread.

    def _read(self, collection: str, key: str) -> bytes:
        path = os.path.join(self.root, collection, key)
        try:
            with open(path, "rb") as file:
                return file.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise CocaineError(path, Category.GENERIC, errno.ENOENT) from None

    def _write(self, collection: str, key: str, blob: bytes, tags: list[str]) -> None:
        if key in tags:
            raise _collision(f"key {key!r} cannot also be one of its own tags")
        directory = os.path.join(self.root, collection)
        with self._lock(collection, key):
            if _kind(os.path.join(directory, key)) == "dir":
                raise _collision(f"key {key!r} is a tag directory in collection {collection!r}")
            for tag in tags:
                if _kind(os.path.join(directory, tag)) == "other":
                    raise _collision(f"tag {tag!r} is a key in collection {collection!r}")
            _ensure_dir(directory)
            for tag in tags:
                _ensure_dir(os.path.join(directory, tag))
            _replace(directory, key, blob)
            changed = [tag for tag in tags if _link(os.path.join(directory, tag), key)]
            changed += _unlink_tags(directory, key, keep=set(tags))
            for tag in changed:
                _fsync_dir(os.path.join(directory, tag))

    def _remove(self, collection: str, key: str) -> None:
        directory = os.path.join(self.root, collection)
        path = os.path.join(directory, key)
        with self._lock(collection, key):
            if _kind(directory) != "dir":
                return
            for tag in _unlink_tags(directory, key, keep=set()):
                _fsync_dir(os.path.join(directory, tag))
            if _kind(path) == "other":
                os.unlink(path)
                _fsync_dir(directory)

    def _find(self, collection: str, tags: list[str]) -> list[str]:
        directory = os.path.join(self.root, collection)
        found: set[str] | None = None
        for tag in tags:
            try:
                with os.scandir(os.path.join(directory, tag)) as entries:
                    linked = {entry.name for entry in entries if entry.is_symlink()}
            except (FileNotFoundError, NotADirectoryError):
                return []
            found = linked if found is None else found & linked
            if not found:
                return []
        assert found is not None
        return sorted(key for key in found if os.path.isfile(os.path.join(directory, key)))

    def _lock(self, collection: str, key: str) -> threading.Lock:
        return self._locks[hash((collection, key)) % _LOCK_STRIPES]


async def _off_loop(function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run one operation's blocking half in a thread; translate OS errors at this boundary."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        reason = f"{where}{exc.strerror or exc}"
        raise CocaineError(reason, Category.GENERIC, exc.errno or errno.EIO) from exc


def _collision(why: str) -> CocaineError:
    return CocaineError(why, Category.GENERIC, errno.EINVAL)


def _kind(path: str) -> str:
    """``"missing"``, ``"dir"`` (a real directory, not a link to one) or ``"other"``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    return "dir" if stat.S_ISDIR(mode) else "other"


def _ensure_dir(path: str) -> None:
    """``mkdir -p`` that fsyncs the parent of every directory it creates."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    except FileNotFoundError:
        _ensure_dir(os.path.dirname(path))
        with suppress(FileExistsError):
            os.mkdir(path)
    _fsync_dir(os.path.dirname(path))


def _replace(directory: str, key: str, blob: bytes) -> None:
    """Atomically make ``<directory>/<key>`` hold ``blob``, durable once this returns."""
    temp = os.path.join(directory, TEMP_PREFIX + secrets.token_hex(16))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        with open(os.open(temp, flags, 0o666), "wb") as file:
            file.write(blob)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, os.path.join(directory, key))
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(directory)


def _link(tag_directory: str, key: str) -> bool:
    """Make ``<tag_directory>/<key>`` a symlink to ``../<key>``; True if anything changed."""
    path, target = os.path.join(tag_directory, key), os.path.join(os.pardir, key)
    try:
        os.symlink(target, path)
        return True
    except FileExistsError:
        with suppress(OSError):
            if os.readlink(path) == target:
                return False
    os.unlink(path)  # something else squats on the name: a stale file or a foreign link
    os.symlink(target, path)
    return True


def _unlink_tags(directory: str, key: str, *, keep: set[str]) -> list[str]:
    """Remove ``key``'s links from every tag directory not in ``keep``; return those tags."""
    removed = []
    with os.scandir(directory) as entries:
        tags = [e.name for e in entries if e.is_dir(follow_symlinks=False) and e.name not in keep]
    for tag in tags:
        path = os.path.join(directory, tag, key)
        if _kind(path) == "other":
            with suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(tag)
    return removed


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
