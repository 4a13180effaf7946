"""Channels on a connection: the sending half, and receivers for what arrives.

A :class:`Channel` is one multiplexed conversation. Sending goes through ``send`` (checked
against the channel's protocol state, then framed by the connection). Whatever arrives is handed
to the channel's :class:`Receiver`: a relay, a server handler, or an :class:`Inbox` that buffers
messages for a coroutine to ``get``. The inbox is bounded: past its high-water mark the
connection stops reading the socket until the reader catches up.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from cocaine.errors import CocaineError, EndOfStream, ServiceError
from cocaine.protocol.channel import ChannelState
from cocaine.protocol.framing import pack_uint
from cocaine.protocol.graph import RECURSIVE, Message
from cocaine.protocol.headers import Header

if TYPE_CHECKING:
    import asyncio

    from cocaine.rpc.connection import Connection


class Receiver(Protocol):
    """What a channel hands incoming messages to."""

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None: ...

    def on_abort(self, exc: CocaineError) -> None:
        """The channel ended without a terminal message (connection lost, revoked)."""


class Channel:
    """One channel on a connection, from this end."""

    __slots__ = ("conn", "id", "packed_id", "receiver", "state")

    def __init__(self, conn: Connection, cid: int, state: ChannelState) -> None:
        self.conn = conn
        self.id = cid
        self.packed_id = pack_uint(cid)  # as every frame on the channel starts with it
        self.state = state
        self.receiver: Receiver | None = None

    def send(self, mtype: int, args: list[Any], headers: list[Header] | None = None) -> Message:
        """Send one message; raises DispatchError if it is not legal now, ConnectionLost if gone."""
        state = self.state
        message = state.on_send(mtype)
        self.conn.send_on(self, mtype, args, headers)
        if state.send is None and state.recv is None:
            self.conn.forget(self)
        return message

    def send_alias(self, alias: str, args: list[Any], headers: list[Header] | None = None) -> None:
        proto = self.state.send
        if proto is None or alias not in proto.by_alias:
            mtype = -1
        else:
            mtype = proto.by_alias[alias]
        self.send(mtype, args, headers)

    @property
    def can_send(self) -> bool:
        return self.state.send is not None and not self.conn.closed

    def abort(self, exc: CocaineError) -> None:
        """Drop the channel locally; the receiver hears ``exc``."""
        self.state.send = self.state.recv = None
        self.conn.forget(self)
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.on_abort(exc)

    def __repr__(self) -> str:
        return f"<Channel {self.id} {self.state.phase.value}>"


class Inbox:
    """A bounded buffer of received messages that a coroutine awaits with ``get``."""

    __slots__ = ("_conn", "_items", "_limit", "_paused", "_waiter", "done")

    def __init__(self, conn: Connection, limit: int = 64) -> None:
        self._conn = conn
        self._items: deque[tuple[Message, list[Any], list[Header]] | CocaineError] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._limit = limit
        self._paused = False
        self.done = False

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        self._items.append((message, args, headers))
        self._wake()
        if message.dispatch is not RECURSIVE:  # terminal: nothing more will arrive
            self._resume()
        elif len(self._items) > self._limit and not self._paused:
            self._paused = True
            self._conn.pause_reading()

    def on_abort(self, exc: CocaineError) -> None:
        self._items.append(exc)
        self._wake()
        self._resume()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._conn.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get_message(self) -> tuple[Message, list[Any], list[Header]]:
        """The next message as received. Raises the abort error if the channel was dropped."""
        while not self._items:
            if self.done:
                raise EndOfStream()
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if self._paused and len(self._items) <= self._limit // 2:
            self._paused = False
            self._conn.resume_reading()
        if isinstance(item, CocaineError):
            self.done = True
            raise item
        return item

    def __len__(self) -> int:
        return len(self._items)


def unwrap_value(args: list[Any]) -> Any:
    """The Python value of a ``value``/``write`` message: one arg unwrapped, none → None."""
    if len(args) == 1:
        return args[0]
    if not args:
        return None
    return tuple(args)


def raise_error(args: list[Any]) -> None:
    raise ServiceError.from_wire(args)


__all__ = ["Channel", "Inbox", "Receiver", "raise_error", "unwrap_value"]
