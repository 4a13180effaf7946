"""The app logger: records reach a real logging service in order, and never break the caller."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from cocaine.client import Service
from cocaine.idl import LOGGING
from cocaine.rpc import Connection, ServiceDispatch
from cocaine.worker import Logger

UUID = "0d9c8f0e-3f43-4b1c-9a55-1f7e2f0c4e11"


class LoggingServer:
    """A logging service on loopback TCP that keeps what it is sent."""

    def __init__(self) -> None:
        self.records: list[list[Any]] = []
        self.arrived = asyncio.Event()

    def emit(self, level: int, source: str, message: str, attributes: Any = None) -> None:
        self.records.append([level, source, message, attributes])
        self.arrived.set()

    async def start(self) -> Service:
        dispatch = ServiceDispatch(LOGGING, {"emit": self.emit})
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Connection(dispatch), "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return Service("logging", endpoints=[("127.0.0.1", port)])

    async def wait_for(self, count: int) -> None:
        while len(self.records) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 5)


def test_records_reach_the_logging_service_in_order() -> None:
    async def main() -> None:
        sink = LoggingServer()
        log = Logger("qr", UUID, service=await sink.start())
        log.debug("one")
        log.info("two %s", "args", client="curl")
        log.warning("three")
        log.warn("four")
        log.error("five %d%%", 5, size=10)
        await log.flush()
        await sink.wait_for(5)
        assert sink.records == [
            [0, "qr", "one", [[b"uuid", UUID.encode()]]],
            [1, "qr", "two args", [[b"uuid", UUID.encode()], [b"client", b"curl"]]],
            [2, "qr", "three", [[b"uuid", UUID.encode()]]],
            [2, "qr", "four", [[b"uuid", UUID.encode()]]],
            [3, "qr", "five 5%", [[b"uuid", UUID.encode()], [b"size", 10]]],
        ]
        sink.server.close()

    asyncio.run(main())


def test_without_a_loop_records_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = Logger("qr", UUID)
    log.info("at import time: %s", "fine")
    log.error("bad format %d", "not a number")
    err = capsys.readouterr().err
    assert "[INFO] qr: at import time: fine" in err
    assert "[ERROR] qr: bad format %d not a number" in err


def test_an_unreachable_service_falls_back_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        log = Logger("qr", UUID, service=Service("logging", endpoints=[("127.0.0.1", 1)]))
        log.info("still visible")
        await log.flush()

    asyncio.run(main())
    err = capsys.readouterr().err
    assert "[INFO] qr: still visible (logging service:" in err


def test_a_full_queue_drops_and_counts() -> None:
    async def main() -> None:
        sink = LoggingServer()
        log = Logger("qr", UUID, service=await sink.start(), limit=2)
        for i in range(5):
            log.info("record %d", i)
        assert log.dropped == 3
        await log.flush()
        await sink.wait_for(2)
        assert [r[2] for r in sink.records] == ["record 0", "record 1"]
        sink.server.close()

    asyncio.run(main())


def test_app_and_uuid_default_from_the_worker_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["app.py", "--app", "echo", "--uuid", UUID])
    log = Logger()
    assert (log.source, log.uuid) == ("echo", UUID)


def test_the_original_import_paths() -> None:
    import logging

    import cocaine.logging
    from cocaine.client import Service as ClientService
    from cocaine.errors import EndOfStream
    from cocaine.exceptions import ChokeEvent, CocaineError, ServiceError
    from cocaine.services import Service as AliasService

    assert cocaine.logging.Logger is Logger
    assert AliasService is ClientService
    assert ChokeEvent is EndOfStream
    assert issubclass(ServiceError, CocaineError)
    assert logging.getLogger is not None and logging.__name__ == "logging"
