"""The runtime: builds the context, starts every service as an actor, stops them in order."""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable
from typing import Any

from cocaine.errors import ConfigError
from cocaine.idl import LOCATOR, LOGGING, NODE, STORAGE, Interface
from cocaine.rpc.connection import Dispatch
from cocaine.runtime.config import Config
from cocaine.runtime.context import Context
from cocaine.runtime.server import Actor
from cocaine.runtime.services.locator import LocatorService
from cocaine.runtime.services.logging import LoggingService, level_from_severity
from cocaine.runtime.services.storage import Backend, FilesBackend
from cocaine.runtime.services.storage.service import StorageService

log = logging.getLogger("cocaine.runtime")


async def open_backend(config: Config) -> Backend:
    spec = config.storage_backend()
    if spec.type == "files":
        return FilesBackend(spec.args.get("path") or config.state_dir / "storage")
    from cocaine.runtime.services.storage import PostgresBackend

    dsn = spec.args.get("dsn")
    if not isinstance(dsn, str):
        raise ConfigError("$.storages.<name>.args.dsn: a PostgreSQL DSN string is required")
    return await PostgresBackend.connect(dsn)


class Runtime:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.actors: dict[str, Actor] = {}
        self.context: Context | None = None
        self.node: Any = None
        self._ports = _PortMapper(config)

    @property
    def locator_endpoints(self) -> list[tuple[str, int]]:
        return self.actors["locator"].endpoints(self.config.network.hostname)

    async def start(self) -> None:
        config = self.config
        for d in (config.state_dir, config.runtime_dir, config.spool_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)  # sockets and data: ours alone
        backend = await open_backend(config)
        ctx = self.context = Context(config=config, storage=backend)
        if config.uuid:
            ctx.uuid = config.uuid
        logging_service = LoggingService(level_from_severity(config.logging.severity))
        storage = StorageService(backend, guard=ctx.authorize)
        await self.add_service("logging", LOGGING, logging_service.dispatch)
        await self.add_service("storage", STORAGE, storage.dispatch)
        from cocaine.runtime.services.node import NodeService

        self.node = NodeService(ctx, self)
        await self.add_service("node", NODE, self.node.dispatch)
        locator = LocatorService(ctx)
        await self.add_service("locator", LOCATOR, locator.dispatch)
        ctx.locator_endpoints = self.locator_endpoints
        await self.node.start_runlist()

    async def add_service(
        self, name: str, interface: Interface, dispatch: Callable[[], Dispatch]
    ) -> Actor:
        """Start a listener for ``name`` and publish it in the registry."""
        assert self.context is not None
        actor = Actor(name, dispatch, max_frame_size=self.config.limits.max_frame_size)
        await self._ports.bind(actor, name)
        path = self.config.runtime_dir / f"{actor.port}.sock"
        try:
            await actor.start_unix(str(path))
        except OSError as exc:  # a path too long for a unix socket: TCP alone still serves
            log.warning("%s: no unix socket at %s: %s", name, path, exc)
        self.actors[name] = actor
        self.context.registry.publish(
            name, actor.endpoints(self.config.network.hostname), interface
        )
        return actor

    def unpublish(self, name: str) -> None:
        """Stop resolving and accepting ``name``; its live connections stay until removed."""
        if self.context is not None:
            self.context.registry.unpublish(name)
        actor = self.actors.get(name)
        if actor is not None:
            actor.stop_accepting()

    async def remove_service(self, name: str) -> None:
        actor = self.actors.pop(name, None)
        if self.context is not None:
            self.context.registry.unpublish(name)
        if actor is not None:
            await actor.stop()

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.stop()
        for name in list(self.actors):
            await self.remove_service(name)
        if self.context is not None:
            await self.context.storage.close()


class _PortMapper:
    """Pinned ports, else the shared range (shuffled), else ephemeral."""

    def __init__(self, config: Config) -> None:
        self.host = config.network.endpoint or None
        self.pinned = config.network.pinned
        self.shared: list[int] = []
        if config.network.shared is not None:
            lo, hi = config.network.shared
            self.shared = list(range(lo, hi + 1))
            random.shuffle(self.shared)

    async def bind(self, actor: Actor, name: str) -> None:
        if name == "locator" or name in self.pinned:
            await self._listen(actor, name, self.pinned.get(name, 10053))
            return
        while self.shared:
            port = self.shared.pop()
            try:
                await actor.start_tcp(self.host, port)
                return
            except OSError:
                continue
        await self._listen(actor, name, 0)

    async def _listen(self, actor: Actor, name: str, port: int) -> None:
        """Bind ``actor``; a failure names the service, the address and the reason."""
        try:
            await actor.start_tcp(self.host, port)
        except OSError as exc:
            where = f"{self.host or '*'}:{port}" if port else f"{self.host or '*'}"
            # asyncio's bind errors repeat the address; the errno's own text is enough
            code = exc.errno
            if code is not None and code > 0 and not isinstance(exc, socket.gaierror):
                reason = os.strerror(code)
            else:
                reason = exc.strerror or str(exc)
            raise OSError(exc.errno, f"cannot listen on {where} for {name}: {reason}") from None


__all__ = ["Runtime", "open_backend"]
