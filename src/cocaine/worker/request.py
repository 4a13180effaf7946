"""The incoming half of an invocation: the chunks a client streams to a handler.

The runtime opens a channel with ``invoke [event]`` and then relays the client's stream on it:
``write [chunk]`` any number of times, ended by ``close`` or ``error``. A :class:`Request`
buffers those messages (a bounded inbox: past its mark the worker stops reading the socket)
and hands them out one at a time::

    chunk = await request.read()          # bytes; EndOfStream once the client closed
    async for chunk in request: ...       # every chunk up to the close

In a generator-style handler ``chunk = yield request.read()`` does the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cocaine.errors import CocaineError, EndOfStream, ServiceError
from cocaine.protocol.headers import Header, find_header
from cocaine.rpc.channel import Inbox


class Request:
    """The client's stream for one event. Create through the worker, not by hand."""

    __slots__ = ("_end", "_inbox", "event", "headers")

    def __init__(self, event: str, inbox: Inbox, headers: list[Header]) -> None:
        self.event = event
        self.headers = headers
        self._inbox = inbox
        self._end: CocaineError | None = None

    async def read(self, timeout: float | None = None) -> bytes:
        """The next chunk.

        Raises :class:`~cocaine.errors.EndOfStream` once the client has closed its side,
        :class:`~cocaine.errors.ServiceError` if it sent an error instead (every later read
        raises the same error), :class:`~cocaine.errors.ConnectionLost` if the runtime went
        away, and :class:`TimeoutError` if ``timeout`` seconds pass without a chunk.
        """
        if self._end is not None:
            raise self._end
        try:
            if timeout is None:
                message, args, _ = await self._inbox.get_message()
            else:
                async with asyncio.timeout(timeout):
                    message, args, _ = await self._inbox.get_message()
        except CocaineError as exc:  # the channel was aborted (connection lost)
            self._end = exc
            raise
        alias = message.alias
        if alias == "write":
            chunk: bytes = _chunk(args)
            return chunk
        self._inbox.done = True
        self._end = ServiceError.from_wire(args) if alias == "error" else EndOfStream()
        raise self._end

    def header(self, name: str | bytes) -> bytes | None:
        """The value of the first invoke header called ``name``, if any."""
        return find_header(self.headers, name.encode() if isinstance(name, str) else name)

    @property
    def closed(self) -> bool:
        """True once a read has met the end of the client's stream (close, error or abort)."""
        return self._end is not None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.read()
        except EndOfStream:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<Request {self.event!r}{' closed' if self.closed else ''}>"


def _chunk(args: list[Any]) -> Any:
    """The payload of a ``write``: ``[chunk]`` as sent by every runtime; several args as a list."""
    if len(args) == 1:
        return args[0]
    return list(args)


__all__ = ["Request"]
