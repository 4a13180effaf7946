"""HTTP ⇄ app channel: one :class:`Exchange` per HTTP request.

The request goes to the app as ``enqueue(event)``, one ``write`` of the packed
``[method, uri, version, headers, body]`` and ``close``. The first chunk back is the head
``[code, [[name, value], …]]``; every further chunk is body, streamed to the client as it
arrives (chunked when the app gives no length and the client speaks HTTP/1.1); ``close`` ends
it. An error before the head becomes a status (503 no such app or queue full, 504 timeout,
500 otherwise); an error after it cuts the response short.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import random
from typing import Any, Final

import msgpack

from cocaine.errors import Category, CocaineError, ConnectionLost, ServiceError
from cocaine.idl import APP
from cocaine.protocol.framing import pack_literal_headers
from cocaine.protocol.graph import Message
from cocaine.protocol.headers import TRACE_ID, Header, pack_u64
from cocaine.proxy.apps import AppPool
from cocaine.proxy.http import HttpConnection, reason
from cocaine.proxy.routing import route
from cocaine.rpc.channel import Channel
from cocaine.rpc.connection import Connection
from cocaine.rpc.deadlines import Bucket, Deadlines

log = logging.getLogger(__name__)

_ROOT: Final = APP.root
_random_bits: Final = random.getrandbits  # request ids need uniqueness, not secrecy
_hexlify: Final = binascii.hexlify
_packer: Final = msgpack.Packer(use_bin_type=False, autoreset=True)
_pack: Final = _packer.pack
_SERVICE: Final = b"x-cocaine-service"
_EVENT: Final = b"x-cocaine-event"
_REQUEST_ID: Final = b"x-request-id"


def _unsafe(field: bytes) -> bool:
    """Whether ``field`` holds CR, LF or NUL (one C call: cheaper than three ``find``)."""
    return len(field.translate(None, _CTL)) != len(field)


_CTL: Final = b"\r\n\0"


def status_for(error: CocaineError) -> int:
    pair = error.pair
    if pair == (Category.LOCATOR, 1) or isinstance(error, ConnectionLost):
        return 503
    if pair == (Category.OVERSEER, 1) or pair == (Category.GENERIC, 32):
        return 503
    if pair in ((Category.NODE, 1), (Category.NODE, 3)):
        return 504
    return 500


def parse_head(chunk: Any) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The app's response head ``[code, [[name, value], …]]``; raises if it is not one.

    A name or value holding CR, LF or NUL is refused: written out, it would split the response.
    """
    code, app_headers = msgpack.unpackb(chunk, raw=True) if isinstance(chunk, bytes) else chunk
    code = int(code)
    if not 100 <= code <= 999:
        raise ValueError(f"status code {code} is out of range")
    fields: list[tuple[bytes, bytes]] = []
    text: list[bytes] = []
    for name, value in app_headers:
        if isinstance(name, str):
            name = name.encode("latin-1")
        if not isinstance(value, bytes):
            value = str(value).encode("latin-1")
        if not name:
            raise ValueError("a header has an empty name")
        fields.append((name, value))
        text.append(name)
        text.append(value)
    if text and _unsafe(b"".join(text)):  # one scan for the whole head
        bad = next(name for name, value in fields if _unsafe(name) or _unsafe(value))
        raise ValueError(f"header {bad!r} is not a valid header")
    return code, fields


class Head:
    """An app's response head, ready to write: the status line and the app's fields, minus
    those the proxy sets itself (``Transfer-Encoding``, ``Connection``)."""

    __slots__ = ("code", "has_length", "proto11", "text")

    def __init__(self, chunk: Any) -> None:
        code, fields = parse_head(chunk)
        self.code = code
        self.has_length = False  # the app gave a Content-Length
        self.proto11 = False  # X-Cocaine-HTTP-Proto-Version: an empty chunk ends the body
        lines = [b"HTTP/1.1 %d %s\r\n" % (code, reason(code))]
        for name, value in fields:
            lname = name.lower()
            if lname == b"content-length":
                self.has_length = True
            elif lname == b"transfer-encoding" or lname == b"connection":
                continue
            elif lname == b"x-cocaine-http-proto-version":
                self.proto11 = True
            lines.append(b"%s: %s\r\n" % (name, value))
        self.text = b"".join(lines)


HEAD_CACHE: Final = 256  # distinct response heads the proxy keeps ready to write


class Bridge:
    def __init__(self, apps: AppPool, timeout: float) -> None:
        self.apps = apps
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.deadlines: Deadlines[Exchange] = Deadlines(self.loop)
        # The runtime drops an event still queued when the proxy would answer 504 anyway.
        self.timeout_header: Header = (b"request_timeout", pack_u64(int(timeout * 1000)))
        # An endpoint mostly answers with the same head: parse and check it once.
        self.heads: dict[bytes, Head] = {}
        self._unflushed: list[HttpConnection] = []

    def flush_later(self, conn: HttpConnection) -> None:
        """Write ``conn``'s replies at the end of this loop iteration, with all the others
        written meanwhile: one callback for a batch of replies, not one per client."""
        if not self._unflushed:
            self.loop.call_soon(self._flush)
        self._unflushed.append(conn)

    def _flush(self) -> None:
        conns, self._unflushed = self._unflushed, []
        for conn in conns:
            conn.flush()

    def trace_headers(self, trace_id: int) -> bytes:
        """The headers element of an enqueue, packed: the timeout and the trace id, as
        unindexed literals (which leave the header table alone)."""
        return pack_literal_headers([self.timeout_header, (TRACE_ID, pack_u64(trace_id))])

    def head(self, chunk: Any) -> Head:
        """The response head an app sent; raises (ValueError and others) if it is not one."""
        if type(chunk) is not bytes:
            return Head(chunk)
        head = self.heads.get(chunk)
        if head is None:
            head = Head(chunk)
            if len(self.heads) >= HEAD_CACHE:
                self.heads.clear()
            self.heads[chunk] = head
        return head

    def exchange(
        self,
        conn: HttpConnection,
        method: bytes,
        url: bytes,
        version: str,
        headers: list[list[bytes]],
        body: bytes,
        keep_alive: bool,
    ) -> Exchange:
        return Exchange(self, conn, method, url, version, headers, body, keep_alive)

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class Exchange:
    """One HTTP request and its response, bridged to one app channel."""

    __slots__ = (
        "after",
        "app",
        "bodiless",
        "body",
        "bridge",
        "channel",
        "chunked",
        "conn",
        "done",
        "head_sent",
        "headers",
        "keep_alive",
        "method",
        "pending",
        "proto11",
        "request_id",
        "timer",
        "trace",
        "url",
        "version",
    )

    def __init__(
        self,
        bridge: Bridge,
        conn: HttpConnection,
        method: bytes,
        url: bytes,
        version: str,
        headers: list[list[bytes]],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.bridge = bridge
        self.conn = conn
        self.method = method
        self.url = url
        self.version = version
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.pending: list[bytes] = []
        self.done = False
        self.after = b""
        self.head_sent = False
        self.chunked = False
        self.bodiless = False
        self.proto11 = False
        self.channel: Channel | None = None
        self.timer: Bucket[Exchange] | None = None  # the deadline bucket it waits in
        self.app = ""
        self.request_id = b""
        self.trace = b""  # the enqueue's headers, packed

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        service_header = event_header = None
        for name, value in self.headers:
            if len(name) > 11 and (name[0] == 0x78 or name[0] == 0x58):  # x-…
                lname = name.lower()
                if lname == _SERVICE:
                    service_header = value
                elif lname == _EVENT:
                    event_header = value
                elif lname == _REQUEST_ID:
                    self.request_id = value
        if self.url == b"/ping":
            self.respond(200, b"OK")
            return
        target = route(self.url, service_header, event_header)
        if target is None:
            self.respond(404, b"Invalid url")
            return
        app, event, uri = target
        self.app = app
        if self.request_id:
            try:
                trace_id = int(self.request_id[:16], 16)
            except ValueError:
                trace_id = _random_bits(64)
        else:
            trace_id = _random_bits(64)
            self.request_id = _hexlify(trace_id.to_bytes(8, "big"))  # as b"%016x", cheaper
        self.trace = self.bridge.trace_headers(trace_id)
        if service_header is not None or event_header is not None:
            # set, not add: one of each reaches the app
            self.headers = [h for h in self.headers if h[0].lower() not in (_SERVICE, _EVENT)]
        self.headers.append([b"X-Cocaine-Service", app.encode()])
        self.headers.append([b"X-Cocaine-Event", event.encode()])
        request = _pack([self.method, uri, self.version, self.headers, self.body])
        self.timer = self.bridge.deadlines.add(self, self.bridge.loop.time() + self.bridge.timeout)
        conn = self.bridge.apps.get_nowait(app)
        if conn is not None:
            self._send(conn, event, request)
        else:
            self.bridge.spawn(self._connect_and_send(app, event, request))

    async def _connect_and_send(self, app: str, event: str, request: bytes) -> None:
        try:
            conn = await self.bridge.apps.get(app)
        except CocaineError as exc:
            if exc.pair == (Category.LOCATOR, 1):
                self.respond(503, b"No such application")
            else:
                self.fail(exc)
            return
        if not self.done:
            self._send(conn, event, request)

    def _send(self, conn: Connection, event: str, request: bytes) -> None:
        try:
            self.channel = conn.open_stream(_ROOT, 0, [event], self.trace, self, request)
        except CocaineError as exc:
            self.fail(exc)

    # -- replies from the app -------------------------------------------------------------

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        if self.done:
            return
        alias = message.alias
        if alias == "write":
            chunk = args[0] if args else b""
            if not self.head_sent:
                self._head(chunk)
            elif chunk:
                self._body(chunk)
            elif self.proto11:
                self._end()
        elif alias == "close":
            if not self.head_sent:
                self.respond(500, b"the application closed the stream without a response")
            else:
                self._end()
        else:
            self.fail(ServiceError.from_wire(args))

    def on_abort(self, exc: CocaineError) -> None:
        self.fail(exc)

    def _head(self, chunk: Any) -> None:
        try:
            head = self.bridge.head(chunk)
        except Exception:  # whatever the app sent, it must not break the shared connection
            self.respond(500, b"the application sent a malformed response head")
            return
        # HEAD and 1xx/204/304 responses never carry a body (RFC 9112 §6.3)
        code = head.code
        self.bodiless = self.method == b"HEAD" or code < 200 or code in (204, 304)
        self.proto11 = head.proto11
        lines = [head.text]
        if not (self.bodiless or head.has_length):
            if self.version == "1.1":
                self.chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False
        lines.append(b"X-Powered-By: Cocaine\r\nX-Cocaine-Application: ")
        lines.append(self.app.encode())
        lines.append(b"\r\nX-Request-Id: ")
        lines.append(self.request_id)
        if not self.keep_alive:
            lines.append(b"\r\nConnection: close\r\n\r\n")
        elif self.version == "1.0":
            lines.append(b"\r\nConnection: keep-alive\r\n\r\n")
        else:
            lines.append(b"\r\n\r\n")
        self.head_sent = True
        self.conn.write(self, b"".join(lines))

    def _body(self, chunk: Any) -> None:
        if self.bodiless:
            return
        if not isinstance(chunk, bytes):
            chunk = str(chunk).encode()
        if self.chunked:
            self.conn.write(self, b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            self.conn.write(self, chunk)

    def _end(self) -> None:
        if self.chunked:
            self.conn.write(self, b"0\r\n\r\n")
        self._complete()

    # -- endings --------------------------------------------------------------------------

    def respond(self, code: int, text: bytes) -> None:
        """A complete small response from the proxy itself."""
        if self.done:
            return
        body = text + b"\n" if text else b""
        connection = b"" if self.keep_alive else b"Connection: close\r\n"
        if self.keep_alive and self.version == "1.0":
            connection = b"Connection: keep-alive\r\n"
        extra = b"X-Request-Id: %s\r\n" % self.request_id if self.request_id else b""
        self.conn.write(
            self,
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s%s\r\n%s"
            % (code, reason(code), len(body), connection, extra, body),
        )
        self.head_sent = True
        self._complete()

    def fail(self, error: CocaineError) -> None:
        if self.done:
            return
        if not self.head_sent:
            code = status_for(error)
            text = f"application `{self.app}` error: {error.reason}".encode()
            if code == 503 and error.pair == (Category.LOCATOR, 1):
                text = b"No such application"
            self.respond(code, text)
        else:
            self.keep_alive = False  # the body is cut short; closing tells the client
            self._complete()

    def expire(self) -> None:
        """The proxy's own deadline passed (the runtime normally answers first)."""
        self.timer = None
        self.fail(CocaineError("the request timed out", Category.NODE, 3))

    def _drop_channel(self) -> None:
        channel = self.channel
        if channel is not None:
            self.channel = None
            channel.receiver = None

    def _complete(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.discard(self)
            self.timer = None
        self._drop_channel()  # later frames go nowhere, and no cycle is left for the GC
        if self.after:
            self.conn.write(self, self.after)
        self.conn.finished(self, self.keep_alive)

    def cancel(self) -> None:
        """The HTTP client went away."""
        self.done = True
        if self.timer is not None:
            self.timer.discard(self)
            self.timer = None
        self._drop_channel()


__all__ = ["Bridge", "Exchange", "Head", "parse_head", "status_for"]
