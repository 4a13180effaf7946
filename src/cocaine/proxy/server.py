"""The proxy's listener: one process serving HTTP, stopping gracefully.

With ``--count N`` the supervisor (``main``) starts N such processes that share the port
through ``SO_REUSEPORT``; the kernel spreads connections between them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

from cocaine.client.endpoints import Endpoint
from cocaine.proxy.apps import AppPool
from cocaine.proxy.bridge import Bridge
from cocaine.proxy.http import HttpConnection, Limits
from cocaine.rpc.connection import protocol_factory

log = logging.getLogger(__name__)


@dataclass
class ProxyConfig:
    host: str | None = None
    port: int = 8080
    locator: tuple[Endpoint, ...] = (("localhost", 10053),)
    runtime_dir: str | None = None
    timeout: float = 30.0
    drain_timeout: float = 30.0
    max_header: int = 64 * 1024
    max_output: int = 32 * 1024 * 1024
    max_body: int = 16 * 1024 * 1024
    max_frame_size: int = 64 * 1024 * 1024
    reuse_port: bool = False


class ProxyServer:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.connections: set[HttpConnection] = set()
        self.apps = AppPool(
            list(config.locator),
            max_frame_size=config.max_frame_size,
            runtime_dir=config.runtime_dir,
        )
        self.bridge: Bridge | None = None
        self._server: asyncio.AbstractServer | None = None
        self.port = config.port

    async def start(self) -> None:
        config = self.config
        self.bridge = bridge = Bridge(self.apps, config.timeout)
        limits = Limits(config.max_header, config.max_body, config.max_output)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol_factory(lambda: HttpConnection(bridge, limits, self.connections)),
            host=config.host,
            port=config.port,
            reuse_address=True,
            reuse_port=config.reuse_port or None,
            backlog=4096,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), then close everything."""
        if self._server is not None:
            self._server.close()
        drained = asyncio.get_running_loop().create_future()

        def lost() -> None:
            if not self.connections and not drained.done():
                drained.set_result(None)

        for conn in list(self.connections):
            conn.drain(lost)  # idle ones close now, busy ones after their last response
        if self.connections:
            try:
                async with asyncio.timeout(self.config.drain_timeout):
                    await drained
            except TimeoutError:
                log.warning(
                    "%d connections still busy after the drain timeout", len(self.connections)
                )
        for conn in list(self.connections):
            conn.close()
        self.apps.close()


async def serve(config: ProxyConfig, ready_line: bool = True) -> None:
    server = ProxyServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_line:
        # one write, so the lines of processes sharing stderr (--count N) never interleave
        sys.stderr.write(f"cocaine-proxy: ready on port {server.port}\n")
        sys.stderr.flush()
    await stop.wait()
    await server.stop()


__all__ = ["ProxyConfig", "ProxyServer", "serve"]
