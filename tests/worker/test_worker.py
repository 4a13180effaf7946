"""The worker's life against a runtime socket: handshake, heartbeats, invokes, terminate, exit.

Most tests run the worker in the test's own loop against ``FakeRuntime`` (see conftest); the
last ones start the article's echo app as a real process with the runtime's exact argv.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from fake_runtime import DEADLINE, UUID, FakeRuntime, deadline

from cocaine.errors import EndOfStream
from cocaine.worker import Request, Response, Worker, WorkerState
from cocaine.worker.options import LOCATOR_ENV, WorkerOptions


def echo(request: Request, response: Response):  # the article's handler, as is
    message = yield request.read()
    response.write(message)
    response.write("Additional message")
    response.close()


def two_step(request: Request, response: Response):
    """Echo one chunk, then wait for a second one: an in-flight request to shut down under."""
    first = yield request.read()
    response.write(first)
    second = yield request.read()
    response.write(second)
    response.close()


def test_handshake_carries_the_uuid_then_heartbeats(serve_worker) -> None:
    async def main() -> None:
        async with serve_worker({}, heartbeat_interval=0.01) as served:
            assert await deadline(served.runtime.uuid) == UUID
            await served.runtime.wait_heartbeats(3)
            assert served.worker.state is WorkerState.ACTIVE
            assert served.runtime.events[0] == (1, "heartbeat", [])
        assert served.task.result() == 0
        assert served.worker.state is WorkerState.STOPPED

    asyncio.run(main())


def test_invoke_echoes_two_chunks_then_closes(serve_worker) -> None:
    async def main() -> None:
        async with serve_worker({"ping": echo}) as served:
            call = await served.runtime.invoke("ping", b"hello")
            assert call.channel.id == 2
            assert await call.reply() == [
                ("write", [b"hello"]),
                ("write", [b"Additional message"]),
                ("close", []),
            ]
            second = await served.runtime.invoke("ping", b"again")
            assert second.channel.id == 3
            assert (await second.reply())[0] == ("write", [b"again"])

    asyncio.run(main())


def test_unknown_event_is_error_42_200(serve_worker) -> None:
    async def main() -> None:
        async with serve_worker({"ping": echo}) as served:
            call = await served.runtime.invoke("nope", b"x")
            assert await call.reply() == [
                ("error", [[42, 200], b"there is no handler for event nope"])
            ]

    asyncio.run(main())


def test_terminate_finishes_the_request_in_flight_then_echoes(serve_worker) -> None:
    async def main() -> None:
        async with serve_worker({"slow": two_step}) as served:
            runtime = served.runtime
            call = await runtime.invoke("slow", b"one", close=False)
            assert await call.next() == ("write", [b"one"])
            runtime.terminate(11, "overseer is shutting down")
            refused = await runtime.invoke("slow", b"late")  # proves terminate was seen
            assert await refused.reply() == [("error", [[42, 212], b"the worker is stopping"])]
            assert not runtime.terminated.done()
            call.write(b"two").close()
            assert await call.reply() == [("write", [b"two"]), ("close", [])]
            assert await deadline(runtime.terminated) == [11, b"overseer is shutting down"]
            assert await deadline(served.task) == 0
        order = [(cid, alias) for cid, alias, _ in runtime.events if alias != "heartbeat"]
        assert order[-3:] == [(2, "write"), (2, "close"), (1, "terminate")]
        assert served.worker.stop_reason is not None
        assert served.worker.stop_reason.code == 11

    asyncio.run(main())


def test_shutdown_timeout_cancels_a_stuck_handler(serve_worker) -> None:
    async def stuck(request: Request, response: Response) -> None:
        response.write(await request.read())
        await asyncio.Event().wait()

    async def main() -> None:
        async with serve_worker({"stuck": stuck}, shutdown_timeout=0.05) as served:
            call = await served.runtime.invoke("stuck", b"x", close=False)
            assert await call.next() == ("write", [b"x"])
            served.runtime.terminate(14, "slave is sealing")
            alias, args = await call.next()
            assert (alias, args[0]) == ("error", [42, 212])
            assert await deadline(served.runtime.terminated) == [14, b"slave is sealing"]
            assert await deadline(served.task) == 0

    asyncio.run(main())


def test_no_heartbeat_reply_means_disowned(serve_worker) -> None:
    async def main() -> None:
        async with serve_worker({}, reply_heartbeats=False, disown_timeout=0.05) as served:
            assert await deadline(served.task) == 1
            assert served.worker.stop_reason is not None
            assert served.worker.stop_reason.reason == "disowned"
            assert not served.runtime.terminated.done()

    asyncio.run(main())


def test_connection_lost_stops_the_worker_and_its_handlers(serve_worker) -> None:
    seen: list[BaseException] = []

    async def waiting(request: Request, response: Response) -> None:
        try:
            await request.read()
        except BaseException as exc:
            seen.append(exc)
            raise

    async def main() -> None:
        async with serve_worker({"wait": waiting}) as served:
            await served.runtime.invoke("wait", close=False)
            await served.runtime.wait_heartbeats(1)
            await served.runtime.disconnect()
            assert await deadline(served.task) == 1
        assert len(seen) == 1 and not isinstance(seen[0], EndOfStream)

    asyncio.run(main())


def test_connect_failure_raises_and_leaves_the_worker_stopped(socket_path: str) -> None:
    worker = Worker(app="t", uuid=UUID, endpoint=socket_path, argv=[])
    with pytest.raises(Exception, match="cannot connect"):
        asyncio.run(worker.serve({}, handle_signals=False))
    assert worker.state is WorkerState.STOPPED
    with pytest.raises(SystemExit) as exit_info:
        Worker(app="t", uuid=UUID, endpoint=socket_path, argv=[]).run({})
    assert exit_info.value.code == 1


def test_options_come_from_the_runtime_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["--app", "qr", "--endpoint", "/run/qr.1", "--locator", "h1:10053,[::1]:10054"]
    argv += ["--protocol", "1", "--uuid", UUID, "--extra", "kept for the app"]
    assert WorkerOptions.from_argv(argv) == WorkerOptions(
        "qr", "/run/qr.1", "h1:10053,[::1]:10054", 1, UUID
    )
    monkeypatch.delenv(LOCATOR_ENV, raising=False)
    worker = Worker(argv=argv)
    assert (worker.app, worker.uuid, worker.endpoint) == ("qr", UUID, "/run/qr.1")
    assert os.environ[LOCATOR_ENV] == "h1:10053,[::1]:10054"
    monkeypatch.setenv(LOCATOR_ENV, "operator:1")
    Worker(argv=argv)
    assert os.environ[LOCATOR_ENV] == "operator:1"


def test_on_registers_directly_and_as_a_decorator() -> None:
    worker = Worker(app="t", uuid=UUID, endpoint="/nowhere", argv=[])

    @worker.on("a")
    def a(request: Request, response: Response) -> None: ...

    worker.on("b", echo)
    assert worker.handlers == {"a": a, "b": echo}
    with pytest.raises(TypeError):
        worker.on("c", "not callable")  # type: ignore[arg-type]


# -- a real worker process, started the way the runtime starts it ------------------------------

APP = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")

    from cocaine.worker import Worker


    def echo(request, response):
        message = yield request.read()
        response.write(message)
        response.write('Additional message')
        response.close()


    def slow(request, response):
        first = yield request.read()
        response.write(first)
        second = yield request.read()
        response.write(second)
        response.close()


    W = Worker()
    W.run({
        'ping': echo,
        'slow': slow,
    })
    """
)


async def start_app(tmp_path: Path, socket_path: str) -> asyncio.subprocess.Process:
    script = tmp_path / "echo.py"
    script.write_text(APP)
    argv = ["--app", "t", "--endpoint", socket_path, "--locator", "127.0.0.1:1"]
    argv += ["--protocol", "1", "--uuid", UUID]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def read_until(proc: asyncio.subprocess.Process, text: bytes) -> None:
    assert proc.stdout is not None
    while True:
        line = await deadline(proc.stdout.readline())
        assert line, f"the worker exited before printing {text!r}"
        if text in line:
            return


async def exit_status(proc: asyncio.subprocess.Process) -> int:
    output, _ = await deadline(proc.communicate(), 2 * DEADLINE)
    assert proc.returncode == 0, output.decode()
    return proc.returncode


def test_process_serves_the_article_echo_and_obeys_terminate(
    tmp_path: Path, socket_path: str
) -> None:
    async def main() -> None:
        runtime = FakeRuntime()
        await runtime.listen(socket_path)
        proc = await start_app(tmp_path, socket_path)
        try:
            assert await deadline(runtime.uuid) == UUID
            await runtime.wait_heartbeats(1)
            call = await runtime.invoke("ping", b"Hello World!")
            assert await call.reply() == [
                ("write", [b"Hello World!"]),
                ("write", [b"Additional message"]),
                ("close", []),
            ]
            slow = await runtime.invoke("slow", b"one", close=False)
            assert await slow.next() == ("write", [b"one"])
            runtime.terminate(11, "overseer is shutting down")
            await read_until(proc, b"is stopping")
            slow.write(b"two").close()
            assert await slow.reply() == [("write", [b"two"]), ("close", [])]
            assert await deadline(runtime.terminated) == [11, b"overseer is shutting down"]
            assert await exit_status(proc) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            runtime.close()

    asyncio.run(main())


def test_process_sigterm_finishes_in_flight_then_says_terminate(
    tmp_path: Path, socket_path: str
) -> None:
    async def main() -> None:
        runtime = FakeRuntime()
        await runtime.listen(socket_path)
        proc = await start_app(tmp_path, socket_path)
        try:
            slow = await runtime.invoke("slow", b"one", close=False)
            assert await slow.next() == ("write", [b"one"])
            proc.send_signal(signal.SIGTERM)
            await read_until(proc, b"is stopping: the worker received SIGTERM")
            slow.write(b"two").close()
            assert await slow.reply() == [("write", [b"two"]), ("close", [])]
            code, reason = await deadline(runtime.terminated)
            assert code == 1 and b"SIGTERM" in reason
            assert await exit_status(proc) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            runtime.close()

    asyncio.run(main())


def test_handshake_and_heartbeat_bytes(socket_path: str) -> None:
    """The worker's first bytes on the socket, as the original runtime must read them."""
    handshake = b"\x94\x01\x00\x91\xda\x00\x24" + UUID.encode() + b"\x90"
    heartbeat = b"\x94\x01\x00\x90\x90"

    async def main() -> None:
        received = bytearray()
        enough = asyncio.Event()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while len(received) < len(handshake + heartbeat):
                data = await reader.read(1024)
                if not data:
                    break
                received.extend(data)
            enough.set()
            await reader.read()  # until the worker goes
            writer.close()

        server = await asyncio.start_unix_server(on_connect, socket_path)
        worker = Worker(app="t", uuid=UUID, endpoint=socket_path, argv=[])
        task = asyncio.create_task(worker.serve({}, handle_signals=False))
        await deadline(enough.wait())
        assert bytes(received) == handshake + heartbeat
        worker.stop()
        assert await deadline(task) == 0
        server.close()

    asyncio.run(main())
