"""Connections over real loopback sockets: dispatch, errors, control, streams, flow control.

Each test starts a tiny service (an :class:`Interface` built inline with ``service``/``call``)
behind ``loop.create_server`` on an ephemeral port, then talks to it either with a client
:class:`Connection` or with a raw socket that writes and reads frames byte for byte.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections import deque
from typing import Any

import pytest

from cocaine.errors import (
    Category,
    CocaineError,
    ConnectionLost,
    Dispatch,
    DispatchError,
    Overseer,
    Transport,
)
from cocaine.idl.interface import call, service
from cocaine.protocol.framing import Frame, FrameDecoder, encode_frame, encode_frame3
from cocaine.protocol.graph import STREAMING, Message
from cocaine.protocol.headers import Header
from cocaine.protocol.values import INT, TEXT, Args
from cocaine.rpc import Channel, Connection, Inbox, ServiceDispatch, connect_tcp

T = 5.0  # deadline for every wait; nothing here should come near it
ZERO = bytes(8)
H0 = [[False, b"trace_id", ZERO], [False, b"span_id", ZERO], [False, b"parent_id", ZERO]]
WRITE, ERROR, CLOSE = 0, 1, 2

TEST = service(
    "test",
    1,
    call("echo", Args((TEXT,))),  # 0
    call("fail", Args((INT, INT))),  # 1: raises CocaineError(category, code)
    call("slow", Args((TEXT,))),  # 2: async, waits for the gate
    Message("stream", STREAMING, STREAMING),  # 3: echoes writes, answers close with bye+close
    Message("sink", STREAMING, STREAMING),  # 4: an Inbox the test drains
    Message("burst", STREAMING, STREAMING, Args((INT,))),  # 5: n writes + close, collects writes
    call("boom"),  # 6: a plain exception
    call("unbound"),  # 7: no handler
)
ECHO, FAIL, SLOW, STREAM, SINK, BURST, BOOM, UNBOUND = range(8)
SINK_LIMIT = 4


async def within(aw: Any) -> Any:
    return await asyncio.wait_for(aw, T)


class EchoStream:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        if message.alias == "write":
            self.channel.send(WRITE, args)
        elif message.alias == "close":
            self.channel.send(WRITE, [b"bye"])
            self.channel.send(CLOSE, [])

    def on_abort(self, exc: CocaineError) -> None:
        pass


class Collector:
    """Records what arrives; ``done`` resolves with the writes at close."""

    def __init__(self) -> None:
        self.writes: list[Any] = []
        self.done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        if message.alias == "write":
            self.writes.append(args[0])
        else:
            self.done.set_result(self.writes)

    def on_abort(self, exc: CocaineError) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class WatchedInbox:
    """An Inbox that also signals when it holds more than its limit."""

    def __init__(self, conn: Connection, limit: int) -> None:
        self.inbox = Inbox(conn, limit)
        self.limit = limit
        self.over = asyncio.Event()

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        self.inbox.on_message(message, args, headers)
        if len(self.inbox) > self.limit:
            self.over.set()

    def on_abort(self, exc: CocaineError) -> None:
        self.inbox.on_abort(exc)

    async def get_message(self) -> tuple[Message, list[Any], list[Header]]:
        return await self.inbox.get_message()

    def __len__(self) -> int:
        return len(self.inbox)


class Service:
    """The test service, its listener and the connections it accepted."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.accepted: asyncio.Queue[Connection] = asyncio.Queue()
        self.conns: list[Connection] = []
        self.sinks: asyncio.Queue[tuple[Channel, WatchedInbox]] = asyncio.Queue()
        self.bursts: asyncio.Queue[Collector] = asyncio.Queue()
        self.dispatch = ServiceDispatch(
            TEST,
            {
                "echo": lambda text: text,
                "fail": self.fail,
                "slow": self.slow,
                "stream": lambda channel, args, headers: EchoStream(channel),
                "sink": self.sink,
                "burst": self.burst,
                "boom": self.boom,
            },
        )

    @staticmethod
    def fail(category: int, code: int) -> None:
        raise CocaineError("refused", category, code)

    async def slow(self, text: str) -> str:
        await self.gate.wait()
        if text == "fail":
            raise CocaineError("queue is full", Category.OVERSEER, Overseer.QUEUE_IS_FULL)
        return text.upper()

    def sink(self, channel: Channel, args: list[Any], headers: list[Header]) -> WatchedInbox:
        inbox = WatchedInbox(channel.conn, SINK_LIMIT)
        self.sinks.put_nowait((channel, inbox))
        return inbox

    def burst(self, channel: Channel, args: list[Any], headers: list[Header]) -> Collector:
        for i in range(args[0]):
            channel.send(WRITE, [i])
        channel.send(CLOSE, [])
        collector = Collector()
        self.bursts.put_nowait(collector)
        return collector

    @staticmethod
    def boom() -> None:
        raise RuntimeError("kaput")

    def _factory(self) -> Connection:
        conn = Connection(self.dispatch, name="server")
        self.conns.append(conn)
        self.accepted.put_nowait(conn)
        return conn

    async def __aenter__(self) -> Service:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.clients: list[Connection] = []
        self.raws: list[RawPeer] = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients:
            client.close()
        for raw in self.raws:
            raw.writer.close()
        for conn in self.conns:
            conn.close()
        self.server.close()
        await within(self.server.wait_closed())

    async def client(self) -> tuple[Connection, Connection]:
        conn = await within(connect_tcp("127.0.0.1", self.port))
        self.clients.append(conn)
        return conn, await within(self.accepted.get())

    async def raw(self) -> tuple[RawPeer, Connection]:
        reader, writer = await within(asyncio.open_connection("127.0.0.1", self.port))
        peer = RawPeer(reader, writer)
        self.raws.append(peer)
        return peer, await within(self.accepted.get())


class RawPeer:
    """A socket speaking frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.frames: deque[Frame] = deque()

    def send(self, channel: int, mtype: int, args: list[Any], headers: list[Any] | None = None):
        self.writer.write(encode_frame(channel, mtype, args, headers or []))

    async def recv(self) -> Frame:
        while not self.frames:
            data = await within(self.reader.read(65536))
            assert data, "connection closed while a frame was expected"
            self.frames.extend(self.decoder.feed(data))
        return self.frames.popleft()

    async def until_eof(self) -> list[Frame]:
        """Everything the server still sends before it closes the connection."""
        while data := await within(self.reader.read(65536)):
            self.frames.extend(self.decoder.feed(data))
        rest, self.frames = list(self.frames), deque()
        return rest


async def call_on(conn: Connection, mtype: int, args: list[Any]) -> tuple[str, list[Any]]:
    inbox = Inbox(conn)
    conn.open(TEST.root, mtype, args, receiver=inbox)
    message, reply, _ = await within(inbox.get_message())
    return message.alias, reply


# -- primitive calls ------------------------------------------------------------------------------


async def test_primitive_call() -> None:
    async with Service() as svc:
        client, server = await svc.client()
        assert await call_on(client, ECHO, ["hello"]) == ("value", [b"hello"])
        assert await call_on(client, ECHO, [b"again"]) == ("value", [b"again"])
        assert client.channels == {} and server.channels == {}


async def test_primitive_reply_frame_carries_the_default_trace_headers() -> None:
    async with Service() as svc:
        peer, _ = await svc.raw()
        peer.send(1, ECHO, [b"hi"])
        assert await peer.recv() == Frame(1, 0, [b"hi"], H0)
        peer.writer.write(encode_frame3(2, ECHO, [b"three"]))  # a 3-element frame is fine too
        assert await peer.recv() == Frame(2, 0, [b"three"], H0)


async def test_async_handler_does_not_block_the_connection() -> None:
    async with Service() as svc:
        client, _ = await svc.client()
        slow = Inbox(client)
        client.open(TEST.root, SLOW, ["quiet"], receiver=slow)
        assert await call_on(client, ECHO, ["meanwhile"]) == ("value", [b"meanwhile"])
        assert len(slow) == 0
        svc.gate.set()
        message, args, _ = await within(slow.get_message())
        assert (message.alias, args) == ("value", [b"QUIET"])


async def test_handler_raising_cocaine_error_replies_error() -> None:
    async with Service() as svc:
        client, _ = await svc.client()
        assert await call_on(client, FAIL, [0x52FF, 1]) == ("error", [[0x52FF, 1], b"refused"])
        svc.gate.set()
        assert await call_on(client, SLOW, ["fail"]) == ("error", [[0x52FF, 1], b"queue is full"])
        alias, args = await call_on(client, BOOM, [])
        assert alias == "error" and args[0] == [Category.DISPATCH, Dispatch.UNCAUGHT_ERROR]
        assert await call_on(client, ECHO, ["still here"]) == ("value", [b"still here"])


async def test_closing_the_connection_cancels_handler_tasks() -> None:
    async with Service() as svc:
        client, server = await svc.client()
        client.open(TEST.root, SLOW, ["never"], receiver=Inbox(client))
        await within(call_on(client, ECHO, ["sync"]))  # the slow call has been dispatched
        (task,) = server.tasks
        client.close()
        await within(server.wait_closed())
        await within(asyncio.wait([task]))
        assert task.cancelled()


async def test_async_handler_cancelled_before_it_starts_leaves_no_unawaited_coroutine() -> None:
    async with Service() as svc:
        peer, server = await svc.raw()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # the call and a reused channel id arrive together: the connection closes and the
            # handler's task is cancelled before it runs
            peer.writer.write(encode_frame(1, SLOW, [b"x"]) + encode_frame(1, ECHO, [b"y"]))
            await within(peer.until_eof())
            await within(server.wait_closed())
            # the cancelled task ran its last step before the transport's close was reported
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


# -- errors that keep the connection --------------------------------------------------------------


async def test_bad_arguments_reply_invalid_argument_and_keep_serving() -> None:
    async with Service() as svc:
        peer, server = await svc.raw()
        bad = [
            (ECHO, []),  # too few
            (ECHO, [b"a", b"b"]),  # too many
            (ECHO, [5]),  # not a string
            (FAIL, [b"x", 1]),  # not an int
            (FAIL, [1, [2]]),
            (ECHO, [b"\xff\xfe"]),  # not UTF-8
        ]
        for cid, (mtype, args) in enumerate(bad, start=1):
            peer.send(cid, mtype, args)
            frame = await peer.recv()
            assert (frame.channel, frame.type) == (cid, ERROR)
            assert frame.args[0] == [Category.DISPATCH, Dispatch.INVALID_ARGUMENT]
            assert isinstance(frame.args[1], bytes)
        peer.send(100, ECHO, [b"fine"])
        assert await peer.recv() == Frame(100, 0, [b"fine"], H0)
        assert not server.closed


async def test_unknown_method_replies_slot_not_found_and_keeps_serving() -> None:
    async with Service() as svc:
        peer, server = await svc.raw()
        peer.send(1, 42, [b"x"])
        frame = await peer.recv()
        assert (frame.channel, frame.type) == (1, ERROR)
        assert frame.args[0] == [Category.DISPATCH, Dispatch.SLOT_NOT_FOUND]
        peer.send(2, UNBOUND, [])  # in the interface but without a handler
        frame = await peer.recv()
        assert (frame.channel, frame.type) == (2, ERROR)
        assert frame.args[0] == [Category.DISPATCH, Dispatch.SLOT_NOT_FOUND]
        peer.send(3, ECHO, [b"ok"])
        assert await peer.recv() == Frame(3, 0, [b"ok"], H0)
        assert not server.closed


# -- errors that close the connection -------------------------------------------------------------


async def test_reused_channel_id_closes_the_connection() -> None:
    async with Service() as svc:
        peer, server = await svc.raw()
        peer.send(1, ECHO, [b"one"])
        assert await peer.recv() == Frame(1, 0, [b"one"], H0)
        peer.send(1, ECHO, [b"one again"])
        assert await peer.until_eof() == []
        await within(server.wait_closed())
        assert server.error is not None
        assert server.error.pair == (Category.DISPATCH, Dispatch.REVOKED_CHANNEL)


async def test_decreasing_channel_id_closes_the_connection() -> None:
    async with Service() as svc:
        peer, server = await svc.raw()
        peer.send(5, ECHO, [b"five"])
        assert await peer.recv() == Frame(5, 0, [b"five"], H0)
        peer.send(3, ECHO, [b"three"])
        assert await peer.until_eof() == []
        await within(server.wait_closed())
        assert server.error is not None
        assert server.error.pair == (Category.DISPATCH, Dispatch.REVOKED_CHANNEL)


async def test_client_sees_connection_lost_when_the_server_drops_it() -> None:
    async with Service() as svc:
        client, server = await svc.client()
        pending = Inbox(client)
        client.open(TEST.root, SLOW, ["waiting"], receiver=pending)
        await within(call_on(client, ECHO, ["sync"]))  # the slow handler is running
        client.write_raw(encode_frame(1, ECHO, [b"channel 1 again"]))
        try:
            await within(pending.get_message())
        except ConnectionLost:
            pass
        else:
            raise AssertionError("the pending call should fail with ConnectionLost")
        await within(client.wait_closed())
        assert client.closed and client.channels == {}
        assert isinstance(client.error, ConnectionLost)
        assert server.error is not None and server.error.code == Dispatch.REVOKED_CHANNEL


async def test_garbage_closes_only_that_connection() -> None:
    async with Service() as svc:
        other, _ = await svc.client()
        for garbage, code in [
            (b"\xc1\xc1\xc1", Transport.PARSE),
            (b"\x05", Transport.FRAME_FORMAT),
            (b"\x92\x01\x00", Transport.FRAME_FORMAT),
        ]:
            peer, server = await svc.raw()
            peer.send(1, ECHO, [b"before"])
            assert await peer.recv() == Frame(1, 0, [b"before"], H0)
            peer.writer.write(garbage + encode_frame(2, ECHO, [b"after"]))
            assert await peer.until_eof() == []
            await within(server.wait_closed())
            assert server.error is not None
            assert server.error.pair == (Category.TRANSPORT, code)
            assert await call_on(other, ECHO, ["unaffected"]) == ("value", [b"unaffected"])


async def test_illegal_message_on_an_open_channel_closes_the_connection() -> None:
    async with Service() as svc:
        peer, server = await svc.raw()
        peer.send(1, STREAM, [])
        peer.send(1, 9, [])  # streaming has write/error/close only
        assert await peer.until_eof() == []
        await within(server.wait_closed())
        assert server.error is not None and server.error.category == Category.DISPATCH


# -- control --------------------------------------------------------------------------------------


async def test_ping_is_answered_with_value() -> None:
    async with Service() as svc:
        peer, _ = await svc.raw()
        peer.send(1, 65533, [])
        assert await peer.recv() == Frame(1, 0, [], H0)
        client, _ = await svc.client()
        assert await call_on(client, 65533, []) == ("value", [])
        assert await call_on(client, ECHO, ["after ping"]) == ("value", [b"after ping"])


async def test_revoke_discards_the_named_channel() -> None:
    async with Service() as svc:
        client, server = await svc.client()
        stream = Inbox(client)
        channel = client.open(TEST.root, STREAM, [], receiver=stream)
        channel.send(WRITE, [b"x"])
        message, _, _ = await within(stream.get_message())
        assert message.alias == "write" and channel.id in server.channels
        assert await call_on(client, 65535, [channel.id, [7, 4]]) == ("value", [])
        assert channel.id not in server.channels


# -- streaming ------------------------------------------------------------------------------------


async def test_streaming_echo_with_independent_close() -> None:
    async with Service() as svc:
        client, server = await svc.client()
        inbox = Inbox(client)
        channel = client.open(TEST.root, STREAM, [], receiver=inbox)
        for chunk in (b"a", b"bb", b"ccc"):
            channel.send(WRITE, [chunk])
            message, args, headers = await within(inbox.get_message())
            assert (message.alias, args) == ("write", [chunk])
            assert headers[0] == (b"trace_id", ZERO)
        channel.send(CLOSE, [])  # the client is done writing; the reply keeps flowing
        assert channel.state.send is None and channel.state.recv is not None
        message, args, _ = await within(inbox.get_message())
        assert (message.alias, args) == ("write", [b"bye"])
        message, args, _ = await within(inbox.get_message())
        assert message.alias == "close"
        assert channel.state.closed
        assert client.channels == {}
        await within(call_on(client, ECHO, ["sync"]))
        assert server.channels == {}


async def test_open_stream_writes_one_chunk_and_closes_in_one_step() -> None:
    async with Service() as svc:
        client, server = await svc.client()
        inbox = Inbox(client)
        channel = client.open_stream(TEST.root, STREAM, [], [(b"x-tag", b"1")], inbox, b"data")
        assert channel.state.send is None and channel.state.recv is not None
        replies = []
        while True:
            message, args, _ = await within(inbox.get_message())
            replies.append((message.alias, args))
            if message.alias == "close":
                break
        assert replies == [("write", [b"data"]), ("write", [b"bye"]), ("close", [])]
        assert client.channels == {}
        await within(call_on(client, ECHO, ["sync"]))
        assert server.channels == {}


async def test_open_stream_refuses_a_message_that_opens_no_stream() -> None:
    async with Service() as svc:
        client, _ = await svc.client()
        with pytest.raises(DispatchError):
            client.open_stream(TEST.root, ECHO, ["x"], None, None, b"data")
        assert client.channels == {}
        assert await call_on(client, ECHO, ["still"]) == ("value", [b"still"])


async def test_server_closes_first_while_the_client_keeps_writing() -> None:
    async with Service() as svc:
        client, _ = await svc.client()
        inbox = Inbox(client)
        channel = client.open(TEST.root, BURST, [3], receiver=inbox)
        collector = await within(svc.bursts.get())
        got = [await within(inbox.get_message()) for _ in range(4)]
        assert [(m.alias, a) for m, a, _ in got] == [
            ("write", [0]),
            ("write", [1]),
            ("write", [2]),
            ("close", []),
        ]
        assert channel.state.recv is None and channel.state.send is not None
        for i in range(3):
            channel.send(WRITE, [f"late {i}"])
        channel.send(CLOSE, [])
        assert await within(collector.done) == [b"late 0", b"late 1", b"late 2"]
        assert client.channels == {}


# -- flow control and ordering --------------------------------------------------------------------


async def test_full_inbox_pauses_reading_until_drained() -> None:
    async with Service() as svc:
        client, server = await svc.client()
        channel = client.open(TEST.root, SINK, [])
        for i in range(10):
            channel.send(WRITE, [i])
        _, inbox = await within(svc.sinks.get())
        await within(inbox.over.wait())
        assert not server.reading
        for i in range(10, 20):
            channel.send(WRITE, [i])
        channel.send(CLOSE, [])
        received = []
        resumed = False
        while len(received) < 21:
            message, args, _ = await within(inbox.get_message())
            received.append(args[0] if message.alias == "write" else message.alias)
            if len(inbox) <= SINK_LIMIT // 2 and not resumed:
                resumed = True
                assert server.reading
        assert received == [*range(20), "close"]
        assert resumed
        assert server.reading
        assert await call_on(client, ECHO, ["after"]) == ("value", [b"after"])


async def test_thousand_frames_each_way_arrive_in_order() -> None:
    async with Service() as svc:
        client, _ = await svc.client()
        inbox = Inbox(client)
        channel = client.open(TEST.root, BURST, [1000], receiver=inbox)
        collector = await within(svc.bursts.get())
        for i in range(500):
            channel.send(WRITE, [i])
        await within(client.drain())
        for i in range(500, 1000):
            channel.send(WRITE, [i])
        channel.send(CLOSE, [])
        replies = []
        while True:
            message, args, _ = await within(inbox.get_message())
            if message.alias == "close":
                break
            replies.append(args[0])
        assert replies == list(range(1000))
        assert await within(collector.done) == list(range(1000))


async def test_many_raw_requests_in_one_write_are_answered_in_order() -> None:
    async with Service() as svc:
        peer, _ = await svc.raw()
        peer.writer.write(
            b"".join(encode_frame(cid, ECHO, [str(cid).encode()]) for cid in range(1, 1001))
        )
        for cid in range(1, 1001):
            assert await peer.recv() == Frame(cid, 0, [str(cid).encode()], H0)
