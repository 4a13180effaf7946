"""The HTTP side of the proxy: an asyncio Protocol around httptools' request parser.

Theory of operation. Bytes go to the parser; each complete request becomes an
:class:`~cocaine.proxy.bridge.Exchange` appended to the connection's pipeline. Responses must
leave in request order, so only the pipeline's head writes to the socket; the others buffer
their output until it is their turn. A connection is kept alive unless the client or the
response says otherwise. Oversized headers get 431 and oversized bodies 413; a request the
parser cannot read gets 400; then the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httptools

if TYPE_CHECKING:
    from cocaine.proxy.bridge import Bridge, Exchange

log = logging.getLogger(__name__)

REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    301: b"Moved Permanently",
    302: b"Found",
    304: b"Not Modified",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def reason(code: int) -> bytes:
    return REASONS.get(code, b"Unknown")


class Limits:
    __slots__ = ("max_body", "max_header", "max_output")

    def __init__(
        self,
        max_header: int = 64 * 1024,
        max_body: int = 16 * 1024 * 1024,
        max_output: int = 32 * 1024 * 1024,
    ) -> None:
        self.max_header = max_header
        self.max_body = max_body
        # Reply bytes a client may leave unread before the proxy gives up on it: replies
        # come over a connection shared with other clients, so they cannot wait for one.
        self.max_output = max_output


class HttpConnection:
    """One client connection: parse requests, hand them to the bridge, write replies in order.

    An asyncio protocol by shape, not by inheritance (a native class when compiled).
    """

    def __init__(self, bridge: Bridge, limits: Limits, connections: set[HttpConnection]) -> None:
        self.bridge = bridge
        self.limits = limits
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pipeline: deque[Exchange] = deque()
        self.closing = False
        self._url = b""
        self._headers: list[list[bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_big = False
        self._expect = False
        self._rejected = False
        self._paused = False
        self._out: list[bytes] = []
        self._on_lost: Callable[[], None] | None = None

    # -- the asyncio protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.closing = True
        for exchange in self.pipeline:
            exchange.cancel()
        self.pipeline.clear()
        if self._on_lost is not None:
            self._on_lost()

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.reject(400, b"upgrades are not supported")
        except httptools.HttpParserError:
            if not self._rejected:
                self.reject(400, b"malformed HTTP request")

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._too_big = False  # a Content-Length over the body cap
        self._expect = False  # Expect: 100-continue

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > self.limits.max_header:
            self.reject(431, b"request headers are too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.limits.max_header:
            self.reject(431, b"request headers are too large")
            return
        self._headers.append([name, value])
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            try:
                self._too_big = self._too_big or int(value) > self.limits.max_body
            except ValueError:
                pass
        elif size == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body:
            self.reject(413, b"request body is too large")
            return
        self._body.append(body)

    def on_headers_complete(self) -> None:
        if self._too_big:
            self.reject(413, b"request body is too large")
            return
        if self._expect:
            self._continue()

    def _continue(self) -> None:
        """Answer ``Expect: 100-continue`` so the client sends its body without a stall.

        Only when no earlier response is pending: an interim response must not overtake them.
        Otherwise the client sends the body anyway after its own short wait (RFC 9110 §10.1.1).
        """
        if self.pipeline or self._rejected or self.parser.get_http_version() != "1.1":
            return
        if not self._out:
            self.bridge.flush_later(self)
        self._out.append(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_message_complete(self) -> None:
        if self._rejected:
            return
        parser = self.parser
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        exchange = self.bridge.exchange(
            self,
            parser.get_method(),
            self._url,
            parser.get_http_version(),
            self._headers,
            body,
            parser.should_keep_alive(),
        )
        self.pipeline.append(exchange)
        if len(self.pipeline) > 64 and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        exchange.start()

    # -- output -----------------------------------------------------------------------------

    def write(self, exchange: Exchange, data: bytes) -> None:
        """Write for ``exchange`` now if it heads the pipeline, else buffer it."""
        if self.pipeline and self.pipeline[0] is exchange:
            if not self._out:
                self.bridge.flush_later(self)
            self._out.append(data)
        else:
            exchange.pending.append(data)

    def flush(self) -> None:
        """Write the replies buffered so far (the bridge calls it once per loop iteration)."""
        out, self._out = self._out, []
        transport = self.transport
        if not out:
            return
        if transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            if transport.get_write_buffer_size() > self.limits.max_output:
                log.warning(
                    "closing a client that left %d reply bytes unread",
                    transport.get_write_buffer_size(),
                )
                self.closing = True
                transport.abort()

    def finished(self, exchange: Exchange, keep_alive: bool) -> None:
        """``exchange`` wrote its last byte; let the next ones through."""
        if self.closing:
            return
        if not keep_alive:
            self.pipeline.clear()
            self.close()
            return
        pipeline = self.pipeline
        if pipeline and pipeline[0] is exchange:
            pipeline.popleft()
            while pipeline:
                head = pipeline[0]
                if head.pending:
                    if not self._out:
                        self.bridge.flush_later(self)
                    self._out.extend(head.pending)
                    head.pending.clear()
                if not head.done:
                    break
                pipeline.popleft()
                if not head.keep_alive:
                    self.close()
                    return
        if self._on_lost is not None and not pipeline:  # draining: nothing left in flight
            self.close()
            return
        if self._paused and len(pipeline) <= 16 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def reject(self, code: int, text: bytes) -> None:
        """Answer a request the proxy refuses to read, then close."""
        self._rejected = True
        if self.transport is None or self.closing:
            return
        body = text + b"\n"
        head = (
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (code, reason(code), len(body))
        )
        if self.pipeline:  # let earlier responses finish first
            self.pipeline[-1].after = head + body
            self.pipeline[-1].keep_alive = False
            return
        self._out.append(head + body)
        self.close()

    def close(self) -> None:
        self.closing = True
        if self._out:
            self.flush()
        if self.transport is not None:
            self.transport.close()

    def idle(self) -> bool:
        return not self.pipeline

    def drain(self, on_lost: Callable[[], None]) -> None:
        """Close once the responses in flight are out (graceful stop); then call ``on_lost``."""
        self._on_lost = on_lost
        if not self.pipeline:
            self.close()


def header_block(headers: list[Any]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)


__all__ = ["HttpConnection", "Limits", "header_block", "reason"]
