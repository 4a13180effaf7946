"""HTTP handlers behind ``cocaine-proxy``: the ``@http`` decorator, its request and its response.

The proxy turns an HTTP request into an event on the app: one chunk holding the packed
``[method, uri, version, headers, body]`` (``headers`` a list of ``[name, value]`` pairs), then
``close``. It wants back a head chunk, the packed ``[code, [[name, value], …]]``, then the body
as any number of chunks, then ``close``. ``@http`` does both for a handler of any style::

    @http
    def hello(request, response):
        req = yield request.read()                 # an HTTPRequest (``await`` works too)
        name = req.request.get("name", "world")    # ?name=… or a form field, first value
        response.write_head(200, [("Content-Type", "text/plain")])
        response.write(f"hello, {name}")

Theory of operation. An :class:`HTTPResponse` is in one of three states::

    HEAD ──write_head()──► BODY ──close() / error()──► CLOSED
      ├──write() / close(): an implicit write_head(200, []) first, then as above
      └──error()────────────────────────────────────► CLOSED

A handler that returns without ending its response is closed for it, so a handler that wrote
nothing answers an empty 200. A handler that raises ends the stream with
``error [[42, 100], reason]`` like any other; before the head the proxy answers 500, after it
the body is cut short. ``write_head`` twice, or anything but ``close`` after the end, raises
:class:`~cocaine.errors.DispatchError`.
"""

from __future__ import annotations

import email.policy
import functools
import re
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from enum import Enum
from typing import Any, NamedTuple, overload
from urllib.parse import parse_qs

import msgpack

from cocaine.errors import CocaineError, Dispatch, DispatchError
from cocaine.worker.handlers import call
from cocaine.worker.request import Request
from cocaine.worker.response import Chunk, Response

# -- the request -----------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Request headers by case-insensitive name.

    A header sent several times reads as its values joined by ``", "``; :meth:`get_list` gives
    them one by one and :attr:`raw` keeps every pair in arrival order.
    """

    __slots__ = ("_names", "_values", "raw")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self.raw: list[tuple[str, str]] = list(pairs)
        self._values: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}  # lower-cased name → its first spelling
        for name, value in self.raw:
            key = name.lower()
            self._values.setdefault(key, []).append(value)
            self._names.setdefault(key, name)

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        return ", ".join(self._values[name.lower()])

    def get_list(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"


class UploadedFile(NamedTuple):
    """One file of a ``multipart/form-data`` body."""

    filename: str
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """One HTTP request as the proxy forwarded it, parsed.

    ``query`` holds the query string's arguments, ``form`` and ``files`` those of a
    ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body; ``arguments`` merges
    query and form (query values first) and ``request`` keeps the first value of each.
    ``path`` is the URI's path as sent (not unquoted).
    """

    method: str
    uri: str
    version: str
    headers: Headers
    body: bytes
    path: str
    query_string: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    files: dict[str, list[UploadedFile]]
    arguments: dict[str, list[str]]
    request: dict[str, str]
    cookies: dict[str, str]
    meta: dict[str, Any]


def parse_request(payload: Any) -> HTTPRequest:
    """Parse the proxy's chunk (the packed 5-tuple, or the tuple itself) into an HTTPRequest."""
    try:
        fields = msgpack.unpackb(payload, raw=True) if _is_bytes(payload) else payload
    except Exception as exc:
        raise DispatchError(f"not an HTTP request: the chunk is not msgpack ({exc})") from None
    if not isinstance(fields, (list, tuple)) or len(fields) != 5:
        raise DispatchError(
            "not an HTTP request: expected [method, uri, version, headers, body] from the proxy"
        )
    raw_method, raw_uri, raw_version, raw_headers, raw_body = fields
    headers = Headers(_header_pairs(raw_headers))
    uri = bytes(raw_uri).decode("utf-8", "replace") if _is_bytes(raw_uri) else str(raw_uri)
    body = bytes(raw_body) if _is_bytes(raw_body) else str(raw_body or "").encode("utf-8")
    version = _text(raw_version).removeprefix("HTTP/")
    path, _, query_string = uri.partition("?")
    query_string = query_string.partition("#")[0]
    query = parse_qs(query_string, keep_blank_values=True)
    form, files = _form(headers.get("Content-Type", ""), body)
    arguments = {name: list(values) for name, values in query.items()}
    for name, values in form.items():
        arguments.setdefault(name, []).extend(values)
    cookies = _cookies(headers)
    method = _text(raw_method).upper()
    return HTTPRequest(
        method=method,
        uri=uri,
        version=version,
        headers=headers,
        body=body,
        path=path,
        query_string=query_string,
        query=query,
        form=form,
        files=files,
        arguments=arguments,
        request={name: values[0] for name, values in arguments.items() if values},
        cookies=cookies,
        meta={
            "method": method,
            "version": version,
            "host": headers.get("Host", ""),
            "remote_addr": _remote_addr(headers),
            "query_string": query_string,
            "cookies": cookies,
        },
    )


def _is_bytes(value: object) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


def _text(value: Any) -> str:
    """A header-ish field: raw bytes are Latin-1, as HTTP/1.1 header octets are."""
    return bytes(value).decode("latin-1") if _is_bytes(value) else str(value)


def _header_pairs(raw: Any) -> Iterator[tuple[str, str]]:
    items = raw.items() if isinstance(raw, Mapping) else raw or ()
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise DispatchError(
                f"not an HTTP request: a header is not a [name, value] pair: {item!r}"
            )
        yield _text(item[0]), _text(item[1])


def _form(
    content_type: str, body: bytes
) -> tuple[dict[str, list[str]], dict[str, list[UploadedFile]]]:
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True), {}
    if kind == "multipart/form-data" and body:
        return _multipart(content_type, body)
    return {}, {}


def _multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, list[str]], dict[str, list[UploadedFile]]]:
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(EmailMessage, policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, list[str]] = {}
    files: dict[str, list[UploadedFile]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            charset = part.get_content_charset() or "utf-8"
            fields.setdefault(name, []).append(data.decode(charset, "replace"))
        else:
            upload = UploadedFile(filename, part.get_content_type(), data)
            files.setdefault(name, []).append(upload)
    return fields, files


def _cookies(headers: Headers) -> dict[str, str]:
    """``Cookie: a=1; b="2"`` → ``{"a": "1", "b": "2"}``; the first of a repeated name wins."""
    jar: dict[str, str] = {}
    for line in headers.get_list("Cookie"):
        for item in line.split(";"):
            name, sep, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            jar.setdefault(name, value)
    return jar


def _remote_addr(headers: Headers) -> str:
    real = headers.get("X-Real-IP", "").strip()
    if real:
        return real
    return headers.get("X-Forwarded-For", "").partition(",")[0].strip()


class HTTPRequestReader:
    """What an ``@http`` handler gets as ``request``: ``read()`` gives the :class:`HTTPRequest`.

    The proxy sends the request as one chunk; the first ``read()`` takes and parses it, later
    ones return the same object. A chunk that is not the proxy's 5-tuple raises
    :class:`~cocaine.errors.DispatchError`.
    """

    __slots__ = ("_parsed", "_request")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._parsed: HTTPRequest | None = None

    @property
    def event(self) -> str:
        return self._request.event

    def header(self, name: str | bytes) -> bytes | None:
        """The value of an invoke header (trace ids, ``request_timeout``), not an HTTP header."""
        return self._request.header(name)

    async def read(self, timeout: float | None = None) -> HTTPRequest:
        if self._parsed is None:
            self._parsed = parse_request(await self._request.read(timeout))
        return self._parsed

    def __repr__(self) -> str:
        return f"<HTTPRequestReader {self.event!r}>"


# -- the response ----------------------------------------------------------------------------

HeaderField = str | bytes | int
HeadersArg = Mapping[Any, HeaderField] | Iterable[tuple[HeaderField, HeaderField] | list[Any]]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def pack_head(code: object, headers: HeadersArg = ()) -> bytes:
    """The head chunk the proxy expects: ``packb([code, [[name, value], …]])``, old-spec raw.

    Names and values may be ``str`` or ``bytes`` (sent as given) or ``int`` (sent as text).
    A name that is not an HTTP token or a value holding CR, LF or NUL raises ValueError: the
    proxy copies them into the response head as they are.
    """
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999:
        raise ValueError(f"an HTTP status code is an integer from 100 to 999, not {code!r}")
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs: list[list[str | bytes]] = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise TypeError(f"a response header is a (name, value) pair, not {item!r}")
        name, value = _field(item[0]), _field(item[1])
        if not _TOKEN.fullmatch(_as_text(name)):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if _BAD_VALUE.search(_as_text(value)):
            raise ValueError(f"the value of header {name!r} contains CR, LF or NUL")
        pairs.append([name, value])
    head: bytes = msgpack.packb([code, pairs], use_bin_type=False)
    return head


def _field(value: object) -> str | bytes:
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"a header name or value must be str, bytes or int, not {type(value).__name__}")


def _as_text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class ResponseState(Enum):
    HEAD = "head"  # nothing sent yet
    BODY = "body"  # the head is out; body chunks may follow
    CLOSED = "closed"


_MOVES: dict[ResponseState, frozenset[ResponseState]] = {
    ResponseState.HEAD: frozenset({ResponseState.BODY, ResponseState.CLOSED}),
    ResponseState.BODY: frozenset({ResponseState.CLOSED}),
    ResponseState.CLOSED: frozenset(),
}


class HTTPResponse:
    """What an ``@http`` handler gets as ``response``: a head, body chunks, then the end."""

    __slots__ = ("_response", "state")

    def __init__(self, response: Response) -> None:
        self._response = response
        self.state = ResponseState.HEAD

    @property
    def event(self) -> str:
        return self._response.event

    def write_head(self, code: int, headers: HeadersArg = ()) -> None:
        """Send the status and headers (a list of pairs or a mapping); once, before any body."""
        if self.state is not ResponseState.HEAD:
            closed = self.state is ResponseState.CLOSED
            raise DispatchError(
                f"write_head() on the response to event '{self.event}' after "
                + ("it was closed" if closed else "its head was sent"),
                code=Dispatch.REVOKED_CHANNEL if closed else Dispatch.INVALID_ARGUMENT,
            )
        self._response.write(pack_head(code, headers))
        self._move(ResponseState.BODY)

    def write(self, body: Chunk) -> None:
        """Send a body chunk (``str`` as UTF-8); without a head yet, ``write_head(200)`` first."""
        if self.state is ResponseState.HEAD:
            self.write_head(200)
        self._response.write(body)

    async def drain(self) -> None:
        """Wait until the connection's write buffer is below its high-water mark."""
        await self._response.drain()

    @overload
    def error(self, error: CocaineError, /) -> None: ...

    @overload
    def error(self, code: int, reason: str, /) -> None: ...

    @overload
    def error(self, category: int, code: int, reason: str, /) -> None: ...

    def error(self, *args: Any) -> None:
        """End with an error, as :meth:`Response.error <cocaine.worker.Response.error>` does.

        Before the head the proxy answers 500; after it the body is cut short.
        """
        self._response.error(*args)
        self._move(ResponseState.CLOSED)

    def close(self) -> None:
        """End the response, with ``write_head(200)`` first if no head was sent. Idempotent."""
        if self.state is ResponseState.CLOSED:
            return
        if self.state is ResponseState.HEAD and not self._response.closed:
            self.write_head(200)
        self._move(ResponseState.CLOSED)
        self._response.close()

    @property
    def closed(self) -> bool:
        return self.state is ResponseState.CLOSED or self._response.closed

    def _move(self, new: ResponseState) -> None:
        if new not in _MOVES[self.state]:
            raise RuntimeError(f"an HTTP response cannot go from {self.state.value} to {new.value}")
        self.state = new

    def __repr__(self) -> str:
        return f"<HTTPResponse {self.event!r} {self.state.value}>"


# -- the decorator ---------------------------------------------------------------------------

HTTPHandler = Callable[[HTTPRequestReader, HTTPResponse], Any]


def http(handler: HTTPHandler) -> Callable[[Request, Response], Coroutine[Any, Any, None]]:
    """Make ``handler`` an HTTP handler: it reads an HTTPRequest and answers an HTTPResponse.

    ``handler`` may be an ``async def``, a generator in the original framework's style or a
    plain function (see :mod:`cocaine.worker.handlers`).
    """

    @functools.wraps(handler)
    async def serve(request: Request, response: Response) -> None:
        reply = HTTPResponse(response)
        reader = HTTPRequestReader(request)
        # ``call`` drives whatever style the handler is written in; it hands over our wrappers.
        await call(lambda _request, _response: handler(reader, reply), request, response)
        reply.close()

    return serve


__all__ = [
    "HTTPHandler",
    "HTTPRequest",
    "HTTPRequestReader",
    "HTTPResponse",
    "Headers",
    "HeadersArg",
    "ResponseState",
    "UploadedFile",
    "http",
    "pack_head",
    "parse_request",
]
