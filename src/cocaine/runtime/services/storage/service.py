"""The storage service: read / write / remove / find over the configured backend.

Writes and removes pass the token check when the runtime has a token; reads and finds do not.
"""

from __future__ import annotations

from collections.abc import Sequence

from cocaine.idl import STORAGE
from cocaine.rpc.dispatch import Guard, ServiceDispatch
from cocaine.runtime.services.storage.backend import Backend


class StorageService:
    def __init__(self, backend: Backend, guard: Guard | None = None) -> None:
        self.backend = backend
        self._guard = guard

    async def read(self, collection: str, key: str) -> bytes:
        return await self.backend.read(collection, key)

    async def write(self, collection: str, key: str, blob: bytes, tags: Sequence[str] = ()) -> None:
        await self.backend.write(collection, key, blob, tags)

    async def remove(self, collection: str, key: str) -> None:
        await self.backend.remove(collection, key)

    async def find(self, collection: str, tags: Sequence[str]) -> list[str]:
        return await self.backend.find(collection, tags)

    def dispatch(self) -> ServiceDispatch:
        return ServiceDispatch(
            STORAGE,
            {"read": self.read, "write": self.write, "remove": self.remove, "find": self.find},
            guard=self._guard,
            guarded=("write", "remove"),
        )


__all__ = ["StorageService"]
