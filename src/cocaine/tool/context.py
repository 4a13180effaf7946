"""What every ``cocaine-tool`` command shares: connection settings, the session and errors.

Settings come from ``--host/--port/--token/--timeout``, which are accepted both before the
group (``cocaine-tool --port 10054 app list``) and after the command (``cocaine-tool app list
--port 10054``): :func:`connection_options` adds them to any command and stores what was given
into the one :class:`Settings` object of the invocation. The locator falls back to
``COCAINE_LOCATOR`` (``host:port``) and then to ``localhost:10053``.

A command's network work is one coroutine given to :func:`run`, the only place that calls
``asyncio.run``. It gets a :class:`Session`, which checks that the locator answers before the
first call (so that "nothing listens" gets its own clear message), caches the services it
opens and closes them at the end. The whole coroutine runs under the ``--timeout`` deadline.

Every failure reaches the user as a :class:`ToolError`: one ``error: ...`` line on stderr and
exit status 1. :class:`ToolGroup` turns our errors, OS errors and bad values into it, so no
traceback escapes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import click

from cocaine.client import Service
from cocaine.client.endpoints import locator_endpoints
from cocaine.errors import CocaineError, ConnectionLost, ServiceError
from cocaine.protocol.values import textify

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT = 20.0


class ToolError(click.ClickException):
    """A failure shown as one ``error: ...`` line on stderr; the exit status is 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


@dataclass
class Settings:
    """Where the runtime is and how long to wait for it; one per invocation."""

    host: str | None = None
    port: int | None = None
    token: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @property
    def locator(self) -> str:
        """``host:port`` of the locator: the flags, else ``COCAINE_LOCATOR``, else the default."""
        if self.host is None and self.port is None:
            return ",".join(_format(h, p) for h, p in locator_endpoints())
        host, port = locator_endpoints()[0]
        return _format(self.host or host, self.port or port)


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


pass_settings = click.make_pass_decorator(Settings, ensure=True)


def _store(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(ctx.ensure_object(Settings), field, value)

    return callback


_CONNECTION_OPTIONS = [
    click.option("--host", metavar="HOST", expose_value=False, callback=_store("host"),
                 help="Locator host [default: from COCAINE_LOCATOR, else localhost]."),
    click.option("--port", type=click.IntRange(1, 65535), metavar="PORT", expose_value=False,
                 callback=_store("port"),
                 help="Locator port [default: from COCAINE_LOCATOR, else 10053]."),
    click.option("--token", metavar="TOKEN", expose_value=False, callback=_store("token"),
                 help="Authorization token [default: COCAINE_TOKEN]."),
    click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
                 expose_value=False, callback=_store("timeout"),
                 help=f"Deadline for the whole command [default: {DEFAULT_TIMEOUT:g}].")
]  # fmt: skip


def connection_options(f: F) -> F:
    """Add ``--host/--port/--token/--timeout`` to a command or group."""
    for option in reversed(_CONNECTION_OPTIONS):
        f = option(f)
    return f


class Session:
    """The services of one command run; closed when the run ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._services: dict[str, Service] = {}

    async def service(self, name: str) -> Service:
        """A connected service; the locator is checked first for a clear 'not running' error."""
        if "locator" not in self._services:
            locator = self._open("locator")
            try:
                await locator.connect()
            except ConnectionLost:
                raise ToolError(
                    f"cannot connect to {self.settings.locator} (is cocaine-runtime running?)"
                ) from None
        svc = self._services.get(name) or self._open(name)
        await svc.connect()
        return svc

    def _open(self, name: str) -> Service:
        s = self.settings
        svc = Service(name, locator=s.locator, token=s.token, timeout=s.timeout)
        self._services[name] = svc
        return svc

    async def call(self, service: str, method: str, *args: Any) -> Any:
        """Call a method: its value (a :class:`~cocaine.client.Stream` if it streams)."""
        svc = await self.service(service)
        return await svc.call(method, *args)

    def close(self) -> None:
        for svc in self._services.values():
            svc.close()
        self._services.clear()


def run(settings: Settings, work: Callable[[Session], Awaitable[T]], timeout: float = 0) -> T:
    """Run ``work(session)`` on a fresh event loop under the deadline (at least ``timeout``)."""
    deadline = max(settings.timeout, timeout)

    async def main() -> T:
        session = Session(settings)
        try:
            async with asyncio.timeout(deadline):
                return await work(session)
        finally:
            session.close()

    try:
        return asyncio.run(main())
    except TimeoutError:
        raise ToolError(f"timed out after {deadline:g} s (try --timeout)") from None


def describe(exc: BaseException) -> str:
    """One readable line for an error of ours, of the OS or of a bad value."""
    if isinstance(exc, ServiceError):
        return f"{exc.reason} [{exc.category}, {exc.code}]"
    if isinstance(exc, CocaineError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


class ToolGroup(click.Group):
    """The root group: one :class:`Settings` per run, and every failure as a :class:`ToolError`."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        extra.setdefault("obj", Settings())
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise  # the reader went away (``| head``); click exits quietly
        except (CocaineError, OSError, ValueError, TimeoutError) as exc:
            raise ToolError(describe(exc)) from exc


def echo_json(value: Any) -> None:
    """Print a JSON document (bytes that are not UTF-8 are shown by their repr)."""
    click.echo(json.dumps(textify(value), indent=2, ensure_ascii=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return repr(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return repr(value)


__all__ = [
    "DEFAULT_TIMEOUT",
    "Session",
    "Settings",
    "ToolError",
    "ToolGroup",
    "connection_options",
    "describe",
    "echo_json",
    "pass_settings",
    "run",
]
