"""A logger for app code that writes into the runtime's log through the ``logging`` service.

``log = Logger()`` may sit at module level, before any event loop exists. Each record goes
out as ``logging.emit(level, source, message, attributes)`` with the app's name as the source
and ``[["uuid", <worker uuid>], …]`` plus any keyword attributes. Logging never blocks and
never raises into the caller: records wait in a bounded queue drained by one task the logger
owns (so they stay in order), records beyond the bound are counted and dropped, and a record
that cannot be delivered (no loop running, no logging service) is printed to stderr, which the
runtime keeps with the worker's output.

    log.info("served %s in %.1f ms", key, elapsed, client="qr")
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any

from cocaine.client import Service
from cocaine.idl.logging import Level
from cocaine.worker.options import WorkerOptions, export_locator

Record = tuple[int, str, list[list[Any]]]

DEFAULT_QUEUE_LIMIT = 1024
# How long a record may wait for the logging service to be found and connected.
SERVICE_TIMEOUT = 5.0


class Logger:
    """Emit records to the ``logging`` service as this app. Safe to call from anywhere."""

    def __init__(
        self,
        app: str | None = None,
        uuid: str | None = None,
        *,
        service: Service | None = None,
        limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        options = WorkerOptions.from_argv()
        export_locator(options.locator)
        self.source = app or options.app or "app"
        self.uuid = uuid or options.uuid
        self.limit = limit
        self.dropped = 0
        self._own_service = service is None
        self._service = service
        self._queue: deque[Record] = deque()
        self._task: asyncio.Task[None] | None = None

    # -- the API app code calls -------------------------------------------------------------

    def debug(self, msg: object, *args: Any, **attrs: Any) -> None:
        self._log(Level.DEBUG, msg, args, attrs)

    def info(self, msg: object, *args: Any, **attrs: Any) -> None:
        self._log(Level.INFO, msg, args, attrs)

    def warning(self, msg: object, *args: Any, **attrs: Any) -> None:
        self._log(Level.WARNING, msg, args, attrs)

    warn = warning

    def error(self, msg: object, *args: Any, **attrs: Any) -> None:
        self._log(Level.ERROR, msg, args, attrs)

    async def flush(self) -> None:
        """Wait until every queued record has been handed to the logging service."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.shield(task)

    # -- delivery ---------------------------------------------------------------------------

    def _log(self, level: int, msg: object, args: tuple[Any, ...], attrs: dict[str, Any]) -> None:
        try:
            record = (int(level), _format(msg, args), self._attributes(attrs))
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._print(record)
                return
            if len(self._queue) >= self.limit:
                self.dropped += 1
                return
            self._queue.append(record)
            task = self._task
            if task is None or task.done() or task.get_loop() is not loop:
                if task is not None and task.get_loop() is not loop and self._own_service:
                    self._service = None  # its connection belonged to the other loop
                self._task = loop.create_task(self._drain())
        except Exception as exc:  # logging must never break the caller
            print(f"{self.source}: cannot log {msg!r}: {exc}", file=sys.stderr)

    def _attributes(self, attrs: dict[str, Any]) -> list[list[Any]]:
        out: list[list[Any]] = [["uuid", self.uuid]] if self.uuid else []
        for name, value in attrs.items():
            plain = value if isinstance(value, (str, bytes, int, float, bool)) else str(value)
            out.append([name, plain])
        return out

    async def _drain(self) -> None:
        if self._service is None:
            self._service = Service("logging", timeout=SERVICE_TIMEOUT)
        service = self._service
        while self._queue:
            record = self._queue.popleft()
            try:
                level, message, attributes = record
                await service.call("emit", level, self.source, message, attributes)
            except Exception as exc:
                self._print(record, exc)

    def _print(self, record: Record, exc: Exception | None = None) -> None:
        level, message, _ = record
        try:
            name = Level(level).name
        except ValueError:
            name = str(level)
        why = f" (logging service: {exc})" if exc is not None else ""
        print(f"[{name}] {self.source}: {message}{why}", file=sys.stderr)

    def __repr__(self) -> str:
        return f"<Logger {self.source} queued={len(self._queue)} dropped={self.dropped}>"


def _format(msg: object, args: tuple[Any, ...]) -> str:
    text = str(msg)
    if not args:
        return text
    try:
        return text % args
    except (TypeError, ValueError):
        return " ".join([text, *map(str, args)])


__all__ = ["Logger"]
