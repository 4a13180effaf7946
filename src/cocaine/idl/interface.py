"""An interface: a named root protocol with its version, as ``resolve`` describes a service."""

from __future__ import annotations

from dataclasses import dataclass

from cocaine.protocol.graph import PRIMITIVE, TERMINAL, Message, Protocol, Transition, with_control
from cocaine.protocol.values import ANY, NO_ARGS, Args, Type


@dataclass(frozen=True)
class Interface:
    name: str
    version: int
    root: Protocol


def call(
    alias: str, args: Args = NO_ARGS, upstream: Transition = PRIMITIVE, returns: Type = ANY
) -> Message:
    """A one-shot call: the caller sends nothing after it."""
    return Message(alias, TERMINAL, upstream, args, returns)


def service(name: str, version: int, *messages: Message) -> Interface:
    """A service root with message ids in declaration order and the control entries."""
    return Interface(name, version, with_control(name, dict(enumerate(messages))))


__all__ = ["Interface", "call", "service"]
