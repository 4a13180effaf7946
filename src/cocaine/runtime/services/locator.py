"""The locator: resolve a name to ``[endpoints, version, graph]``; the node's uuid and cluster."""

from __future__ import annotations

import errno
from typing import Any

from cocaine.errors import Category, CocaineError, service_not_available
from cocaine.idl import LOCATOR
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel, Receiver
from cocaine.rpc.dispatch import ServiceDispatch
from cocaine.runtime.context import Context


def _no_cluster(method: str) -> CocaineError:
    return CocaineError(
        f"locator.{method} needs clustering, which this runtime does not have configured",
        Category.GENERIC,
        errno.ENOTSUP,
    )


class LocatorService:
    def __init__(self, context: Context) -> None:
        self.context = context

    def resolve(self, name: str, seed: Any = None) -> tuple[Any, ...]:
        published = self.context.registry.get(name)
        if published is None:
            raise service_not_available(name)
        return published.resolve_value()

    def connect(self, channel: Channel, args: list[Any], headers: list[Header]) -> Receiver | None:
        channel.send(2, [])  # no cluster: the sync stream ends at once
        return None

    def refresh(self, groups: list[str]) -> None:
        raise _no_cluster("refresh")

    def publish(self, channel: Channel, args: list[Any], headers: list[Header]) -> Receiver | None:
        channel.send(1, _no_cluster("publish").to_wire())
        return None

    def routing(self, channel: Channel, args: list[Any], headers: list[Header]) -> Receiver | None:
        channel.send(1, _no_cluster("routing").to_wire())
        return None

    def cluster(self) -> dict[str, list[Any]]:
        endpoints = self.context.locator_endpoints
        host, port = endpoints[0] if endpoints else ("127.0.0.1", 0)
        return {self.context.uuid: [host, port]}

    def uuid(self) -> str:
        return self.context.uuid

    def dispatch(self) -> ServiceDispatch:
        return ServiceDispatch(
            LOCATOR,
            {
                "resolve": self.resolve,
                "connect": self.connect,
                "refresh": self.refresh,
                "cluster": self.cluster,
                "publish": self.publish,
                "routing": self.routing,
                "uuid": self.uuid,
            },
        )


__all__ = ["LocatorService"]
