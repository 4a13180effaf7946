"""The worker: one app process serving events for the runtime over a unix socket.

Theory of operation. The runtime starts the app with ``--app --endpoint --locator --protocol
--uuid``. The worker connects to ``--endpoint``, opens channel 1 with ``handshake [uuid]``
and from then on sends ``heartbeat []`` on it every ``heartbeat_interval`` seconds; each must be
answered within ``disown_timeout`` or the worker considers itself disowned and leaves. The
runtime opens channels 2, 3, … with ``invoke [event]``; each runs its handler as a task owned
by the connection, streaming chunks both ways (see :mod:`cocaine.worker.handlers`).

It stops on ``terminate [code, reason]`` from the runtime, SIGTERM or SIGINT: new invokes are
refused, in-flight handlers get ``shutdown_timeout`` seconds to finish (a second signal cuts
that short), then the worker sends ``terminate [code, reason]`` back (the runtime's own code and
reason when it asked) and leaves with status 0. Losing the connection or being disowned ends
it at once with status 1.

    CREATED ──► CONNECTING ──► ACTIVE ──► STOPPING ──► STOPPED
                    │             └──────────────────────►│   (serve() cancelled)
                    └────────────────────────────────────►┘   (connect failed)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar, overload

from cocaine.errors import Category, CocaineError, ConfigError, WorkerCode
from cocaine.idl.worker import HANDSHAKE, HEARTBEAT, INVOKE, TERMINATE
from cocaine.protocol.graph import Message
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel, Inbox, Receiver
from cocaine.rpc.connection import Connection, connect_unix
from cocaine.rpc.loop import run_loop
from cocaine.worker.handlers import Handler, invoke
from cocaine.worker.options import WorkerOptions, export_locator
from cocaine.worker.request import Request
from cocaine.worker.response import Response

log = logging.getLogger(__name__)

H = TypeVar("H", bound=Handler)

# The code the worker terminates with when it decides to leave (a signal, ``stop()``).
TERMINATE_NORMAL = 1
# How long cancelled handlers get to unwind once the shutdown timeout has passed.
_CANCEL_GRACE = 1.0


def _heartbeat_interval() -> float:
    """20 s, or a third of the runtime's heartbeat timeout when it tells us a shorter one."""
    try:
        timeout = float(os.environ.get("COCAINE_HEARTBEAT_TIMEOUT", "60"))
    except ValueError:
        timeout = 60.0
    return max(0.05, min(20.0, timeout / 3))


class WorkerState(Enum):
    CREATED = "created"
    CONNECTING = "connecting"
    ACTIVE = "active"
    STOPPING = "stopping"
    STOPPED = "stopped"


_MOVES: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.CREATED: frozenset({WorkerState.CONNECTING}),
    WorkerState.CONNECTING: frozenset({WorkerState.ACTIVE, WorkerState.STOPPED}),
    WorkerState.ACTIVE: frozenset({WorkerState.STOPPING, WorkerState.STOPPED}),
    WorkerState.STOPPING: frozenset({WorkerState.STOPPED}),
    WorkerState.STOPPED: frozenset(),
}


@dataclass(frozen=True)
class StopReason:
    """Why the worker stops, and how."""

    code: int
    reason: str
    graceful: bool  # let in-flight handlers finish and say terminate to the runtime
    exit_status: int


class Worker:
    """Serves events to handlers for the runtime.

    ``app``, ``uuid``, ``endpoint`` and ``locator`` default to the ``--app``, ``--uuid``,
    ``--endpoint`` and ``--locator`` the runtime passed (``argv`` instead of ``sys.argv`` when
    given); the locator list becomes ``COCAINE_LOCATOR`` for the app's own ``Service`` calls.
    A heartbeat goes out every ``heartbeat_interval`` seconds and must be answered within
    ``disown_timeout``; on stop, in-flight handlers get ``shutdown_timeout`` seconds.
    """

    def __init__(
        self,
        app: str | None = None,
        uuid: str | None = None,
        endpoint: str | None = None,
        locator: str | None = None,
        *,
        heartbeat_interval: float | None = None,
        disown_timeout: float = 5.0,
        shutdown_timeout: float = 10.0,
        argv: list[str] | None = None,
    ) -> None:
        options = WorkerOptions.from_argv(argv)
        self.app = app or options.app or ""
        self.uuid = uuid or options.uuid
        self.endpoint = endpoint or options.endpoint
        self.locator = locator or options.locator
        self.protocol = options.protocol
        self.heartbeat_interval = heartbeat_interval or _heartbeat_interval()
        self.disown_timeout = disown_timeout
        self.shutdown_timeout = shutdown_timeout
        self.handlers: dict[str, Handler] = {}
        self.state = WorkerState.CREATED
        self.stop_reason: StopReason | None = None
        self._stopped: asyncio.Future[StopReason] | None = None
        self._pong: asyncio.Event | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        export_locator(self.locator)

    # -- handlers ---------------------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...

    @overload
    def on(self, event: str, handler: H) -> H: ...

    def on(self, event: str, handler: H | None = None) -> Any:
        """Register ``handler`` for ``event``; without a handler, a decorator that does so."""
        if handler is None:

            def register(fn: H) -> H:
                self.on(event, fn)
                return fn

            return register
        if not callable(handler):
            raise TypeError(f"the handler for event '{event}' is not callable: {handler!r}")
        self.handlers[event] = handler
        return handler

    # -- running ----------------------------------------------------------------------------

    def run(self, handlers: Mapping[str, Handler] | None = None) -> None:
        """Serve until stopped (blocking), on uvloop when it is installed.

        Returns when the worker stopped in order; exits the process with status 1 when it was
        disowned, lost its connection or could not connect.
        """
        try:
            status = run_loop(self.serve(handlers))
        except CocaineError as exc:
            print(f"worker {self.app}: {exc.reason}", file=sys.stderr)
            status = 1
        if status:
            raise SystemExit(status)

    async def serve(
        self, handlers: Mapping[str, Handler] | None = None, *, handle_signals: bool = True
    ) -> int:
        """Serve until stopped; return the exit status (0 after an orderly stop)."""
        for event, handler in (handlers or {}).items():
            self.on(event, handler)
        if not self.endpoint or not self.uuid:
            raise ConfigError("the worker needs --endpoint and --uuid (the runtime passes them)")
        if self.protocol not in (None, 1):
            log.warning("worker protocol %s requested; speaking protocol 1", self.protocol)
        self._move(WorkerState.CONNECTING)
        loop = asyncio.get_running_loop()
        self._stopped, self._pong = loop.create_future(), asyncio.Event()
        try:
            conn = await connect_unix(
                self.endpoint,
                _Invocations(self),
                trace_headers=False,
                name=f"worker {self.app}",
                on_close=self._connection_closed,
            )
        except BaseException:
            self._move(WorkerState.STOPPED)
            raise
        signals = _install_signals(loop, self._signalled) if handle_signals else []
        try:
            control = conn.open(HANDSHAKE, 0, [self.uuid], receiver=_Control(self))
            self._move(WorkerState.ACTIVE)
            log.info("worker %s (%s) is active", self.app, self.uuid)
            heartbeats = conn.spawn(self._heartbeats(control))
            reason = await self._stopped
            self._move(WorkerState.STOPPING)
            log.info("worker %s is stopping: %s", self.app, reason.reason)
            if reason.graceful:
                await self._finish_inflight()
            heartbeats.cancel()
            if reason.graceful and control.can_send:
                control.send(TERMINATE, [reason.code, reason.reason])
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            conn.close()
            self._move(WorkerState.STOPPED)
        log.info("worker %s stopped", self.app)
        return reason.exit_status

    def stop(self, code: int = TERMINATE_NORMAL, reason: str = "the worker is stopping") -> None:
        """Ask the worker to stop in order, as a ``terminate`` from the runtime would."""
        self._request_stop(StopReason(code, reason, graceful=True, exit_status=0))

    # -- internals --------------------------------------------------------------------------

    def _move(self, new: WorkerState) -> None:
        if new not in _MOVES[self.state]:
            raise RuntimeError(f"a worker cannot go from {self.state.value} to {new.value}")
        self.state = new

    def _request_stop(self, reason: StopReason) -> None:
        stopped = self._stopped
        if stopped is not None and not stopped.done():
            self.stop_reason = reason
            stopped.set_result(reason)

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.state is WorkerState.STOPPING:
            log.warning("worker %s: %s again, cancelling in-flight handlers", self.app, name)
            for task in self._inflight:
                task.cancel()
            return
        self.stop(TERMINATE_NORMAL, f"the worker received {name}")

    def _connection_closed(self, conn: Connection, error: CocaineError | None) -> None:
        reason = error.reason if error is not None else "connection closed"
        self._request_stop(StopReason(0, reason, graceful=False, exit_status=1))

    async def _heartbeats(self, control: Channel) -> None:
        assert self._pong is not None
        loop = asyncio.get_running_loop()
        while True:
            self._pong.clear()
            sent = loop.time()
            try:
                control.send(HEARTBEAT, [])
            except CocaineError as exc:
                self._request_stop(StopReason(0, str(exc), graceful=False, exit_status=1))
                return
            try:
                await asyncio.wait_for(self._pong.wait(), self.disown_timeout)
            except TimeoutError:
                log.error(
                    "worker %s: no heartbeat reply in %ss: disowned", self.app, self.disown_timeout
                )
                self._request_stop(StopReason(0, "disowned", graceful=False, exit_status=1))
                return
            await asyncio.sleep(max(0.0, sent + self.heartbeat_interval - loop.time()))

    async def _finish_inflight(self) -> None:
        if not self._inflight:
            return
        log.info("worker %s: waiting for %d in-flight request(s)", self.app, len(self._inflight))
        _, pending = await asyncio.wait(set(self._inflight), timeout=self.shutdown_timeout)
        if pending:
            log.warning(
                "worker %s: cancelling %d request(s) after %ss",
                self.app,
                len(pending),
                self.shutdown_timeout,
            )
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=_CANCEL_GRACE)

    def _invoke(self, channel: Channel, event: str, headers: list[Header]) -> Receiver | None:
        response = Response(event, channel)
        if self.state is not WorkerState.ACTIVE:
            response.error(Category.WORKER, WorkerCode.INVOCATION_FAILED, "the worker is stopping")
            return None
        handler = self.handlers.get(event)
        if handler is None:
            response.error(
                Category.WORKER, WorkerCode.NO_HANDLER, f"there is no handler for event {event}"
            )
            return None
        inbox = Inbox(channel.conn)
        channel.conn.spawn(
            invoke(handler, Request(event, inbox, headers), response), also=self._inflight
        )
        return inbox

    def __repr__(self) -> str:
        return f"<Worker {self.app} {self.uuid} {self.state.value}>"


class _Invocations:
    """The channels the runtime opens: one ``invoke [event]`` each."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self.root = INVOKE

    def open(
        self, channel: Channel, message: Message, args: list[Any], headers: list[Header]
    ) -> Receiver | None:
        return self._worker._invoke(channel, args[0], headers)


class _Control:
    """What the runtime says on channel 1: heartbeat replies and ``terminate``."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        worker = self._worker
        if message.alias == "heartbeat":
            if worker._pong is not None:
                worker._pong.set()
        elif message.alias == "terminate":
            code = args[0] if args and isinstance(args[0], int) else 0
            raw = args[1] if len(args) > 1 else b""
            reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            worker._request_stop(StopReason(code, reason, graceful=True, exit_status=0))

    def on_abort(self, exc: CocaineError) -> None:
        self._worker._request_stop(StopReason(0, exc.reason, graceful=False, exit_status=1))


def _install_signals(loop: asyncio.AbstractEventLoop, callback: Callable[[int], None]) -> list[int]:
    installed: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, callback, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            continue
        installed.append(signum)
    return installed


__all__ = ["TERMINATE_NORMAL", "StopReason", "Worker", "WorkerState"]
