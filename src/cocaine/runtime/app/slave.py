"""A slave: one worker process, its control channel and the invocations it runs.

Theory of operation. A slave's life is one task owned by its engine:

    SPAWNING ──process started──► HANDSHAKING ──handshake [uuid]──► ACTIVE
    ACTIVE ──seal()──► SEALING ──no invocations left / seal-timeout──► TERMINATING
    TERMINATING ──process exit (else SIGTERM, then SIGKILL)──► CLOSED
                 (no connection yet: SIGTERM at once, as there is nobody to say terminate to)
    any state ──process exit / disconnect / timeout──► CLOSED (abnormal)

Every wait runs under the profile's deadline for its phase: spawn, handshake, heartbeat (reset
by every heartbeat), seal and terminate. A handshake may arrive before the spawn call returns.
On an abnormal end the slave's last output lines become a crashlog. Once CLOSED, it stays so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from enum import Enum
from typing import TYPE_CHECKING, Any

from cocaine.errors import Category, CocaineError, ConnectionLost
from cocaine.errors import Slave as SlaveCode
from cocaine.idl.worker import HEARTBEAT, TERMINATE
from cocaine.protocol.graph import Message
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel
from cocaine.rpc.connection import Connection
from cocaine.runtime.app.invocation import Invocation, open_invoke
from cocaine.runtime.isolate.base import Handle

if TYPE_CHECKING:
    from cocaine.runtime.app.engine import Engine

log = logging.getLogger(__name__)
KILL_TIMEOUT = 5.0


class State(Enum):
    SPAWNING = "spawning"
    HANDSHAKING = "handshaking"
    ACTIVE = "active"
    SEALING = "sealing"
    TERMINATING = "terminating"
    CLOSED = "closed"


def _slave_error(code: SlaveCode, reason: str) -> CocaineError:
    return CocaineError(reason, Category.SLAVE, code)


class Slave:
    def __init__(self, engine: Engine, uuid: str) -> None:
        self.engine = engine
        self.uuid = uuid
        self.state = State.SPAWNING
        self.born = time.monotonic()
        self.handle: Handle | None = None
        self.conn: Connection | None = None
        self.control: Channel | None = None
        self.invocations: set[Invocation] = set()
        self.accepted = 0
        self.idle_since: float | None = None
        self.error: CocaineError | None = None
        self.activated = False  # it completed its handshake at some point
        self._wake = asyncio.Event()
        self._last_beat = 0.0
        self._terminate: tuple[int, str] | None = None  # what to send when terminating
        self._worker_quit = False
        self.task: asyncio.Task[None] | None = None

    # -- transitions ----------------------------------------------------------------------

    def _set(self, state: State) -> None:
        if self.state is State.CLOSED:
            raise RuntimeError(f"slave {self.uuid} is closed; cannot become {state.value}")
        log.debug(
            "app %s: slave %s %s → %s", self.engine.name, self.uuid, self.state.value, state.value
        )
        self.state = state
        self._wake.set()

    @property
    def load(self) -> int:
        return len(self.invocations)

    @property
    def available(self) -> bool:
        return self.state is State.ACTIVE and self.load < self.engine.profile.concurrency

    def seal(self, code: int = SlaveCode.SEALING, reason: str = "slave is sealing") -> None:
        """Stop taking invocations; terminate once the running ones finish."""
        if self.state in (State.SPAWNING, State.HANDSHAKING):
            self._terminate = (code, reason)
            self._set(State.TERMINATING)
        elif self.state is State.ACTIVE:
            self._terminate = (code, reason)
            self._set(State.SEALING)

    # -- the worker's side ----------------------------------------------------------------

    def attach(self, conn: Connection, control: Channel) -> bool:
        if self.conn is not None or self.state not in (State.SPAWNING, State.HANDSHAKING):
            return False
        self.conn, self.control = conn, control
        self._last_beat = asyncio.get_running_loop().time()
        self._wake.set()
        return True

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        """Control channel: heartbeats (answered at once) and the worker's terminate."""
        if message.alias == "heartbeat":
            self._last_beat = asyncio.get_running_loop().time()
            control = self.control
            if control is not None and control.can_send:
                control.send(HEARTBEAT, [])
        elif message.alias == "terminate":
            self._worker_quit = True
            self._wake.set()

    def on_abort(self, exc: CocaineError) -> None:
        self._wake.set()  # the connection is gone; the life task notices

    def inject(self, invocation: Invocation) -> None:
        assert self.conn is not None
        self.invocations.add(invocation)
        self.accepted += 1
        self.idle_since = None
        invocation.start(self, open_invoke(self.conn, invocation))

    def release(self, invocation: Invocation) -> None:
        self.invocations.discard(invocation)
        if not self.invocations:
            self.idle_since = time.monotonic()
            if self.state is State.SEALING:
                self._wake.set()

    # -- life -----------------------------------------------------------------------------

    async def life(self) -> None:
        abnormal, error = True, None
        try:
            await self._spawn()
            await self._handshake()
            abnormal, error = await self._run()
        except CocaineError as exc:
            error = exc
        except asyncio.CancelledError:
            abnormal, error = (
                False,
                _slave_error(SlaveCode.OVERSEER_SHUTDOWN, "overseer is shutting down"),
            )
        finally:
            await self._close(error, abnormal)

    async def _spawn(self) -> None:
        profile = self.engine.profile
        try:
            async with asyncio.timeout(profile.spawn_timeout):
                self.handle = await self.engine.spawn(self)
        except TimeoutError:
            raise _slave_error(
                SlaveCode.SPAWN_TIMEOUT, "the worker took too long to spawn"
            ) from None
        if self.state is State.SPAWNING:
            self._set(State.HANDSHAKING)

    async def _wait(self, until: float, exited: asyncio.Future[Any]) -> None:
        """Sleep until woken, the process exits, or ``until`` (loop time)."""
        self._wake.clear()
        delay = until - asyncio.get_running_loop().time()
        if delay <= 0 or exited.done():
            return
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((waker, exited), timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()

    async def _handshake(self) -> None:
        assert self.handle is not None
        loop = asyncio.get_running_loop()
        exited = self._exited = asyncio.ensure_future(self.handle.wait())
        deadline = loop.time() + self.engine.profile.handshake_timeout
        while self.conn is None:
            if self.state is State.TERMINATING:
                return
            if exited.done():
                raise _slave_error(
                    SlaveCode.UNKNOWN_ACTIVATE_ERROR,
                    f"the worker exited with code {exited.result()} before its handshake",
                )
            if loop.time() >= deadline:
                raise _slave_error(
                    SlaveCode.ACTIVATE_TIMEOUT, "the worker did not handshake in time"
                )
            await self._wait(deadline, exited)
        if self.state is State.HANDSHAKING:
            self._set(State.ACTIVE)
            self.activated = True
            self.idle_since = time.monotonic()
            self.engine.slave_active(self)

    async def _run(self) -> tuple[bool, CocaineError | None]:
        loop = asyncio.get_running_loop()
        profile = self.engine.profile
        exited = self._exited
        seal_deadline = term_deadline = None
        while True:
            now = loop.time()
            if exited.done():
                code = exited.result()
                if self.state is State.TERMINATING or self._worker_quit:
                    return False, None
                return True, _slave_error(
                    SlaveCode.UNKNOWN_ACTIVATE_ERROR,
                    f"the worker exited unexpectedly with code {code}",
                )
            lost = self.conn is None or self.conn.closed
            if self._worker_quit and self.state is not State.TERMINATING:
                self._set(State.TERMINATING)
                term_deadline = now + profile.terminate_timeout
            if self.state is State.SEALING:
                seal_deadline = seal_deadline or now + profile.seal_timeout
                if not self.invocations or now >= seal_deadline or lost:
                    self._begin_terminate()
                    term_deadline = now + profile.terminate_timeout
            if self.state is State.TERMINATING:
                term_deadline = term_deadline or now + profile.terminate_timeout
                if self.conn is None:  # stopped before its handshake: nobody to say terminate to
                    await self._stop_process()
                    return False, None
                if now >= term_deadline:
                    return False, await self._stop_process()
                await self._wait(term_deadline, exited)
                continue
            if lost:
                return True, ConnectionLost("the worker closed its connection")
            beat_deadline = self._last_beat + profile.heartbeat_timeout
            if now >= beat_deadline:
                return True, _slave_error(
                    SlaveCode.HEARTBEAT_TIMEOUT, "the worker stopped sending heartbeats"
                )
            until = beat_deadline if seal_deadline is None else min(beat_deadline, seal_deadline)
            await self._wait(until, exited)

    def _begin_terminate(self) -> None:
        code, reason = self._terminate or (SlaveCode.SEALING, "slave is sealing")
        control = self.control
        if control is not None and control.can_send:
            with contextlib.suppress(CocaineError):
                control.send(TERMINATE, [int(code), reason])
        self._set(State.TERMINATING)

    async def _stop_process(self) -> CocaineError | None:
        """The worker ignored terminate: SIGTERM, then SIGKILL."""
        handle = self.handle
        if handle is None:
            return None
        handle.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), KILL_TIMEOUT)
        except TimeoutError:
            handle.kill()
        return _slave_error(SlaveCode.TERMINATE_TIMEOUT, "the worker did not exit after terminate")

    async def _close(self, error: CocaineError | None, abnormal: bool) -> None:
        if self.state is State.CLOSED:
            return
        self.error = error
        self.state = State.CLOSED
        failure = error or _slave_error(SlaveCode.OVERSEER_SHUTDOWN, "the worker has stopped")
        for invocation in list(self.invocations):
            invocation.fail(failure)
        self.invocations.clear()
        if self.conn is not None:
            self.conn.close()
        handle = self.handle
        if handle is not None:
            if handle.returncode is None:
                handle.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(handle.wait()), KILL_TIMEOUT)
            await handle.close()
        if abnormal and error is not None:
            log.warning("app %s: worker %s died: %s", self.engine.name, self.uuid, error.reason)
        self.engine.slave_closed(self, abnormal)

    def report(self) -> dict[str, Any]:
        now = time.monotonic()
        oldest = min((i.birth for i in self.invocations), default=None)
        return {
            "state": self.state.value,
            "load": self.load,
            "accepted": self.accepted,
            "uptime": round(now - self.born, 3),
            "pid": self.handle.pid if self.handle is not None else None,
            "oldest_channel_age": round((time.time() - oldest) * 1000) if oldest else 0,
        }


__all__ = ["KILL_TIMEOUT", "Slave", "State"]
