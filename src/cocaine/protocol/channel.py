"""Per-channel state: which message ids are legal next in each direction.

Theory of operation: a channel is opened by the first message on a new id, chosen from a root
protocol. From then on each direction follows its own protocol: the opener's side follows the
first message's ``dispatch``, the other side its ``upstream``. A message with a terminal
transition closes that direction; the channel is done when both directions are closed. Each
direction closes on its own, so a worker may finish replying while the client still writes.

    OPEN ──(one side terminal)──► HALF_CLOSED ──(other side terminal)──► CLOSED

A message that is not legal in the current state raises ``DispatchError`` and leaves the state
unchanged; the caller decides whether that breaks the connection.
"""

from __future__ import annotations

from enum import Enum

from cocaine.errors import Dispatch, DispatchError
from cocaine.protocol.graph import Message, Protocol, after


class ChannelPhase(Enum):
    OPEN = "open"
    HALF_CLOSED = "half-closed"
    CLOSED = "closed"


class ChannelState:
    """The two directions of one channel, seen from one end."""

    __slots__ = ("recv", "send")

    def __init__(self, send: Protocol | None, recv: Protocol | None) -> None:
        self.send = send
        self.recv = recv

    @classmethod
    def opened_by_us(cls, root: Protocol, mtype: int) -> tuple[ChannelState, Message]:
        message = root.messages.get(mtype) or _lookup(root, mtype, "send")
        send = root if message.stays else message.follows
        return cls(send, after(root, message.upstream)), message

    @classmethod
    def opened_by_peer(cls, root: Protocol, mtype: int) -> tuple[ChannelState, Message]:
        message = root.messages.get(mtype) or _lookup(root, mtype, "receive")
        recv = root if message.stays else message.follows
        return cls(after(root, message.upstream), recv), message

    @property
    def phase(self) -> ChannelPhase:
        if self.send is None and self.recv is None:
            return ChannelPhase.CLOSED
        if self.send is None or self.recv is None:
            return ChannelPhase.HALF_CLOSED
        return ChannelPhase.OPEN

    @property
    def closed(self) -> bool:
        return self.send is None and self.recv is None

    def on_send(self, mtype: int) -> Message:
        proto = self.send
        if proto is None:
            raise DispatchError("cannot send on a closed direction", code=Dispatch.REVOKED_CHANNEL)
        message = proto.messages.get(mtype)
        if message is None:
            message = _lookup(proto, mtype, "send")
        if not message.stays:
            self.send = message.follows
        return message

    def on_receive(self, mtype: int) -> Message:
        proto = self.recv
        if proto is None:
            raise DispatchError("message on a closed channel", code=Dispatch.REVOKED_CHANNEL)
        message = proto.messages.get(mtype)
        if message is None:
            message = _lookup(proto, mtype, "receive")
        if not message.stays:
            self.recv = message.follows
        return message


def _lookup(proto: Protocol, mtype: int, verb: str) -> Message:
    try:
        return proto.messages[mtype]
    except KeyError:
        raise DispatchError(
            f"cannot {verb} message {mtype} in protocol '{proto.name}'",
            code=Dispatch.SLOT_NOT_FOUND,
        ) from None


__all__ = ["ChannelPhase", "ChannelState"]
