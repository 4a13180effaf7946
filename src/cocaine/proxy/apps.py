"""Pooled, multiplexed connections from the proxy to apps, found through the locator.

One connection per app carries every request to it, each on its own channel. A lost
connection is dropped from the pool; the next request resolves the app again and reconnects.
Concurrent first requests to an app share one resolve-and-connect.
"""

from __future__ import annotations

import asyncio
import logging

from cocaine.client.endpoints import Endpoint
from cocaine.client.service import resolve
from cocaine.errors import CocaineError, ConnectionLost
from cocaine.rpc.connection import Connection, connect_endpoint

log = logging.getLogger(__name__)


class AppPool:
    def __init__(
        self, locator: list[Endpoint], *, max_frame_size: int, runtime_dir: str | None = None
    ) -> None:
        self.locator = locator
        self.max_frame_size = max_frame_size
        self.runtime_dir = runtime_dir  # the runtime's unix sockets, when on this machine
        self._conns: dict[str, Connection] = {}
        self._pending: dict[str, asyncio.Future[Connection]] = {}

    def get_nowait(self, app: str) -> Connection | None:
        conn = self._conns.get(app)
        if conn is not None and not conn.closed:
            return conn
        return None

    async def get(self, app: str) -> Connection:
        conn = self.get_nowait(app)
        if conn is not None:
            return conn
        pending = self._pending.get(app)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(app))
            self._pending[app] = pending
            pending.add_done_callback(lambda _: self._pending.pop(app, None))
        return await asyncio.shield(pending)

    async def _connect(self, app: str) -> Connection:
        endpoints, _, _ = await resolve(app, self.locator)
        errors: list[str] = []
        for host, port in endpoints:
            try:
                conn = await connect_endpoint(
                    host,
                    port,
                    runtime_dir=self.runtime_dir,
                    trace_headers=False,
                    max_frame_size=self.max_frame_size,
                    on_close=self._closed,
                    name=app,
                )
            except ConnectionLost as exc:
                errors.append(exc.reason)
                continue
            log.debug("app %s: connected to %s", app, conn.peer)
            self._conns[app] = conn
            return conn
        raise ConnectionLost(f"app '{app}' is unreachable: " + "; ".join(errors))

    def _closed(self, conn: Connection, error: CocaineError | None) -> None:
        if self._conns.get(conn.name) is conn:
            del self._conns[conn.name]

    def close(self) -> None:
        for conn in list(self._conns.values()):
            conn.close()
        self._conns.clear()


__all__ = ["AppPool"]
