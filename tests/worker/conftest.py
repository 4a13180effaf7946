"""Fixtures for worker tests: a socket path, and a worker serving against a fake runtime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fake_runtime import UUID, FakeRuntime, Served, ServeWorker, deadline

from cocaine.worker import Worker


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "app.sock")


@pytest.fixture
def serve_worker(socket_path: str) -> ServeWorker:
    """``async with serve_worker(handlers, **worker_options) as served``: a worker in a task.

    On the way out the worker is asked to stop if it is still running, and must finish within
    the deadline.
    """

    @contextlib.asynccontextmanager
    async def serve(
        handlers: dict[str, Any], *, reply_heartbeats: bool = True, **options: Any
    ) -> AsyncIterator[Served]:
        runtime = FakeRuntime(reply_heartbeats=reply_heartbeats)
        await runtime.listen(socket_path)
        worker = Worker(app="t", uuid=UUID, endpoint=socket_path, argv=[], **options)
        task = asyncio.create_task(worker.serve(handlers, handle_signals=False))
        try:
            yield Served(runtime, worker, task)
        finally:
            if not task.done():
                worker.stop()
            try:
                await deadline(task)
            finally:
                runtime.close()

    return serve
