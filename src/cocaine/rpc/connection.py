"""A connection: one socket carrying frames, multiplexing channels both ways.

Theory of operation. Bytes from the socket go through the frame decoder; each frame is routed
by channel id. A frame on a new id opens a channel from the ``accept`` root protocol and is given
to the :class:`Dispatch` (server side), which returns the channel's receiver. A frame on a known
id goes to that channel's receiver. New ids from the peer must increase; a frame that breaks the
protocol (bad bytes, a reused id, an illegal message on an open channel) closes the connection
with a transport or dispatch error, and every channel on it is aborted with that error.

Writes are coalesced: frames produced while a batch of input is handled (or within one loop
iteration) go out in one ``write``. Flow control both ways: ``pause_reading`` when a receiver's
buffer is full, ``drain()`` waits while the transport's write buffer is above its high mark.

    OPEN ──close()/peer EOF/protocol error──► CLOSED      (no way back)
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

from cocaine.errors import (
    CocaineError,
    ConnectionLost,
    DispatchError,
    ProtocolError,
    TransportError,
)
from cocaine.errors import Dispatch as DispatchCode
from cocaine.protocol.channel import ChannelState
from cocaine.protocol.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    encode_frame_on,
    encode_stream,
    pack,
    pack_literal_headers,
    pack_uint,
)
from cocaine.protocol.graph import CONTROL_IDS, Message
from cocaine.protocol.graph import Protocol as Graph
from cocaine.protocol.headers import (
    DEFAULT_TRACE_ENTRIES,
    PARENT_ID,
    SPAN_ID,
    TRACE_ID,
    Header,
    HeaderDecoder,
)
from cocaine.rpc.channel import Channel, Receiver

log = logging.getLogger(__name__)

_PACKED_DEFAULT_TRACE: Final = pack(DEFAULT_TRACE_ENTRIES)
_PACKED_NO_HEADERS: Final = pack([])
FLUSH_FRAMES: Final = 32  # frames buffered before a write goes out mid-batch (bench/: 32 is best)
_CONTROL: Final = frozenset(CONTROL_IDS.values())


class Dispatch(Protocol):
    """The server side of a connection: what the peer may open, and who handles it."""

    root: Graph

    def open(
        self, channel: Channel, message: Message, args: list[Any], headers: list[Header]
    ) -> Receiver | None:
        """Handle the first message of a channel; return the receiver for what follows."""


class Connection:
    """One socket's frames and channels. Create through :func:`connect` or a server factory.

    It is an asyncio protocol by shape (``connection_made``, ``data_received``, …) and not by
    inheritance, so that compiled it is a native class with fixed attribute slots.
    """

    def __init__(
        self,
        dispatch: Dispatch | None = None,
        *,
        trace_headers: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        on_close: Callable[[Connection, CocaineError | None], None] | None = None,
        name: str = "",
    ) -> None:
        self.dispatch = dispatch
        self.name = name
        self.loop = asyncio.get_running_loop()
        self.channels: dict[int, Channel] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.error: CocaineError | None = None
        self.peer: Any = None
        self._decoder = FrameDecoder(max_frame_size)
        self._hdecoder = HeaderDecoder()
        self._trace_headers = trace_headers
        self._transport: asyncio.Transport | None = None
        self._max_id = 0
        self._wbuf: list[bytes] = []
        self._batching = False
        self._flush_scheduled = False
        self._read_paused = 0
        self._write_ready: asyncio.Future[None] | None = None
        self._on_close = on_close
        self.connected = self.loop.create_future()
        self.lost = self.loop.create_future()

    # -- the asyncio protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._batching = True
        try:
            for frame in self._decoder.feed_raw(data):
                cid, mtype, args, headers = frame
                hdrs = self._hdecoder.decode(headers) if headers else []
                channel = self.channels.get(cid)
                if channel is None:
                    self._open_remote(cid, mtype, args, hdrs)
                else:
                    self._deliver(channel, mtype, args, hdrs)
                if self.closed:
                    return
        except ProtocolError as exc:
            log.info("%s: closing connection from %s: %s", self.name, self.peer, exc)
            self.close(exc)
        except Exception as exc:
            log.exception("%s: internal error; closing connection from %s", self.name, self.peer)
            self.close(CocaineError(f"internal error: {exc!r}", 7, DispatchCode.UNCAUGHT_ERROR))
        finally:
            self._batching = False
            if self._wbuf and not self._flush_scheduled:
                self._flush()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        error = self.error or ConnectionLost(
            f"connection lost: {exc}" if exc else "connection closed by peer"
        )
        self._shutdown(error)

    def pause_writing(self) -> None:
        if self._write_ready is None or self._write_ready.done():
            self._write_ready = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)

    # -- channels ---------------------------------------------------------------------------

    def _open_remote(self, cid: int, mtype: int, args: list[Any], headers: list[Header]) -> None:
        if cid <= self._max_id:
            raise DispatchError(f"channel {cid} is revoked", code=DispatchCode.REVOKED_CHANNEL)
        self._max_id = cid
        dispatch = self.dispatch
        if dispatch is None:
            raise DispatchError(
                "this connection accepts no channels", code=DispatchCode.UNBOUND_DISPATCH
            )
        root = dispatch.root
        if mtype in _CONTROL:
            self._control(cid, mtype, args)
            return
        try:
            state, message = ChannelState.opened_by_peer(root, mtype)
        except DispatchError as exc:
            self._reply_error(cid, exc)
            return
        try:
            args = message.args.convert(args)
        except TypeError as exc:
            self._reply_error(
                cid, DispatchError(f"{message.alias}: {exc}", code=DispatchCode.INVALID_ARGUMENT)
            )
            return
        channel = Channel(self, cid, state)
        if not state.closed:
            self.channels[cid] = channel
        channel.receiver = dispatch.open(channel, message, args, headers)

    def _deliver(
        self, channel: Channel, mtype: int, args: list[Any], headers: list[Header]
    ) -> None:
        state = channel.state
        message = state.on_receive(mtype)
        if state.recv is None and state.send is None:
            self.channels.pop(channel.id, None)
        receiver = channel.receiver
        if receiver is not None:
            receiver.on_message(message, args, headers)

    def _control(self, cid: int, mtype: int, args: list[Any]) -> None:
        if mtype == CONTROL_IDS["revoke"] and args and isinstance(args[0], int):
            channel = self.channels.get(args[0])
            if channel is not None:
                channel.abort(
                    CocaineError("channel revoked by peer", 7, DispatchCode.REVOKED_CHANNEL)
                )
        self.send_frame(cid, 0, [])

    def _reply_error(self, cid: int, exc: CocaineError) -> None:
        self.send_frame(cid, 1, exc.to_wire())

    def open(
        self,
        root: Graph,
        mtype: int,
        args: list[Any],
        headers: list[Header] | None = None,
        receiver: Receiver | None = None,
    ) -> Channel:
        """Open a new channel with its first message from ``root``."""
        if self.closed:
            raise self.error or ConnectionLost("connection is closed")
        state, _ = ChannelState.opened_by_us(root, mtype)
        self._max_id += 1
        channel = Channel(self, self._max_id, state)
        channel.receiver = receiver
        if not state.closed:
            self.channels[channel.id] = channel
        self.send_on(channel, mtype, args, headers)
        return channel

    def open_stream(
        self,
        root: Graph,
        mtype: int,
        args: list[Any],
        headers: list[Header] | bytes | None,
        receiver: Receiver | None,
        chunk: bytes,
    ) -> Channel:
        """Open a channel, ``write`` one chunk on it and ``close`` our side, in one step.

        The same frames as :meth:`open` and then ``send`` of write and close, built at once:
        the proxy's hot path (enqueue, the request, close). ``headers`` may come packed
        already (``bytes``), as unindexed literals that leave the header tables alone. Raises
        ``DispatchError`` when the first message is not followed by a stream.
        """
        if self.closed:
            raise self.error or ConnectionLost("connection is closed")
        state, _ = ChannelState.opened_by_us(root, mtype)
        stream = state.send
        if stream is None or "write" not in stream.by_alias or "close" not in stream.by_alias:
            raise DispatchError(
                f"message {mtype} opens no stream", code=DispatchCode.SLOT_NOT_FOUND
            )
        write = stream.by_alias["write"]
        close = stream.by_alias["close"]
        state.on_send(write)
        state.on_send(close)
        self._max_id += 1
        channel = Channel(self, self._max_id, state)
        channel.receiver = receiver
        if not state.closed:
            self.channels[channel.id] = channel
        first = headers if isinstance(headers, bytes) else self._packed_headers(headers)
        rest = self._packed_headers(None)
        self.write_raw(encode_stream(channel.id, (mtype, args, first), write, chunk, close, rest))
        return channel

    def forget(self, channel: Channel) -> None:
        if self.channels.get(channel.id) is channel and channel.state.closed:
            del self.channels[channel.id]

    # -- writing ----------------------------------------------------------------------------

    def send_frame(
        self, cid: int, mtype: int, args: list[Any], headers: list[Header] | None = None
    ) -> None:
        self._send(pack_uint(cid), mtype, args, headers)

    def send_on(
        self, channel: Channel, mtype: int, args: list[Any], headers: list[Header] | None
    ) -> None:
        """:meth:`send_frame` on ``channel``, whose id is packed already."""
        self._send(channel.packed_id, mtype, args, headers)

    def _send(
        self, packed_channel: bytes, mtype: int, args: list[Any], headers: list[Header] | None
    ) -> None:
        if self.closed:
            raise self.error or ConnectionLost("connection is closed")
        packed = self._packed_headers(headers)
        self.write_raw(encode_frame_on(packed_channel, mtype, args, packed))

    def _packed_headers(self, headers: list[Header] | None) -> bytes:
        """The headers element of a frame to send, packed: the runtime's form (trace headers
        first) or the client's, as this connection was made."""
        if self._trace_headers:
            return self._trace_entries(headers) if headers else _PACKED_DEFAULT_TRACE
        return pack_literal_headers(headers) if headers else _PACKED_NO_HEADERS

    def _trace_entries(self, headers: list[Header]) -> bytes:
        """``headers`` packed as the runtime sends them: the three trace headers first, with
        the trace that ``headers`` carry (so a request's trace reaches the worker) or zeros,
        then the others, all as unindexed literals."""
        trace_id = span_id = parent_id = _NO_ID
        others: list[Header] = []
        for header in headers:
            name = header[0]
            if name == TRACE_ID:
                trace_id = header[1]
            elif name == SPAN_ID:
                span_id = header[1]
            elif name == PARENT_ID:
                parent_id = header[1]
            else:
                others.append(header)
        return pack_literal_headers(
            [(TRACE_ID, trace_id), (SPAN_ID, span_id), (PARENT_ID, parent_id), *others]
        )

    def write_raw(self, data: bytes) -> None:
        buf = self._wbuf
        buf.append(data)
        if len(buf) >= FLUSH_FRAMES:
            # Don't hold a whole batch back: the peer starts on the first frames while we
            # produce the rest, so the processes of a request path work in parallel.
            self._flush()
        elif not self._batching and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def flush_now(self) -> None:
        """Write what is buffered without waiting for the end of the batch."""
        if self._wbuf:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        buf, self._wbuf = self._wbuf, []
        transport = self._transport
        if not buf or transport is None or transport.is_closing():
            return
        transport.write(buf[0] if len(buf) == 1 else b"".join(buf))

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self.closed:
            raise self.error or ConnectionLost("connection is closed")
        waiter = self._write_ready
        if waiter is not None and not waiter.done():
            await asyncio.shield(waiter)

    @property
    def write_ready(self) -> asyncio.Future[None] | None:
        """Pending while the transport's write buffer is above its high-water mark."""
        return self._write_ready

    @property
    def reading(self) -> bool:
        """Whether the socket is being read (false while a receiver holds it paused)."""
        transport = self._transport
        return transport is not None and transport.is_reading()

    def pause_reading(self) -> None:
        self._read_paused += 1
        if self._read_paused == 1 and self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._read_paused = max(0, self._read_paused - 1)
        if self._read_paused == 0 and self._transport is not None and not self.closed:
            self._transport.resume_reading()

    # -- tasks and lifetime -----------------------------------------------------------------

    def spawn(self, coro: Any, *, also: set[asyncio.Task[Any]] | None = None) -> asyncio.Task[Any]:
        """Run a coroutine owned by this connection: it is cancelled when the connection closes.

        ``also`` is another set that holds the task while it runs (one done-callback for both).
        """
        task: asyncio.Task[Any] = self.loop.create_task(coro)
        tasks = self.tasks
        tasks.add(task)
        if also is None:
            task.add_done_callback(tasks.discard)
        else:
            group = also
            group.add(task)

            def forget(done: asyncio.Task[Any]) -> None:
                tasks.discard(done)
                group.discard(done)

            task.add_done_callback(forget)
        return task

    def close(self, error: CocaineError | None = None) -> None:
        if self.closed:
            return
        if error is not None and self.error is None:
            self.error = error
        transport = self._transport
        if transport is not None:
            if self._wbuf:
                self._flush()
            transport.close()
        self._shutdown(self.error or ConnectionLost("connection closed"))

    def _shutdown(self, error: CocaineError) -> None:
        if not self.closed:
            self.closed = True
            self.error = self.error or error
        channels, self.channels = self.channels, {}
        for channel in channels.values():
            channel.state.send = channel.state.recv = None
            receiver, channel.receiver = channel.receiver, None
            if receiver is not None:
                try:
                    receiver.on_abort(error)
                except Exception:
                    log.exception("receiver failed on abort")
        for task in list(self.tasks):
            task.cancel()
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.connected.done():
            self.connected.set_exception(error)
            self.connected.exception()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self, self.error)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.lost)

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self.peer} channels={len(self.channels)}>"


_NO_ID: Final = bytes(8)  # a trace, span or parent id outside any trace


def protocol_factory(make: Callable[[], object]) -> Callable[[], asyncio.Protocol]:
    """``make`` typed as asyncio wants it: our protocols have the shape, not the base class."""
    return cast("Callable[[], asyncio.Protocol]", make)


async def connect_tcp(
    host: str, port: int, dispatch: Dispatch | None = None, **kwargs: Any
) -> Connection:
    loop = asyncio.get_running_loop()
    make = protocol_factory(lambda: Connection(dispatch, **kwargs))
    try:
        _, conn = await loop.create_connection(make, host, port)
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    return cast(Connection, conn)


RUNTIME_DIR_ENV: Final = "COCAINE_RUNTIME_DIR"
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})


async def connect_endpoint(
    host: str,
    port: int,
    dispatch: Dispatch | None = None,
    *,
    runtime_dir: str | None = None,
    **kwargs: Any,
) -> Connection:
    """Connect to a service's endpoint; on this machine through its unix socket if it has one.

    The runtime serves each service on ``<runtime dir>/<port>.sock`` as well as on TCP. A
    client that knows the dir (``runtime_dir``) and was given a loopback endpoint uses the
    socket: the same listener, with less kernel work per message than loopback TCP. A stale
    or unreachable socket falls back to TCP.
    """
    if runtime_dir and host in _LOOPBACK:
        path = os.path.join(runtime_dir, f"{port}.sock")
        if os.path.exists(path):
            try:
                return await connect_unix(path, dispatch, **kwargs)
            except ConnectionLost:
                pass
    return await connect_tcp(host, port, dispatch, **kwargs)


async def connect_unix(path: str, dispatch: Dispatch | None = None, **kwargs: Any) -> Connection:
    loop = asyncio.get_running_loop()
    make = protocol_factory(lambda: Connection(dispatch, **kwargs))
    try:
        _, conn = await loop.create_unix_connection(make, path)
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {path}: {exc.strerror or exc}") from exc
    return cast(Connection, conn)


__all__ = [
    "RUNTIME_DIR_ENV",
    "Connection",
    "Dispatch",
    "TransportError",
    "connect_endpoint",
    "connect_tcp",
    "connect_unix",
    "protocol_factory",
]
