"""The locator (version 3): name → endpoints, version and graph of a service."""

from typing import Any

from cocaine.idl.interface import call, service
from cocaine.protocol.graph import PRIMITIVE, STREAMING, TERMINAL, Message, with_control
from cocaine.protocol.values import ANY, DYNAMIC, TEXT, Args, Type, list_of, textify


def _resolved(value: Any) -> Any:
    """``[endpoints, version, graph]`` with hosts as text; the graph stays as received."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise TypeError("a resolve reply has three parts")
    endpoints, version, graph = value
    return ([(textify(h), p) for h, p in endpoints], version, graph)


RESOLVED = Type("resolved", _resolved)
DISCARD = with_control("discard", {0: Message("discard")})

LOCATOR = service(
    "locator",
    3,
    call("resolve", Args((TEXT,), (ANY,)), returns=RESOLVED),
    call("connect", Args((ANY,)), STREAMING),
    call("refresh", Args((list_of(TEXT),))),
    call("cluster", returns=DYNAMIC),
    Message("publish", DISCARD, PRIMITIVE, Args((TEXT, ANY), (ANY,))),
    Message("routing", DISCARD, STREAMING, Args((ANY,))),
    call("uuid", returns=TEXT),
)

__all__ = ["DISCARD", "LOCATOR", "RESOLVED", "TERMINAL"]
