"""Handler styles, and the Request and Response a handler works with, over a real socket.

Each test defines the handlers it needs and drives them through a worker serving against the
fake runtime (see conftest): chunks go in on an invoke channel, the reply is read back off it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fake_runtime import Served

from cocaine.client import Service
from cocaine.errors import CocaineError, DispatchError, EndOfStream, ServiceError
from cocaine.idl import STORAGE
from cocaine.rpc import Connection, ServiceDispatch
from cocaine.worker import Request, Response

Reply = list[tuple[str, list[Any]]]


async def ask(served: Served, event: str, *chunks: bytes, **kwargs: Any) -> Reply:
    call = await served.runtime.invoke(event, *chunks, **kwargs)
    return await call.reply()


def served_run(serve_worker: Any, handlers: dict[str, Any], body: Any, **options: Any) -> None:
    async def main() -> None:
        async with serve_worker(handlers, **options) as served:
            await body(served)

    asyncio.run(main())


class StorageServer:
    """A storage service on loopback TCP, served by our ServiceDispatch over a dict."""

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], bytes] = {}

    def read(self, collection: str, key: str) -> bytes:
        try:
            return self.blobs[collection, key]
        except KeyError:
            raise CocaineError(f"key '{key}' is not found", 12, 2) from None

    def write(self, collection: str, key: str, blob: bytes, tags: list[str] | None = None) -> None:
        self.blobs[collection, key] = blob

    async def __aenter__(self) -> Service:
        dispatch = ServiceDispatch(STORAGE, {"read": self.read, "write": self.write})
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Connection(dispatch), "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return Service("storage", endpoints=[("127.0.0.1", port)])

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def test_generator_handler_gets_service_errors_thrown_in(serve_worker) -> None:
    """The article's QR flow: a storage miss raises ServiceError at the ``yield``."""
    made: list[bytes] = []

    async def main() -> None:
        async with StorageServer() as storage:

            def generate(request: Request, response: Response):
                key = yield request.read()
                try:
                    data = yield storage.read("qr-codes", key)
                except ServiceError as err:
                    assert err.pair == (12, 2)
                    data = b"png of " + key
                    made.append(key)
                    yield storage.write("qr-codes", key, data)
                response.write(data)
                response.close()

            async with serve_worker({"generate": generate}) as served:
                for _ in range(2):
                    reply = await ask(served, "generate", b"hello")
                    assert reply == [("write", [b"png of hello"]), ("close", [])]
            storage.close()
        assert made == [b"hello"]

    asyncio.run(main())


def test_generator_may_yield_lists_and_none_and_is_closed_for_it(serve_worker) -> None:
    async def double(x: bytes) -> bytes:
        await asyncio.sleep(0)
        return x * 2

    def gather(request: Request, response: Response):
        chunk = yield request.read()
        yield  # just lets the loop run
        a, b = yield [double(chunk), double(b"!")]
        response.write(a + b)

    async def body(served: Served) -> None:
        assert await ask(served, "gather", b"ab") == [("write", [b"abab!!"]), ("close", [])]

    served_run(serve_worker, {"gather": gather}, body)


def test_async_handler_reads_every_chunk(serve_worker) -> None:
    async def join(request: Request, response: Response) -> None:
        chunks = [chunk async for chunk in request]
        response.write(b"+".join(chunks))
        await response.drain()
        assert request.closed
        try:
            await request.read()
        except EndOfStream:
            response.write("end")

    async def body(served: Served) -> None:
        reply = await ask(served, "join", b"a", b"b", b"c")
        assert reply == [("write", [b"a+b+c"]), ("write", [b"end"]), ("close", [])]

    served_run(serve_worker, {"join": join}, body)


def test_plain_function_is_called_once_and_closed_for_it(serve_worker) -> None:
    calls: list[str] = []

    def hello(request: Request, response: Response) -> None:
        calls.append(request.event)
        response.write("hello")

    async def body(served: Served) -> None:
        assert await ask(served, "hello") == [("write", [b"hello"]), ("close", [])]

    served_run(serve_worker, {"hello": hello}, body)
    assert calls == ["hello"]


def test_an_exception_becomes_error_42_100(serve_worker) -> None:
    async def fails(request: Request, response: Response) -> None:
        raise ValueError("boom")

    def fails_late(request: Request, response: Response):
        yield request.read()
        response.write("partial")
        raise KeyError("message")

    async def body(served: Served) -> None:
        assert await ask(served, "fails") == [("error", [[42, 100], b"boom"])]
        reply = await ask(served, "late", b"x")
        assert reply == [("write", [b"partial"]), ("error", [[42, 100], b"'message'"])]

    served_run(serve_worker, {"fails": fails, "late": fails_late}, body)


def test_response_error_forms(serve_worker) -> None:
    def user(request: Request, response: Response) -> None:
        response.error(1, "the article's form")

    def full(request: Request, response: Response) -> None:
        response.error(0x52FF, 1, "queue is full")

    def exc(request: Request, response: Response) -> None:
        response.error(CocaineError("no such key", 12, 2))
        response.close()  # idempotent after the end, as in the article's ``finally``

    async def body(served: Served) -> None:
        assert await ask(served, "user") == [("error", [[43, 1], b"the article's form"])]
        assert await ask(served, "full") == [("error", [[0x52FF, 1], b"queue is full"])]
        assert await ask(served, "exc") == [("error", [[12, 2], b"no such key"])]

    served_run(serve_worker, {"user": user, "full": full, "exc": exc}, body)


def test_write_after_close_raises_a_clear_error(serve_worker) -> None:
    errors: list[Exception] = []

    def closes(request: Request, response: Response) -> None:
        response.write("héllo")
        response.close()
        response.close()
        assert response.closed
        for late in (lambda: response.write(b"late"), lambda: response.error(1, "late")):
            try:
                late()
            except DispatchError as exc:
                errors.append(exc)

    async def body(served: Served) -> None:
        assert await ask(served, "closes") == [("write", ["héllo".encode()]), ("close", [])]

    served_run(serve_worker, {"closes": closes}, body)
    assert len(errors) == 2
    assert "write() on the response to event 'closes' after it was closed" in str(errors[0])


def test_request_sees_client_errors_timeouts_and_headers(serve_worker) -> None:
    async def inspect(request: Request, response: Response) -> None:
        response.write(request.header("x-test") or b"none")
        try:
            await request.read(timeout=0.01)
        except TimeoutError:
            response.write("timeout")
        try:
            await request.read()
        except ServiceError as err:
            response.write(f"{err.pair} {err.reason}")
        try:
            await request.read()
        except ServiceError:
            response.write("again")

    async def body(served: Served) -> None:
        call = await served.runtime.invoke("inspect", close=False, headers=[(b"x-test", b"1")])
        assert await call.next() == ("write", [b"1"])
        assert await call.next() == ("write", [b"timeout"])
        call.error(1, 2, "client went wrong")
        assert await call.reply() == [
            ("write", [b"(1, 2) client went wrong"]),
            ("write", [b"again"]),
            ("close", []),
        ]

    served_run(serve_worker, {"inspect": inspect}, body)
