"""``Service(name)``: a service found through the locator, with methods from its graph.

The first call resolves the name at the locator (``[endpoints, version, graph]``), connects
to the first endpoint that answers and builds the method table from the graph it received, so
any service works without stubs. A call's shape follows its graph entry:

* a one-shot call with a ``value``/``error`` reply returns the value or raises
  :class:`~cocaine.errors.ServiceError`;
* a mute call returns ``None`` once sent;
* anything else returns a :class:`~cocaine.client.stream.Stream` with ``tx`` and ``rx``.

``svc.call("read", "col", "key")`` is the explicit form; ``svc.read("col", "key")`` is the same
call spelled as a method. A lost connection is re-established (and the name re-resolved) by the
next call.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

from cocaine.client.endpoints import Endpoint, format_endpoint, locator_endpoints
from cocaine.client.stream import Stream
from cocaine.errors import ConnectionLost, ServiceError
from cocaine.idl import APP, BUILTIN, LOCATOR, Interface
from cocaine.protocol.graph import Protocol, from_wire, kind
from cocaine.protocol.headers import Header
from cocaine.protocol.values import Type
from cocaine.rpc.channel import Inbox, unwrap_value
from cocaine.rpc.connection import RUNTIME_DIR_ENV, Connection, connect_endpoint


class Service:
    """A remote service by name. Async only; create it anywhere, it connects on first use."""

    def __init__(
        self,
        name: str,
        *,
        locator: str | Endpoint | list[Endpoint] | None = None,
        endpoints: list[Endpoint] | None = None,
        token: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.name = name
        self._locator = locator
        self._fixed = endpoints
        self.timeout = timeout
        token = token if token is not None else os.environ.get("COCAINE_TOKEN")
        self._headers: list[Header] = [(b"authorization", token.encode())] if token else []
        self._conn: Connection | None = None
        self._lock: asyncio.Lock | None = None
        self.root: Protocol | None = None
        self.version: int | None = None
        self.endpoints: list[Endpoint] = []
        self._known: Interface | None = None
        self._methods: dict[str, tuple[int, str, Type | None]] = {}

    # -- connecting -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Resolve (unless endpoints were given) and connect; a no-op while connected."""
        if self._conn is not None and not self._conn.closed:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is not None and not self._conn.closed:
                return
            if self.timeout is None:
                await self._connect()
            else:
                try:
                    async with asyncio.timeout(self.timeout):
                        await self._connect()
                except TimeoutError:
                    raise ConnectionLost(f"timed out connecting to service '{self.name}'") from None

    async def _connect(self) -> None:
        if self.name == "locator" and self._fixed is None:
            endpoints, version, root = (
                locator_endpoints(self._locator),
                LOCATOR.version,
                LOCATOR.root,
            )
        elif self._fixed is not None:
            fixed = BUILTIN.get(self.name, APP)
            endpoints, version, root = self._fixed, fixed.version, fixed.root
        else:
            endpoints, version, graph = await resolve(self.name, self._locator, self._headers)
            try:
                root = from_wire(graph, self.name)
            except ValueError as exc:
                raise ServiceError(f"bad graph for service '{self.name}': {exc}", 7, 2) from None
        errors = []
        for host, port in endpoints:
            try:
                self._conn = await connect_endpoint(
                    host,
                    port,
                    runtime_dir=os.environ.get(RUNTIME_DIR_ENV),
                    trace_headers=False,
                    name=self.name,
                )
                break
            except ConnectionLost as exc:
                errors.append(str(exc))
        else:
            raise ConnectionLost(
                f"service '{self.name}' is unreachable: " + "; ".join(errors or ["no endpoints"])
            )
        self.endpoints, self.version, self.root = list(endpoints), version, root
        known = self._known = _known_interface(self.name, root)
        # Per method, once: (id, reply shape, reply type) — the call path only looks it up.
        self._methods = {
            m.alias: (mid, kind(m.upstream), _returns(known, mid))
            for mid, m in root.messages.items()
        }

    # -- calling ----------------------------------------------------------------------------

    async def call(self, alias: str, *args: Any, headers: list[Header] | None = None) -> Any:
        """Send ``alias(*args)``; return the value, ``None`` (mute) or a :class:`Stream`."""
        conn = self._conn
        if conn is None or conn.closed:
            await self.connect()
            conn = self._conn
        root = self.root
        assert conn is not None and root is not None
        method = self._methods.get(alias)
        if method is None:
            raise ServiceError(f"service '{self.name}' has no method '{alias}'", 7, 5)
        mid, shape, returns = method
        hdrs = self._headers + headers if headers else self._headers
        if shape == "void":
            conn.open(root, mid, list(args), hdrs or None)
            return None
        inbox = Inbox(conn)
        channel = conn.open(root, mid, list(args), hdrs or None, inbox)
        if shape == "primitive" and channel.state.send is None:
            reply, values, _ = await inbox.get_message()
            if reply.alias == "error":
                raise ServiceError.from_wire(values)
            value = unwrap_value(values)
            return returns(value) if returns is not None else value
        return Stream(channel, inbox, returns)

    def __getattr__(self, alias: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        if alias.startswith("_"):
            raise AttributeError(alias)

        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self.call(alias, *args, **kwargs)

        method.__name__ = alias
        return method

    # -- lifetime ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Service:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", ".join(format_endpoint(e) for e in self.endpoints) or "unresolved"
        return f"<Service {self.name} at {where}>"


def _returns(known: Interface | None, mid: int) -> Type | None:
    if known is None or mid not in known.root:
        return None
    return known.root[mid].returns


def _known_interface(name: str, root: Protocol) -> Interface | None:
    """Our own table for a service whose graph matches one, to type its replies."""
    known = BUILTIN.get(name)
    if known is None and set(root.by_alias) >= {"enqueue", "info", "control"}:
        known = APP
    if known is None:
        return None
    if any(known.root.by_alias.get(m.alias) != mid for mid, m in root.messages.items()):
        return None
    return known


async def resolve(
    name: str,
    locator: str | Endpoint | list[Endpoint] | None = None,
    headers: list[Header] | None = None,
) -> tuple[list[Endpoint], int, Any]:
    """Ask the locator for ``name``: ``(endpoints, version, graph)``."""
    loc = Service("locator", locator=locator, timeout=None)
    try:
        value: tuple[list[Endpoint], int, Any] = await loc.call(
            "resolve", name, headers=headers or None
        )
        return value
    finally:
        loc.close()


__all__ = ["Service", "resolve"]
