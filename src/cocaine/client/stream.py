"""The two halves of a streaming call: ``tx`` (write / error / close) and ``rx`` (get)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cocaine.errors import EndOfStream, ServiceError
from cocaine.protocol.values import Type
from cocaine.rpc.channel import Channel, Inbox, unwrap_value


class Tx:
    """The sending half: each method is legal only where the protocol allows it."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def write(self, *args: Any) -> None:
        self._channel.send_alias("write", list(args))
        await self._channel.conn.drain()

    async def error(self, category: int, code: int, reason: str = "") -> None:
        self._channel.send_alias("error", [[category, code], reason])

    async def close(self) -> None:
        self._channel.send_alias("close", [])

    async def send(self, alias: str, *args: Any) -> None:
        """Any message of the current protocol by its alias."""
        self._channel.send_alias(alias, list(args))
        await self._channel.conn.drain()

    @property
    def closed(self) -> bool:
        return not self._channel.can_send


class Rx:
    """The receiving half. ``get`` returns the next chunk; ``error`` raises it; ``close`` ends.

    After the stream ends every further ``get`` raises :class:`EndOfStream`.
    """

    def __init__(self, inbox: Inbox, returns: Type | None = None) -> None:
        self._inbox = inbox
        self._returns = returns

    async def get(self, timeout: float | None = None) -> Any:
        if timeout is None:
            message, args, _ = await self._inbox.get_message()
        else:
            async with asyncio.timeout(timeout):
                message, args, _ = await self._inbox.get_message()
        alias = message.alias
        if alias == "error":
            self._inbox.done = True
            raise ServiceError.from_wire(args)
        if alias == "close":
            self._inbox.done = True
            raise EndOfStream()
        value = unwrap_value(args)
        if alias == "value":
            self._inbox.done = True
            if self._returns is not None:
                value = self._returns(value)
        return value

    async def recv(self) -> tuple[str, list[Any]]:
        """The next message as ``(alias, args)``, without interpreting it."""
        message, args, _ = await self._inbox.get_message()
        return message.alias, args

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.get()
        except EndOfStream:
            raise StopAsyncIteration from None

    @property
    def done(self) -> bool:
        return self._inbox.done and not len(self._inbox)


class Stream:
    """A streaming call in progress: ``tx`` to send, ``rx`` to receive."""

    def __init__(self, channel: Channel, inbox: Inbox, returns: Type | None = None) -> None:
        self.channel = channel
        self.tx = Tx(channel)
        self.rx = Rx(inbox, returns)

    # Conveniences for the common request/reply shape of app events.
    async def write(self, *args: Any) -> None:
        await self.tx.write(*args)

    async def close(self) -> None:
        await self.tx.close()

    async def get(self, timeout: float | None = None) -> Any:
        return await self.rx.get(timeout)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.rx.__aiter__()


__all__ = ["Rx", "Stream", "Tx"]
