"""The ``@http`` decorator: parsing the proxy's 5-tuple, and the head and chunks a handler sends.

Parsing and head packing are pure functions, tested on bytes. The decorator is tested through a
worker serving against the fake runtime (see conftest): the test sends the packed request the
way the proxy does and compares the reply frame by frame.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from fake_runtime import Served

import cocaine.decorators
import cocaine.worker
from cocaine.errors import DispatchError
from cocaine.worker.http import (
    Headers,
    HTTPRequest,
    HTTPRequestReader,
    HTTPResponse,
    ResponseState,
    UploadedFile,
    http,
    pack_head,
    parse_request,
)

Reply = list[tuple[str, list[Any]]]


def packed_request(
    method: str = "GET",
    uri: str = "/",
    version: str = "1.1",
    headers: list[list[str]] | None = None,
    body: bytes = b"",
) -> bytes:
    """The chunk the proxy sends: strings as old-spec raw, as the runtime relays them."""
    request = [method, uri, version, headers or [], body]
    packed: bytes = msgpack.packb(request, use_bin_type=False)
    return packed


def head(code: int, headers: list[list[str]]) -> bytes:
    packed: bytes = msgpack.packb([code, headers], use_bin_type=False)
    return packed


async def ask(served: Served, event: str, *chunks: bytes) -> Reply:
    call = await served.runtime.invoke(event, *chunks)
    return await call.reply()


# -- parsing -------------------------------------------------------------------------------------


def test_the_article_request_parses_into_first_values() -> None:
    req = parse_request(
        packed_request(
            uri="/?message=Hello%20World!&size=10&size=12&empty=",
            headers=[["Host", "localhost:8080"], ["Accept", "*/*"]],
        )
    )
    assert isinstance(req, HTTPRequest)
    assert (req.method, req.uri, req.version) == (
        "GET",
        "/?message=Hello%20World!&size=10&size=12&empty=",
        "1.1",
    )
    assert req.path == "/"
    assert req.query_string == "message=Hello%20World!&size=10&size=12&empty="
    assert req.query == {"message": ["Hello World!"], "size": ["10", "12"], "empty": [""]}
    assert req.request == {"message": "Hello World!", "size": "10", "empty": ""}
    assert req.request["message"] == "Hello World!"
    assert req.body == b""
    assert req.form == {} and req.files == {} and req.cookies == {}


def test_query_and_urlencoded_form_merge_with_query_values_first() -> None:
    req = parse_request(
        packed_request(
            method="post",
            uri="/upload/x?size=3&q=a",
            headers=[["content-type", "application/x-www-form-urlencoded; charset=utf-8"]],
            body=b"message=caf%C3%A9+au+lait&size=15&extra=1",
        )
    )
    assert req.method == "POST"
    assert req.path == "/upload/x"
    assert req.form == {"message": ["café au lait"], "size": ["15"], "extra": ["1"]}
    assert req.arguments == {
        "size": ["3", "15"],
        "q": ["a"],
        "message": ["café au lait"],
        "extra": ["1"],
    }
    assert req.request == {"size": "3", "q": "a", "message": "café au lait", "extra": "1"}
    assert req.body == b"message=caf%C3%A9+au+lait&size=15&extra=1"


def test_a_body_of_another_type_is_left_alone() -> None:
    req = parse_request(
        packed_request(
            method="POST", headers=[["Content-Type", "application/json"]], body=b'{"a": 1}'
        )
    )
    assert req.form == {} and req.request == {}
    assert req.body == b'{"a": 1}'


def test_multipart_fields_and_files() -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="message"\r\n\r\n'
        b"from a form\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="logo"; filename="logo.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        b"\x00\xff\r\n\x80 binary\r\n"
        b"--XyZ--\r\n"
    )
    req = parse_request(
        packed_request(
            method="POST",
            headers=[["Content-Type", "multipart/form-data; boundary=XyZ"]],
            body=body,
        )
    )
    assert req.form == {"message": ["from a form"]}
    assert req.request == {"message": "from a form"}
    assert req.files == {
        "logo": [UploadedFile("logo.bin", "application/octet-stream", b"\x00\xff\r\n\x80 binary")]
    }


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    req = parse_request(
        packed_request(
            headers=[
                ["Content-Type", "text/plain"],
                ["X-Tag", "a"],
                ["x-tag", "b"],
                ["X-Cocaine-Service", "qr"],
            ]
        )
    )
    headers = req.headers
    assert isinstance(headers, Headers)
    assert headers["content-type"] == headers["CONTENT-TYPE"] == "text/plain"
    assert "x-cocaine-service" in headers and "missing" not in headers and 1 not in headers
    assert headers["X-TAG"] == "a, b"
    assert headers.get_list("x-tag") == ["a", "b"]
    assert headers.get("nope", "default") == "default"
    assert list(headers) == ["Content-Type", "X-Tag", "X-Cocaine-Service"]
    assert len(headers) == 3
    assert headers.raw[1:3] == [("X-Tag", "a"), ("x-tag", "b")]
    with pytest.raises(KeyError):
        headers["nope"]


def test_cookies_and_meta() -> None:
    req = parse_request(
        packed_request(
            uri="/?a=1",
            version="HTTP/1.0",
            headers=[
                ["Host", "example.org"],
                ["Cookie", 'session=abc; theme="dark"; flag'],
                ["Cookie", "session=second; lang=ru"],
                ["X-Forwarded-For", "10.0.0.1, 10.0.0.2"],
            ],
        )
    )
    assert req.version == "1.0"  # the old tornado proxy sent "HTTP/1.0"
    assert req.cookies == {"session": "abc", "theme": "dark", "lang": "ru"}
    assert req.meta == {
        "method": "GET",
        "version": "1.0",
        "host": "example.org",
        "remote_addr": "10.0.0.1",
        "query_string": "a=1",
        "cookies": req.cookies,
    }
    real = parse_request(
        packed_request(headers=[["X-Forwarded-For", "10.0.0.1"], ["X-Real-IP", "192.0.2.7"]])
    )
    assert real.meta["remote_addr"] == "192.0.2.7"
    assert parse_request(packed_request()).meta["remote_addr"] == ""


def test_bin_typed_fields_and_an_unpacked_tuple_are_accepted() -> None:
    modern = msgpack.packb(
        ["PUT", "/?k=v", "1.1", [["Content-Length", "3"]], b"\x00\x01\x02"], use_bin_type=True
    )
    req = parse_request(modern)
    assert (req.method, req.request, req.body) == ("PUT", {"k": "v"}, b"\x00\x01\x02")
    assert req.headers["content-length"] == "3"
    assert parse_request(["GET", "/?x=1", "1.1", [], b""]).request == {"x": "1"}


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1 is no msgpack",
        msgpack.packb([b"GET", b"/", b"1.1", []]),
        msgpack.packb(b"hello"),
        msgpack.packb([b"GET", b"/", b"1.1", [[b"Host"]], b""]),
    ],
)
def test_a_chunk_that_is_no_http_request_is_a_dispatch_error(payload: bytes) -> None:
    with pytest.raises(DispatchError, match="not an HTTP request"):
        parse_request(payload)


# -- the head ------------------------------------------------------------------------------------


def test_pack_head_is_exactly_the_proxy_format() -> None:
    assert pack_head(200, [("Content-type", "image/png")]) == head(
        200, [["Content-type", "image/png"]]
    )
    assert pack_head(404) == head(404, [])
    mixed = pack_head(201, {"Location": b"/x", b"X-Count": 3})
    assert msgpack.unpackb(mixed, raw=True) == [201, [[b"Location", b"/x"], [b"X-Count", b"3"]]]
    # old-spec raw: a str header goes out as fixstr, never as bin
    assert b"\xc4" not in pack_head(200, [(b"A", b"b")])


@pytest.mark.parametrize(
    ("code", "headers", "error"),
    [
        (99, [], ValueError),
        (True, [], ValueError),
        ("200", [], ValueError),
        (200, [("Bad Name", "x")], ValueError),
        (200, [("X-Split", "a\r\nSet-Cookie: evil=1")], ValueError),
        (200, [("X-Null", b"a\x00")], ValueError),
        (200, [("X-Float", 1.5)], TypeError),
        (200, [("only-a-name",)], TypeError),
    ],
)
def test_pack_head_refuses_what_would_break_the_response(
    code: Any, headers: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        pack_head(code, headers)


# -- handlers through a worker -------------------------------------------------------------------


async def test_article_style_generator_handler(serve_worker: Any) -> None:
    @http
    def generate(request: HTTPRequestReader, response: HTTPResponse):
        req = yield request.read()
        again = yield request.read()
        assert again is req
        try:
            message = req.request["message"]
            response.write_head(200, [("Content-type", "text/plain")])
            response.write(f"{message} x{int(req.request.get('size', 10))}")
        except KeyError:
            response.write_head(400, [("Content-type", "text/plain")])
            response.write('Query field "message" is required')
        finally:
            response.close()

    async with serve_worker({"generate-http": generate}) as served:
        reply = await ask(served, "generate-http", packed_request(uri="/?message=Hi%21&size=3"))
        assert reply == [
            ("write", [head(200, [["Content-type", "text/plain"]])]),
            ("write", [b"Hi! x3"]),
            ("close", []),
        ]
        reply = await ask(served, "generate-http", packed_request(uri="/?size=3"))
        assert reply == [
            ("write", [head(400, [["Content-type", "text/plain"]])]),
            ("write", [b'Query field "message" is required']),
            ("close", []),
        ]


async def test_async_handler_gets_an_implicit_head_and_is_closed_for_it(serve_worker: Any) -> None:
    states: list[ResponseState] = []

    @http
    async def hello(request: HTTPRequestReader, response: HTTPResponse) -> None:
        req = await request.read()
        states.append(response.state)
        response.write(f"{req.method} {req.path} {req.body.decode()}")
        states.append(response.state)
        response.write(b"!")

    @http
    async def silent(request: HTTPRequestReader, response: HTTPResponse) -> None:
        await request.read()

    async with serve_worker({"hello": hello, "silent": silent}) as served:
        reply = await ask(served, "hello", packed_request("POST", "/p?x", body=b"data"))
        assert reply == [
            ("write", [head(200, [])]),
            ("write", [b"POST /p data"]),
            ("write", [b"!"]),
            ("close", []),
        ]
        assert states == [ResponseState.HEAD, ResponseState.BODY]
        assert await ask(served, "silent", packed_request()) == [
            ("write", [head(200, [])]),
            ("close", []),
        ]


async def test_exceptions_and_errors_before_the_head(serve_worker: Any) -> None:
    @http
    def fails(request: HTTPRequestReader, response: HTTPResponse):
        yield request.read()
        raise RuntimeError("no head for you")

    @http
    def refuses(request: HTTPRequestReader, response: HTTPResponse) -> None:
        response.error(1, "the article's error")
        response.close()

    @http
    async def late(request: HTTPRequestReader, response: HTTPResponse) -> None:
        response.write_head(200, {"Content-Type": "text/plain"})
        response.write("partial")
        raise ValueError("cut short")

    handlers = {"fails": fails, "refuses": refuses, "late": late}
    async with serve_worker(handlers) as served:
        assert await ask(served, "fails", packed_request()) == [
            ("error", [[42, 100], b"no head for you"])
        ]
        assert await ask(served, "refuses", packed_request()) == [
            ("error", [[43, 1], b"the article's error"])
        ]
        assert await ask(served, "late", packed_request()) == [
            ("write", [head(200, [["Content-Type", "text/plain"]])]),
            ("write", [b"partial"]),
            ("error", [[42, 100], b"cut short"]),
        ]
        reply = await ask(served, "fails", b"plain bytes, not from the proxy")
        assert len(reply) == 1 and reply[0][0] == "error"
        assert reply[0][1][0] == [42, 100] and b"not an HTTP request" in reply[0][1][1]


async def test_misuse_raises_and_the_response_stays_consistent(serve_worker: Any) -> None:
    errors: list[Exception] = []

    @http
    def twice(request: HTTPRequestReader, response: HTTPResponse) -> None:
        response.write_head(204, [])
        for misuse in (
            lambda: response.write_head(200, []),
            lambda: response.write_head(200, [("Bad Name", "x")]),
        ):
            try:
                misuse()
            except Exception as exc:
                errors.append(exc)
        response.close()
        response.close()
        assert response.closed and response.state is ResponseState.CLOSED
        for late in (lambda: response.write(b"late"), lambda: response.write_head(200)):
            try:
                late()
            except DispatchError as exc:
                errors.append(exc)

    @http
    def bad_head(request: HTTPRequestReader, response: HTTPResponse) -> None:
        try:
            response.write_head(200, [("X-Split", "a\r\nb")])
        except ValueError as exc:
            errors.append(exc)
        response.write_head(500, [])

    async with serve_worker({"twice": twice, "bad_head": bad_head}) as served:
        assert await ask(served, "twice", packed_request()) == [
            ("write", [head(204, [])]),
            ("close", []),
        ]
        assert await ask(served, "bad_head", packed_request()) == [
            ("write", [head(500, [])]),
            ("close", []),
        ]
    kinds = [type(exc) for exc in errors]
    assert kinds == [DispatchError, DispatchError, DispatchError, DispatchError, ValueError]
    assert "after its head was sent" in str(errors[0])
    assert "after it was closed" in str(errors[3])


def test_the_decorator_keeps_the_name_and_is_exported_everywhere() -> None:
    def generate(request: HTTPRequestReader, response: HTTPResponse) -> None: ...

    wrapped = http(generate)
    assert wrapped.__name__ == "generate" and wrapped.__wrapped__ is generate
    assert cocaine.decorators.http is http
    assert cocaine.worker.http is http
    assert "http" in cocaine.worker.__all__
