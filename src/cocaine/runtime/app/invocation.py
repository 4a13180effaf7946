"""One enqueued event, from the client's channel through the queue to a worker channel.

Theory of operation. The client opens ``enqueue(event)`` on the app's service; the invocation
is that channel's receiver. Until a worker is assigned, chunks the client sends are held (a
bounded list; past it the client's connection stops being read). Once assigned, the runtime
opens ``invoke(event)`` on the worker's connection and relays both ways: client → worker
(C2W) and worker → client (W2C). Each direction ends on its own ``close`` or ``error``; the
invocation is done when both have, or when it fails (deadline, worker death, app stop).

    QUEUED ──assign──► RUNNING ──both directions closed──► DONE
       └──────────── expired / failed / stopped ───────────► DONE
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from cocaine.errors import Category, CocaineError, Node
from cocaine.errors import Slave as SlaveCode
from cocaine.idl.worker import CLOSE, ERROR, INVOKE, WRITE
from cocaine.protocol.graph import Message
from cocaine.protocol.headers import Header
from cocaine.rpc.channel import Channel
from cocaine.rpc.connection import Connection
from cocaine.rpc.deadlines import Bucket

if TYPE_CHECKING:
    from cocaine.runtime.app.slave import Slave

_STREAM: Final = {"write": WRITE, "error": ERROR, "close": CLOSE}
HELD_MESSAGES: Final = 256  # client chunks held before assignment before the client is paused


class Phase(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class Invocation:
    __slots__ = (
        "_held",
        "_holding",
        "_paused",
        "birth",
        "c2w_done",
        "client",
        "deadline",
        "event",
        "headers",
        "on_done",
        "phase",
        "slave",
        "timer",
        "w2c_done",
        "worker",
    )

    def __init__(
        self, client: Channel, event: str, headers: list[Header], birth: float, deadline: float
    ) -> None:
        self.client = client
        self.event = event
        self.headers = headers
        self.birth = birth
        self.deadline = deadline
        self.phase = Phase.QUEUED
        self.worker: Channel | None = None
        self.slave: Slave | None = None
        self.timer: Bucket[Invocation] | None = None  # the deadline bucket it waits in
        self.c2w_done = False
        self.w2c_done = False
        self._held: list[tuple[int, list[Any]]] = []
        self._paused = False
        self._holding: Connection | None = None  # a worker connection paused for a slow client
        self.on_done: Any = None  # callable(invocation) set by the engine

    # -- client → runtime ---------------------------------------------------------------

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        mtype = _STREAM[message.alias]
        if mtype != WRITE:
            self.c2w_done = True
        if self.phase is Phase.QUEUED:
            self._held.append((mtype, args))
            if len(self._held) > HELD_MESSAGES and not self._paused:
                self._paused = True
                self.client.conn.pause_reading()
            return
        worker = self.worker
        if self.phase is Phase.RUNNING and worker is not None and worker.can_send:
            worker.send(mtype, args)
        self._maybe_done()

    def on_abort(self, exc: CocaineError) -> None:
        """The client went away: tell the worker, forget the invocation."""
        self.c2w_done = True
        self.fail(exc, notify_client=False)

    # -- assignment -----------------------------------------------------------------------

    def start(self, slave: Slave, worker: Channel) -> None:
        self.phase = Phase.RUNNING
        self.slave = slave
        self.worker = worker
        held, self._held = self._held, []
        for mtype, args in held:
            worker.send(mtype, args)
        if self._paused:
            self._paused = False
            self.client.conn.resume_reading()
        self._maybe_done()

    # -- worker → client ------------------------------------------------------------------

    def from_worker(self, mtype: int, args: list[Any]) -> None:
        if mtype != WRITE:
            self.w2c_done = True
        client = self.client
        if client.can_send:
            client.send(mtype, args)
            self._hold_worker_for_slow_client()
        self._maybe_done()

    def _hold_worker_for_slow_client(self) -> None:
        """Backpressure: while the client's transport is above its high-water mark, stop
        reading the worker's connection, so the worker's own drain() holds its handler back."""
        ready = self.client.conn.write_ready
        worker = self.worker
        if ready is None or ready.done() or self._holding is not None or worker is None:
            return
        held = self._holding = worker.conn
        held.pause_reading()
        ready.add_done_callback(lambda _: self._release_worker(held))

    def _release_worker(self, held: Connection) -> None:
        if self._holding is held:
            self._holding = None
            held.resume_reading()

    # -- ending ---------------------------------------------------------------------------

    def _maybe_done(self) -> None:
        if self.c2w_done and self.w2c_done:
            self._finish()

    def fail(self, error: CocaineError, *, notify_client: bool = True) -> None:
        """End now with ``error``: to the client (if it still listens) and to the worker."""
        if self.phase is Phase.DONE:
            return
        if notify_client and self.client.can_send:
            self.client.send(ERROR, error.to_wire())
        worker = self.worker
        if worker is not None and worker.can_send:
            worker.send(ERROR, error.to_wire())
        self._finish()

    def expire(self) -> None:
        if self.phase is Phase.QUEUED:
            self.fail(
                CocaineError("the event has expired in the queue", Category.NODE, Node.DEADLINE)
            )
        else:
            self.fail(CocaineError("the event has timed out", Category.NODE, Node.TIMEOUT))

    def _finish(self) -> None:
        if self.phase is Phase.DONE:
            return
        self.phase = Phase.DONE
        if self.timer is not None:
            self.timer.discard(self)
            self.timer = None
        if self._paused:
            self._paused = False
            self.client.conn.resume_reading()
        if self._holding is not None:
            self._release_worker(self._holding)
        worker = self.worker
        if worker is not None:
            if worker.state.recv is None:
                worker.receiver = None
                if worker.state.send is not None:
                    worker.state.send = None
                    worker.conn.forget(worker)
            else:
                # The worker may still write (it was just told error, or its client left):
                # keep the channel so those frames stay legal, and drop them. The connection
                # forgets the channel on the worker's own close or error.
                worker.receiver = _DISCARD
        self.client.receiver = None
        on_done = self.on_done
        if on_done is not None:
            on_done(self)


class WorkerSide:
    """The worker channel's receiver: relays W2C into the invocation."""

    __slots__ = ("invocation",)

    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        self.invocation.from_worker(_STREAM[message.alias], args)

    def on_abort(self, exc: CocaineError) -> None:
        self.invocation.fail(
            CocaineError(
                f"the worker died while handling the event ({exc.reason})",
                Category.SLAVE,
                SlaveCode.CONTROL_IPC_ERROR,
            )
        )


class _Discard:
    """Receiver for a finished invocation's worker channel: the worker's late frames go nowhere."""

    __slots__ = ()

    def on_message(self, message: Message, args: list[Any], headers: list[Header]) -> None:
        pass

    def on_abort(self, exc: CocaineError) -> None:
        pass


_DISCARD: Final = _Discard()


def open_invoke(slave_conn: Any, invocation: Invocation) -> Channel:
    channel: Channel = slave_conn.open(
        INVOKE, 0, [invocation.event], invocation.headers or None, WorkerSide(invocation)
    )
    return channel


__all__ = ["HELD_MESSAGES", "Invocation", "Phase", "WorkerSide", "open_invoke"]
