"""The graph model: protocols as trees of messages, exactly as ``locator.resolve`` sends them.

A protocol is a map ``id -> message``. Each message names what the sender may send next
(``dispatch``) and, for the first message on a channel, what the other side answers with
(``upstream``). A transition is one of three things:

* ``RECURSIVE`` (``nil`` on the wire): the protocol stays as it is;
* ``TERMINAL`` (``{}`` on the wire): nothing more may be sent in that direction;
* another :class:`Protocol` (a non-empty map): switch to it.

Wire form of a root: ``{id: [alias, dispatch, upstream]}``; of a nested node: ``{id: [alias,
dispatch]}``. Root protocols other than primitive and streaming carry the control entries
65532 goaway, 65533 ping, 65534 settings and 65535 revoke.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cocaine.protocol.values import ANY, ANY_ARGS, NO_ARGS, Args, Type


@dataclass(frozen=True, eq=False)
class Protocol:
    """A set of messages that may be sent from one state of a channel."""

    name: str
    messages: Mapping[int, Message] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_alias", {m.alias: i for i, m in self.messages.items()})

    by_alias: Mapping[str, int] = field(init=False, repr=False)

    @property
    def terminal(self) -> bool:
        return not self.messages

    def __getitem__(self, mtype: int) -> Message:
        return self.messages[mtype]

    def __contains__(self, mtype: object) -> bool:
        return mtype in self.messages

    def id_of(self, alias: str) -> int:
        return self.by_alias[alias]


class _Recursive:
    def __repr__(self) -> str:
        return "RECURSIVE"


RECURSIVE: Any = _Recursive()
TERMINAL = Protocol("terminal")

Transition = Protocol | _Recursive


@dataclass(frozen=True, eq=False)
class Message:
    alias: str
    dispatch: Transition = TERMINAL
    upstream: Transition = TERMINAL
    args: Args = NO_ARGS
    returns: Type = ANY  # the Python value of a ``value`` reply (callers convert with it)
    # Derived once, for the hot path: ``stays`` when the dispatch is recursive, else the
    # protocol that follows (None when terminal).
    stays: bool = field(init=False, repr=False)
    follows: Protocol | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dispatch = self.dispatch
        stays = dispatch is RECURSIVE
        follows = None
        if not stays:
            assert isinstance(dispatch, Protocol)
            follows = None if dispatch.terminal else dispatch
        object.__setattr__(self, "stays", stays)
        object.__setattr__(self, "follows", follows)


def after(current: Protocol, transition: Transition) -> Protocol | None:
    """The protocol in force after a message with ``transition``; None once terminal."""
    if transition is RECURSIVE:
        return current
    assert isinstance(transition, Protocol)
    return None if transition.terminal else transition


# Standard sub-protocols -------------------------------------------------------------------------

PRIMITIVE = Protocol(
    "primitive",
    {0: Message("value", args=ANY_ARGS), 1: Message("error", args=ANY_ARGS)},
)
STREAMING = Protocol(
    "streaming",
    {
        0: Message("write", RECURSIVE, args=ANY_ARGS),
        1: Message("error", args=ANY_ARGS),
        2: Message("close"),
    },
)
VOID = TERMINAL

CONTROL_IDS = {"goaway": 65532, "ping": 65533, "settings": 65534, "revoke": 65535}


def with_control(name: str, messages: Mapping[int, Message]) -> Protocol:
    """A protocol with the control entries 65532–65535 added."""
    entries = dict(messages)
    for alias, mid in CONTROL_IDS.items():
        entries[mid] = Message(alias, TERMINAL, PRIMITIVE, ANY_ARGS)
    return Protocol(name, entries)


# Wire form ---------------------------------------------------------------------------------------


def _transition_to_wire(t: Transition) -> Any:
    if t is RECURSIVE:
        return None
    assert isinstance(t, Protocol)
    return {mid: [m.alias, _transition_to_wire(m.dispatch)] for mid, m in t.messages.items()}


def to_wire(root: Protocol) -> dict[int, list[Any]]:
    """The graph as ``resolve`` sends it."""
    return {
        mid: [m.alias, _transition_to_wire(m.dispatch), _transition_to_wire(m.upstream)]
        for mid, m in root.messages.items()
    }


def _alias(raw: Any) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        return raw
    raise ValueError(f"bad alias {raw!r}")


def _transition_from_wire(raw: Any, name: str) -> Transition:
    if raw is None:
        recursive: Transition = RECURSIVE
        return recursive
    if not isinstance(raw, dict):
        raise ValueError(f"bad graph node {raw!r}")
    messages = {}
    for mid, entry in raw.items():
        if not isinstance(mid, int) or not isinstance(entry, list) or len(entry) < 2:
            raise ValueError(f"bad graph entry {mid!r}: {entry!r}")
        alias = _alias(entry[0])
        messages[mid] = Message(alias, _transition_from_wire(entry[1], alias), args=ANY_ARGS)
    return Protocol(name, messages) if messages else TERMINAL


def from_wire(raw: Any, name: str = "remote") -> Protocol:
    """Parse a resolved graph into a root protocol. Raises ValueError on a malformed graph."""
    if not isinstance(raw, dict):
        raise ValueError("a graph must be a map")
    messages = {}
    for mid, entry in raw.items():
        if not isinstance(mid, int) or not isinstance(entry, list) or len(entry) != 3:
            raise ValueError(f"bad graph entry {mid!r}: {entry!r}")
        alias = _alias(entry[0])
        messages[mid] = Message(
            alias,
            _transition_from_wire(entry[1], alias),
            _transition_from_wire(entry[2], alias),
            ANY_ARGS,
        )
    return Protocol(name, messages)


def kind(upstream: Transition) -> str:
    """Classify an upstream: 'primitive', 'streaming', 'void' or 'other' (by its aliases)."""
    if upstream is RECURSIVE:
        return "other"
    assert isinstance(upstream, Protocol)
    if upstream.terminal:
        return "void"
    aliases = set(upstream.by_alias)
    if "value" in aliases:
        return "primitive"
    if "write" in aliases:
        return "streaming"
    return "other"


__all__ = [
    "CONTROL_IDS",
    "PRIMITIVE",
    "RECURSIVE",
    "STREAMING",
    "TERMINAL",
    "VOID",
    "Message",
    "Protocol",
    "Transition",
    "after",
    "from_wire",
    "kind",
    "to_wire",
    "with_control",
]
