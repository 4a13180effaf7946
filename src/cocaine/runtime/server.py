"""An actor: a TCP (and/or unix) listener serving one dispatch, a connection per client.

``start_tcp``/``start_unix`` bind and return when the listener is ready; ``endpoints`` are the
addresses to advertise (loopback for a wildcard bind, or the configured hostname's). A service
also listens on ``<runtime dir>/<port>.sock``, so that clients on this machine that know the
runtime dir skip loopback TCP (see :func:`cocaine.rpc.connection.connect_endpoint`). ``stop``
stops accepting and closes every live connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from cocaine.errors import CocaineError
from cocaine.rpc.connection import Connection, Dispatch, protocol_factory

log = logging.getLogger(__name__)


class Actor:
    def __init__(self, name: str, dispatch: Callable[[], Dispatch], *, max_frame_size: int) -> None:
        self.name = name
        self._dispatch = dispatch
        self._max_frame_size = max_frame_size
        self._servers: list[asyncio.AbstractServer] = []
        self._paths: list[str] = []
        self.connections: set[Connection] = set()
        self.bound: list[tuple[int, str, int]] = []  # (family, host, port)

    def _factory(self) -> Connection:
        conn = Connection(
            self._dispatch(),
            max_frame_size=self._max_frame_size,
            on_close=self._closed,
            name=self.name,
        )
        self.connections.add(conn)
        return conn

    def _closed(self, conn: Connection, error: CocaineError | None) -> None:
        self.connections.discard(conn)

    async def start_tcp(self, host: str | None, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            protocol_factory(self._factory),
            host=host,
            port=port,
            reuse_address=True,
            backlog=1024,
        )
        self._servers.append(server)
        for sock in server.sockets:
            addr = sock.getsockname()
            self.bound.append((sock.family, addr[0], addr[1]))
        log.debug("%s listening on %s", self.name, self.bound)

    async def start_unix(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(
            protocol_factory(self._factory), path=path, backlog=1024
        )
        self._servers.append(server)
        self._paths.append(path)

    @property
    def port(self) -> int:
        return self.bound[0][2]

    def endpoints(self, hostname: str | None = None) -> list[tuple[str, int]]:
        """Addresses a client on this machine (or elsewhere, with ``hostname``) can reach."""
        port = self.port
        if hostname:
            try:
                infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
                return list(dict.fromkeys((str(i[4][0]), port) for i in infos))
            except OSError:
                log.warning("cannot resolve hostname %s; advertising bound addresses", hostname)
        out: list[tuple[str, int]] = []
        for _family, host, p in sorted(self.bound, key=lambda b: b[0] != socket.AF_INET):
            if host in ("0.0.0.0", ""):
                host = "127.0.0.1"
            elif host == "::":
                host = "::1"
            out.append((host, p))
        return list(dict.fromkeys(out))

    def stop_accepting(self) -> None:
        """No new connections; the live ones carry on until ``stop``."""
        for server in self._servers:
            server.close()
        for path in self._paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._paths.clear()

    async def stop(self) -> None:
        self.stop_accepting()
        for conn in list(self.connections):
            conn.close()
        for server in self._servers:
            await server.wait_closed()


__all__ = ["Actor"]
