"""The runtime's side of a worker socket, built from our real Connection, for worker tests.

``FakeRuntime`` listens on a unix socket the way the runtime does for one app: it accepts the
worker's handshake on channel 1 (recording the uuid), answers heartbeats (unless told not to),
records a ``terminate`` from the worker, and opens invoke channels 2, 3, … whose replies it
collects. Every wait has a deadline; nothing sleeps.

``serve_worker`` (the fixture in conftest) runs a :class:`Worker` in the test's loop against one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cocaine.errors import CocaineError
from cocaine.idl.worker import CLOSE, ERROR, HANDSHAKE, INVOKE, TERMINATE, WRITE
from cocaine.protocol.graph import Message
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel, Inbox
from cocaine.rpc.connection import Connection
from cocaine.worker import Worker

UUID = "0d9c8f0e-3f43-4b1c-9a55-1f7e2f0c4e11"
DEADLINE = 5.0


async def deadline(aw: Any, timeout: float = DEADLINE) -> Any:
    return await asyncio.wait_for(aw, timeout)


class Call:
    """An invoke channel the fake runtime opened, with what came back on it."""

    def __init__(
        self, runtime: FakeRuntime, conn: Connection, event: str, headers: list[Header]
    ) -> None:
        self._runtime = runtime
        self._inbox = Inbox(conn)
        self.channel: Channel = conn.open(INVOKE, 0, [event], headers, receiver=self)

    # Receiver
    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        self._runtime.events.append((self.channel.id, message.alias, args))
        self._inbox.on_message(message, args, headers)

    def on_abort(self, exc: CocaineError) -> None:
        self._inbox.on_abort(exc)

    def write(self, chunk: bytes) -> Call:
        self.channel.send(WRITE, [chunk])
        return self

    def close(self) -> Call:
        self.channel.send(CLOSE, [])
        return self

    def error(self, category: int, code: int, reason: str) -> Call:
        self.channel.send(ERROR, [[category, code], reason])
        return self

    async def next(self) -> tuple[str, list[Any]]:
        message, args, _ = await deadline(self._inbox.get_message())
        return message.alias, args

    async def reply(self) -> list[tuple[str, list[Any]]]:
        """Every message up to and including the terminal one."""
        out = []
        while True:
            alias, args = await self.next()
            out.append((alias, args))
            if alias in ("close", "error"):
                return out


class FakeRuntime:
    root = HANDSHAKE

    def __init__(self, *, reply_heartbeats: bool = True) -> None:
        self.reply_heartbeats = reply_heartbeats
        self.events: list[tuple[int, str, list[Any]]] = []
        self.heartbeats = 0
        loop = asyncio.get_running_loop()
        self.uuid: asyncio.Future[str] = loop.create_future()
        self.terminated: asyncio.Future[list[Any]] = loop.create_future()
        self.connected: asyncio.Future[Connection] = loop.create_future()
        self._beat = asyncio.Event()
        self.control: Channel | None = None
        self.server: asyncio.AbstractServer | None = None

    async def listen(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(self._accept, path)

    def _accept(self) -> Connection:
        conn = Connection(self, name="runtime")
        if not self.connected.done():
            self.connected.set_result(conn)
        return conn

    # Dispatch: the worker opens channel 1 with the handshake.
    def open(
        self, channel: Channel, message: Message, args: list[Any], headers: list[Header]
    ) -> FakeRuntime:
        self.control = channel
        self.uuid.set_result(args[0])
        return self

    # Receiver for channel 1.
    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        self.events.append((1, message.alias, args))
        if message.alias == "heartbeat":
            self.heartbeats += 1
            self._beat.set()
            if self.reply_heartbeats and self.control is not None and self.control.can_send:
                self.control.send(0, [])
        elif message.alias == "terminate" and not self.terminated.done():
            self.terminated.set_result(args)

    def on_abort(self, exc: CocaineError) -> None:
        if not self.terminated.done():
            self.terminated.set_exception(exc)
            self.terminated.exception()

    async def wait_heartbeats(self, count: int) -> None:
        while self.heartbeats < count:
            self._beat.clear()
            await deadline(self._beat.wait())

    async def invoke(
        self, event: str, *chunks: bytes, close: bool = True, headers: list[Header] | None = None
    ) -> Call:
        conn = await deadline(self.connected)
        await deadline(self.uuid)
        call = Call(self, conn, event, headers or [])
        for chunk in chunks:
            call.write(chunk)
        if close:
            call.close()
        return call

    def terminate(self, code: int, reason: str) -> None:
        assert self.control is not None
        self.control.send(TERMINATE, [code, reason])

    async def disconnect(self) -> None:
        conn = await deadline(self.connected)
        conn.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.connected.done() and not self.connected.cancelled():
            self.connected.result().close()


@dataclass
class Served:
    runtime: FakeRuntime
    worker: Worker
    task: asyncio.Task[int]  # the worker's ``serve()``; its result is the exit status


ServeWorker = Callable[..., contextlib.AbstractAsyncContextManager[Served]]
