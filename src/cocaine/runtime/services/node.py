"""The node service: start, stop, list and inspect apps; the runlist is started at boot."""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import TYPE_CHECKING, Any

import msgpack

from cocaine.errors import Category, CocaineError, Node
from cocaine.idl import NODE
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel, Receiver
from cocaine.rpc.dispatch import ServiceDispatch
from cocaine.runtime.app.app import App, AppState
from cocaine.runtime.context import Context
from cocaine.runtime.services.storage.backend import check_name

if TYPE_CHECKING:
    from cocaine.runtime.runtime import Runtime

log = logging.getLogger(__name__)


def _check_name(kind: str, value: str) -> None:
    """A storage name that is also safe in file names, service names and log lines."""
    check_name(kind, value)
    if any(ord(c) < 0x20 or ord(c) in (0x7F, 0x85, 0x2028, 0x2029) for c in value):
        raise CocaineError(
            f"invalid {kind} name {value!r}: contains a control character",
            Category.GENERIC,
            errno.EINVAL,
        )


def _not_running(app: str) -> CocaineError:
    return CocaineError(f"app '{app}' is not running", Category.NODE, Node.NOT_RUNNING)


class NodeService:
    def __init__(self, context: Context, runtime: Runtime) -> None:
        self.context = context
        self.runtime = runtime
        self.apps: dict[str, App] = {}

    async def start_runlist(self) -> None:
        name = self.context.config.runlist
        try:
            blob = await self.context.storage.read("runlists", name)
            runlist = msgpack.unpackb(blob, raw=False)
        except CocaineError:
            log.info("runlist '%s' is empty", name)
            return
        except Exception as exc:
            log.error("runlist '%s' is not a valid msgpack map: %s", name, exc)
            return
        if not isinstance(runlist, dict):
            log.error("runlist '%s' must be a map of app → profile", name)
            return
        for app, profile in runlist.items():
            try:
                await self.start_app(str(app), str(profile))
            except CocaineError as exc:
                log.error("runlist '%s': %s", name, exc.reason)

    async def start_app(self, app: str, profile: str) -> None:
        _check_name("app", app)
        _check_name("profile", profile)
        existing = self.apps.get(app)
        if existing is not None and existing.state is not AppState.BROKEN:
            raise CocaineError(
                f"app '{app}' is already started", Category.NODE, Node.ALREADY_STARTED
            )
        if existing is not None:
            await existing.stop()
        instance = self.apps[app] = App(self.runtime, app, profile)
        await instance.start()  # a broken app stays listed with its reason

    async def pause_app(self, app: str) -> None:
        instance = self.apps.pop(app, None)
        if instance is None:
            raise _not_running(app)
        await instance.stop()

    def list_apps(self) -> list[str]:
        return sorted(self.apps)

    def info(self, app: str, flags: int = 1) -> dict[str, Any]:
        instance = self.apps.get(app)
        if instance is None:
            raise _not_running(app)
        return instance.info(flags)

    def control(self, channel: Channel, args: list[Any], headers: list[Header]) -> Receiver | None:
        instance = self.apps.get(args[0])
        if instance is None or instance.state is not AppState.RUNNING:
            channel.send(1, _not_running(args[0]).to_wire())
            return None
        return instance.control(channel, [], headers)

    def enqueue(self, channel: Channel, args: list[Any], headers: list[Header]) -> Receiver | None:
        instance = self.apps.get(args[0])
        if instance is None or instance.state is not AppState.RUNNING:
            channel.send(1, _not_running(args[0]).to_wire())
            return None
        return instance.enqueue(channel, args[1:], headers)

    async def stop(self) -> None:
        """Stop every app at once; each drains its in-flight events within its seal-timeout."""
        apps, self.apps = list(self.apps.values()), {}
        await asyncio.gather(*(instance.stop() for instance in apps), return_exceptions=True)

    def dispatch(self) -> ServiceDispatch:
        return ServiceDispatch(
            NODE,
            {
                "start_app": self.start_app,
                "pause_app": self.pause_app,
                "list": self.list_apps,
                "info": self.info,
                "control": self.control,
                "enqueue": self.enqueue,
            },
            guard=self.context.authorize,
            guarded=("start_app", "pause_app", "control"),
        )


__all__ = ["NodeService"]
