"""An app: its lifecycle, its worker socket, and its publication as a service.

    STOPPED ──start──► SPOOLING ──unpacked, listening, published──► RUNNING
       ▲                  └──────── any failure ────────► BROKEN (with the reason)
       └──────────── stop (drain and terminate workers, unpublish) ──────┘

Spooling reads ``manifests/<app>``, ``profiles/<profile>`` and ``apps/<app>`` from storage,
unpacks the archive into the spool directory, checks the slave is there and executable,
starts the unix socket workers connect to, and publishes ``<app>`` (enqueue / info / control).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from cocaine.client.endpoints import format_endpoint
from cocaine.errors import Category, CocaineError, ConfigError, Node
from cocaine.idl import APP
from cocaine.protocol.graph import Message
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel, Receiver
from cocaine.rpc.dispatch import ServiceDispatch
from cocaine.runtime.app.engine import Engine, worker_environment
from cocaine.runtime.app.manifest import Manifest, parse_manifest
from cocaine.runtime.app.profile import Profile, parse_profile, profile_report
from cocaine.runtime.isolate.archive import archive_bytes
from cocaine.runtime.isolate.process import ProcessIsolate
from cocaine.runtime.server import Actor

if TYPE_CHECKING:
    from cocaine.runtime.runtime import Runtime

log = logging.getLogger(__name__)


class AppState(Enum):
    STOPPED = "stopped"
    SPOOLING = "spooling"
    RUNNING = "running"
    BROKEN = "broken"


async def _read_blob(runtime: Runtime, collection: str, key: str, what: str) -> bytes:
    """``collection/key`` from storage; a missing key says which piece of the app is missing."""
    assert runtime.context is not None
    try:
        return await runtime.context.storage.read(collection, key)
    except CocaineError as exc:
        if exc.pair == (Category.GENERIC, 2):
            raise ConfigError(f"{what} '{key}' is not uploaded ({collection}/{key})") from None
        raise


async def _read_map(runtime: Runtime, collection: str, key: str, what: str) -> Any:
    blob = await _read_blob(runtime, collection, key, what)
    try:
        return msgpack.unpackb(blob, raw=False)
    except Exception:
        raise ConfigError(f"{what} '{key}' is not a valid msgpack value") from None


class App:
    def __init__(self, runtime: Runtime, name: str, profile_name: str) -> None:
        self.runtime = runtime
        self.name = name
        self.profile_name = profile_name
        self.state = AppState.STOPPED
        self.reason = ""
        self.profile: Profile | None = None
        self.manifest: Manifest | None = None
        self.engine: Engine | None = None
        self.worker_actor: Actor | None = None
        self.published = False
        self.started = time.monotonic()
        # start and stop never interleave: a stop asked for while spooling waits for the
        # start to finish, so nothing it publishes outlives the stop
        self._lifecycle = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lifecycle:
            await self._start_locked()

    async def _start_locked(self) -> None:
        self.state = AppState.SPOOLING
        try:
            await self._start()
        except CocaineError as exc:
            self.state, self.reason = AppState.BROKEN, exc.reason
            await self._teardown()
            raise CocaineError(
                f"app '{self.name}' is broken: {exc.reason}", exc.category, exc.code
            ) from None
        except OSError as exc:
            self.state, self.reason = AppState.BROKEN, str(exc)
            await self._teardown()
            raise CocaineError(
                f"app '{self.name}' is broken: {exc}", Category.NODE, Node.SPOOL
            ) from None
        self.state = AppState.RUNNING

    async def _start(self) -> None:
        runtime = self.runtime
        ctx = runtime.context
        assert ctx is not None
        self.manifest = manifest = parse_manifest(
            self.name, await _read_map(runtime, "manifests", self.name, "manifest")
        )
        self.profile = profile = parse_profile(
            self.profile_name, await _read_map(runtime, "profiles", self.profile_name, "profile")
        )
        archive = archive_bytes(await _read_blob(runtime, "apps", self.name, "app archive"))
        isolate = ProcessIsolate(self._spool_dir(profile))
        workdir = await isolate.spool(self.name, archive)
        slave = Path(manifest.slave) if os.path.isabs(manifest.slave) else workdir / manifest.slave
        if not slave.resolve().is_relative_to(workdir.resolve()) and not os.path.isabs(
            manifest.slave
        ):
            raise ConfigError(f"$.slave: {manifest.slave!r} is outside the app directory")
        if not slave.is_file():
            raise ConfigError(f"$.slave: {manifest.slave!r} does not exist in the app archive")
        if not os.access(slave, os.X_OK):
            raise ConfigError(f"$.slave: {manifest.slave!r} is not executable (chmod +x)")
        socket_path = self._socket_path()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        locator = ",".join(format_endpoint(e) for e in runtime.locator_endpoints)
        self.engine = Engine(
            self.name,
            profile,
            manifest,
            workdir,
            isolate,
            ctx.storage,
            socket_path,
            locator,
            worker_environment(manifest),
        )
        self.worker_actor = Actor(
            f"{self.name}/workers",
            self._worker_dispatch,
            max_frame_size=runtime.config.limits.max_frame_size,
        )
        await self.worker_actor.start_unix(socket_path)
        await runtime.add_service(self.name, APP, self.dispatch)
        self.published = True
        log.info("app %s: running with profile %s (workdir %s)", self.name, profile.name, workdir)

    def _spool_dir(self, profile: Profile) -> Path:
        wanted = profile.isolate.args.get("spool")
        if isinstance(wanted, str) and wanted:
            try:
                Path(wanted).mkdir(parents=True, exist_ok=True)
                if os.access(wanted, os.W_OK):
                    return Path(wanted)
            except OSError:
                pass
            log.warning(
                "app %s: spool %s is not writable; using %s",
                self.name,
                wanted,
                self.runtime.config.spool_dir,
            )
        return self.runtime.config.spool_dir

    def _socket_path(self) -> str:
        path = self.runtime.config.runtime_dir / f"{self.name}.{os.getpid()}"
        if len(str(path)) < 100:
            return str(path)
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"cocaine-{os.getuid()}"
        short.mkdir(mode=0o700, exist_ok=True)
        return str(short / f"{digest}.{os.getpid()}")

    async def stop(self) -> None:
        async with self._lifecycle:
            await self._teardown()
            self.state = AppState.STOPPED

    async def _teardown(self) -> None:
        # Order: stop taking clients, drain the engine (in-flight replies still reach their
        # clients), then close the app's connections and the worker socket.
        published, self.published = self.published, False
        if published:
            self.runtime.unpublish(self.name)
        if self.engine is not None:
            await self.engine.stop()
        if published:
            await self.runtime.remove_service(self.name)
        if self.worker_actor is not None:
            await self.worker_actor.stop()  # removes the socket file too
            self.worker_actor = None

    # -- the app service ------------------------------------------------------------------

    def enqueue(self, channel: Channel, args: list[Any], headers: list[Header]) -> Receiver | None:
        if self.engine is None:
            channel.send(
                1, CocaineError("app is not running", Category.NODE, Node.NOT_RUNNING).to_wire()
            )
            return None
        return self.engine.enqueue(channel, args[0], headers)

    def control(self, channel: Channel, args: list[Any], headers: list[Header]) -> Receiver | None:
        return _Control(self)

    def info(self, flags: int = 1) -> dict[str, Any]:
        report: dict[str, Any] = {
            "state": self.state.value,
            "uptime": round(time.monotonic() - self.started, 3),
            "publushed": self.published,
            "profile": {"name": self.profile_name},
        }
        if self.reason:
            report["error"] = self.reason
        if flags & 2 and self.manifest is not None:
            report["manifest"] = {
                "slave": self.manifest.slave,
                "environment": self.manifest.environment,
            }
        if flags & 4 and self.profile is not None:
            report["profile"]["data"] = profile_report(self.profile)
        if flags & 1 and self.engine is not None:
            report.update(self.engine.report())
        return report

    def dispatch(self) -> ServiceDispatch:
        ctx = self.runtime.context
        return ServiceDispatch(
            APP,
            {"enqueue": self.enqueue, "info": lambda: self.info(1), "control": self.control},
            guard=ctx.authorize if ctx is not None else None,
            guarded=("control",),
        )

    def _worker_dispatch(self) -> _WorkerDispatch:
        return _WorkerDispatch(self)


class _Control:
    """``control`` stream: each ``write [n]`` sets the pool size; the end reverts to automatic."""

    def __init__(self, app: App) -> None:
        self.app = app

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        engine = self.app.engine
        if engine is None:
            return
        if message.alias == "write" and args and isinstance(args[0], int):
            engine.set_manual_target(args[0])
        elif message.alias != "write":
            engine.set_manual_target(0)

    def on_abort(self, exc: CocaineError) -> None:
        if self.app.engine is not None:
            self.app.engine.set_manual_target(0)


class _WorkerDispatch:
    """The worker socket: a handshake with a known uuid attaches the connection to its slave."""

    def __init__(self, app: App) -> None:
        from cocaine.idl.worker import HANDSHAKE

        self.app = app
        self.root = HANDSHAKE

    def open(
        self, channel: Channel, message: Message, args: list[Any], headers: list[Header]
    ) -> Receiver | None:
        engine = self.app.engine
        slave = engine.slaves.get(args[0]) if engine is not None else None
        if slave is None or not slave.attach(channel.conn, channel):
            log.warning("app %s: handshake from unknown worker %s", self.app.name, args[0])
            channel.conn.close()
            return None
        return slave


__all__ = ["App", "AppState"]
