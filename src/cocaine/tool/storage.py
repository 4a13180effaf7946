"""The storage layout the tool manages: collections, tags and their msgpack conventions.

| collection  | tags                             | value                           |
|-------------|----------------------------------|---------------------------------|
| manifests   | app                              | msgpack map                     |
| apps        | app                              | msgpack raw holding a tar.gz    |
| profiles    | profile                          | msgpack map                     |
| runlists    | runlist                          | msgpack map ``{app: profile}``  |
| crashlogs   | <app>, cocaine-YYYY-MM-DD        | msgpack array of output lines   |

:class:`Store` wraps a :class:`~cocaine.tool.context.Session`'s storage service with typed
reads and writes; a missing key becomes a readable "… is not found" error.
"""

from __future__ import annotations

import errno
from typing import Any

import msgpack

from cocaine.errors import Category, ServiceError
from cocaine.protocol.values import textify
from cocaine.tool.context import Session, ToolError

MANIFESTS = "manifests"
APPS = "apps"
PROFILES = "profiles"
RUNLISTS = "runlists"
CRASHLOGS = "crashlogs"

# The tag every key of a collection carries, so that ``find`` lists them.
TAGS = {MANIFESTS: "app", APPS: "app", PROFILES: "profile", RUNLISTS: "runlist"}

# What the user calls a key of each collection, for messages.
NOUNS = {
    MANIFESTS: "app",
    APPS: "app",
    PROFILES: "profile",
    RUNLISTS: "runlist",
    CRASHLOGS: "crashlog",
}


def encode(value: Any) -> bytes:
    """Pack a stored value; ``str`` goes out as msgpack raw, as the original runtime expects."""
    blob: bytes = msgpack.packb(value, use_bin_type=False)
    return blob


def decode(blob: bytes) -> Any:
    """Unpack a stored value, turning UTF-8 raws into ``str`` wherever they decode."""
    try:
        return msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except UnicodeDecodeError:
        return textify(msgpack.unpackb(blob, raw=True, strict_map_key=False))
    except (ValueError, msgpack.UnpackException) as exc:
        raise ValueError(f"the stored value is not msgpack: {exc}") from None


def decode_map(blob: bytes, what: str) -> dict[str, Any]:
    value = decode(blob)
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a map but {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def is_missing(exc: ServiceError) -> bool:
    return exc.category == Category.GENERIC and exc.code == errno.ENOENT


class Store:
    """Typed access to the storage service within one session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def _call(self, method: str, *args: Any) -> Any:
        return await self._session.call("storage", method, *args)

    async def find(self, collection: str, tags: list[str] | None = None) -> list[str]:
        if tags is None:
            tags = [TAGS[collection]]
        keys: list[str] = await self._call("find", collection, tags)
        return sorted(keys)

    async def read(self, collection: str, key: str) -> bytes:
        try:
            blob: bytes = await self._call("read", collection, key)
        except ServiceError as exc:
            if is_missing(exc):
                raise ToolError(
                    f"{NOUNS.get(collection, collection)} '{key}' is not found"
                ) from None
            raise
        return blob

    async def exists(self, collection: str, key: str) -> bool:
        return key in await self.find(collection)

    async def read_map(self, collection: str, key: str) -> dict[str, Any]:
        blob = await self.read(collection, key)
        return decode_map(blob, f"{NOUNS.get(collection, collection)} '{key}'")

    async def write(
        self, collection: str, key: str, blob: bytes, tags: list[str] | None = None
    ) -> None:
        if tags is None:
            tags = [TAGS[collection]]
        await self._call("write", collection, key, blob, tags)

    async def write_value(self, collection: str, key: str, value: Any) -> None:
        await self.write(collection, key, encode(value))

    async def remove(self, collection: str, key: str) -> None:
        await self._call("remove", collection, key)

    async def remove_existing(self, collection: str, key: str) -> None:
        """Remove a tagged key that must exist (``remove`` itself accepts a missing key)."""
        if not await self.exists(collection, key):
            raise ToolError(f"{NOUNS.get(collection, collection)} '{key}' is not found")
        await self.remove(collection, key)


__all__ = [
    "APPS",
    "CRASHLOGS",
    "MANIFESTS",
    "PROFILES",
    "RUNLISTS",
    "TAGS",
    "Store",
    "decode",
    "decode_map",
    "encode",
    "is_missing",
]
