"""The outgoing half of an invocation: what a handler streams back to its client.

A handler writes any number of chunks and then ends the stream exactly once, with ``close()``
or ``error(...)``. Writes are synchronous (each queues one ``write`` frame on the worker's
connection; frames queued in one loop iteration go out together); a handler that streams a lot
awaits ``drain()`` now and then so a slow client holds back the handler, not the worker's memory.

    write(b"chunk")                     ──► [N, 0, [b"chunk"]]
    error(category, code, "reason")     ──► [N, 1, [[category, code], "reason"]]   (ends)
    error(code, "reason")               ──► [N, 1, [[43, code], "reason"]]         (ends)
    close()                             ──► [N, 2, []]                             (ends)

``close()`` is idempotent; ``write`` or ``error`` after the end raises
:class:`~cocaine.errors.DispatchError`.
"""

from __future__ import annotations

from typing import overload

from cocaine.errors import (
    Category,
    CocaineError,
    ConnectionLost,
    Dispatch,
    DispatchError,
)
from cocaine.idl.worker import CLOSE, ERROR, WRITE
from cocaine.rpc.channel import Channel

Chunk = bytes | bytearray | memoryview | str


class Response:
    """The stream back to the client of one event. Create through the worker, not by hand."""

    __slots__ = ("_channel", "_ended", "event")

    def __init__(self, event: str, channel: Channel) -> None:
        self.event = event
        self._channel = channel
        self._ended = False

    def write(self, data: Chunk) -> None:
        """Send one chunk; ``str`` is sent as its UTF-8 bytes."""
        if isinstance(data, str):
            payload = data.encode("utf-8")
        elif isinstance(data, bytes):
            payload = data
        elif isinstance(data, (bytearray, memoryview)):
            payload = bytes(data)
        else:
            raise TypeError(f"a chunk must be bytes or str, not {type(data).__name__}")
        self._check("write")
        self._channel.send(WRITE, [payload])

    async def drain(self) -> None:
        """Wait until the connection's write buffer is below its high-water mark."""
        await self._channel.conn.drain()

    @overload
    def error(self, error: CocaineError, /) -> None: ...

    @overload
    def error(self, code: int, reason: str, /) -> None: ...

    @overload
    def error(self, category: int, code: int, reason: str, /) -> None: ...

    def error(self, *args: CocaineError | int | str) -> None:
        """End the stream with an error.

        ``error(category, code, reason)`` sends the pair as given; ``error(code, reason)`` (the
        original framework's form) sends category 43, the worker user category;
        ``error(exc)`` sends a :class:`~cocaine.errors.CocaineError`'s own pair and reason.
        """
        category, code, reason = _error_args(args)
        self._check("error")
        self._ended = True
        self._channel.send(ERROR, [[category, code], reason])

    def close(self) -> None:
        """End the stream. Does nothing if it has already ended or the connection is gone."""
        if self._ended:
            return
        self._ended = True
        if self._channel.can_send:
            self._channel.send(CLOSE, [])

    @property
    def closed(self) -> bool:
        """True once the stream has ended here, or can no longer be sent (connection lost)."""
        return self._ended or not self._channel.can_send

    def _check(self, what: str) -> None:
        if self._ended:
            raise DispatchError(
                f"{what}() on the response to event '{self.event}' after it was closed",
                code=Dispatch.REVOKED_CHANNEL,
            )
        conn = self._channel.conn
        if conn.closed:
            raise conn.error or ConnectionLost("the connection to the runtime is closed")

    def __repr__(self) -> str:
        return f"<Response {self.event!r}{' closed' if self.closed else ''}>"


def _error_args(args: tuple[CocaineError | int | str, ...]) -> tuple[int, int, str]:
    if len(args) == 1 and isinstance(args[0], CocaineError):
        exc = args[0]
        return exc.category, exc.code, exc.reason
    if len(args) == 2:
        code, reason = args
        category: object = Category.WORKER_USER
    elif len(args) == 3:
        category, code, reason = args
    else:
        raise TypeError("error() takes (category, code, reason), (code, reason) or (exception)")
    if not isinstance(category, int) or not isinstance(code, int):
        raise TypeError("error(): category and code must be integers")
    return int(category), int(code), str(reason)


__all__ = ["Chunk", "Response"]
