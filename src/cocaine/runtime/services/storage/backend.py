"""The storage ``Backend`` protocol and the name rules every backend enforces.

The storage service (id table in spec §4) keeps opaque blobs under ``(collection, key)`` and lets
callers find keys by tags. A backend is anything that implements the five coroutines below; the
service chooses one from the runtime config (``storages.<name> {type, args}``) and never looks
past this protocol. Two backends ship with the runtime:

- ``FilesBackend``: the original on-disk layout, the embedded default for one machine;
- ``PostgresBackend``: shared and durable, for several runtimes (DESIGN §6).

Semantics every backend honours (the conformance suite in ``tests/conformance`` checks them):

- ``read`` of a missing key raises ``CocaineError`` with the pair ``(12, 2)`` (generic, ENOENT);
- ``write`` replaces the blob *and* the tag set atomically enough that a reader sees the old value
  or the new one, never a mix;
- ``remove`` of a missing key is not an error;
- ``find`` returns the keys carrying *all* the given tags, sorted by code point; no tags → ``[]``;
- every collection, key and tag name goes through :func:`check_name` first, so a name can never
  address anything outside the backend's own space (``..``, ``a/b``, ``/abs``) and a refused
  name is ``(12, 22)`` (generic, EINVAL).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cocaine.errors import Category, CocaineError

#: The longest name, in UTF-8 bytes: the file-name limit of every common file system.
MAX_NAME_BYTES = 255

_FORBIDDEN = {"/": "a slash", "\\": "a backslash", "\x00": "a NUL byte"}


@runtime_checkable
class Backend(Protocol):
    """What the storage service needs from a place that keeps blobs."""

    async def read(self, collection: str, key: str) -> bytes:
        """The blob stored under ``key``; ``(12, 2)`` if there is none."""
        ...

    async def write(self, collection: str, key: str, blob: bytes, tags: Sequence[str] = ()) -> None:
        """Store ``blob`` under ``key`` with exactly ``tags``, replacing any previous value."""
        ...

    async def remove(self, collection: str, key: str) -> None:
        """Delete ``key`` and its tags; a missing key is fine."""
        ...

    async def find(self, collection: str, tags: Sequence[str]) -> list[str]:
        """The sorted keys of ``collection`` that carry every one of ``tags``."""
        ...

    async def close(self) -> None:
        """Release connections and handles; the backend is not used afterwards."""
        ...


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a safe collection, key or tag name; raise EINVAL otherwise.

    ``kind`` names the role ("collection", "key", "tag") for the error message. Refused: the empty
    string, ``.`` and ``..``, anything containing ``/``, ``\\`` or NUL, strings that are not valid
    UTF-8 (lone surrogates), and names longer than :data:`MAX_NAME_BYTES` bytes in UTF-8.
    """
    if not isinstance(value, str):
        raise _invalid(kind, value, f"expected a string, got {type(value).__name__}")
    if value in ("", ".", ".."):
        raise _invalid(kind, value, "empty, '.' and '..' are reserved")
    for char, what in _FORBIDDEN.items():
        if char in value:
            raise _invalid(kind, value, f"contains {what}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _invalid(kind, value, "not encodable as UTF-8") from None
    if size > MAX_NAME_BYTES:
        raise _invalid(kind, value, f"{size} bytes long, the limit is {MAX_NAME_BYTES}")
    return value


def check_names(collection: str, key: str, tags: Sequence[str] = ()) -> list[str]:
    """Check a collection, key and tags at once; return the tags deduplicated and sorted."""
    check_name("collection", collection)
    check_name("key", key)
    return check_tags(tags)


def check_tags(tags: Sequence[str]) -> list[str]:
    """Check every tag name; return them deduplicated and sorted."""
    if isinstance(tags, str):  # a lone string is a sequence of characters: almost surely a slip
        raise _invalid("tag list", tags, "expected a list of tags, got a string")
    return sorted({check_name("tag", tag) for tag in tags})


def _invalid(kind: str, value: object, why: str) -> CocaineError:
    return CocaineError(f"invalid {kind} name {value!r}: {why}", Category.GENERIC, errno.EINVAL)
