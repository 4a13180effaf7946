"""The node service (placeholder until the app engine lands)."""

from __future__ import annotations

from typing import Any

from cocaine.idl import NODE
from cocaine.rpc.dispatch import ServiceDispatch


class NodeService:
    def __init__(self, context: Any, runtime: Any) -> None:
        self.context = context

    async def start_runlist(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def list(self) -> list[str]:
        return []

    def dispatch(self) -> ServiceDispatch:
        return ServiceDispatch(NODE, {"list": self.list})
