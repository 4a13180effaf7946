"""What the locator knows: published services by name, with their endpoints and graphs.

Today it holds only this node's services; a cluster registry will feed remote ones into the
same object, so ``resolve`` keeps answering from memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cocaine.idl.interface import Interface
from cocaine.protocol.graph import to_wire


@dataclass(frozen=True)
class Published:
    name: str
    endpoints: list[tuple[str, int]]
    version: int
    graph: dict[int, list[Any]]

    def resolve_value(self) -> tuple[list[list[Any]], int, dict[int, list[Any]]]:
        return ([[h, p] for h, p in self.endpoints], self.version, self.graph)


class Registry:
    def __init__(self) -> None:
        self._services: dict[str, Published] = {}

    def publish(self, name: str, endpoints: list[tuple[str, int]], interface: Interface) -> None:
        self._services[name] = Published(
            name, endpoints, interface.version, to_wire(interface.root)
        )

    def unpublish(self, name: str) -> None:
        self._services.pop(name, None)

    def get(self, name: str) -> Published | None:
        return self._services.get(name)

    def names(self) -> list[str]:
        return sorted(self._services)


__all__ = ["Published", "Registry"]
